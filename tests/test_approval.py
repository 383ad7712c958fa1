"""An editor's approval before members are mailed, and the quality gate before any send.

With `issue.approval = "required"` an issue goes first to the editors as a
proof (`[审核]`, a test copy: its own Message-ID, no ledger row, outbox/tests/),
and reaches the members only after `gongbao-feed approve N` or a POST to the
proof's link, exactly once. The gate stops a send whose digest lost an article.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest

from gongbao_feed import tokens
from gongbao_feed.config import load_config
from gongbao_feed.errors import ConfigError, DeliveryError
from gongbao_feed.models import DeliveryState
from gongbao_feed.outbox import eml_name, issue_folder
from gongbao_feed.outbox import test_folder as proof_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.review import check_size
from gongbao_feed.schedule import INGEST, PUBLISH, Service, set_next_run
from gongbao_feed.web import create_app

from .conftest import FixedClock
from .helpers_cli import run
from .helpers_web import running
from .test_schedule import EXE, Run, add_members, start, write_config

EDITORS = ("editor@news.example.org", "chief@news.example.org")
MEMBERS = 3


def require_approval(config_path: Path, **extra: object) -> Path:
    """Turn approval on in the config `write_config` (or `init`) made."""
    text = config_path.read_text("utf-8")
    editors = ", ".join(f'"{e}"' for e in EDITORS)
    lines = f'approval = "required"\neditors = [{editors}]\n' + "".join(
        f"{k} = {v}\n" for k, v in extra.items())
    if "\n[issue]\n" in "\n" + text:
        text, n = re.subn(r'approval = "none"\neditors = \[\][^\n]*\n', lines, text)
        assert n == 1
    else:
        text += "\n[issue]\n" + lines
    config_path.write_text(text, "utf-8")
    return config_path


def read_eml(path: Path) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    return message


def text_part(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def approve_path(proof: EmailMessage) -> str:
    """The approve link's path (the site is paper.base_url; the tests serve it on loopback)."""
    found = re.search(r"https://news\.example\.org(/approve/\d+/[A-Za-z0-9_-]+)", text_part(proof))
    assert found, text_part(proof)
    return found.group(1)


def outbox_files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder / "outbox").as_posix()
                  for p in (folder / "outbox").rglob("*.eml"))


def proofs(folder: Path) -> list[str]:
    return sorted(f"tests/0001/{eml_name(e)}" for e in EDITORS)


def member_copies(folder: Path, emails: list[str]) -> list[str]:
    return sorted(f"0001/{eml_name(e)}" for e in emails)


# -- the config ------------------------------------------------------------------------


def test_required_approval_without_editors_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text("utf-8") + '\n[issue]\napproval = "required"\n', "utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "issue.editors" in str(err.value)
    assert "at least one editor" in str(err.value)


def test_an_editor_that_is_not_a_bare_address_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text("utf-8")
                    + '\n[issue]\neditors = ["编辑 <ed@news.example.org>"]\n', "utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "issue.editors" in str(err.value) and "not a bare address" in str(err.value)


def test_approval_is_off_by_default(workdir: Path) -> None:
    config = load_config(workdir / "config.toml")
    assert (config.issue.approval, config.issue.editors) == ("none", [])


# -- tokens ----------------------------------------------------------------------------


def test_approve_and_unsubscribe_tokens_never_open_as_each_other() -> None:
    key, now = b"k" * 32, 1_800_000_000
    approve = tokens.sign_approval(key, 3, "editor@news.example.org", now + 60)
    assert tokens.verify_approval(key, approve, now) == tokens.ApprovalClaims(
        3, "editor@news.example.org", now + 60)
    unsubscribe = tokens.sign(key, "editor@news.example.org", 3)
    with pytest.raises(tokens.BadToken):
        tokens.verify_approval(key, unsubscribe, now)
    with pytest.raises(tokens.BadToken):
        tokens.verify(key, approve)
    with pytest.raises(tokens.BadToken, match="expired"):
        tokens.verify_approval(key, approve, now + 60)
    with pytest.raises(tokens.BadToken):
        tokens.verify_approval(b"x" * 32, approve, now)


# -- in process: assemble → proof → approve → send ------------------------------------------


