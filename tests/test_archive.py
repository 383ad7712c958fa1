"""The static web archive: every page there, linked, escaped, and left alone when unchanged."""

from __future__ import annotations

import posixpath
from pathlib import Path

import pytest

from gongbao_feed.archive import environment, render_archive
from gongbao_feed.errors import RenderError
from gongbao_feed.publish import Newsroom
from gongbao_feed.skeleton import builtin_templates

from .conftest import FixedClock
from .helpers_issues import (
    BASE,
    START,
    body_texts,
    copy_page,
    html_blocks,
    issue_of,
    make_config,
    make_room,
    public_files,
    record,
)

FEEDS = {
    BASE + "feed.xml": "application/rss+xml",
    BASE + "atom.xml": "application/atom+xml",
    BASE + "feed.json": "application/feed+json",
    BASE + "issues.xml": "application/atom+xml",
}


@pytest.fixture
def site(tmp_path: Path) -> Newsroom:
    clock = FixedClock(START)
    room = make_room(tmp_path, clock)
    copy_page(room, "2026-03-02-01.txt")
    room.ingest()
    room.assemble()
    clock.advance(days=1)
    copy_page(room, "2026-03-03-01.txt")
    room.ingest()
    room.assemble()
    yield room
    room.close()


def pages(room: Newsroom) -> dict[str, str]:
    public = room.config.public_dir
    return {str(p.relative_to(public)): p.read_text("utf-8") for p in public.rglob("*.html")}


def test_every_issue_and_article_has_a_page(site: Newsroom) -> None:
    html = pages(site)
    expected = {"index.html", "issues/0001.html", "issues/0002.html"}
    expected |= {f"articles/{a.id}.html" for a in site.store.all_articles()}
    assert set(html) == expected
    assert (site.config.public_dir / "style.css").is_file()


def test_pages_are_chinese_mobile_friendly_and_advertise_the_feeds(site: Newsroom) -> None:
    for name, html in pages(site).items():
        assert html.startswith("<!DOCTYPE html>\n<html lang=\"zh-CN\">"), name
        assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
        alternates = {
            attrs["href"]: attrs["type"]
            for tag, attrs in html_blocks(html).links
            if tag == "link" and attrs.get("rel") == "alternate"
        }
        assert alternates == FEEDS, name


def test_links_between_pages_resolve(site: Newsroom) -> None:
    public = site.config.public_dir
    for name, html in pages(site).items():
        for _tag, attrs in html_blocks(html).links:
            href = attrs.get("href") or ""
            if href.startswith(("https://", "#")) or not href:
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), href))
            if target == "subscribe":  # the signup form: `serve` answers it, not a file
                continue
            assert (public / target.split("#")[0]).is_file(), (name, href)


def test_article_page_shows_the_article_and_links_its_issue(site: Newsroom) -> None:
    article = next(a for a in site.store.all_articles() if "小发明" in a.title)
    html = pages(site)[f"articles/{article.id}.html"]
    blocks = dict(html_blocks(html).blocks)
    assert blocks["h1.title"] == article.title
    assert blocks["p.subtitle"] == article.subtitle
    # issue 15: the credit stays with its caption, role kept, as the paper prints it
    assert blocks["p.byline"] == "记者 周文涛　通讯员 孙丽"
    assert blocks["p.caption"] == "图为职工在调试自制工装。通讯员 孙丽 摄"
    assert body_texts(html)[1:] == list(article.paragraphs[1:])
    assert f'href="../issues/0001.html#{article.id}"' in html
    assert f'<link rel="canonical" href="{BASE}articles/{article.id}.html">' in html


def test_text_is_escaped_everywhere(site: Newsroom) -> None:
    for name, html in pages(site).items():
        assert "<script" not in html, name
        assert "script" not in html_blocks(html).tags
    article_pages = [h for n, h in pages(site).items() if "&lt;script&gt;" in h]
    assert len(article_pages) == 2  # the article's own page and its issue's page


