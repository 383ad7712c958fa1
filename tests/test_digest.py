"""The email digest as a member meets it: headers, the two parts, links, size.

Messages are parsed back with the email package's default policy, as a mail
client would read them. The slow tests at the end score a digest with
SpamAssassin and render it in headless Chromium (both Debian's packages).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import premailer
import pytest
import wcwidth
from hypothesis import assume, given
from hypothesis import strategies as st
from lxml import html as lxml_html

from gongbao_feed import tokens, urls
from gongbao_feed.config import Config, config_from_dict, load_config
from gongbao_feed.digest import (
    TEXT_WIDTH,
    Form,
    Mailer,
    cut,
    digest_context,
    email_environment,
    greeting_name,
    inline_css,
    personalise,
    render_digest,
    render_templates,
    wrap_text,
)
from gongbao_feed.errors import ConfigError, DeliveryError
from gongbao_feed.fragments import display_date
from gongbao_feed.models import Issue, Member
from gongbao_feed.publish import Newsroom
from gongbao_feed.skeleton import builtin_templates

from .conftest import REPO
from .helpers_cli import run
from .helpers_mail import DAY, bodies, make_issue, parse

NOW = datetime(2026, 11, 22, 0, 45, tzinfo=UTC)
KEY = b"test-key-not-secret"
GMAIL_CLIPS_AT = 102_000
URL_LINE = re.compile(r"\s*(https?://|mailto:)\S+")
UNBREAKABLE = re.compile(r"(https?://\S+|\S+@\S+)[，。）”… ]*$")


def env() -> object:
    return email_environment([builtin_templates() / "email"])


def config_with(room: Newsroom, **email: object) -> Config:
    """The room's config with [email] keys changed."""
    data = room.config.model_dump(by_alias=True, exclude={"root"})
    data["email"].update(email)
    return config_from_dict(data, root=room.config.root)


def member_message(room: Newsroom, member: Member, config: Config | None = None) -> bytes:
    config = config or room.config
    issue = room.issue()
    digest = render_digest(issue, room.store.articles(issue.article_ids), config, env())
    return Mailer(digest, config, KEY, NOW).message(member).data


# -- headers ------------------------------------------------------------------------