def test_the_proof_goes_to_the_editors_only_and_send_waits_for_approval(workdir: Path) -> None:
    config_path = require_approval(workdir / "config.toml")
    emails = add_members(config_path, MEMBERS)
    assert run(workdir, "ingest")[0] == 0
    code, out, err = run(workdir, "assemble")
    assert code == 0, err
    assert "waiting for an editor's approval" in str(out)
    assert outbox_files(workdir) == proofs(workdir)

    proof = read_eml(proof_folder(workdir / "outbox", 1) / eml_name(EDITORS[0]))
    assert proof["Subject"].startswith("[审核] ")
    assert proof["To"] == EDITORS[0]
    assert proof["Message-ID"].startswith("<digest-test.1.")
    assert "【审核样稿】本期（第1期）尚未发给会员。" in text_part(proof)
    assert approve_path(proof).startswith("/approve/1/")
    html = proof.get_body(("html",))
    assert html is not None and "批准发送第1期" in str(html.get_content())

    for args in (["send"], ["send", "--issue", "1", "--force"]):
        code, _out, err = run(workdir, *args)
        assert code == 1
        assert "issue 1 is waiting for an editor's approval since" in err
        assert "`gongbao-feed approve 1`" in err
    with Newsroom.open(config_path) as room:
        assert room.store.deliveries() == []  # the proofs are in no ledger

    code, out, err = run(workdir, "status", "--json")
    assert code == 0 and isinstance(out, dict)
    assert out["awaiting_approval"] == [1]
    assert out["approvals"][0]["editors"] == list(EDITORS)
    assert out["approvals"][0]["since"].endswith("+08:00")

    code, out, err = run(workdir, "approve", "1", "--by", "王编辑")
    assert code == 0, err
    assert str(out).startswith("issue 1: approved by 王编辑 at ")
    code, out, err = run(workdir, "approve", "1", "--by", "someone else")
    assert "already approved by 王编辑" in str(out)

    code, out, err = run(workdir, "send", "--issue", "1")
    assert code == 0, err
    assert "issue 1: 3 sent, 0 skipped, 0 failed" in str(out)
    code, out, err = run(workdir, "send", "--issue", "1")
    assert "issue 1: 0 sent, 3 skipped, 0 failed" in str(out)
    assert outbox_files(workdir) == sorted(proofs(workdir) + member_copies(workdir, emails))
    code, out, _err = run(workdir, "status", "--json")
    assert isinstance(out, dict) and out["awaiting_approval"] == []
    with Newsroom.open(config_path) as room:
        approval = room.store.approval(1)
        assert approval is not None and approval.approved_by == "王编辑"
        assert approval.approved_via == "command" and approval.sent_at is not None
        assert room.approved_unsent() == []


def test_the_ingest_job_sends_an_approved_issue_once(workdir: Path) -> None:
    config_path = require_approval(workdir / "config.toml")
    emails = add_members(config_path, MEMBERS)
    service = Service(config_path)
    assert service.publish() is not None
    service.ingest()  # not approved yet: nothing for the members
    assert outbox_files(workdir) == proofs(workdir)
    with Newsroom.open(config_path) as room:
        room.approve(1, by="editor")
    service.ingest()
    service.ingest()
    service.publish()
    assert outbox_files(workdir) == sorted(proofs(workdir) + member_copies(workdir, emails))
    with Newsroom.open(config_path) as room:
        rows = room.store.deliveries(1)
    assert [(d.email, d.state) for d in rows] == [(e, DeliveryState.SENT) for e in sorted(emails)]


# -- the approve link (real HTTP) ----------------------------------------------------------------


def test_only_a_post_with_the_right_token_approves(workdir: Path) -> None:
    config_path = require_approval(workdir / "config.toml")
    add_members(config_path, MEMBERS)
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    config = load_config(config_path)
    with Newsroom(config, clock=clock) as room:
        room.publish()
        path = approve_path(read_eml(proof_folder(workdir / "outbox", 1) / eml_name(EDITORS[0])))
        token = path.rsplit("/", 1)[1]
        key = tokens.load_secret(config.state_dir)
        now = int(clock().timestamp())
        forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BA")
        bad = {
            "forged": f"/approve/1/{forged}",
            "expired": "/approve/1/" + tokens.sign_approval(key, 1, EDITORS[0], now - 1),
            "other issue": "/approve/2/" + token,
            "other issue's token": "/approve/1/" + tokens.sign_approval(key, 2, EDITORS[0],
                                                                         now + 600),
            "unsubscribe token": "/approve/1/" + tokens.sign(key, EDITORS[0], 1),
        }
        with running(create_app(config, room.store, clock=clock)) as base, \
                httpx.Client(base_url=base) as client:
            page = client.get(path)
            assert page.status_code == 200
            assert "批准发送给会员" in page.text and room.issue(1).title in page.text
            assert page.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            assert page.headers["cache-control"] == "no-store"
            for name, target in bad.items():
                for method in ("GET", "POST"):
                    answer = client.request(method, target, data={"approve": "yes"})
                    assert answer.status_code == 400, (name, method)
                    assert "nothing was changed" in answer.text
            cross = client.post(path, data={"approve": "yes"},
                                headers={"Origin": "https://evil.example.net"})
            assert cross.status_code == 403
            assert client.post(path, data={}).status_code == 400
            assert room.needs_approval(room.issue(1))
            assert room.awaiting_approval()[0].issue == 1

            done = client.post(path, data={"approve": "yes"},
                               headers={"Origin": "https://news.example.org"})
            assert done.status_code == 200, done.text
            assert "已批准。" in done.text
            again = client.get(path)
            assert "本期已于" in again.text and "e***@news.example.org" in again.text
        approval = room.store.approval(1)
        assert approval is not None
        assert (approval.approved_by, approval.approved_via) == (EDITORS[0], "link")
        assert room.send(1).sent == MEMBERS
        assert room.send(1).sent == 0


