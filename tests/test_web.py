"""The web service against a real uvicorn on loopback, with a real HTTP client (httpx)."""

from __future__ import annotations

import gzip
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from email.utils import formatdate
from pathlib import Path

import httpx
import pytest

from gongbao_feed import tokens
from gongbao_feed.config import Config, load_config
from gongbao_feed.errors import RenderError
from gongbao_feed.files import atomic_write
from gongbao_feed.models import Issue, Member, MemberStatus
from gongbao_feed.outbox import eml_name, issue_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.store import Store
from gongbao_feed.urls import unsubscribe_url
from gongbao_feed.web import accepts_gzip, content_type, create_app, etag_matches, safe_parts

from .conftest import FixedClock
from .helpers_web import digest_unsubscribe_link, raw_request, running

RSS = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>职工时报</title>'
    + "".join(f"<item><title>第{n}条 厂区食堂推出夜班热餐</title></item>" for n in range(40))
    + "</channel></rss>\n"
)
ATOM = (
    '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
    "<title>职工时报</title></feed>\n"
)
JSON_FEED = '{"version": "https://jsonfeed.org/version/1.1", "title": "职工时报", "items": []}\n'


@dataclass
class Site:
    base: str
    config: Config
    store: Store
    key: bytes
    clock: FixedClock

    def token(self, email: str, issue: int = 1) -> str:
        return tokens.sign(self.key, email, issue)

    def unsubscribe_path(self, email: str, issue: int = 1) -> str:
        """The path part of the link a digest carries."""
        url = unsubscribe_url(self.config, self.token(email, issue))
        return "/" + url.removeprefix(self.config.paper.base_url)


@pytest.fixture
def site(workdir: Path, clock: FixedClock) -> Iterator[Site]:
    config = load_config(workdir / "config.toml")
    public = config.public_dir
    atomic_write(public / "feed.xml", RSS)
    atomic_write(public / "atom.xml", ATOM)
    atomic_write(public / "feed.json", JSON_FEED)
    atomic_write(public / "index.html", "<!doctype html><title>职工时报</title><h1>往期</h1>")
    atomic_write(public / "style.css", "body { color: #222; }\n" * 40)
    atomic_write(public / "issues" / "index.html", "<!doctype html><title>往期目录</title>")
    atomic_write(public / "issues" / "0001.html", "<!doctype html><title>第1期</title>")
    with Store(config.database_url) as store:
        store.add_issue(Issue(1, date(2026, 11, 21), "职工时报 第1期", (), clock()))
        for email in ("wang@example.org", "li@example.org"):
            store.save_member(Member(email, "会员", joined=clock()))
        app = create_app(config, store, clock=clock)
        with running(app) as base:
            yield Site(base, config, store, tokens.load_secret(config.state_dir), clock)


@pytest.fixture
def client(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=site.base, timeout=10) as c:
        yield c


# -- the public folder ---------------------------------------------------------


CONTENT_TYPES = {
    "/feed.xml": "application/rss+xml",
    "/atom.xml": "application/atom+xml",
    "/feed.json": "application/feed+json",
    "/index.html": "text/html",
    "/style.css": "text/css",
    "/issues/0001.html": "text/html",
}


def test_files_are_served_with_their_content_types(client: httpx.Client) -> None:
    for path, expected in CONTENT_TYPES.items():
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].split(";")[0] == expected, path
        assert r.headers["x-content-type-options"] == "nosniff"


def test_a_folder_serves_its_index_and_a_bare_folder_name_redirects(client: httpx.Client) -> None:
    assert "往期" in client.get("/").text
    assert "往期目录" in client.get("/issues/").text
    r = client.get("/issues")
    assert r.status_code == 301
    assert client.get("/issues", follow_redirects=True).url.path == "/issues/"


