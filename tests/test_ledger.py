"""The ledger summary behind `gongbao-feed deliveries` (pure: rows in, summary out)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from gongbao_feed.cli import main
from gongbao_feed.ledger import summarise
from gongbao_feed.models import Delivery, DeliveryState

WHEN = datetime(2026, 11, 22, 1, 0, tzinfo=UTC)


def row(issue: int, email: str, state: DeliveryState, **kw: object) -> Delivery:
    return Delivery(issue, email, state, "smtp", updated=WHEN, **kw)  # type: ignore[arg-type]


def test_counts_by_issue_and_state_with_every_failure_and_its_reason() -> None:
    summary = summarise([
        row(2, "a@example.org", DeliveryState.SENT, attempts=1, code=250),
        row(2, "b@example.org", DeliveryState.FAILED, attempts=5, code=451,
            detail="RCPT TO <b@example.org>: 4.2.2 mailbox full"),
        row(2, "c@example.org", DeliveryState.FAILED, permanent=True, attempts=1, code=550,
            detail="RCPT TO <c@example.org>: 5.1.1 no such user"),
        row(1, "a@example.org", DeliveryState.SENT),
        row(1, "d@example.org", DeliveryState.PENDING),
    ])
    data = summary.to_json()
    assert data["issues"] == [
        {"issue": 1, "pending": 1, "sent": 1, "failed": 0,
         "failed_permanent": 0, "failed_temporary": 0},
        {"issue": 2, "pending": 0, "sent": 1, "failed": 2,
         "failed_permanent": 1, "failed_temporary": 1},
    ]
    assert data["total"] == {"pending": 1, "sent": 2, "failed": 2}
    assert [f["email"] for f in data["failures"]] == ["c@example.org", "b@example.org"]
    assert data["failures"][0]["reason"].endswith("5.1.1 no such user")
    assert summary.lines() == [
        "issue 1: 1 sent, 0 failed, 1 pending",
        "issue 2: 1 sent, 2 failed (1 permanent, 1 temporary), 0 pending",
        "failures:",
        "  issue 2  c@example.org  550 permanent, 1 attempt: "
        "RCPT TO <c@example.org>: 5.1.1 no such user",
        "  issue 2  b@example.org  451 temporary, 5 attempts: "
        "RCPT TO <b@example.org>: 4.2.2 mailbox full",
    ]


def test_an_empty_ledger_says_so() -> None:
    assert summarise([]).lines() == ["no deliveries recorded yet"]


def test_deliveries_of_an_unknown_issue_is_an_error(workdir: Path) -> None:
    result = CliRunner().invoke(
        main, ["deliveries", "--issue", "99", "--config", str(workdir / "config.toml")]
    )
    assert result.exit_code == 1
    assert "issue 99" in result.output
