"""The scheduler service: ingest and publish on schedule, one service per folder.

    gongbao-feed run          a long-lived APScheduler 3 BlockingScheduler
    gongbao-feed run --once   one publish now, then exit (cron, a systemd timer)
    gongbao-feed status       next runs, the last issue, the ledger, the lock

The jobs live in the same database as the store (table `gongbao_jobs`), so
a job's next run time survives a restart. That is what makes a missed
publish visible: jobs are added only when the store lacks them, and a
changed schedule replaces the trigger alone. Re-adding a job at every start
would compute its next run from "now" and silently drop the run the service
slept through. A missed publish runs on start when it is at most
`schedule.misfire_grace_seconds` late; later than that it is skipped and
logged, since a stale digest is worse than none. Missed runs coalesce into
one, and a job never runs twice at once.

Job functions are module-level and take only the config file's path, so
the job store can pickle them; they find the running Service through a
small registry, to share its stop signal and its work lock.

Stopping (SIGTERM or SIGINT): job processing pauses at once, so nothing new
starts and no scheduled time is consumed; the job in flight carries on with
the stop signal set, so its send finishes the message in flight, records it
and returns; then the scheduler shuts down and the process exits 0. A second
signal exits at once.

One service per working folder: an flock on `state/service.lock`, held for
the life of the process. The kernel drops it when the process dies, even by
`kill -9`, so a lock file left behind never blocks the next start. Who holds
it (pid, host, start time) is written beside it in `state/service.json`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler, SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from filelock import FileLock, Timeout
from sqlalchemy import Engine, MetaData, Table, inspect, select

from . import ledger
from .config import Config, keyed, load_config
from .crontab import crontab_trigger
from .errors import ConfigError, GongbaoError, ServiceError
from .files import atomic_write
from .i18n import N_, _, ngettext
from .ingest import IngestReport
from .models import Issue
from .publish import Clock, Newsroom, PublishReport, system_clock
from .review import Approval, SendCheck
from .store import Store

JOBS_TABLE = "gongbao_jobs"
LOCK_NAME = "service.lock"
HOLDER_NAME = "service.json"
PUBLISH = "publish"
INGEST = "ingest"
RESUME = "resume"
#: The log lines of an approved issue's send (review.py), made by the ingest job.
APPROVED = "approved"
BOUNCES = "bounces"
#: The jobs' names as `status` shows them to the operator; the log lines and
#: `status --json` keep the ids above (stable, for grep and scripts).
JOB_TITLES = {PUBLISH: N_("publish"), INGEST: N_("ingest"), BOUNCES: N_("bounces")}

log = logging.getLogger("gongbao_feed.service")


# -- log lines ------------------------------------------------------------------


def line(job: str, text: str, **fields: object) -> str:
    """One event: the job, what happened, then the counts as key=value for grep."""
    tail = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)
    return f"{job}: {text}" + (f" [{tail}]" if tail else "")


class _Formatter(logging.Formatter):
    """`2026-11-22T07:30:04+08:00 INFO publish: ...`, times in the paper's zone."""

    def __init__(self, tz: tzinfo) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s")
        self.tz = tz

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, self.tz).isoformat(timespec="seconds")