def test_a_conditional_get_gets_304_until_the_feed_changes(
    site: Site, client: httpx.Client
) -> None:
    first = client.get("/feed.xml")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.text == RSS

    again = client.get("/feed.xml", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag

    by_date = client.get("/feed.xml", headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304

    stale = formatdate(os.stat(site.config.public_dir / "feed.xml").st_mtime - 3600, usegmt=True)
    assert client.get("/feed.xml", headers={"If-Modified-Since": stale}).status_code == 200

    newer = RSS.replace("第0条", "第零条")
    atomic_write(site.config.public_dir / "feed.xml", newer)
    changed = client.get("/feed.xml", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.text == newer
    assert changed.headers["etag"] != etag


def test_feeds_are_gzipped_for_clients_that_accept_it(client: httpx.Client) -> None:
    plain = client.get("/feed.xml", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"

    with client.stream("GET", "/feed.xml", headers={"Accept-Encoding": "gzip"}) as packed:
        wire = b"".join(packed.iter_raw())  # the bytes as sent, before httpx decodes them
    assert packed.headers["content-encoding"] == "gzip"
    assert len(wire) == int(packed.headers["content-length"]) < len(plain.content)
    assert gzip.decompress(wire) == plain.content
    unpacked = client.get("/feed.xml", headers={"Accept-Encoding": "gzip"})
    assert unpacked.text == RSS

    tag = unpacked.headers["etag"]
    assert tag != plain.headers["etag"]
    cached = client.get("/feed.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
    assert cached.status_code == 304


def test_head_gives_the_headers_without_the_body(client: httpx.Client) -> None:
    r = client.head("/feed.xml", headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) == len(RSS.encode())


def test_only_get_and_head_reach_files(client: httpx.Client) -> None:
    r = client.post("/feed.xml", content=b"x")
    assert r.status_code == 405
    assert client.get("/no-such-file.xml").status_code == 404


TRAVERSALS = [
    "/../config.toml",
    "/%2e%2e/config.toml",
    "/%2e%2e%2fconfig.toml",
    "/%2E%2E%2Fconfig.toml",
    "/..%2fconfig.toml",
    "/issues/../../config.toml",
    "/issues/%2e%2e/%2e%2e/config.toml",
    "/%5c..%5cconfig.toml",
    "/..%5cconfig.toml",
    "/..\\config.toml",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/etc/passwd",
    "/./config.toml",
    "/state/secret.key",
    "/../state/secret.key",
    "/%2e%2e/state/secret.key",
    "/outside",
    "/outside-dir/secret.txt",
    "/.hidden",
    "/%00feed.xml",
    "/%252e%252e/config.toml",
    "/unsubscribe/../config.toml",
    "http://127.0.0.1/../config.toml",
]


def test_nothing_outside_the_public_folder_is_served(site: Site) -> None:
    root, public = site.config.root, site.config.public_dir
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "secret.txt").write_text("机密 [paper]\n")
    (public / "outside").symlink_to(root / "config.toml")
    (public / "outside-dir").symlink_to(root / "elsewhere")
    (public / ".hidden").write_text("hidden\n")
    for target in TRAVERSALS:
        status, body = raw_request(site.base, target)
        assert status == 404, (target, status)
        assert b"[paper]" not in body
        assert b"hidden" not in body
    assert raw_request(site.base, "/feed.xml")[0] == 200


def test_a_symlink_inside_the_folder_is_served(site: Site, client: httpx.Client) -> None:
    (site.config.public_dir / "rss.xml").symlink_to(site.config.public_dir / "feed.xml")
    r = client.get("/rss.xml")
    assert r.status_code == 200
    assert r.text == RSS


# -- one-click unsubscribe (RFC 8058) -----------------------------------------------

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def test_get_shows_a_button_and_changes_nothing(site: Site, client: httpx.Client) -> None:
    r = client.get(site.unsubscribe_path("wang@example.org"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert 'method="post"' in r.text
    assert 'name="List-Unsubscribe" value="One-Click"' in r.text
    assert "确认退订" in r.text
    assert "wang@example.org" not in r.text  # masked: w***@example.org
    assert site.store.is_active("wang@example.org")


def test_one_click_post_unsubscribes_at_once(site: Site, client: httpx.Client) -> None:
    site.clock.advance(hours=3)
    r = client.post(site.unsubscribe_path("wang@example.org"), data=ONE_CLICK)
    assert r.status_code == 200
    assert "已退订" in r.text
    member = site.store.member("wang@example.org")
    assert member is not None
    assert member.status == MemberStatus.UNSUBSCRIBED
    assert member.unsubscribed_via == "one-click"
    assert member.unsubscribed_at == site.clock()
    assert site.store.is_active("li@example.org")


def test_one_click_post_as_multipart_form_data(site: Site, client: httpx.Client) -> None:
    r = client.post(
        site.unsubscribe_path("li@example.org"), files={"List-Unsubscribe": (None, "One-Click")}
    )
    assert r.status_code == 200
    assert not site.store.is_active("li@example.org")


def test_the_answer_never_reveals_membership(site: Site, client: httpx.Client) -> None:
    path = site.unsubscribe_path("zhao@example.org")
    not_a_member = client.post(path, data=ONE_CLICK)
    site.store.save_member(Member("zhao@example.org", "赵", joined=site.clock()))
    member = client.post(path, data=ONE_CLICK)
    already_out = client.post(path, data=ONE_CLICK)
    answers = {(r.status_code, r.text) for r in (not_a_member, member, already_out)}
    assert len(answers) == 1
    assert not site.store.is_active("zhao@example.org")

def _tampered(site: Site) -> list[str]:
    good = site.token("wang@example.org")
    other = tokens.sign(site.key, "li@example.org", 1)
    return [
        good[:-2] + ("AA" if good[-2:] != "AA" else "BB"),  # changed
        good[:10],  # truncated
        good[:20] + other[20:],  # two tokens spliced
        tokens.sign(b"not the key", "wang@example.org", 1),  # forged with another key
        tokens.sign(site.key, "wang@example.org", 99),  # an issue that does not exist
        "not-a-token",
        "a.b.c.d",
        "%E2%80%8B",
    ]


def test_a_forged_or_malformed_token_gets_400_and_changes_nothing(
    site: Site, client: httpx.Client
) -> None:
    for token in _tampered(site):
        posted = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
        assert posted.status_code == 400, token
        assert posted.headers["content-type"].startswith("text/plain")
        assert "无效" in posted.text
        assert client.get(f"/unsubscribe/{token}").status_code == 400
    assert [m.status for m in site.store.members()] == [MemberStatus.ACTIVE] * 2


def test_a_post_without_the_one_click_body_changes_nothing(
    site: Site, client: httpx.Client
) -> None:
    path = site.unsubscribe_path("wang@example.org")
    assert client.post(path).status_code == 400
    assert client.post(path, data={"List-Unsubscribe": "Yes"}).status_code == 400
    assert client.post(path, content=b"List-Unsubscribe=One-Click").status_code == 400  # no type
    assert site.store.is_active("wang@example.org")


def test_request_bodies_are_bounded(site: Site, client: httpx.Client) -> None:
    path = site.unsubscribe_path("wang@example.org")
    big = {"List-Unsubscribe": "One-Click", "padding": "x" * 10_000}
    assert client.post(path, data=big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b"List-Unsubscribe=One-Click&padding="
        for _ in range(10):
            yield b"y" * 1000

    chunked = client.post(
        path, content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert chunked.status_code == 413
    assert site.store.is_active("wang@example.org")
    assert client.request("GET", "/feed.xml", content=b"z" * 10_000).status_code == 413


def test_other_methods_are_refused(site: Site, client: httpx.Client) -> None:
    path = site.unsubscribe_path("wang@example.org")
    assert client.put(path, data=ONE_CLICK).status_code == 405
    assert client.delete(path).status_code == 405
    assert site.store.is_active("wang@example.org")


# -- the pure helpers ----------------------------------------------------------------


def test_safe_parts_refuses_every_way_out() -> None:
    assert safe_parts("/") == ()
    assert safe_parts("/issues/0001.html") == ("issues", "0001.html")
    assert safe_parts("/issues/") == ("issues",)
    for bad in ("/../x", "/a/../../x", "/./x", "//x", "/a//b", "/..\\x", "/a\x00", "/.env",
                "/c:/x", "x", ""):
        assert safe_parts(bad) is None, bad


def test_content_type_tells_rss_from_atom() -> None:
    assert content_type("issues.xml") == "application/atom+xml"  # as urls.FEED_TYPES says
    assert content_type("old/rss2.xml", b"<?xml?><rss") == "application/rss+xml"
    assert content_type("old/news.xml", b"<?xml?><feed xmlns=") == "application/atom+xml"
    assert content_type("sitemap.xml", b"<?xml?><urlset") == "application/xml"
    assert content_type("feed.json") == "application/feed+json"
    assert content_type("photo.JPG") == "image/jpeg"


def test_accept_encoding_and_etag_parsing() -> None:
    assert accepts_gzip("gzip, deflate, br")
    assert accepts_gzip("br;q=1.0, gzip;q=0.8")
    assert not accepts_gzip("gzip;q=0")
    assert not accepts_gzip("identity")
    assert accepts_gzip("*")
    assert etag_matches('W/"abc", "def"', '"abc"') == '"abc"'
    assert etag_matches("*", '"x"') == '"x"'
    assert etag_matches('"nope"', '"x"', '"y"') is None


def test_a_large_file_streams_from_disk_with_validators(site: Site, client: httpx.Client) -> None:
    blob = bytes(range(256)) * (3 * 4096)  # 3 MiB: above what the cache keeps
    (site.config.public_dir / "scan.pdf").write_bytes(blob)
    r = client.get("/scan.pdf")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/pdf"
    assert r.content == blob
    again = client.get("/scan.pdf", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


@pytest.mark.slow
def test_the_serve_command_serves_the_working_folder(workdir: Path) -> None:
    config = workdir / "config.toml"
    atomic_write(load_config(config).public_dir / "feed.xml", RSS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gongbao_feed.cli import main; main()", "serve",
         "--config", str(config), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/feed.xml", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.1)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/rss+xml"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status tells what ended it.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in err
    assert f"on http://127.0.0.1:{port}/" in err


# -- with the rest of the pipeline: digests from the outbox, and sends -------------------

SECOND_ISSUE_PAGE = """+++
title = "区总工会开设职工夜校"
date = 2026-11-23
reporters = ["孟晓岚"]
+++

区总工会职工夜校本周开课，首批开设电工、烹饪和手机摄影三门课程。

夜校每周二、四晚上授课，职工凭会员证免费报名。
"""


def _outbox_addresses(room: Newsroom, issue: int) -> set[str]:
    folder = issue_folder(room.config.outbox_dir, issue)
    return {p.name for p in folder.glob("*.eml")} if folder.is_dir() else set()


@pytest.fixture
def newsroom_site(room: Newsroom, clock: FixedClock) -> Iterator[tuple[Newsroom, str]]:
    """The example pages ingested and assembled into issue 1, three members, the server up."""
    room.ingest()
    assert room.assemble().issue is not None
    for email, name in (("gao@example.org", "高"), ("ma@example.org", "马"),
                        ("zhou@example.org", "周")):
        room.add_member(email, name)
    with running(create_app(room.config, room.store, clock=clock)) as base:
        yield room, base


def test_a_digest_link_unsubscribes_and_the_next_send_skips_them(
    newsroom_site: tuple[Newsroom, str], clock: FixedClock
) -> None:
    room, base = newsroom_site
    first = room.send()
    assert first.sent == 3
    link = digest_unsubscribe_link(room.config.outbox_dir, 1, "ma@example.org")
    assert link.startswith(room.config.paper.base_url + "unsubscribe/")
    path = "/" + link.removeprefix(room.config.paper.base_url)

    with httpx.Client(base_url=base, timeout=10) as client:
        assert client.get(path).status_code == 200
        assert room.store.is_active("ma@example.org")
        assert client.post(path, data=ONE_CLICK).status_code == 200
    assert not room.store.is_active("ma@example.org")

    clock.advance(days=1)
    (room.config.inbox / "2026-11-23-night-school.md").write_text(SECOND_ISSUE_PAGE, "utf-8")
    room.ingest()
    assert room.assemble().issue is not None
    second = room.send()
    assert second.issue == 2
    assert second.sent == 2
    assert _outbox_addresses(room, 2) == {
        eml_name("gao@example.org"), eml_name("zhou@example.org")
    }


def test_an_unsubscribe_during_a_send_counts_at_once(
    newsroom_site: tuple[Newsroom, str],
) -> None:
    room, base = newsroom_site
    for n in range(30):
        room.add_member(f"worker{n:02d}@example.org")
    last = "zz.last@example.org"  # members go out in address order: this one comes last
    room.add_member(last, "末位")
    path = "/unsubscribe/" + tokens.sign(tokens.load_secret(room.config.state_dir), last, 1)
    answers: list[int] = []

    def progress(done: int, _total: int) -> None:
        # The first copies are out (a transport may have a few more in flight); the
        # last member clicks the link in an older digest now.
        if done == 1:
            answers.append(httpx.post(base + path, data=ONE_CLICK, timeout=10).status_code)

    report = room.send(progress=progress)
    assert answers == [200]
    assert report.sent == 33
    assert report.skipped == 1
    assert eml_name(last) not in _outbox_addresses(room, 1)
    assert room.store.delivery(1, last) is None


def test_a_broken_unsubscribe_template_is_an_error_naming_the_file(workdir: Path) -> None:
    config = load_config(workdir / "config.toml")
    (config.templates_dir / "web" / "unsubscribe.html.j2").write_text("{% if %}\n", "utf-8")
    with pytest.raises(RenderError, match=r"unsubscribe\.html\.j2, line 1"):
        create_app(config)


# -- safety headers, slow and idle clients -------------------------------------------------


def test_every_answer_says_nosniff_and_every_html_page_has_a_policy(
    site: Site, client: httpx.Client
) -> None:
    answers = {
        "200 page": client.get("/index.html"),
        "304": client.get("/index.html", headers={"If-None-Match": "*"}),
        "404": client.get("/no-such-page.html"),
        "404 dot": client.get("/.secret"),
        "405": client.post("/index.html"),
        "405 route": client.put(site.unsubscribe_path("wang@example.org")),
        "413": client.post(site.unsubscribe_path("wang@example.org"), content=b"x" * 10_000),
        "400": client.get("/unsubscribe/not-a-token"),
        "200 unsubscribe": client.get(site.unsubscribe_path("wang@example.org")),
        "200 feed": client.get("/feed.xml"),
        "redirect": client.get("/issues", follow_redirects=False),
    }
    assert {k: r.status_code for k, r in answers.items()} == {
        "200 page": 200, "304": 304, "404": 404, "404 dot": 404, "405": 405, "405 route": 405,
        "413": 413, "400": 400, "200 unsubscribe": 200, "200 feed": 200, "redirect": 301,
    }
    for name, r in answers.items():
        assert r.headers.get("x-content-type-options") == "nosniff", name
        if r.headers.get("content-type", "").startswith("text/html"):
            csp = r.headers.get("content-security-policy", "")
            assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp, name
    page = answers["200 page"].headers["content-security-policy"]
    assert page == (
        "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    assert "script-src" not in page and "unsafe-inline" not in page


@pytest.fixture
def guarded(workdir: Path, clock: FixedClock) -> Iterator[tuple[str, str]]:
    """The site served with serve's own server options, with a cap of 4 and short deadlines."""
    from gongbao_feed.web import server_options

    text = (workdir / "config.toml").read_text("utf-8")
    for key, value in (("max_connections", 4), ("request_timeout", 0.5),
                       ("keep_alive_timeout", 0.5)):
        text, n = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert n == 1, key
    (workdir / "config.toml").write_text(text, "utf-8")
    config = load_config(workdir / "config.toml")
    atomic_write(config.public_dir / "index.html", "<!doctype html><title>职工时报</title>")
    with Store(config.database_url) as store:
        store.add_issue(Issue(1, date(2026, 11, 21), "职工时报 第1期", (), clock()))
        app = create_app(config, store, clock=clock)
        token = tokens.sign(tokens.load_secret(config.state_dir), "wang@example.org", 1)
        with running(app, options=server_options(config, "127.0.0.1", 0)) as base:
            yield base, f"/unsubscribe/{token}"


def _idle(base: str, partial: bytes = b"") -> socket.socket:
    host, port = base.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    if partial:
        conn.sendall(partial)
    return conn


def test_idle_connections_over_the_cap_do_not_stop_an_ordinary_get(
    guarded: tuple[str, str],
) -> None:
    guarded, _ = guarded
    idle = [_idle(guarded) for _ in range(6)]
    idle += [_idle(guarded, b"GET /index.html HTTP/1.1\r\nHost: x\r\n") for _ in range(6)]
    try:
        with httpx.Client(base_url=guarded, timeout=10) as c:
            for _ in range(3):
                r = c.get("/index.html")
                assert r.status_code == 200
                assert "职工时报" in r.text
        # The oldest waiting connections were closed to make room: they read EOF.
        assert idle[0].recv(1) == b""
    finally:
        for conn in idle:
            conn.close()


def test_a_request_that_never_finishes_is_cut_off(guarded: tuple[str, str]) -> None:
    base, unsubscribe = guarded
    slow_body = (f"POST {unsubscribe} HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\n\r\nList-Unsub").encode()
    for partial in (b"", b"GET /index.html HTTP/1.1\r\nHo", slow_body):
        conn = _idle(base, partial)
        try:
            assert conn.recv(1024) == b"", partial  # closed by the server, no answer
        finally:
            conn.close()