# -- the quality gate ------------------------------------------------------------------------


def drop_article_from_digest(workdir: Path, n: int) -> None:
    """A custom digest template in the working folder that loses article n altogether."""
    template = workdir / "templates" / "email" / "digest.html.j2"
    text = template.read_text("utf-8")
    assert "{% for a in articles %}" in text
    for loop in ("articles", "section.articles"):  # the contents, grouped by section or not
        text = text.replace(f"{{% for a in {loop} %}}", f"{{% for a in {loop} if a.n != {n} %}}")
    template.write_text(text, "utf-8")


def test_the_gate_stops_a_digest_that_lost_an_article_and_names_it(workdir: Path) -> None:
    config_path = workdir / "config.toml"
    emails = add_members(config_path, MEMBERS)
    assert run(workdir, "ingest")[0] == 0
    assert run(workdir, "assemble")[0] == 0
    drop_article_from_digest(workdir, 2)
    with Newsroom.open(config_path) as room:
        lost = room.store.articles(room.issue(1).article_ids)[1]

    code, _out, err = run(workdir, "send")
    assert code == 1
    assert "issue 1 not sent: the quality gate failed:" in err
    assert f"digest: the digest lacks {lost.id} «{lost.title}»" in err
    assert "--force" in err
    assert outbox_files(workdir) == []
    code, out, _err = run(workdir, "status", "--json")
    assert isinstance(out, dict)
    assert out["quality_gate"] == [{
        "issue": 1, "checked": out["quality_gate"][0]["checked"], "passed": False,
        "problems": [{"check": "digest", "articles": [lost.id], "detail":
                      f"the digest lacks {lost.id} «{lost.title}» (neither in full, nor as a "
                      "first paragraph, nor as a linked title)"}],
        "forced_by": None,
    }]
    code, out, _err = run(workdir, "status")
    assert "quality gate: issue 1 not sent" in str(out) and lost.id in str(out)

    code, out, err = run(workdir, "send", "--force", "--by", "值班编辑")
    assert code == 0, err
    assert outbox_files(workdir) == member_copies(workdir, emails)
    with Newsroom.open(config_path) as room:
        (check,) = room.store.send_checks()
    assert (check.passed, check.forced_by) == (False, "值班编辑")
    code, out, _err = run(workdir, "status", "--json")
    assert isinstance(out, dict) and out["quality_gate"] == []


def test_the_gate_passes_the_shipped_templates_and_checks_the_size(workdir: Path) -> None:
    config_path = workdir / "config.toml"
    add_members(config_path, 1)
    with Newsroom.open(config_path) as room:
        room.ingest()
        room.assemble()
        from gongbao_feed.digest import Mailer

        digest = room.digest(1)
        mailer = Mailer(digest, room.config, b"k" * 32, room.now())
        assert room.check_issue(digest, mailer) == []
    # Even as titles only, a copy can be over the budget (a template's fixed text).
    assert check_size(20_000, 20) == []
    (problem,) = check_size(20_001, 20)
    assert problem.check == "size"
    assert problem.detail == ("a member's copy is 20001 bytes, over email.size_budget_kb = 20 "
                              "(20000 bytes)")


def test_a_withdrawn_article_left_in_a_feed_is_caught() -> None:
    from gongbao_feed.review import ArticleRef, check_feeds

    gone = ArticleRef("a1", "标题", "https://news.example.org/articles/a1.html")
    rss = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
           b"<item><guid>x</guid><link>https://news.example.org/articles/a1.html</link></item>"
           b"</channel></rss>")
    problems = check_feeds({"rss": ("feed.xml", rss), "atom": ("atom.xml", b"<feed")},
                           [], [gone], newest=True)
    assert [(p.check, p.articles) for p in problems] == [("withdrawn", ("a1",)),
                                                         ("feed-format", ())]
    assert problems[1].detail.startswith("atom.xml does not read as a feed: ")


# -- the scheduler in a subprocess ----------------------------------------------------------


