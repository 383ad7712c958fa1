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
import socket
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


def served_folder(workdir: Path, tmp_path: Path) -> tuple[socket.socket, str, Path, Path]:
    """A loopback socket for `serve`, the folder's base_url pointed at it, and a folder for
    screenshots: (socket, base URL without the final /, config file, screenshots)."""
    sock = loopback_socket()
    base = base_url(sock)
    config_file = workdir / "config.toml"
    text = config_file.read_text("utf-8")
    config_file.write_text(
        text.replace('base_url = "https://news.example.org/"', f'base_url = "{base}/"'), "utf-8"
    )
    shots = tmp_path / "screenshots"
    shots.mkdir()
    return sock, base, config_file, shots


def test_a_reader_follows_the_archive_and_unsubscribes(
    workdir: Path, clock: FixedClock, tmp_path: Path, browser: object
) -> None:
    sock, base, config_file, shots = served_folder(workdir, tmp_path)

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


SIGNUP = "lin.yue@example.org"


def test_a_reader_signs_up_confirms_and_gets_the_next_issue(
    workdir: Path, clock: FixedClock, tmp_path: Path, browser: object
) -> None:
    """Double opt-in end to end: the archive's link, the form (under the page's CSP, no
    script), the confirmation in the outbox, its link, the button; then the next send."""
    from email import policy
    from email.parser import BytesParser

    from gongbao_feed.outbox import CONFIRM_FOLDER, issue_folder

    sock, base, config_file, shots = served_folder(workdir, tmp_path)

    with Newsroom(load_config(config_file), clock=clock) as room:
        room.render()
        app = create_app(room.config, room.store, clock=clock)
        with running(app, sock):
            page = browser.new_page(viewport={"width": 1000, "height": 900})  # type: ignore[attr-defined]
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text)
                    if "Content Security Policy" in m.text else None)

            def shot(name: str) -> None:
                page.screenshot(path=str(shots / name), full_page=False)

            page.goto(f"{base}/")
            page.get_by_role("link", name="邮件订阅电子报").click()
            page.wait_for_url(f"{base}/subscribe")
            page.fill("#email", SIGNUP)
            page.fill("#name", "林悦")
            shot("6-signup-form.png")
            page.get_by_role("button", name="订阅").click()
            page.wait_for_selector("#result")
            assert "请查收确认邮件" in page.locator("h1").inner_text()
            shot("7-signup-sent.png")
            assert room.store.member(SIGNUP).status == MemberStatus.PENDING  # type: ignore[union-attr]

            # The same signup again: the same page, no second confirmation.
            page.goto(f"{base}/subscribe")
            page.fill("#email", SIGNUP)
            page.get_by_role("button", name="订阅").click()
            page.wait_for_selector("#result")
            # And a reader who never confirms.
            page.goto(f"{base}/subscribe")
            page.fill("#email", "pending.reader@example.org")
            page.get_by_role("button", name="订阅").click()
            page.wait_for_selector("#result")
            assert app.state.signup.wait_sent(10)

            folder = room.config.outbox_dir / CONFIRM_FOLDER
            mails = [BytesParser(policy=policy.default).parsebytes(p.read_bytes())
                     for p in sorted(folder.glob("*.eml"))]
            mine = [m for m in mails if SIGNUP in str(m["To"])]
            assert len(mine) == 1, "one confirmation for two signups within the hour"
            html = mine[0].get_body(("html",)).get_content()  # type: ignore[union-attr]
            link = html.split('class="button" href="', 1)[1].split('"', 1)[0]
            assert link.startswith(f"{base}/confirm/")

            page.goto(link)
            button = page.get_by_role("button", name="确认订阅")
            assert button.is_visible()
            assert room.store.member(SIGNUP).status == MemberStatus.PENDING  # type: ignore[union-attr]
            shot("8-confirm.png")
            button.click()
            page.wait_for_selector("#result")
            assert "订阅成功" in page.locator("h1").inner_text()
            shot("9-confirmed.png")

            # A forged link changes nothing.
            forged = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
            page.goto(forged)
            assert "链接无效" in page.locator("h1").inner_text()
            page.close()
            assert not blocked, blocked

        member = room.store.member(SIGNUP)
        assert member is not None and member.status == MemberStatus.ACTIVE
        assert member.name == "林悦"

        room.ingest()
        assert room.assemble().issue is not None
        assert room.send().sent == 1
        sent = [p.name for p in issue_folder(room.config.outbox_dir, 1).glob("*.eml")]
        assert len(sent) == 1 and sent[0].startswith("lin.yue@example.org")
        assert room.store.member("pending.reader@example.org").status == MemberStatus.PENDING  # type: ignore[union-attr]

    SHOTS.mkdir(parents=True, exist_ok=True)
    for png in sorted(shots.glob("*.png")):
        assert png.stat().st_size > 5_000, f"{png.name} looks blank"
        shutil.copy(png, SHOTS / png.name)