@contextlib.contextmanager
def service_logging(config: Config) -> Iterator[None]:
    """Log lines to stderr and, when `log.file` is set, to that file too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.log.file:
        path = (config.root / config.log.file).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Reopens the file when logrotate moves it away.
        handlers.append(logging.handlers.WatchedFileHandler(path, encoding="utf-8"))
    formatter = _Formatter(config.tz)
    package = logging.getLogger("gongbao_feed")
    scheduler_log = logging.getLogger("apscheduler")
    saved = (package.level, scheduler_log.level)
    package.setLevel(config.log.level)
    # APScheduler's own lines repeat ours ("missed by", "executed successfully").
    scheduler_log.setLevel(logging.ERROR)
    for h in handlers:
        h.setFormatter(formatter)
        package.addHandler(h)
        scheduler_log.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            package.removeHandler(h)
            scheduler_log.removeHandler(h)
            h.close()
        package.setLevel(saved[0])
        scheduler_log.setLevel(saved[1])


# -- the lock: one service per working folder ----------------------------------------


@dataclass(frozen=True)
class Holder:
    """Who holds a working folder's service lock."""

    pid: int
    host: str
    started: datetime | None
    config: str
    mode: str = "run"  # "run" or "once"

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "host": self.host,
            "started": self.started.isoformat() if self.started else None,
            "config": self.config,
            "mode": self.mode,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Holder:
        started = data.get("started")
        return cls(
            pid=int(data.get("pid") or 0),
            host=str(data.get("host") or "?"),
            started=datetime.fromisoformat(started) if started else None,
            config=str(data.get("config") or ""),
            mode=str(data.get("mode") or "run"),
        )

    def describe(self) -> str:
        what = "gongbao-feed run --once" if self.mode == "once" else "gongbao-feed run"
        if self.started:
            return _("{what}, pid {pid} on {host}, started {started}").format(
                what=what, pid=self.pid, host=self.host,
                started=self.started.isoformat(timespec="seconds"))
        return _("{what}, pid {pid} on {host}").format(what=what, pid=self.pid, host=self.host)


