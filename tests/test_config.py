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
        ({"paper": {"nmae": "x"}},
         "paper.nmae: unknown key; did you mean name? (expected one of: name, base_url"),
        ({"paper": {"name": 5}}, "paper.name: expected a string (got 5)"),
        ({"issue": {"min_articles": "two"}}, "issue.min_articles: expected a whole number"),
        ({"feeds": {}}, "feeds: unknown key"),
        ({"paper": {"timezone": "Beijing"}}, "paper.timezone: unknown time zone 'Beijing'"),
        ({"paper": {"base_url": "news.example.org"}}, "paper.base_url: expected an absolute"),
        ({"email": {"transport": "fax"}}, "email.transport: input should be 'outbox' or 'smtp'"),
        ({"issue": {"title": "{paper} {nmber}"}}, "issue.title: unknown placeholder {nmber}"),
        ({"schedule": {"publish_cron": "30 7 * *"}}, "publish_cron: expected a five-field"),
        ({"paper": "x"}, "paper: expected a table"),
        # Values that reach a header or a URL: one line, one address, a plain URL.
        ({"email": {"subject": "{paper}\u2028Bcc: x@evil.example"}},
         "email.subject: contains a line break (U+2028); expected one line of text"),
        ({"email": {"subject": "{paper}\x85{number}"}}, "email.subject: contains a line break "
                                                       "(U+0085)"),
        ({"email": {"subject": "{paper}\v{number}"}}, "email.subject: contains a line break "
                                                      "(U+000B)"),
        ({"issue": {"title": "{paper}\n第{number}期"}}, "issue.title: contains a line break "
                                                       "(U+000A)"),
        ({"paper": {"name": "工会报\u2029"}}, "paper.name: contains a line break (U+2029)"),
        ({"paper": {"name": "工会报\x00"}}, "paper.name: contains a control character (U+0000)"),
        ({"email": {"from": "工会报 <digest@news.example.org>\r\nBcc: x@evil.example"}},
         "email.from: contains a line break (U+000D)"),
        ({"email": {"from": "x@evil.example, <digest@news.example.org>"}},
         "email.from: 'x@evil.example, <digest@news.example.org>': expected one address"),
        ({"email": {"from": "工会报 <digest>"}}, "email.from: 'digest' is not an email address"),
        ({"email": {"from": ""}}, "email.from: expected e.g."),
        ({"email": {"reply_to": "a@example.org\u2028"}}, "email.reply_to: contains a line break"),
        ({"email": {"reply_to": "editors"}}, "email.reply_to: 'editors' is not an email address"),
        ({"email": {"unsubscribe_mailto": "Name <u@news.example.org>"}},
         "email.unsubscribe_mailto: expected a bare address"),
        ({"email": {"list_id": "digest.news.example.org> <evil.example"}},
         "email.list_id: 'digest.news.example.org> <evil.example' is not a list id"),
        ({"paper": {"base_url": "https://news.example.org/>, <https://evil.example/"}},
         "paper.base_url: contains ' ', '<', '>'; expected a URL"),
        ({"paper": {"base_url": "https://news.example.org/\n"}},
         "paper.base_url: contains a line break (U+000A)"),
        ({"paper": {"base_url": "https://news.example.org/a b/"}}, "paper.base_url: contains ' '"),
        ({"paper": {"base_url": "ftp://news.example.org/"}},
         "paper.base_url: expected an absolute"),
        ({"paper": {"base_url": "https:///x/"}}, "paper.base_url: expected an absolute"),
        ({"paper": {"base_url": "https://news.example.org/?a=1"}},
         "paper.base_url: expected no ?query or #fragment"),
        ({"paper": {"base_url": "https://u:p@news.example.org/"}},
         "paper.base_url: expected no user name or password"),
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


@pytest.mark.parametrize(("key", "value"), [
    ("from", "=?utf-8?q?x=2C_attacker=40evil=2Eexample=2C?= <digest@news.example.org>"),
    ("from", '"工会报, 编辑部" <digest@news.example.org>'),
    ("from", "digest@news.example.org"),
    ("reply_to", "编辑部 <editors@news.example.org>"),
    ("list_id", "digest.news.example.org"),
])
def test_values_that_only_look_odd_are_accepted_as_text(key: str, value: str,
                                                         tmp_path: Path) -> None:
    config = config_from_dict({"email": {key: value}}, tmp_path)
    assert getattr(config.email, "from_address" if key == "from" else key) == value