def test_issue_page_holds_its_articles_in_order(site: Newsroom) -> None:
    issue = site.store.issue(1)
    html = pages(site)["issues/0001.html"]
    positions = [html.index(f'<article id="{aid}"') for aid in issue.article_ids]
    assert positions == sorted(positions)
    assert 'rel="next" href="0002.html"' in html
    index = pages(site)["index.html"]
    assert index.index("issues/0002.html") < index.index("issues/0001.html")  # newest first


def test_second_render_touches_no_file(site: Newsroom) -> None:
    before = public_files(site)
    report = site.render()
    assert report.written == ()
    assert report.unchanged == len(before)
    assert public_files(site) == before  # same bytes, same mtime, same inode


def test_a_correction_rewrites_only_what_shows_it(site: Newsroom) -> None:
    before = public_files(site)
    page = site.config.inbox / "2026-03-03-01.txt"
    page.write_text(page.read_text("utf-8").replace("两门课程", "三门课程"), "utf-8")
    site.clock.advance(hours=1)
    assert site.ingest().updated == 1
    article = next(a for a in site.store.all_articles() if "夜校" in a.title)
    report = site.render()
    assert set(report.written) == {
        "feed.xml", "atom.xml", "feed.json", "issues.xml",
        "issues/0002.html", f"articles/{article.id}.html",
    }
    after = public_files(site)
    unchanged = set(before) - set(report.written)
    assert all(after[name] == before[name] for name in unchanged)


def test_working_folder_templates_win_and_errors_name_the_file(tmp_path: Path) -> None:
    art = record("职工书屋开放", ("书屋藏书三千册。",))
    config = make_config(tmp_path)
    own = tmp_path / "web"
    own.mkdir()
    (own / "article.html.j2").write_text("<p>{{ article.title }}</p>\n", "utf-8")
    env = environment([own, builtin_templates() / "web"])
    out = render_archive([issue_of([art])], [art], config, env)
    # a working folder's own template gets the Content-Security-Policy too
    assert out[f"articles/{art.id}.html"] == (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'\">\n"
        "<p>职工书屋开放</p>\n"
    ).encode()
    assert out["index.html"].startswith(b"<!DOCTYPE html>")  # the rest from the built-ins

    (own / "article.html.j2").write_text("{% if %}\n", "utf-8")
    env = environment([own, builtin_templates() / "web"])
    with pytest.raises(RenderError, match=r"web/article\.html\.j2, line 1"):
        render_archive([issue_of([art])], [art], config, env)


def test_every_archive_page_carries_its_policy_first_in_its_head(tmp_path: Path) -> None:
    art = record("职工书屋开放", ("书屋藏书三千册。",))
    config = make_config(tmp_path)
    env = environment([builtin_templates() / "web"])
    out = render_archive([issue_of([art])], [art], config, env)
    meta = (
        b'<head>\n<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        b"style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'\">\n"
    )
    pages = [p for p in out if p.endswith(".html")]
    assert len(pages) == 3
    for path in pages:
        assert out[path].startswith(b"<!DOCTYPE html>"), path
        assert meta in out[path], path
        assert out[path].count(b"Content-Security-Policy") == 1, path
        # nothing the policy would block: no script, no inline style or handler
        for blocked in (b"<script", b"style=", b" onclick=", b"<style"):
            assert blocked not in out[path].lower(), (path, blocked)
    own = tmp_path / "own"
    own.mkdir()  # a template with a doctype and no <head>: the policy right after the doctype
    (own / "article.html.j2").write_text("<!doctype html>\n<p>{{ article.title }}</p>\n", "utf-8")
    env = environment([own, builtin_templates() / "web"])
    out = render_archive([issue_of([art])], [art], config, env)
    assert out[f"articles/{art.id}.html"].startswith(b"<!doctype html>\n<meta http-equiv=")


def test_empty_archive_still_renders(tmp_path: Path) -> None:
    with make_room(tmp_path) as room:
        report = room.render()
        assert "index.html" in report.written
        assert "还没有出版的期刊" in pages(room)["index.html"]