def test_every_header_a_member_and_their_client_need(room: Newsroom) -> None:
    issue = make_issue(room, 3)
    msg = parse(member_message(room, Member("zhang.san@example.com", "张三")))

    assert msg.defects == [] and all(part.defects == [] for part in msg.walk())
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in msg.iter_parts())
    assert msg["From"].addresses[0] == Address("职工时报", "digest", "news.example.org")
    assert str(msg["Reply-To"]) == "editors@news.example.org"
    assert msg["To"].addresses[0] == Address("张三", "zhang.san", "example.com")
    assert str(msg["Subject"]) == f"职工时报 第{issue.number}期 · {display_date(DAY)}"
    assert msg["Date"].datetime == NOW
    assert str(msg["List-Id"]) == "职工时报 <digest.news.example.org>"
    assert str(msg["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    https, mailto = (u.strip() for u in str(msg["List-Unsubscribe"]).split(","))
    assert https.startswith("<https://news.example.org/unsubscribe/") and https.endswith(">")
    assert mailto.startswith("<mailto:unsubscribe@news.example.org?subject=unsubscribe%20")
    assert re.fullmatch(r"<digest\.1\.[0-9a-f]{24}@news\.example\.org>", str(msg["Message-ID"]))


def test_list_unsubscribe_is_never_encoded_and_mailto_only_when_configured(
    room: Newsroom,
) -> None:
    make_issue(room, 1)
    raw = member_message(room, Member("a.rather.long.address.for.folding@example.com"))
    header = re.search(rb"^List-Unsubscribe: .*?\r\n(?! )", raw, re.M | re.S)
    assert header is not None and b"=?" not in header[0]  # URLs as they are (RFC 2369)
    plain = parse(member_message(room, Member("a@example.com"), config_with(
        room, unsubscribe_mailto="")))
    assert "mailto:" not in str(plain["List-Unsubscribe"])


def test_a_chinese_subject_round_trips_and_no_encoded_word_splits_a_character(
    room: Newsroom,
) -> None:
    make_issue(room, 1)
    long_subject = "《{paper}》第{number}期（{date}）：{title}——职工之家周末特刊"
    config = config_with(room, subject=long_subject)
    raw = member_message(room, Member("a@example.com"), config)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    subject = re.search(r"^Subject: (.*?)\r\n(?! )", head + "\r\n", re.M | re.S)
    assert subject is not None
    words = re.findall(r"=\?utf-8\?([bq])\?([^?]*)\?=", subject[1], re.I)
    assert len(words) > 1  # long enough to fold
    for kind, payload in words:  # each word must decode on its own, as strict UTF-8
        data = base64.b64decode(payload) if kind.lower() == "b" else payload.encode()
        data.decode("utf-8")
    assert all(len(line) <= 78 for line in subject[0].split("\r\n"))
    assert str(parse(raw)["Subject"]) == (
        f"《职工时报》第1期（{display_date(DAY)}）：职工时报 第1期——职工之家周末特刊"
    )


@pytest.mark.parametrize("name", ['王, 五', 'Li "Lee" Si', "<script>", "陈 晓雨 (工会)"])
def test_to_shows_the_member_name_however_it_is_written(room: Newsroom, name: str) -> None:
    make_issue(room, 1)
    msg = parse(member_message(room, Member("m@example.com", name)))
    assert msg["To"].addresses[0].display_name == name
    assert msg["To"].addresses[0].addr_spec == "m@example.com"


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\r", "\v", "\f", "\x85", "\u2028", "\u2029"])
def test_a_line_break_never_reaches_a_header(room: Newsroom, brk: str) -> None:
    make_issue(room, 1)
    with pytest.raises(DeliveryError, match="To header"):
        member_message(room, Member("eve@example.com", f"Eve{brk}Bcc: victim@example.net"))
    with pytest.raises(DeliveryError, match="To header"):
        member_message(room, Member(f"eve@example.com{brk}Bcc: victim@example.net"))
    with pytest.raises(ConfigError, match=r"email\.subject: contains a line break"):
        config_with(room, subject=f"{{paper}}{brk}Bcc: x")
    # An issue whose title got a line break some other way (an old release) is
    # refused at send time too, naming the header.
    issue = room.issue()
    digest = render_digest(issue, room.store.articles(issue.article_ids), room.config, env())
    broken = replace(digest, subject=f"第1期{brk}Bcc: x@evil.example")
    with pytest.raises(DeliveryError, match="Subject header"):
        Mailer(broken, room.config, KEY, NOW)


ODD = "=?utf-8?q?x=2C_attacker=40evil=2Eexample=2C?="


@pytest.mark.parametrize("where", ["member", "from", "reply_to", "paper", "subject"])
def test_text_that_looks_like_an_encoded_word_stays_text_in_every_header(
    room: Newsroom, where: str
) -> None:
    """Every header made from configuration or member data shows the literal text and
    names exactly the one address it should: To, From, Reply-To, List-Id, Subject."""
    make_issue(room, 1)
    name = ODD if where == "member" else "张三"
    paper = {"paper": {"name": ODD}} if where == "paper" else {}
    email = {
        "from": {"from": f"{ODD} <digest@news.example.org>"},
        "reply_to": {"reply_to": f"{ODD} <editors@news.example.org>"},
        "subject": {"subject": ODD + " {number}"},
    }.get(where, {})
    data = room.config.model_dump(by_alias=True, exclude={"root"})
    for section, values in (("paper", paper.get("paper", {})), ("email", email)):
        data[section].update(values)
    config = config_from_dict(data, root=room.config.root)
    msg = parse(member_message(room, Member("target@example.org", name), config))

    assert msg.defects == []
    for header, address in (("To", "target@example.org"), ("From", "digest@news.example.org"),
                            ("Reply-To", "editors@news.example.org")):
        assert [a.addr_spec for a in msg[header].addresses] == [address], header
    shown = {"member": msg["To"], "from": msg["From"], "reply_to": msg["Reply-To"]}
    if where in shown:
        assert shown[where].addresses[0].display_name == ODD
    if where == "paper":
        assert str(msg["List-Id"]) == f"{ODD} <digest.news.example.org>"
    if where == "subject":
        assert str(msg["Subject"]) == f"{ODD} 1"


def test_automatic_responders_are_told_to_stay_quiet(room: Newsroom) -> None:
    make_issue(room, 1)
    msg = parse(member_message(room, Member("a@example.com")))
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["X-Auto-Response-Suppress"] == "OOF, AutoReply"


def test_the_issues_own_example_gives_one_recipient(workdir: Path) -> None:
    """`members add target@… --name '=?utf-8?q?…?='` then `send`: the .eml has one To."""
    code, _, err = run(workdir, "members", "add", "target@example.org", "--name", ODD)
    assert code == 0, err
    with Newsroom(load_config(workdir / "config.toml")) as room:
        make_issue(room, 1)
    code, _, err = run(workdir, "send", "--via", "outbox")
    assert code == 0, err
    (eml,) = (workdir / "outbox" / "0001").glob("*.eml")
    raw = eml.read_bytes()
    assert b"attacker@" not in raw.split(b"\r\n\r\n", 1)[0]
    to = parse(raw)["To"]
    assert [(a.display_name, a.addr_spec) for a in to.addresses] == [(ODD, "target@example.org")]
    unfolded = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
    # What `sendmail -t` would read: one To line, one <address> on it.
    (line,) = [x for x in unfolded.split(b"\r\n") if x.startswith(b"To:")]
    assert line.count(b"@") == 1 and line.endswith(b" <target@example.org>")


def test_message_id_is_the_same_for_the_same_issue_and_member(room: Newsroom) -> None:
    make_issue(room, 2)
    issue = room.issue()
    arts = room.store.articles(issue.article_ids)
    ids = []
    for when in (NOW, NOW + timedelta(days=1)):  # two renders, two sends
        digest = render_digest(issue, arts, room.config, env())
        mailer = Mailer(digest, room.config, KEY, when)
        ids.append((mailer.message(Member("a@example.com")).message_id,
                    mailer.message(Member("b@example.com")).message_id))
    assert ids[0] == ids[1]
    assert ids[0][0] != ids[0][1]


# -- the HTML part --------------------------------------------------------------------


def test_html_is_inlined_and_keeps_only_media_queries_in_style(room: Newsroom) -> None:
    issue = make_issue(room, 2)
    _, html = bodies(parse(member_message(room, Member("a@example.com", "张三"))))
    doc = lxml_html.fromstring(html)

    styles = [s.text_content() for s in doc.iter("style")]
    assert len(styles) == 1 and "@media only screen and (max-width: 620px)" in styles[0]
    outside_media = re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", styles[0])
    assert outside_media.strip() == ""  # every other rule went into style attributes
    wrap = doc.find_class("wrap")[0]
    assert "width:600px" in wrap.get("style") and wrap.get("width") == "600"
    assert wrap.get("style").index("PingFang SC") < wrap.get("style").index("sans-serif")
    assert all(p.get("style") for p in doc.find_class("para"))
    assert "display:none" in doc.find_class("preheader")[0].get("style")

    masthead = doc.find_class("masthead")[0]
    for piece in ("职工时报", f"第{issue.number}期", display_date(DAY)):
        assert piece in masthead.text_content()
    view = [a for a in masthead.iter("a") if a.text_content() == "在浏览器中查看"]
    assert view[0].get("href") == urls.issue_url(room.config, issue.number)

    toc = doc.find_class("toc")[0]
    arts = room.store.articles(issue.article_ids)
    assert [a.get("href") for a in toc.iter("a")] == [urls.article_url(room.config, a.id)
                                                      for a in arts]
    first = doc.find_class("article")[0].text_content()
    for piece in ("聚焦民生", arts[0].title, "覆盖全市百万职工", "记者 林晓　通讯员 郑凯、何清",
                  arts[0].paragraphs[1][:20], "阅读全文"):
        assert piece in first
    # A photographer the caption does not name is credited after it, not in the byline.
    assert [p.text_content() for p in doc.find_class("caption")][:1] == ["职工在驿站休息。吴峰 摄"]
    assert "摄影" not in first
    footer = doc.find_class("footer")[0]
    assert "您收到这封邮件，是因为 a@example.com 订阅了《职工时报》电子版" in footer.text_content()
    assert any(a.get("href", "").startswith("https://news.example.org/unsubscribe/")
               for a in footer.iter("a"))


def test_inline_once_then_personalise_equals_inlining_each_member(room: Newsroom) -> None:
    make_issue(room, 12)
    config = config_with(room, size_budget_kb=40)  # so some articles are cut too
    issue = room.issue()
    arts = room.store.articles(issue.article_ids)
    digest = render_digest(issue, arts, config, env())
    assert Form.FULL in digest.forms and Form.TITLE in digest.forms
    members = [
        Member("o'neil&co@example.com", '<b>王&"五"</b>'),
        Member("plain@example.com", ""),
        Member("x@example.com", "A & B's <i>'x'</i> > y"),
    ]
    for member in members:
        unsubscribe = urls.unsubscribe_url(config, tokens.sign(KEY, member.email, issue.number))
        html, _ = personalise(digest, member, unsubscribe)
        own = digest_context(issue, arts, config)
        own.update(member_name=greeting_name(member), member_email=member.email,
                   unsubscribe_url=unsubscribe)
        html_alone, _ = render_templates(env(), own)
        assert html == inline_css(cut(html_alone, digest.forms))
        if member.name.startswith("<b>"):
            assert "&lt;b&gt;王&amp;\"五\"&lt;/b&gt;，您好" in html
            assert "o'neil&amp;co@example.com" in html


def test_premailer_runs_once_per_issue_however_many_members(
    room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_issue(room, 2)
    for n in range(6):
        room.add_member(f"m{n}@example.com", f"会员{n}")
    calls = []
    real = premailer.Premailer.transform

    def counted(inliner: premailer.Premailer, *args: object, **kwargs: object) -> str:
        calls.append(1)  # the real inliner still runs
        return real(inliner, *args, **kwargs)

    monkeypatch.setattr(premailer.Premailer, "transform", counted)
    assert room.send().sent == 6
    assert len(calls) == 1


class _CssServer(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"p { color: red; }")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def css_server() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _CssServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/remote.css"
    finally:
        server.shutdown()
        server.server_close()


def test_inlining_fetches_nothing_and_the_css_parser_stays_quiet(
    room: Newsroom, workdir: Path, css_server: str, caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    make_issue(room, 1)
    own = workdir / "templates" / "email"
    html = (own / "digest.html.j2").read_text("utf-8")
    (own / "digest.html.j2").write_text(
        html.replace("<style>", f'<link rel="stylesheet" href="{css_server}">\n<style>', 1), "utf-8"
    )
    (own / "digest.css").write_text(
        (own / "digest.css").read_text("utf-8") + "\n.para { colour: red; -x-made-up: 1; }\n"
    )
    caplog.set_level(logging.DEBUG)
    _CssServer.hits.clear()
    digest = room.digest()
    assert _CssServer.hits == []
    assert "style=" in digest.html
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert capfd.readouterr().err == ""


# -- the text part --------------------------------------------------------------------


def test_text_part_lines_fit_the_width_in_display_columns(room: Newsroom) -> None:
    make_issue(room, 3)
    long_name = "欧阳" + "晓" * 40  # the greeting line is wrapped once the name is in
    text, _ = bodies(parse(member_message(room, Member("a@example.com", long_name))))
    widths = [wcwidth.width(line, ambiguous_width=2) for line in text.split("\n")
              if not URL_LINE.fullmatch(line)]
    assert max(widths) <= TEXT_WIDTH
    assert max(widths) >= TEXT_WIDTH - 4  # and long paragraphs really fill the lines
    assert not any(line.startswith(("，", "。", "、", "”", "）")) for line in text.split("\n"))
    assert long_name[:20] in text and "阅读全文：" in text


def test_text_part_comes_from_its_own_template(room: Newsroom, workdir: Path) -> None:
    make_issue(room, 1)
    own = workdir / "templates" / "email" / "digest.txt.j2"
    own.write_text(own.read_text("utf-8") + "编辑部电话：0571-0000000\n", "utf-8")
    digest = room.digest()
    assert "编辑部电话" in digest.text and "编辑部电话" not in digest.html


WORDS = st.sampled_from(["工会", "职工", "，", "。", "（", "）", "“", "”", "……", "Union",
                         "members", " ", "2026", "https://news.example.org/articles/a-b-c.html",
                         "zhang.san@example.com", "服务站点建设纳入年度重点工作"])


@given(st.lists(WORDS, min_size=1, max_size=80), st.integers(min_value=20, max_value=80))
def test_wrapping_keeps_every_character_in_order_within_the_width(
    words: list[str], width: int
) -> None:
    text = "".join(words)
    assume(not re.search("[，。）”…]{4,}", text))  # no sentence is a run of closing marks
    lines = wrap_text(text, width)
    for line in lines:
        assert wcwidth.width(line, ambiguous_width=2) <= width or UNBREAKABLE.match(line), line
    assert "".join("".join(lines).split()) == "".join(text.split())
    assert not any(line.startswith(("，", "。", "）", "”", "…")) for line in lines[1:])


def test_a_url_is_never_broken() -> None:
    url = "https://news.example.org/articles/2026-11-22-" + "a" * 80 + ".html"
    assert wrap_text(f"详见{url}。", 40) == ["详见", f"{url}。"]
    assert wrap_text(f"详见 {url} ，请留意。", 40) == ["详见", f"{url} ，", "请留意。"]


# -- the unsubscribe link and its key -----------------------------------------------


def test_the_unsubscribe_link_verifies_with_the_working_folders_key(
    room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tokens.SECRET_ENV, raising=False)
    issue = make_issue(room, 1)
    room.add_member("li@example.com", "李四")
    assert room.send().sent == 1
    msg = parse(next((room.config.outbox_dir / f"{issue.number:04d}").glob("*.eml")))
    url = str(msg["List-Unsubscribe"]).split(",")[0].strip("<> ")
    text, html = bodies(msg)
    assert url in text and f'href="{url}"' in html
    key = tokens.load_secret(room.config.state_dir)
    claims = tokens.verify(key, url.rsplit("/", 1)[1])
    assert (claims.email, claims.issue) == ("li@example.com", issue.number)


def test_gongbao_secret_overrides_the_key_file(
    room: Newsroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_issue(room, 1)
    room.add_member("li@example.com")
    monkeypatch.setenv(tokens.SECRET_ENV, "from-the-environment")
    room.send()
    msg = parse(next(room.config.outbox_dir.glob("*/*.eml")))
    token = str(msg["List-Unsubscribe"]).split(",")[0].strip("<> ").rsplit("/", 1)[1]
    assert tokens.verify(b"from-the-environment", token).email == "li@example.com"
    file_key = (room.config.state_dir / "secret.key").read_text("ascii").strip().encode()
    with pytest.raises(tokens.BadToken):
        tokens.verify(file_key, token)


# -- the size budget ------------------------------------------------------------------


def test_a_long_issue_is_shortened_to_stay_under_gmails_clip(room: Newsroom) -> None:
    make_issue(room, 60, paragraphs=8, sentences=4)
    issue = room.issue()
    arts = room.store.articles(issue.article_ids)
    digest = room.digest()
    assert digest.forms[0] is Form.FULL and digest.shortened > 0
    assert list(digest.forms) == sorted(digest.forms, reverse=True)  # never longer further down
    raw = Mailer(digest, room.config, KEY, NOW).message(
        Member("a.very.long.address.of.a.member@example.com", "欧阳" * 30)).data
    assert len(raw) < GMAIL_CLIPS_AT
    assert len(raw) <= room.config.email.size_budget_kb * 1000

    text, html = bodies(parse(raw))
    lead = digest.forms.index(Form.LEAD)
    shown = arts[lead]
    assert shown.paragraphs[0] in html and shown.paragraphs[1][:8] not in html
    assert urls.article_url(room.config, shown.id) in html
    headline_only = arts[digest.forms.index(Form.TITLE)]
    assert headline_only.paragraphs[0][:8] not in html
    assert f'href="{urls.article_url(room.config, headline_only.id)}"' in html  # in the contents
    assert "更多文章" in text and urls.article_url(room.config, arts[-1].id) in text
    assert "请点击上方目录中的标题阅读" in html


def test_a_short_issue_is_shown_whole(room: Newsroom) -> None:
    make_issue(room, 3)
    digest = room.digest()
    assert digest.forms == (Form.FULL,) * 3 and digest.shortened == 0
    assert "更多文章" not in digest.text


# -- what a spam filter and a phone make of it (Debian's packages) -------------------


def _need(binary: str) -> str:
    found = shutil.which(binary)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is missing: apt-get install -y {binary}")
        pytest.skip(f"needs Debian's {binary}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("articles", [3, 60])
def test_spamassassin_scores_a_digest_at_most_one(room: Newsroom, articles: int) -> None:
    spamassassin = _need("spamassassin")
    make_issue(room, articles, paragraphs=6, sentences=3)
    raw = member_message(room, Member("chen.xiaoyu@example.org", "陈晓雨"))
    out = subprocess.run(
        [spamassassin, "--local", "--test-mode"], input=raw, capture_output=True, timeout=300,
        check=True,
    ).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: (.*?)\n(?![ \t])", out, re.M | re.S)
    assert status is not None, out[:2000]
    fields = " ".join(status[1].split())
    score = float(re.search(r"score=(-?[\d.]+)", fields)[1])  # type: ignore[index]
    hits = re.search(r"tests=(\S*)", fields)[1].split(",")  # type: ignore[index]
    assert score <= 1.0, fields
    assert not [t for t in hits if t.startswith("MIME_") or (
        t.startswith("HTML_") and t != "HTML_MESSAGE")], fields


SHOTS = REPO / "bench" / "out" / "screenshots"


@pytest.mark.slow
@pytest.mark.parametrize("width", [375, 600])
def test_chromium_shows_the_digest_without_horizontal_scrolling(
    room: Newsroom, width: int, tmp_path: Path
) -> None:
    chromium = _need("chromium")
    from playwright.sync_api import sync_playwright

    make_issue(room, 4)
    room.add_member("a.member.with.a.rather.long.address@example.org", "欧阳晓雨")
    room.send()
    _, html = bodies(parse(next(room.config.outbox_dir.glob("*/*.eml"))))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium,
                                     args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.route("**/*", lambda route: route.abort())  # nothing leaves the machine
            page.set_content(html, wait_until="load")
            scroll, inner = page.evaluate(
                "[document.documentElement.scrollWidth, window.innerWidth]")
            shot = tmp_path / f"digest-{width}.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert inner == width
    assert scroll <= inner
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / shot.name)


def test_preview_writes_the_html_and_the_cli_prints_its_path(
    room: Newsroom, workdir: Path
) -> None:
    from click.testing import CliRunner

    from gongbao_feed.cli import main

    make_issue(room, 2)
    result = CliRunner().invoke(main, ["preview", "--config", str(workdir / "config.toml")])
    assert result.exit_code == 0, result.output
    path = Path(result.stdout.strip())
    assert path.is_file() and path.suffix == ".html"
    assert "会员朋友，您好" in path.read_text("utf-8")
    assert path.with_suffix(".txt").is_file()
    assert load_config(workdir / "config.toml").state_dir in path.parents


# -- a subtitle's dash, shown once ---------------------------------------------------


@pytest.mark.parametrize("printed", [
    "——覆盖建筑工地职工", "—覆盖建筑工地职工", "--覆盖建筑工地职工",
    "－－覆盖建筑工地职工", "覆盖建筑工地职工",
])
def test_a_subtitle_shows_one_dash_in_every_rendering(
    room: Newsroom, tmp_path: Path, printed: str
) -> None:
    from dataclasses import replace

    from gongbao_feed.archive import environment, render_archive
    from gongbao_feed.feeds import render_feeds

    from .helpers_mail import article

    art = replace(article(1), subtitle=printed)
    room.store.save_articles([art], room.now())
    issue = Issue(1, DAY, "职工时报 第1期", (art.id,), datetime(2026, 11, 22, 0, 30, tzinfo=UTC))
    room.store.add_issue(issue)
    text, html = bodies(parse(member_message(room, Member("a@example.com"))))
    stored = room.store.articles([art.id])
    pages = render_archive([issue], stored, room.config,
                           environment([builtin_templates() / "web"]))
    feeds = render_feeds(stored, [issue], room.config)
    shown = {
        "text": text, "html": html, "article page": pages[f"articles/{art.id}.html"].decode(),
        "issue page": pages["issues/0001.html"].decode(),
        "atom": feeds["atom.xml"].decode(), "json": json.loads(feeds["feed.json"])["items"][0]
        ["content_html"],
    }
    for where, out in shown.items():
        assert "——覆盖建筑工地职工" in out, where
        assert "———" not in out and "—覆盖" not in out.replace("——覆盖", ""), where
