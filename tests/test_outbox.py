"""Sending into the outbox: one file per member, a ledger that never lies, reruns."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gongbao_feed.deliver import SendReport, make_transport
from gongbao_feed.errors import DeliveryError, StoreError
from gongbao_feed.models import DeliveryState, Member
from gongbao_feed.outbox import eml_name, issue_folder
from gongbao_feed.publish import Newsroom
from gongbao_feed.transport import RecordingTransport

from .helpers_cli import run
from .helpers_mail import bodies, make_issue, parse

MEMBERS = {"a@example.com": "甲", "b@example.com": "乙", "c@example.com": "丙"}



def join(room: Newsroom, members: dict[str, str] = MEMBERS) -> None:
    for address, name in members.items():
        room.add_member(address, name)


def folder(room: Newsroom, issue: int = 1) -> Path:
    return room.config.outbox_dir / f"{issue:04d}"


def snapshot(path: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in path.iterdir()}


def test_one_file_per_member_recorded_after_it_is_written(room: Newsroom) -> None:
    make_issue(room, 2)
    join(room)
    report = room.send()
    assert (report.issue, report.sent, report.skipped, report.failed) == (1, 3, 0, [])

    files = sorted(folder(room).iterdir())
    assert [f.name for f in files] == sorted(eml_name(e) for e in MEMBERS)  # no temporaries
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # addresses and tokens inside
        msg = parse(path)
        assert msg.defects == [] and all(p.defects == [] for p in msg.walk())
        who = msg["To"].addresses[0]
        assert MEMBERS[who.addr_spec] == who.display_name
        text, _ = bodies(msg)
        assert f"{who.display_name}，您好！" in text
        row = room.store.delivery(1, who.addr_spec)
        assert row is not None and row.state is DeliveryState.SENT
        assert row.message_id == str(msg["Message-ID"]) and row.transport == "outbox"


def test_a_rerun_sends_nothing_and_a_new_member_gets_the_issue(room: Newsroom) -> None:
    make_issue(room, 1)
    join(room)
    assert room.send().sent == 3
    before = snapshot(folder(room))

    again = room.send()
    assert (again.sent, again.skipped) == (0, 3)
    assert snapshot(folder(room)) == before

    room.add_member("d@example.com", "丁")
    later = room.send()
    assert (later.sent, later.skipped) == (1, 3)
    after = snapshot(folder(room))
    assert set(after) - set(before) == {eml_name("d@example.com")}
    assert all(after[name] == mtime for name, mtime in before.items())  # others untouched


def test_unsubscribed_members_are_never_mailed_even_during_a_send(room: Newsroom) -> None:
    make_issue(room, 1)
    crowd = {f"m{n:02d}@example.com": f"会员{n}" for n in range(20)}
    join(room, {**crowd, "gone@example.com": "走"})
    room.store.unsubscribe("gone@example.com", room.now(), via="link")

    def unsubscribe_one_mid_send(done: int, total: int) -> None:
        # The first copy is on disk; the transport holds at most a few more.
        # Every member after those is read from the store again before their copy is made.
        if done == 1:
            room.store.unsubscribe("m17@example.com", room.now(), via="one-click")

    report = room.send(progress=unsubscribe_one_mid_send)
    mailed = {p.name for p in folder(room).iterdir()}
    assert mailed == {eml_name(e) for e in crowd if e != "m17@example.com"}
    assert room.store.delivery(1, "m17@example.com") is None
    assert room.store.delivery(1, "gone@example.com") is None
    assert report.sent == 19


def test_a_failed_write_is_not_recorded_as_sent_and_the_next_run_retries(
    room: Newsroom, workdir: Path
) -> None:
    make_issue(room, 1)
    join(room)
    folder(room).parent.mkdir(parents=True, exist_ok=True)
    folder(room).write_text("in the way")  # the issue's folder cannot be made

    code, out, err = run(workdir, "send", "--json")
    assert code == 1
    assert out["sent"] == 0 and len(out["failed"]) == 3  # type: ignore[index]
    assert "cannot write" in out["failed"][0]["error"]  # type: ignore[index]
    assert "error: a@example.com: cannot write" in err
    assert all(d.state is DeliveryState.FAILED for d in room.store.deliveries(1))

    folder(room).unlink()
    code, out, _ = run(workdir, "send", "--json")
    assert code == 0
    assert out == {"issue": 1, "sent": 3, "skipped": 0, "failed": []}
    assert len(list(folder(room).iterdir())) == 3


def test_a_member_whose_copy_cannot_be_made_fails_alone(room: Newsroom) -> None:
    make_issue(room, 1)
    join(room)
    # A name with a line break cannot come in through import or add; the store
    # takes whatever it is given, so the send checks again.
    room.store.save_member(
        Member("eve@example.com", "Eve\r\nBcc: victim@example.net", joined=room.now())
    )
    report = room.send()
    assert report.sent == 3
    assert report.failed == [("eve@example.com", report.failed[0][1])]
    assert "line break" in report.failed[0][1]
    assert not any(b"Bcc:" in p.read_bytes() for p in folder(room).iterdir())


def test_to_sends_one_test_copy_and_records_nothing(room: Newsroom, workdir: Path) -> None:
    make_issue(room, 1)
    join(room)
    code, out, _ = run(workdir, "send", "--to", "Editor@Example.COM", "--json")
    assert code == 0 and out["sent"] == 1  # type: ignore[index]
    tests = room.config.outbox_dir / "tests" / "0001"
    assert [p.name for p in tests.iterdir()] == [eml_name("Editor@example.com")]
    assert not folder(room).exists()  # outbox/0001/ is the members' copies only
    assert room.store.deliveries() == []
    assert run(workdir, "send", "--json")[1]["sent"] == 3  # type: ignore[index]


def test_a_test_copy_to_a_members_own_address_leaves_their_copy_and_the_ledger(
    room: Newsroom, workdir: Path
) -> None:
    make_issue(room, 1)
    join(room)
    member = next(iter(MEMBERS))
    assert run(workdir, "send", "--json")[1]["sent"] == 3  # type: ignore[index]
    real = folder(room) / eml_name(member)
    before, ledger = real.read_bytes(), room.store.deliveries()

    code, out, _ = run(workdir, "send", "--to", member.upper(), "--json")
    assert code == 0 and out["sent"] == 1  # type: ignore[index]
    copy = room.config.outbox_dir / "tests" / "0001" / eml_name(member)
    test_msg, real_msg = parse(copy), parse(real)
    assert real.read_bytes() == before and room.store.deliveries() == ledger
    assert str(test_msg["Subject"]) == "[测试] " + str(real_msg["Subject"])
    assert str(test_msg["To"]) == str(real_msg["To"])  # as the member sees it
    assert test_msg["Message-ID"] != real_msg["Message-ID"]
    run(workdir, "send", "--to", member)  # a second test: a Message-ID of its own again
    assert parse(copy)["Message-ID"] not in (test_msg["Message-ID"], real_msg["Message-ID"])
    assert run(workdir, "send", "--json")[1]["sent"] == 0  # type: ignore[index]


def test_dry_run_lists_who_would_get_what_and_touches_nothing(
    room: Newsroom, workdir: Path
) -> None:
    make_issue(room, 1)
    join(room)
    room.send(to="b@example.com")
    code, out, _ = run(workdir, "send", "--dry-run", "--json")
    assert code == 0
    assert out["would_send"] == [  # type: ignore[index]
        {"email": e, "name": n} for e, n in MEMBERS.items()
    ]
    assert out["subject"].startswith("职工时报 第1期")  # type: ignore[index]
    assert room.store.deliveries() == []

    code, text, err = run(workdir, "send", "--dry-run")
    assert text == "".join(f"{e}\t{n}\n" for e, n in MEMBERS.items())
    assert "would send 3" in err


def test_the_cli_prints_one_summary_line_off_a_terminal(room: Newsroom, workdir: Path) -> None:
    make_issue(room, 1)
    join(room)
    code, out, err = run(workdir, "send")
    assert (code, out, err) == (0, "issue 1: 3 sent, 0 skipped, 0 failed\n", "")
    code, out, _ = run(workdir, "send")
    assert out == "issue 1: 0 sent, 3 skipped, 0 failed\n"


def test_send_takes_the_newest_issue_unless_told(room: Newsroom, workdir: Path) -> None:
    make_issue(room, 1)
    make_issue(room, 1, first=2)
    join(room, {"a@example.com": "甲"})
    assert run(workdir, "send", "--json")[1]["issue"] == 2  # type: ignore[index]
    assert run(workdir, "send", "--issue", "1", "--json")[1]["issue"] == 1  # type: ignore[index]
    assert folder(room, 1).is_dir() and folder(room, 2).is_dir()
    code, _, err = run(workdir, "send", "--issue", "9")
    assert code == 1 and "there is no issue 9" in err and "the newest issue is 2" in err


def test_there_is_nothing_to_send_before_the_first_issue(workdir: Path) -> None:
    code, _, err = run(workdir, "send")
    assert code == 1 and "there is no issue yet" in err and "assemble" in err


def test_an_unknown_transport_is_named(room: Newsroom) -> None:
    with pytest.raises(DeliveryError, match="unknown transport 'pigeon'"):
        make_transport(room.config, "pigeon")


def test_file_names_are_stable_safe_and_distinct() -> None:
    assert eml_name("li@example.com") == eml_name("li@example.com")
    assert eml_name("Li@example.com") != eml_name("li@example.com")  # case-insensitive disks
    odd = eml_name("o'neil&co/..@example.com")
    assert "/" not in odd and "'" not in odd and odd.endswith(".eml")


def test_members_are_read_a_batch_at_a_time_in_address_order(room: Newsroom) -> None:
    join(room, {f"m{n:02d}@example.com": "" for n in range(7)})
    room.store.unsubscribe("m03@example.com", room.now(), via="link")
    everyone = [m.email for m in room.store.iter_members(batch=2)]
    assert everyone == [f"m{n:02d}@example.com" for n in range(7)]
    active = [m.email for m in room.store.iter_members(active_only=True, batch=2)]
    assert "m03@example.com" not in active and len(active) == 6
    assert room.store.count_members(active_only=True) == 6


def test_a_send_sweeps_the_temporary_copies_a_killed_sender_left(room: Newsroom) -> None:
    """A SIGKILL between writing and renaming leaves `.<file>.<pid>.tmp`, a whole message
    with an unsubscribe link; the next send removes it (but not a live sender's)."""
    make_issue(room, 1)
    room.add_member("wang@example.org", "王五")
    folder = issue_folder(room.config.outbox_dir, 1)
    folder.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = folder / f".someone.abc.eml.{dead.pid}.tmp"
    left.write_bytes(b"To: someone\r\n\r\nhalf a message")
    live = folder / f".other.abc.eml.{os.getppid()}.tmp"
    live.write_bytes(b"being written")
    room.send()
    assert not left.exists()
    assert live.exists()
    assert [p.name for p in folder.iterdir() if p.name.endswith(".tmp")] == [live.name]
    assert [p.name for p in folder.iterdir() if p.name.endswith(".eml")] == [
        eml_name("wang@example.org")
    ]


def test_an_injected_transport_is_used_and_its_refusals_are_recorded(room: Newsroom) -> None:
    """The seam: `Newsroom(transport=…)` replaces the configured one, no patching."""
    make_issue(room, 1)
    for email in ("a@example.org", "b@example.org", "c@example.org"):
        room.add_member(email, "")
    fake = RecordingTransport(
        refuse={"b@example.org": {"code": 550, "detail": "no such user", "permanent": True}}
    )
    with Newsroom(room.config, room.clock, transport=fake) as sender:
        report = sender.send()
    assert [m.email for m in fake.delivered] == ["a@example.org", "c@example.org"]
    assert (report.sent, report.failed) == (2, [("b@example.org", "no such user")])
    rows = {d.email: (d.state, d.permanent, d.code) for d in room.store.deliveries(1)}
    assert rows == {
        "a@example.org": (DeliveryState.SENT, False, None),
        "b@example.org": (DeliveryState.FAILED, True, 550),
        "c@example.org": (DeliveryState.SENT, False, None),
    }
    assert not room.config.outbox_dir.exists() or not any(room.config.outbox_dir.iterdir())


def test_a_database_that_fails_mid_send_stops_it_with_the_counts_so_far(
    room: Newsroom,
) -> None:
    """The ledger's table goes away after the third message: the send stops with
    one clear error that names the database, and the report says what was sent."""
    make_issue(room, 1)
    for n in range(6):
        room.add_member(f"m{n}@example.org", "")

    def take_the_table_away(message: object) -> None:
        if len(fake.delivered) == 3:
            with room.store.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE deliveries RENAME TO deliveries_gone")

    fake = RecordingTransport(after_each=take_the_table_away)
    with (
        Newsroom(room.config, room.clock, transport=fake) as sender,
        pytest.raises(StoreError) as stopped,
    ):
        sender.send()
    error = stopped.value
    assert error.message.startswith("the database failed during the send: no such table")
    assert "[database] url" in (error.hint or "")
    report = error.report
    assert isinstance(report, SendReport)
    assert (report.sent, report.error) == (3, error.message)
    assert report.to_json()["error"] == error.message
