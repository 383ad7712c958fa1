"""A reader's path in headless Chromium (Debian's package, driven by Playwright).

Ingest the example pages, assemble and render an issue, mail it to a
member through the outbox, serve the working folder on loopback, then: open
the archive index, follow the issue, follow an article, open the digest's
unsubscribe link (from its List-Unsubscribe header) and press the button. Each
step saves a screenshot (under tmp, and copied to bench/out/screenshots/).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from gongbao_feed import urls
from gongbao_feed.config import load_config
from gongbao_feed.models import MemberStatus
from gongbao_feed.publish import Newsroom
from gongbao_feed.web import create_app

from .conftest import REPO, FixedClock
from .helpers_web import base_url, digest_unsubscribe_link, loopback_socket, running

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = REPO / "bench" / "out" / "screenshots"
MEMBER = "chen.xiaoyu@example.org"

pytestmark = pytest.mark.slow

if not CHROMIUM.exists() and not os.environ.get("CI"):
    pytest.skip("needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_reader_follows_the_archive_and_unsubscribes(
    workdir: Path, clock: FixedClock, tmp_path: Path, browser: object
) -> None:
    sock = loopback_socket()
    base = base_url(sock)
    config_file = workdir / "config.toml"
    text = config_file.read_text("utf-8")
    config_file.write_text(
        text.replace('base_url = "https://news.example.org/"', f'base_url = "{base}/"'), "utf-8"
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with Newsroom(load_config(config_file), clock=clock) as room:
        assert room.config.paper.base_url == f"{base}/"
        room.ingest()
        made = room.assemble()
        issue = room.store.issues()[0]
        assert made.plan.issue is not None
        first = room.store.articles(issue.article_ids)[0]
        room.add_member(MEMBER, "陈晓雨")
        assert room.send().sent == 1
        link = digest_unsubscribe_link(room.config.outbox_dir, issue.number, MEMBER)
        assert link.startswith(f"{base}/unsubscribe/")

        with running(create_app(room.config, room.store, clock=clock), sock):
            page = browser.new_page(viewport={"width": 1000, "height": 900})  # type: ignore[attr-defined]

            def shot(name: str) -> None:
                page.screenshot(path=str(shots / name), full_page=False)

            page.goto(f"{base}/")
            assert room.config.paper.name in page.title()
            shot("1-index.png")

            page.get_by_role("link", name=issue.title).first.click()
            page.wait_for_url(f"**/{urls.issue_path(issue.number)}")
            assert page.get_by_text(first.title).first.is_visible()
            shot("2-issue.png")

            page.locator(f'a[href$="{urls.article_path(first.id)}"]').first.click()
            page.wait_for_url(f"**/{urls.article_path(first.id)}")
            assert page.locator("h1").first.inner_text().strip() == first.title
            shot("3-article.png")

            page.goto(link)
            button = page.get_by_role("button", name="确认退订")
            assert button.is_visible()
            assert "c***@example.org" in page.inner_text("main")
            assert room.store.is_active(MEMBER), "opening the page must not unsubscribe"
            shot("4-unsubscribe.png")

            button.click()
            page.wait_for_selector("#result")
            assert "已退订" in page.locator("h1").inner_text()
            shot("5-unsubscribed.png")
            page.close()

        member = room.store.member(MEMBER)
        assert member is not None
        assert member.status == MemberStatus.UNSUBSCRIBED
        assert member.unsubscribed_via == "one-click"

    SHOTS.mkdir(parents=True, exist_ok=True)
    for png in sorted(shots.glob("*.png")):
        assert png.stat().st_size > 5_000, f"{png.name} looks blank"
        shutil.copy(png, SHOTS / png.name)
