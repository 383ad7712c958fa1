"""The systemd timer that publishes on `[schedule] publish_cron`.

`deploy/gongbao-feed-once.service` runs `gongbao-feed run --once`: one
publish, then exit. The timer that starts it is not shipped as a file
with a time in it, which would drift from the config; `gongbao-feed timer`
writes it from the config instead, so the config stays the one place the
schedule is set. After changing `publish_cron`, write it again and run
`systemctl daemon-reload`.

The text is a unit file, read by systemd and by the operator: it stays
English and stable, like `--json` output.
"""

from __future__ import annotations

from pathlib import Path

from .config import Config
from .crontab import on_calendar
from .errors import ConfigError
from .i18n import _

ONCE_SERVICE = "gongbao-feed-once.service"


def timer_unit(config: Config, config_path: Path) -> str:
    """The text of `gongbao-feed-once.timer` for this config (a systemd.timer(5) unit).

    Raises ConfigError, naming `schedule.publish_cron`, when the crontab uses a
    form that systemd's calendar events cannot express.
    """
    cron = config.schedule.publish_cron
    zone = config.paper.timezone
    try:
        calendar = on_calendar(cron, zone)
    except ValueError as exc:
        raise ConfigError(
            _("{path}: schedule.publish_cron = {cron!r}: {problem}").format(
                path=config_path, cron=cron, problem=exc),
            hint=_("use the `gongbao-feed run` service, which reads any crontab the "
                   "config accepts, or simplify publish_cron"),
        ) from None
    made_by = f"gongbao-feed timer --config {config_path.resolve()}"
    return f"""\
# gongbao-feed-once.timer, written by `{made_by}`
# from [schedule] publish_cron = "{cron}" in {zone}.
#
# It starts {ONCE_SERVICE} (`gongbao-feed run --once`: ingest, assemble,
# render, send, then exit). An alternative to gongbao-feed.service (`run`):
# enable one or the other for a working folder, never both.
# After changing publish_cron, write this file again with the command above
# and run `systemctl daemon-reload`.
#
# Persistent=true runs a publish missed while the machine was off at the next
# boot, however late: unlike the service, a timer knows no
# schedule.misfire_grace_seconds.

[Unit]
Description=gongbao-feed: publish on schedule ({cron} in {zone})

[Timer]
OnCalendar={calendar}
Persistent=true
Unit={ONCE_SERVICE}

[Install]
WantedBy=timers.target
"""