class ServiceLock:
    """An flock on state/service.lock; the kernel releases it when the holder dies."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self.holder_path = state_dir / HOLDER_NAME
        self._lock: FileLock | None = None

    def acquire(self, holder: Holder, wait: float = 0.5) -> None:
        """Take the lock or raise ServiceError naming who has it.

        `wait` rides over a `status` that is probing the lock at this moment.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path))
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            current = self.read_holder()
            who = current.describe() if current else _("another process")
            raise ServiceError(
                _("another service is running for this working folder: {who} (lock {lock})")
                .format(who=who, lock=self.path),
                hint=_("only one `gongbao-feed run` may run per working folder; stop that one "
                       "first (`systemctl stop gongbao-feed`, or `kill PID`), or use its "
                       "schedule"),
            ) from None
        self._lock = lock
        atomic_write(
            self.holder_path,
            json.dumps(holder.to_json(), ensure_ascii=False, indent=2) + "\n",
        )

    def release(self) -> None:
        if self._lock is None:
            return
        self.holder_path.unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def read_holder(self) -> Holder | None:
        try:
            return Holder.from_json(json.loads(self.holder_path.read_text("utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def holder(self) -> Holder | None:
        """The process holding the lock now, or None when no service runs."""
        if not self.path.exists():
            return None
        probe = FileLock(str(self.path))
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return self.read_holder() or Holder(0, "?", None, "")
        probe.release()
        return None


# -- jobs -----------------------------------------------------------------------------


def publish_job(config_path: str) -> None:
    """The scheduled publish; module-level with a str argument so the job store can keep it."""
    _service_for(config_path).publish()


def ingest_job(config_path: str) -> None:
    """The scheduled inbox ingest."""
    _service_for(config_path).ingest()


def bounces_job(config_path: str) -> None:
    """The scheduled read of the bounce mailbox."""
    _service_for(config_path).bounces()


def resume_job(config_path: str) -> None:
    """Finish the newest issue's send that a stop or a crash cut short."""
    _service_for(config_path).resume()


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[str], None]
    trigger: BaseTrigger
    grace: int | None  # seconds a run may be late and still run; None: however late
    schedule: str  # as the operator wrote it, for status


def publish_trigger(config: Config) -> CronTrigger:
    try:
        return crontab_trigger(config.schedule.publish_cron, config.tz)
    except ValueError as exc:
        raise ConfigError(keyed("schedule.publish_cron", str(exc))) from None


def job_specs(config: Config) -> list[JobSpec]:
    """The jobs `[schedule]` asks for."""
    s = config.schedule
    every = s.ingest_every_minutes
    specs = [
        JobSpec(PUBLISH, publish_job, publish_trigger(config), s.misfire_grace_seconds,
                _("cron {cron} ({zone})").format(cron=s.publish_cron,
                                                 zone=config.paper.timezone)),
        # A late ingest is as good as an early one, and publish ingests first anyway.
        JobSpec(INGEST, ingest_job, IntervalTrigger(minutes=every, timezone=config.tz), None,
                _("every {n} min").format(n=every)),
    ]
    bounce_every = config.bounces.every_minutes
    if bounce_every:  # 0: off, `gongbao-feed bounces` by hand
        specs.append(JobSpec(
            BOUNCES, bounces_job, IntervalTrigger(minutes=bounce_every, timezone=config.tz),
            None, _("every {n} min").format(n=bounce_every)))
    return specs


def _trigger_key(trigger: BaseTrigger) -> tuple[str, ...]:
    """What makes two triggers the same schedule (an interval's start date does not)."""
    tz = str(getattr(trigger, "timezone", ""))
    if isinstance(trigger, IntervalTrigger):
        return ("interval", str(trigger.interval), tz)
    return (type(trigger).__name__, str(trigger), tz)


def install_jobs(scheduler: BaseScheduler, config: Config, config_path: str) -> list[str]:
    """Make the stored jobs match `[schedule]` without losing a missed run.

    A job the store lacks is added; a job whose schedule changed gets the new
    trigger (and so a new next run); options are updated in place. A job the
    store already has keeps its next run time, however far in the past, so
    the executor can judge it against the grace time. Returns what changed.
    """
    notes: list[str] = []
    specs = job_specs(config)
    for spec in specs:
        options: dict[str, Any] = {
            "args": (config_path,),
            "name": spec.id,
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": spec.grace,
        }
        job = scheduler.get_job(spec.id, "default")
        if job is None:
            scheduler.add_job(spec.func, spec.trigger, id=spec.id, jobstore="default",
                              replace_existing=False, **options)
            notes.append(_("{job}: scheduled {schedule}").format(job=spec.id,
                                                                  schedule=spec.schedule))
            continue
        if _trigger_key(job.trigger) != _trigger_key(spec.trigger):
            scheduler.reschedule_job(spec.id, "default", trigger=spec.trigger)
            notes.append(_("{job}: schedule changed to {schedule}").format(
                job=spec.id, schedule=spec.schedule))
        changes = {k: v for k, v in options.items() if getattr(job, k) != v}
        if job.func is not spec.func:
            changes["func"] = spec.func
        if changes:
            scheduler.modify_job(spec.id, "default", **changes)
            notes.append(_("{job}: updated {options}").format(
                job=spec.id, options=", ".join(sorted(changes))))
    wanted = {s.id for s in specs}
    for job in scheduler.get_jobs("default"):
        if job.id not in wanted:
            scheduler.remove_job(job.id, "default")
            notes.append(_("{job}: removed (no longer in [schedule])").format(job=job.id))
    return notes


def job_store(engine: Engine) -> SQLAlchemyJobStore:
    return SQLAlchemyJobStore(engine=engine, tablename=JOBS_TABLE)


class _StopMeansStop(BaseScheduler):
    """A scheduler that does nothing once shut down.

    APScheduler 3's loops look for due jobs once more after `shutdown()`
    wakes them; a publish due at that instant would be handed to a closed
    pool while its stored next run time moved on: a run lost.
    """

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None
        return super()._process_jobs()  # type: ignore[no-any-return]


class _Scheduler(_StopMeansStop, BlockingScheduler):
    """The service's scheduler."""


class _Editor(_StopMeansStop, BackgroundScheduler):
    """A paused scheduler for reading and editing the stored jobs."""


def unsent(room: Newsroom) -> tuple[Issue, int] | None:
    """The newest issue and how many members a send that began has not reached yet."""
    newest = room.store.issues(limit=1)
    if not newest:
        return None
    count = ledger.unreached(room.store, newest[0])
    return (newest[0], count) if count else None


# -- the service ---------------------------------------------------------------------

#: Config path → the Service running it in this process, for the job functions.
_services: dict[str, Service] = {}
_services_lock = threading.Lock()


def _service_for(config_path: str) -> Service:
    with _services_lock:
        service = _services.get(config_path)
    return service if service is not None else Service(Path(config_path))


class Service:
    """The scheduler service (and `run --once`) for one working folder."""

    def __init__(self, config_path: Path | str, clock: Clock = system_clock) -> None:
        self.config_path = Path(config_path).resolve()
        self.config = load_config(self.config_path)
        self.clock = clock
        self.stop = threading.Event()
        self.lock = ServiceLock(self.config.state_dir)
        #: One stage at a time: an ingest never runs inside a publish.
        self._work = threading.Lock()
        self._scheduler: _Scheduler | None = None
        self._stopper: threading.Thread | None = None
        self._startup_error: BaseException | None = None
        #: Page warnings already logged by this process (each is logged once).
        self._warned: set[str] = set()

    @property
    def key(self) -> str:
        return str(self.config_path)

    # -- running ---------------------------------------------------------------------
    def run(self) -> None:
        """Run the schedule until SIGTERM or SIGINT; returns once the job in flight is done."""
        with self._session("run"):
            store = Store(self.config.database_url)  # makes the tables; shares its engine
            scheduler = _Scheduler(
                jobstores={"default": job_store(store.engine), "memory": MemoryJobStore()},
                executors={"default": ThreadPoolExecutor(2)},
                timezone=self.config.tz,
            )
            scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
            scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
            scheduler.add_listener(self._on_busy, EVENT_JOB_MAX_INSTANCES)
            self._scheduler = scheduler
            try:
                with _signals(self._on_signal):
                    scheduler.start()  # blocks until shut down
                if self._stopper is not None:
                    self._stopper.join()
            finally:
                self._scheduler = None
                if scheduler.state != STATE_STOPPED:
                    scheduler.shutdown(wait=True)
                store.close()
            if self._startup_error is not None:
                raise self._startup_error
            log.info(line("service", "stopped", pid=os.getpid()))

    def run_once(self) -> PublishReport | None:
        """One publish now, holding the folder's lock; None when it failed (logged)."""
        with self._session("once"), _signals(self._on_signal_once):
            return self.publish()

    @contextlib.contextmanager
    def _session(self, mode: str) -> Iterator[None]:
        holder = Holder(os.getpid(), socket.gethostname(), datetime.now(UTC).astimezone(
            self.config.tz), self.key, mode)
        self.lock.acquire(holder)
        try:
            with service_logging(self.config):
                with _services_lock:
                    _services[self.key] = self
                try:
                    yield
                finally:
                    with _services_lock:
                        _services.pop(self.key, None)
        finally:
            self.lock.release()

    # -- the job bodies ----------------------------------------------------------------
    def publish(self) -> PublishReport | None:
        """Ingest → assemble → render → send, logged as one line; None when it failed."""
        with self._work:
            try:
                with Newsroom(self.config, self.clock) as room:
                    report = room.publish(stop=self.stop)
            except GongbaoError as exc:
                log.error(line(PUBLISH, _failed(exc), hint=_quote(exc.hint)))
                return None
            except Exception:
                log.exception(line(PUBLISH, _("failed unexpectedly")))
                return None
            finally:
                self._send_approved()
        self._log_pages(report.ingest)
        for gone in report.ingest.gone:
            log.info(line(INGEST, gone.describe()))
        level = logging.WARNING if report.problems else logging.INFO
        log.log(level, line(PUBLISH, report.summary(), **report.log_fields()))
        if report.send is not None and (nobody := report.send.no_members_note()) is not None:
            log.warning(line(PUBLISH, nobody[0], hint=_quote(nobody[1])))
        return report

    def _log_pages(self, report: IngestReport) -> None:
        """Each page that failed, every time (it stays in the inbox until fixed), and each
        page warning once per service run: the inbox is re-read every few minutes, and an
        unchanged page would repeat the same warnings all day."""
        for failure in report.failed:
            log.warning(line(INGEST, f"{failure.path}: {failure.error}",
                             hint=_quote(failure.hint)))
        for warning in report.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning(line(INGEST, warning))

    def ingest(self) -> None:
        """Read the inbox into the store; skipped while a publish (which ingests) runs."""
        if self.stop.is_set():
            return
        if not self._work.acquire(blocking=False):
            log.info(line(INGEST, _("skipped: a publish is running and ingests first")))
            return
        try:
            with Newsroom(self.config, self.clock) as room:
                report = room.ingest()
        except GongbaoError as exc:
            log.error(line(INGEST, _failed(exc), hint=_quote(exc.hint)))
            return
        except Exception:
            log.exception(line(INGEST, _("failed unexpectedly")))
            return
        finally:
            try:
                self._send_approved()
            finally:
                self._work.release()
        self._log_pages(report)
        for gone in report.gone:  # reported once, by the read that first missed it
            log.info(line(INGEST, gone.describe()))
        if report.new or report.updated or report.failed or report.gone:
            log.info(line(INGEST, _("inbox read"), new=report.new, updated=report.updated,
                          unchanged=report.unchanged, failed=len(report.failed),
                          gone=len(report.gone) or None))
        else:
            log.debug(line(INGEST, _("nothing new"), unchanged=report.unchanged,
                           gone=len(report.gone) or None))

    def _send_approved(self) -> None:
        """Send each approved issue whose send to the members has not run to its end
        (review.py): at every ingest and publish, so an approval made with the link or
        `approve N` goes out within one ingest interval. The caller holds `_work`.
        A send cut short (a stop, a crash) is taken up again the same way."""
        if self.stop.is_set():
            return
        try:
            with Newsroom(self.config, self.clock) as room:
                for approval in room.approved_unsent():
                    if self.stop.is_set():
                        return
                    number = approval.issue
                    try:
                        report = room.send(issue=number, stop=self.stop)
                    except GongbaoError as exc:
                        log.error(line(APPROVED, _failed(exc), issue=number,
                                       hint=_quote(exc.hint)))
                        continue
                    text = _("issue {issue}, approved by {who}: {sent} sent").format(
                        issue=number, who=approval.approved_by, sent=report.sent)
                    if report.failed:
                        text = _("{text}, {failed} failed").format(
                            text=text, failed=len(report.failed))
                    level = logging.WARNING if report.failed else logging.INFO
                    log.log(level, line(APPROVED, text, issue=number, sent=report.sent,
                                        failed=len(report.failed), skipped=report.skipped))
        except GongbaoError as exc:
            log.error(line(APPROVED, _failed(exc), hint=_quote(exc.hint)))
        except Exception:
            log.exception(line(APPROVED, _("failed unexpectedly")))

    def bounces(self) -> None:
        """Read the bounce mailbox (bounces, complaints, mailed unsubscribes), logged."""
        if self.stop.is_set():
            return
        try:
            with Newsroom(self.config, self.clock) as room:
                report = room.process_bounces()
        except GongbaoError as exc:
            log.error(line(BOUNCES, _failed(exc), hint=_quote(exc.hint)))
            return
        except Exception:
            log.exception(line(BOUNCES, _("failed unexpectedly")))
            return
        for email, status, why in report.changes:
            log.info(line(BOUNCES, f"{email}: {status} ({why})"))
        for left in report.unclassified:
            log.warning(line(BOUNCES, _("left in the mailbox: {name} ({subject}): {reason}")
                             .format(name=left.name, subject=left.subject or "-",
                                     reason=left.reason)))
        fields = report.to_json()
        if any(fields.values()):
            log.info(line(BOUNCES, _("bounce mailbox read"), **fields))

    def resume(self) -> None:
        """Send the rest of the newest issue (the members a stopped send did not reach)."""
        with self._work:
            try:
                with Newsroom(self.config, self.clock) as room:
                    found = unsent(room)
                    if found is None:
                        return
                    issue = found[0]
                    report = room.send(issue=issue.number, stop=self.stop)
            except GongbaoError as exc:
                log.error(line(RESUME, _failed(exc), hint=_quote(exc.hint)))
                return
            except Exception:
                log.exception(line(RESUME, _("failed unexpectedly")))
                return
        stopped = self.stop.is_set()
        text = _("issue {issue}: {sent} sent").format(issue=issue.number, sent=report.sent)
        if report.failed:
            text = _("{text}, {failed} failed").format(text=text, failed=len(report.failed))
        if stopped:
            text = _("{text}; stopped early").format(text=text)
        level = logging.WARNING if report.failed or stopped else logging.INFO
        log.log(level, line(RESUME, text, issue=issue.number, sent=report.sent,
                            failed=len(report.failed), skipped=report.skipped))

    # -- scheduler events (in the scheduler's thread) ------------------------------------
    def _on_started(self, _event: SchedulerEvent) -> None:
        scheduler = self._scheduler
        assert scheduler is not None
        try:
            if self.stop.is_set():  # a signal came before the scheduler was up
                scheduler.shutdown(wait=False)
                return
            for note in install_jobs(scheduler, self.config, self.key):
                log.info(line("service", note))
            now = datetime.now(self.config.tz)
            nexts = {job.id: job.next_run_time for job in scheduler.get_jobs("default")}
            log.info(line(
                "service", _("started"),
                pid=os.getpid(),
                publish=_when(nexts.get(PUBLISH), now),
                ingest=_when(nexts.get(INGEST), now),
                grace=f"{self.config.schedule.misfire_grace_seconds}s",
            ))
            self._maybe_resume(scheduler, now)
        except BaseException as exc:
            self._startup_error = exc
            scheduler.shutdown(wait=False)

    def _maybe_resume(self, scheduler: BaseScheduler, now: datetime) -> None:
        """A send cut short by a stop or crash goes on at start, if the issue is fresh."""
        with Newsroom(self.config, self.clock) as room:
            found = unsent(room)
        if found is None:
            return
        issue, count = found
        late = now - issue.created
        grace = timedelta(seconds=self.config.schedule.misfire_grace_seconds)
        if late > grace:
            log.warning(line(
                RESUME,
                ngettext("issue {issue} did not reach {n} member, but it is {age} old, beyond "
                         "schedule.misfire_grace_seconds; not sent "
                         "(`gongbao-feed send --issue {issue}` sends it anyway)",
                         "issue {issue} did not reach {n} members, but it is {age} old, beyond "
                         "schedule.misfire_grace_seconds; not sent "
                         "(`gongbao-feed send --issue {issue}` sends it anyway)",
                         count).format(issue=issue.number, n=count, age=_duration(late)),
                issue=issue.number, unsent=count,
            ))
            return
        log.info(line(RESUME, ngettext("issue {issue} did not reach {n} member; "
                                       "sending the rest now",
                                       "issue {issue} did not reach {n} members; "
                                       "sending the rest now", count)
                      .format(issue=issue.number, n=count), issue=issue.number, unsent=count))
        scheduler.add_job(resume_job, "date", args=(self.key,), id=RESUME, name=RESUME,
                          jobstore="memory", run_date=now, misfire_grace_time=None)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        now = datetime.now(self.config.tz)
        scheduled = event.scheduled_run_time
        grace = self.config.schedule.misfire_grace_seconds
        log.warning(line(
            event.job_id,
            _("missed the run at {scheduled}, {late} late, beyond "
              "schedule.misfire_grace_seconds = {grace}; skipped (a stale digest is worse "
              "than none)").format(scheduled=scheduled.astimezone(self.config.tz).isoformat(),
                                   late=_duration(now - scheduled), grace=grace),
            scheduled=scheduled.astimezone(self.config.tz).isoformat(timespec="seconds"),
        ))

    def _on_busy(self, event: JobSubmissionEvent) -> None:
        log.warning(line(event.job_id, _("skipped: the previous run has not finished")))

    # -- stopping --------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """First signal: pause (nothing new starts), then shut down in a thread."""
        name = signal.Signals(signum).name
        if self.stop.is_set():
            _exit_now(name)
        self.stop.set()
        scheduler = self._scheduler
        if scheduler is not None:
            with contextlib.suppress(SchedulerNotRunningError):
                scheduler.pause()
        self._stopper = threading.Thread(
            target=self._shutdown, args=(name,), name="gongbao-stop", daemon=True
        )
        self._stopper.start()

    def _shutdown(self, name: str) -> None:
        log.info(line("service", _("{signal}: stopping; no new jobs, a job running finishes "
                                   "the message in flight").format(signal=name)))
        scheduler = self._scheduler
        if scheduler is not None:
            with contextlib.suppress(SchedulerNotRunningError):
                scheduler.shutdown(wait=True)  # waits for the job in flight

    def _on_signal_once(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.stop.is_set():
            _exit_now(name)
        self.stop.set()
        threading.Thread(
            target=log.info,
            args=(line("once", _("{signal}: stopping after the message in flight")
                       .format(signal=name)),),
            daemon=True,
        ).start()


def _exit_now(name: str) -> None:
    sys.stderr.write(_("{signal} again: exiting at once").format(signal=name) + "\n")
    sys.stderr.flush()
    os._exit(1)


@contextlib.contextmanager
def _signals(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """SIGTERM and SIGINT to `handler` while inside (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _when(moment: datetime | None, now: datetime) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(now.tzinfo).isoformat(timespec="seconds")
    return text + " (overdue)" if moment <= now else text


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return _("{n} s").format(n=seconds)
    if seconds < 7200:
        return _("{n} min").format(n=seconds // 60)
    if seconds < 172800:
        return _("{hours} h {minutes} min").format(hours=seconds // 3600,
                                                   minutes=seconds % 3600 // 60)
    return ngettext("{n} day", "{n} days", seconds // 86400).format(n=seconds // 86400)


def _failed(exc: GongbaoError) -> str:
    return _("failed: {reason}").format(reason=exc.message)


def _quote(text: str | None) -> str | None:
    return None if text is None else json.dumps(text, ensure_ascii=False)


# -- moving a stored run (tests; an operator who wants the next publish earlier) --------


@contextlib.contextmanager
def stored_jobs(config: Config) -> Iterator[BaseScheduler]:
    """A paused scheduler over the folder's job store, to read or edit the stored jobs.

    Nothing runs in it; use it only while no service runs for the folder
    (the caller holds the lock, as `set_next_run` does).
    """
    with Store(config.database_url) as store:
        scheduler = _Editor(jobstores={"default": job_store(store.engine)}, timezone=config.tz)
        scheduler.start(paused=True)
        try:
            yield scheduler
        finally:
            scheduler.shutdown(wait=False)


def set_next_run(config_path: Path | str, job_id: str, when: datetime) -> None:
    """Set a stored job's next run time; refused while a service runs for the folder.

    The jobs are installed first if the service has never run, exactly as
    the service would at start. Tests use it to make a publish fall due
    within seconds; an operator could use it to bring the next publish forward.
    """
    path = Path(config_path).resolve()
    config = load_config(path)
    lock = ServiceLock(config.state_dir)
    lock.acquire(Holder(os.getpid(), socket.gethostname(), datetime.now(UTC), str(path), "edit"))
    try:
        with stored_jobs(config) as scheduler:
            install_jobs(scheduler, config, str(path))
            try:
                scheduler.modify_job(job_id, "default", next_run_time=when)
            except JobLookupError:
                raise ServiceError(_("no job {job!r}; the jobs are {jobs}").format(
                    job=job_id, jobs=", ".join(s.id for s in job_specs(config)))) from None
    finally:
        lock.release()


# -- status ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobStatus:
    id: str
    schedule: str
    next_run: datetime | None
    stored: bool  # False: the service has not run yet; next_run is what it would be

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "schedule": self.schedule,
            "next_run": self.next_run.isoformat(timespec="seconds") if self.next_run else None,
            "stored": self.stored,
        }


@dataclass(frozen=True)
class Status:
    """What `gongbao-feed status` shows."""

    holder: Holder | None
    jobs: tuple[JobStatus, ...]
    last_issue: Issue | None
    deliveries: dict[str, int]  # the last issue's ledger by state
    unsent: int  # members the last issue has not reached yet (no ledger row)
    awaiting: tuple[Approval, ...] = ()  # issues waiting for an editor, oldest first
    failed_checks: tuple[SendCheck, ...] = ()  # the quality gate stopped these (not forced)

    def to_json(self) -> dict[str, Any]:
        issue = self.last_issue
        return {
            "service": {"running": self.holder is not None,
                        **(self.holder.to_json() if self.holder else {})},
            "jobs": [j.to_json() for j in self.jobs],
            "last_issue": None if issue is None else {
                "number": issue.number,
                "date": issue.date.isoformat(),
                "title": issue.title,
                "articles": len(issue.article_ids),
                "created": issue.created.isoformat(),
            },
            "deliveries": {**self.deliveries, "unsent": self.unsent},
            "awaiting_approval": [a.issue for a in self.awaiting],
            "approvals": [{"issue": a.issue,
                           "since": a.requested_at.isoformat(timespec="seconds"),
                           "editors": list(a.editors)} for a in self.awaiting],
            "quality_gate": [c.to_json() for c in self.failed_checks],
        }

    def lines(self) -> list[str]:
        out = [
            _("service: running ({holder})").format(holder=self.holder.describe())
            if self.holder else _("service: not running"),
        ]
        for j in self.jobs:
            when = j.next_run.isoformat(timespec="seconds") if j.next_run else _("never")
            if j.stored:
                text = _("{job}: {schedule}; next {when}")
            else:
                text = _("{job}: {schedule}; next {when} (not scheduled yet: the service "
                         "has not run)")
            out.append(text.format(job=_(JOB_TITLES[j.id]) if j.id in JOB_TITLES else j.id,
                                   schedule=j.schedule, when=when))
        issue = self.last_issue
        if issue is None:
            out.append(_("last issue: none yet"))
        else:
            n = len(issue.article_ids)
            out.append(ngettext("last issue: {number} ({date}, {n} article, made {made})",
                                "last issue: {number} ({date}, {n} articles, made {made})", n)
                       .format(number=issue.number, date=issue.date.isoformat(), n=n,
                               made=issue.created.isoformat(timespec="seconds")))
            d = self.deliveries
            out.append(_("deliveries: {sent} sent, {pending} pending, {failed} failed, "
                         "{unsent} not yet tried").format(
                sent=d.get("sent", 0), pending=d.get("pending", 0), failed=d.get("failed", 0),
                unsent=self.unsent))
        for a in self.awaiting:
            out.append(_("awaiting approval: issue {n} since {since} (proof to {editors}); "
                         "`gongbao-feed approve {n}` or the link in the proof").format(
                n=a.issue, since=a.requested_at.isoformat(timespec="seconds"),
                editors=", ".join(a.editors) or "-"))
        for c in self.failed_checks:
            out.append(_("quality gate: issue {n} not sent, checked {when}:").format(
                n=c.issue, when=c.checked_at.isoformat(timespec="seconds")))
            out.extend(f"  {p.check}: {p.detail}" for p in c.problems)
        return out


def stored_next_runs(engine: Engine) -> dict[str, datetime | None]:
    """Next run per job id straight from the job table (no unpickling, no scheduler)."""
    if not inspect(engine).has_table(JOBS_TABLE):
        return {}
    table = Table(JOBS_TABLE, MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.id, table.c.next_run_time)).all()
    return {
        row.id: None if row.next_run_time is None
        else datetime.fromtimestamp(row.next_run_time, UTC)
        for row in rows
    }


def service_status(config: Config, now: datetime | None = None) -> Status:
    """Read-only: who runs, when the jobs run next, the last issue and its ledger."""
    now = now or datetime.now(UTC)
    tz = config.tz
    holder = ServiceLock(config.state_dir).holder()
    with Newsroom(config) as room:
        stored = stored_next_runs(room.store.engine)
        jobs = []
        for spec in job_specs(config):
            if spec.id in stored:
                nxt = stored[spec.id]
                jobs.append(JobStatus(spec.id, spec.schedule,
                                      nxt.astimezone(tz) if nxt else None, True))
            else:
                nxt = spec.trigger.get_next_fire_time(None, now.astimezone(tz))
                jobs.append(JobStatus(spec.id, spec.schedule, nxt, False))
        issues = room.store.issues(limit=1)
        last = replace(issues[0], created=issues[0].created.astimezone(tz)) if issues else None
        counts = ledger.counts(room.store, last.number) if last else {}
        found = unsent(room)
        behind = found[1] if found is not None else 0
        awaiting = tuple(replace(a, requested_at=a.requested_at.astimezone(tz))
                         for a in room.awaiting_approval())
        failed = tuple(replace(c, checked_at=c.checked_at.astimezone(tz))
                       for c in room.store.send_checks()
                       if not c.passed and c.forced_at is None)
    return Status(holder, tuple(jobs), last, counts, behind, awaiting, failed)
