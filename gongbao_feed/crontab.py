"""A five-field crontab → an APScheduler 3 CronTrigger that means what cron means.

APScheduler 3's `CronTrigger.from_crontab` counts weekdays from Monday = 0,
where cron counts from Sunday = 0 (and 7): `30 7 * * 1-5` would publish
Tuesday to Saturday. So the day-of-week field is read here with cron's
numbering and handed over as day names, which both agree on.

Cron also fires when *either* restricted day field matches, while
APScheduler needs both; rather than run on days nobody expected, a
crontab that restricts both is refused with a message saying so.

Pure: text in, trigger (or ValueError naming the problem) out.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger

from .i18n import _

DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ITEM = re.compile(r"^(?P<range>\*|(?P<first>\w+)(?:-(?P<last>\w+))?)(?:/(?P<step>\d+))?$")


def _day(token: str) -> int:
    token = token.lower()
    if token.isdigit():
        n = int(token)
        if n > 7:
            raise ValueError(
                _("day of week {day} is out of range; expected 0-7 (0 and 7 = Sunday)")
                .format(day=token)
            )
        return n % 7
    if token in DAY_NAMES:
        return DAY_NAMES.index(token)
    raise ValueError(_("unknown day of week {day!r}; expected 0-7 or sun, mon, ... sat")
                     .format(day=token))


def weekdays(field: str) -> str:
    """Cron's day-of-week field as APScheduler day names (`1-5` → `mon,tue,wed,thu,fri`)."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        m = _ITEM.match(item.strip())
        if not m:
            raise ValueError(_("cannot read day of week {item!r}; expected e.g. 1-5 or mon-fri")
                             .format(item=item))
        step = int(m["step"] or 1)
        if step < 1:
            raise ValueError(_("step {step} in {item!r} must be at least 1")
                             .format(step=step, item=item))
        if m["range"] == "*":
            first, last = 0, 6
        else:
            first = _day(m["first"])
            last = _day(m["last"]) if m["last"] else (6 if m["step"] else first)
            if m["last"] and m["last"] == "7":
                last = 7  # `5-7` is Friday to Sunday
            if last < first:
                raise ValueError(_("day range {item!r} runs backwards").format(item=item))
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(DAY_NAMES[d] for d in sorted(days))


def crontab_trigger(expr: str, timezone: tzinfo | str) -> CronTrigger:
    """Minute, hour, day of month, month, day of week, with cron's meaning, in `timezone`."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            _("expected five fields (minute hour day month weekday), got {n}")
            .format(n=len(fields))
        )
    minute, hour, day, month, dow = fields
    if day != "*" and dow != "*":
        raise ValueError(
            _("restricts both the day of the month and the day of the week; cron would run on "
              "either, this scheduler only on both, so set one of them to *")
        )
    return CronTrigger(
        minute=minute, hour=hour, day=day, month=month, day_of_week=weekdays(dow),
        timezone=timezone,
    )


# -- the same schedule as a systemd calendar event (for `gongbao-feed timer`) --------------
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_SYSTEMD_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FIELD_ITEM = re.compile(
    r"^(?:(?P<star>\*)|(?P<first>\w+)(?:-(?P<last>\w+))?)(?:/(?P<step>\d+))?$"
)


def _calendar_field(field: str, lowest: int, width: int, names: tuple[str, ...] = ()) -> str:
    """One of cron's minute, hour, day or month fields in systemd's syntax.

    `*` stays, `a-b` becomes `a..b`, steps stay (`*/15` → `00/15`: systemd
    repeats from a start value, as cron does from the field's lowest).
    Month names become numbers. Anything else (APScheduler's own `last`,
    `2nd mon`, …) raises ValueError naming the item.
    """
    if field == "*":
        return field

    def number(token: str) -> str:
        if token.isdigit():
            return token.zfill(width)
        if token.lower() in names:
            return str(names.index(token.lower()) + lowest).zfill(width)
        raise ValueError(token)

    parts = []
    for item in field.split(","):
        m = _FIELD_ITEM.match(item.strip())
        try:
            if not m:
                raise ValueError(item)
            start = str(lowest).zfill(width) if m["star"] else number(m["first"])
            text = f"{start}..{number(m['last'])}" if m["last"] else start
        except ValueError:
            raise ValueError(
                _("cannot write {item!r} as a systemd calendar event; use cron's "
                  "numbers, ranges (a-b), lists (a,b) and steps (*/n)").format(item=item)
            ) from None
        parts.append(f"{text}/{m['step']}" if m["step"] else text)
    return ",".join(parts)


def _calendar_weekdays(field: str) -> str:
    """Cron's day-of-week field as systemd day names, runs of three or more as `Mon..Fri`."""
    if field == "*":
        return ""
    cron_days = weekdays(field).split(",")  # sun … sat, cron's order
    days = sorted((DAY_NAMES.index(d) + 6) % 7 for d in cron_days)  # Monday = 0, as systemd
    runs: list[list[int]] = []
    for d in days:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    out = []
    for run in runs:
        if len(run) >= 3:
            out.append(f"{_SYSTEMD_DAYS[run[0]]}..{_SYSTEMD_DAYS[run[-1]]}")
        else:
            out.extend(_SYSTEMD_DAYS[d] for d in run)
    return ",".join(out)


def on_calendar(expr: str, timezone: str) -> str:
    """A five-field crontab as a systemd `OnCalendar=` value that fires at the same times.

    `"30 7 * * 1-5", "Asia/Shanghai"` → `"Mon..Fri *-*-* 07:30:00 Asia/Shanghai"`
    (systemd.time(7): weekdays, year-month-day, hour:minute:second, time zone).
    The crontab is first checked as the service reads it (`crontab_trigger`),
    so both refuse the same mistakes. Raises ValueError naming the problem,
    also for APScheduler-only forms that systemd cannot express.
    """
    crontab_trigger(expr, timezone)
    minute, hour, day, month, dow = expr.split()
    date = f"*-{_calendar_field(month, 1, 2, _MONTHS)}-{_calendar_field(day, 1, 2)}"
    time = f"{_calendar_field(hour, 0, 2)}:{_calendar_field(minute, 0, 2)}:00"
    return " ".join(p for p in (_calendar_weekdays(dow), date, time, timezone) if p)