def _service_folder(workdir: Path) -> tuple[Path, list[str]]:
    config_path = require_approval(write_config(workdir, schedule={"ingest_every_minutes": 1}))
    emails = add_members(config_path, MEMBERS)
    now = datetime.now(UTC).replace(microsecond=0)
    set_next_run(config_path, PUBLISH, now)
    set_next_run(config_path, INGEST, now + timedelta(seconds=20))
    return config_path, emails


@pytest.fixture
def services() -> Iterator[list[Run]]:
    """Every service a test starts is gone when it ends, passed or failed."""
    started: list[Run] = []
    yield started
    for service in started:
        if service.proc.poll() is None:
            service.finish(kill=True)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["command", "link"])
def test_the_service_proofs_waits_and_sends_once_approved(
    workdir: Path, services: list[Run], how: str
) -> None:
    config_path, emails = _service_folder(workdir)
    service = start(services, config_path)
    service.wait_for(r"publish: issue 1 with \d+ articles; waiting for an editor's approval")
    assert outbox_files(workdir) == proofs(workdir)  # the editors only

    if how == "command":
        done = subprocess.run([str(EXE), "approve", "1", "--by", "王编辑", "--config",
                               str(config_path)], capture_output=True, text=True, check=True)
        assert done.stdout.startswith("issue 1: approved by 王编辑")
    else:
        path = approve_path(read_eml(proof_folder(workdir / "outbox", 1) / eml_name(EDITORS[1])))
        with Newsroom.open(config_path) as room, \
                running(create_app(room.config, room.store)) as base:
            answer = httpx.post(base + path, data={"approve": "yes"})
            assert answer.status_code == 200 and "已批准。" in answer.text

    log = service.wait_for(r"approved: issue 1, approved by .*: 3 sent", timeout=120)
    assert service.terminate() == 0
    assert len(re.findall(r"approved: issue 1", log)) == 1
    assert outbox_files(workdir) == sorted(proofs(workdir) + member_copies(workdir, emails))
    assert sorted(p.name for p in issue_folder(workdir / "outbox", 1).iterdir()) == sorted(
        eml_name(e) for e in emails)
    with Newsroom.open(config_path) as room:
        rows = room.store.deliveries()
        approval = room.store.approval(1)
    assert [(d.issue, d.email) for d in rows] == [(1, e) for e in sorted(emails)]
    assert approval is not None and approval.sent_at is not None
    assert approval.approved_via == how
    if how == "link":
        assert approval.approved_by == EDITORS[1]


def test_send_refuses_while_approval_is_pending_even_in_the_library(workdir: Path) -> None:
    config_path = require_approval(workdir / "config.toml")
    add_members(config_path, 1)
    with Newsroom.open(config_path) as room:
        room.ingest()
        room.assemble()
        with pytest.raises(DeliveryError, match="waiting for an editor's approval"):
            room.send(1, force=True)
        assert room.send(1, to="someone@example.org").sent == 1  # a test copy still goes


# -- the records, on SQLite and PostgreSQL ---------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gongbao.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_approvals_and_gate_verdicts_are_kept_once_per_issue(store_url: str) -> None:
    from datetime import date

    from gongbao_feed.models import Issue
    from gongbao_feed.review import Problem, SendCheck
    from gongbao_feed.store import Store

    t0 = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    with Store(store_url) as store:
        for n in (1, 2):
            store.add_issue(Issue(n, date(2026, 12, n), f"第{n}期", (), t0))
        store.request_approval(1, t0, EDITORS)
        store.request_approval(1, t0 + timedelta(hours=1), ("other@example.org",))
        assert [(a.issue, a.requested_at, a.editors) for a in store.approvals(awaiting=True)] \
            == [(1, t0, EDITORS)]
        first, changed = store.approve(1, t0 + timedelta(hours=2), "王编辑", "command")
        again, changed_again = store.approve(1, t0 + timedelta(hours=3), "李编辑", "link")
        assert (changed, changed_again) == (True, False)
        assert first == again and again.approved_by == "王编辑"
        never_asked, changed = store.approve(2, t0, "editor@news.example.org", "link")
        assert changed and never_asked.editors == ()
        assert [a.issue for a in store.approvals(to_send=True)] == [1, 2]
        store.mark_sent(1, t0 + timedelta(hours=4))
        assert [a.issue for a in store.approvals(to_send=True)] == [2]

        problem = Problem("digest", "the digest lacks x", ("x",))
        store.record_check(SendCheck(1, t0, False, (problem,)))
        store.record_check(SendCheck(1, t0 + timedelta(minutes=5), False, (problem,),
                                     t0 + timedelta(minutes=5), "值班编辑"))
        (check,) = store.send_checks()
        assert (check.problems, check.forced_by) == ((problem,), "值班编辑")
