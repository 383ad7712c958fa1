"""Config: a misspelt or mistyped key is an error that names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gongbao_feed.config import config_from_dict, load_config
from gongbao_feed.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid_and_relative_to_its_folder() -> None:
    config = load_config(REPO / "config.toml")
    assert config.paper.timezone == "Asia/Shanghai"
    assert config.inbox == (REPO / "inbox").resolve()
    assert config.database_url == f"sqlite:///{REPO / 'state' / 'gongbao.db'}"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"paper": {"nmae": "x"}}, "paper.nmae: unknown key; expected one of: name, base_url"),
        ({"paper": {"name": 5}}, "paper.name: expected a string (got 5)"),
        ({"issue": {"min_articles": "two"}}, "issue.min_articles: expected a whole number"),
        ({"feeds": {}}, "feeds: unknown key"),
        ({"paper": {"timezone": "Beijing"}}, "paper.timezone: unknown time zone 'Beijing'"),
        ({"paper": {"base_url": "news.example.org"}}, "paper.base_url: expected an absolute"),
        ({"email": {"transport": "fax"}}, "email.transport: input should be 'outbox' or 'smtp'"),
        ({"issue": {"title": "{paper} {nmber}"}}, "issue.title: unknown placeholder {nmber}"),
        ({"schedule": {"publish_cron": "30 7 * *"}}, "publish_cron: expected a five-field"),
        ({"paper": "x"}, "paper: expected a table"),
    ],
)
def test_bad_config_names_the_key(data: dict, says: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, tmp_path)
    assert says in str(err.value)


def test_bad_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[paper\nname = 1\n", "utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file") as err:
        load_config(tmp_path / "missing.toml")
    assert "gongbao-feed init" in str(err.value)


def test_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "sub" / "config.toml"
    cfg.parent.mkdir()
    cfg.write_text('[paths]\ninbox = "pages"\n', "utf-8")
    config = load_config(cfg)
    assert config.inbox == tmp_path / "sub" / "pages"
    assert config.public_dir == tmp_path / "sub" / "public"
