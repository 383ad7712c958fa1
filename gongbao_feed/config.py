"""config.toml → a typed, validated Config.

Validation is pydantic's, with unknown keys forbidden: a misspelt key is an
error that names it, not a setting silently ignored. Every value that reaches
a mail header or a URL is checked here, when the config is loaded, not when a
send is under way: one line of text (no line break of any kind, no control
character), addresses that are one plain address, and an absolute http(s)
base URL without spaces, `<` or `>`. Folder paths resolve
against the config file's folder, so a working folder can live anywhere.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import stat
import sys
import tomllib
from datetime import tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .headers import LIST_ID, HeaderError, check_one_line, check_url, split_mailbox
from .i18n import N_, _, either
from .models import SECTION_NAME_MAX

DEFAULT_CONFIG_NAME = "config.toml"

#: Warnings about a config that loads but may not do what was meant (the CLI
#: prints them on stderr; the service writes them to its log).
log = logging.getLogger("gongbao_feed.config")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PaperConfig(_Section):
    name: str = "工会报"
    base_url: str = "https://news.example.org/"
    timezone: str = "Asia/Shanghai"
    language: str = "zh-CN"
    description: str = ""

    @field_validator("base_url")
    @classmethod
    def _absolute_url(cls, v: str) -> str:
        _header_safe(check_url, v)
        return v if v.endswith("/") else v + "/"

    @field_validator("name")
    @classmethod
    def _one_line_name(cls, v: str) -> str:  # in From-like List-Id, subjects and pages
        return _header_safe(check_one_line, v)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                _("unknown time zone {zone!r}; expected an IANA name such as Asia/Shanghai")
                .format(zone=v)
            ) from None
        return v


class PathsConfig(_Section):
    inbox: str = "inbox"
    state: str = "state"
    issues: str = "issues"
    public: str = "public"
    outbox: str = "outbox"
    templates: str = "templates"


class DatabaseConfig(_Section):
    #: Any SQLAlchemy URL; empty means a SQLite file in the state folder.
    url: str = ""


class IssueConfig(_Section):
    title: str = "{paper} 第{number}期 · {date}"
    min_articles: Annotated[int, Field(ge=0)] = 1
    max_articles: Annotated[int, Field(ge=1)] = 60
    #: "required": an editor approves each issue before members are mailed (review.py).
    approval: Literal["none", "required"] = "none"
    #: Who gets the proof copy with the approve link: bare addresses.
    editors: list[str] = Field(default_factory=list, validate_default=True)
    #: Days a proof's approve link works.
    approval_link_days: Annotated[int, Field(ge=1, le=90)] = 7

    @field_validator("title")
    @classmethod
    def _known_fields(cls, v: str) -> str:
        _header_safe(check_one_line, v)  # an issue's title is in every digest's subject
        _check_template(v, {"paper", "number", "date"})
        return v

    @field_validator("editors")
    @classmethod
    def _editors(cls, v: list[str], info: ValidationInfo) -> list[str]:
        for address in v:
            try:
                bare = split_mailbox(address) == ("", address.strip()) and "@" in address
            except HeaderError:
                bare = False
            if not bare:
                raise ValueError(
                    _("{address!r} is not a bare address; expected e.g. "
                      "[\"editor@news.example.org\"]").format(address=address))
        if info.data.get("approval") == "required" and not v:
            raise ValueError(
                _("approval = \"required\" needs at least one editor to mail the proof to; "
                  "expected e.g. editors = [\"editor@news.example.org\"]"))
        return [a.strip() for a in v]


class FeedConfig(_Section):
    max_items: Annotated[int, Field(ge=1)] = 50


class EmailConfig(_Section):
    from_address: str = Field("工会报 <digest@news.example.org>", alias="from")
    reply_to: str = ""
    subject: str = "{paper} 第{number}期 · {date}"
    transport: Literal["outbox", "smtp"] = "outbox"
    list_id: str = ""
    unsubscribe_mailto: str = ""
    size_budget_kb: Annotated[int, Field(ge=20)] = 100
    # How long a sender holds members it claimed without word from it (ledger.py).
    claim_lease_seconds: Annotated[int, Field(ge=10)] = 300

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    @field_validator("subject")
    @classmethod
    def _known_fields(cls, v: str) -> str:
        _header_safe(check_one_line, v)
        _check_template(v, {"paper", "number", "date", "title"})
        return v

    @field_validator("from_address", "reply_to")
    @classmethod
    def _one_mailbox(cls, v: str) -> str:
        if v:  # an empty reply_to means none; an empty from is not an address
            _header_safe(split_mailbox, v)
        return v

    @field_validator("from_address")
    @classmethod
    def _has_sender(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(_('expected e.g. "职工时报 <digest@news.example.org>"'))
        return v

    @field_validator("unsubscribe_mailto")
    @classmethod
    def _bare_address(cls, v: str) -> str:
        if v and _header_safe(split_mailbox, v) != ("", v.strip()):
            raise ValueError(
                _("expected a bare address such as unsubscribe@news.example.org"))
        return v

    @field_validator("list_id")
    @classmethod
    def _list_id(cls, v: str) -> str:
        if v and not LIST_ID.fullmatch(v):
            raise ValueError(
                _("{value!r} is not a list id; expected dot-separated words such as "
                  "digest.news.example.org (RFC 2919)").format(value=v)
            )
        return v


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password_env: str = "GONGBAO_SMTP_PASSWORD"
    ca_file: str = ""
    connections: Annotated[int, Field(ge=1, le=64)] = 2
    rate: Annotated[float, Field(ge=0)] = 0.0
    max_attempts: Annotated[int, Field(ge=1)] = 5
    timeout: Annotated[float, Field(gt=0)] = 30.0
    messages_per_connection: Annotated[int, Field(ge=1)] = 500

    @field_validator("rate", "timeout", mode="before")
    @classmethod
    def _int_is_float(cls, v: Any) -> Any:
        return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


class ScheduleConfig(_Section):
    ingest_every_minutes: Annotated[int, Field(ge=1)] = 15
    publish_cron: str = "30 7 * * *"
    misfire_grace_seconds: Annotated[int, Field(ge=1)] = 3600

    @field_validator("publish_cron")
    @classmethod
    def _five_fields(cls, v: str) -> str:
        if len(v.split()) != 5:
            raise ValueError(_("expected a five-field crontab such as '30 7 * * *'"))
        from .crontab import crontab_trigger

        try:
            crontab_trigger(v, "UTC")
        except ValueError as exc:
            raise ValueError(_("{reason} (expected a crontab such as '30 7 * * 1-5')")
                             .format(reason=exc)) from None
        return v


class LogConfig(_Section):
    file: str = ""
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class WebConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    #: Seconds a client has to send a whole request, from connecting (or the
    #: end of its previous response) to the request's last byte.
    request_timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    #: Seconds an idle keep-alive connection is kept open between requests.
    keep_alive_timeout: Annotated[float, Field(gt=0, le=300)] = 5.0
    #: Open connections at most; over it the oldest one still waiting for its
    #: request is closed. Keep it well under the process's open-file limit.
    max_connections: Annotated[int, Field(ge=2, le=100_000)] = 500


class DkimConfig(_Section):
    """[dkim]: sign every message (signing.py). All three keys, or none (off)."""

    domain: str = ""
    selector: str = ""
    #: A PEM file, relative to the config's folder, mode 0600; never the key itself.
    private_key_file: str = ""

    @field_validator("domain", "selector")
    @classmethod
    def _dns_name(cls, v: str) -> str:
        problem = domain_problem(v) if v else None
        if problem:
            raise ValueError(problem)
        return v.lower()

    @model_validator(mode="after")
    def _all_or_none(self) -> DkimConfig:
        given = [k for k in ("domain", "selector", "private_key_file") if getattr(self, k)]
        if given and len(given) < 3:
            missing = [k for k in ("domain", "selector", "private_key_file") if k not in given]
            raise ValueError(_("set {missing} too, or none of the [dkim] keys to send "
                               "unsigned").format(missing=", ".join(missing)))
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.domain)


#: A configured section slug: lowercase ASCII letters and digits in words joined by hyphens.
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


def _check_section_name(name: str) -> str:
    _header_safe(check_one_line, name)  # in feed titles, page titles and the digest
    if not name.strip() or len(name) > SECTION_NAME_MAX or name != name.strip():
        raise ValueError(
            _("{name!r} is not a section name; expected a name such as \"要闻\" "
              "(1 to {max} characters, no space at either end)")
            .format(name=name, max=SECTION_NAME_MAX)
        )
    return name


class SectionsConfig(_Section):
    """Sections (栏目) beyond what the pages and the Markdown files say (sections.py).

    `files`: file-name pattern (shell-style, `*-03.txt`) → section, for the
    articles of a file that names none itself; the first pattern that matches,
    in the order written, wins. `slugs`: section → the ASCII name of its folder
    under public/sections/ (default: its pinyin).
    """

    files: dict[str, str] = {}
    slugs: dict[str, str] = {}

    @field_validator("files")
    @classmethod
    def _patterns(cls, v: dict[str, str]) -> dict[str, str]:
        for pattern, name in v.items():
            if not pattern.strip():
                raise ValueError(_("an empty file-name pattern; expected one such as \"*-03.txt\""))
            try:
                _check_section_name(name)
            except ValueError as exc:
                raise ValueError(f"{pattern!r}: {exc}") from None
        return v

    @field_validator("slugs")
    @classmethod
    def _slugs(cls, v: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for name, slug in v.items():
            try:
                _check_section_name(name)
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
            if not SLUG.fullmatch(slug):
                raise ValueError(
                    _("{name}: {slug!r} is not a slug; expected lowercase ASCII letters and "
                      "digits joined by hyphens, such as \"news\" or \"union-news\"")
                    .format(name=name, slug=slug)
                )
            if slug in seen:
                raise ValueError(
                    _("{name}: the slug {slug!r} is already {other}'s; each section needs "
                      "its own").format(name=name, slug=slug, other=seen[slug])
                )
            seen[slug] = name
        return v


class BouncesConfig(_Section):
    """Where bounces, complaints and mailed unsubscribes arrive, and what they do.

    `domain`: the VERP domain each digest's envelope sender is on
    (bounce+<token>@domain); empty means the domain of `email.from`.
    `maildir` (relative to the config) is read unless `imap_host` is set.
    """

    domain: str = ""
    maildir: str = "bounces"
    imap_host: str = ""
    imap_port: Annotated[int, Field(ge=1, le=65535)] = 993
    imap_user: str = ""
    imap_password_env: str = "GONGBAO_IMAP_PASSWORD"
    imap_folder: str = "INBOX"
    imap_processed_folder: str = "gongbao-processed"
    soft_limit: Annotated[int, Field(ge=1)] = 3
    every_minutes: Annotated[int, Field(ge=0)] = 0

    @field_validator("domain")
    @classmethod
    def _a_domain(cls, v: str) -> str:
        if v and not _DOMAIN.fullmatch(v):
            raise ValueError(_("{value!r} is not a domain name; expected e.g. "
                               "bounces.news.example.org").format(value=v))
        return v.lower()

    @field_validator("imap_host", "imap_user", "imap_folder", "imap_processed_folder")
    @classmethod
    def _one_line(cls, v: str) -> str:  # sent in IMAP commands
        return _header_safe(check_one_line, v)

    @field_validator("imap_folder", "imap_processed_folder")
    @classmethod
    def _a_folder(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(_("expected a folder name such as INBOX"))
        return v


#: A domain name in ASCII (IDNA): dot-separated labels of letters, digits and hyphens.
_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                     r"[A-Za-z][A-Za-z0-9-]{0,61}[A-Za-z0-9]")


class SignupConfig(_Section):
    """Readers who sign themselves up on `serve`'s /subscribe form (double opt-in)."""

    #: false: no form (/subscribe is 404) and no link to it on the archive's pages.
    enabled: bool = True
    #: Hours a confirmation link works.
    confirm_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 48
    #: Minutes after a confirmation in which more signups for that address send no other.
    resend_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    #: Signup POSTs one client address may make per `rate_window_minutes` (per process).
    rate_limit: Annotated[int, Field(ge=1)] = 10
    rate_window_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    #: Minutes a form stays good to send (its CSRF token's lifetime).
    form_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 120
    #: Reverse proxies (addresses or networks) whose X-Forwarded-For names the client.
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    _("{value!r} is not an IP address or network; expected e.g. "
                      "\"127.0.0.1\" or \"10.0.0.0/8\"").format(value=item)
                ) from None
        return v


class Config(_Section):
    paper: PaperConfig = PaperConfig()
    paths: PathsConfig = PathsConfig()
    database: DatabaseConfig = DatabaseConfig()
    issue: IssueConfig = IssueConfig()
    feed: FeedConfig = FeedConfig()
    email: EmailConfig = EmailConfig()
    smtp: SmtpConfig = SmtpConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    log: LogConfig = LogConfig()
    web: WebConfig = WebConfig()
    dkim: DkimConfig = DkimConfig()
    sections: SectionsConfig = SectionsConfig()
    bounces: BouncesConfig = BouncesConfig()
    signup: SignupConfig = SignupConfig()

    #: The folder the config file lives in; every relative path starts here.
    root: Path = Field(default=Path("."), exclude=True)

    model_config = ConfigDict(
        extra="forbid", frozen=True, strict=True, arbitrary_types_allowed=True
    )

    # -- resolved locations -------------------------------------------------
    def path(self, name: str) -> Path:
        return (self.root / getattr(self.paths, name)).resolve()

    @property
    def inbox(self) -> Path:
        return self.path("inbox")

    @property
    def state_dir(self) -> Path:
        return self.path("state")

    @property
    def issues_dir(self) -> Path:
        return self.path("issues")

    @property
    def public_dir(self) -> Path:
        return self.path("public")

    @property
    def outbox_dir(self) -> Path:
        return self.path("outbox")

    @property
    def templates_dir(self) -> Path:
        return self.path("templates")

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{self.state_dir / 'gongbao.db'}"

    @property
    def dkim_key_path(self) -> Path | None:
        """[dkim] private_key_file, resolved against the config's folder; None when off."""
        if not self.dkim.enabled:
            return None
        return (self.root / self.dkim.private_key_file).resolve()

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.paper.timezone)

    @property
    def bounce_domain(self) -> str:
        """[bounces] domain, or the domain of email.from: VERP is on without configuration."""
        if self.bounces.domain:
            return self.bounces.domain
        _name, address = split_mailbox(self.email.from_address)
        return address.rpartition("@")[2].lower()

    @property
    def bounce_maildir(self) -> Path:
        return (self.root / self.bounces.maildir).resolve()

    def imap_password(self) -> str | None:
        """The bounce mailbox's IMAP password, read from the environment only."""
        env = self.bounces.imap_password_env
        return os.environ.get(env) if env else None

    def smtp_password(self) -> str | None:
        """The relay password, read from the environment only."""
        return os.environ.get(self.smtp.password_env) if self.smtp.password_env else None


def _header_safe(check: Any, value: str) -> Any:
    """headers.py's `check(value)`, its HeaderError as the ValueError pydantic reports."""
    try:
        return check(value)
    except HeaderError as exc:
        raise ValueError(str(exc)) from None


def _check_template(template: str, allowed: set[str]) -> None:
    import string

    try:
        names = {field for _text, field, _spec, _conv in string.Formatter().parse(template)
                 if field}
    except ValueError as exc:
        raise ValueError(_("not a valid template ({reason})").format(reason=exc)) from None
    unknown = names - allowed
    if unknown:
        raise ValueError(
            _("unknown placeholder {placeholder}; expected only {allowed}").format(
                placeholder=f"{{{sorted(unknown)[0]}}}",
                allowed=", ".join(f"{{{n}}}" for n in sorted(allowed)))
        )


_EXPECTED = {
    "string_type": N_("a string"),
    "int_type": N_("a whole number"),
    "int_parsing": N_("a whole number"),
    "float_type": N_("a number"),
    "bool_type": N_("true or false"),
    "model_type": N_("a table such as [section]"),
    "dict_type": N_("a table such as [section]"),
}
# pydantic's number limits (Field(ge=...)), by the key its error context uses.
_LIMITS = {
    "greater_than_equal": ("ge", N_("{key}: expected a number of at least {limit} (got {got!r})")),
    "greater_than": ("gt", N_("{key}: expected a number above {limit} (got {got!r})")),
    "less_than_equal": ("le", N_("{key}: expected a number of at most {limit} (got {got!r})")),
    "less_than": ("lt", N_("{key}: expected a number below {limit} (got {got!r})")),
}


def _describe(error: dict[str, Any], data: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        parent: Any = Config
        for part in error["loc"][:-1]:
            parent = parent.model_fields[str(part)].annotation
        names = [(f.alias or n) for n, f in parent.model_fields.items() if n != "root"]
        allowed = ", ".join(names)
        close = difflib.get_close_matches(str(error["loc"][-1]), names, n=1)
        if close:  # a typo ([schedul], ingest_every_minute): name the likely one first
            return _("{key}: unknown key; did you mean {name}? (expected one of: "
                     "{allowed})").format(key=key, name=close[0], allowed=allowed)
        return _("{key}: unknown key; expected one of: {allowed}").format(key=key, allowed=allowed)
    got = error.get("input")
    msg = error["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    expected = _EXPECTED.get(kind)
    if expected:
        return _("{key}: expected {expected} (got {got!r})").format(
            key=key, expected=_(expected), got=got)
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", "?"))
        # pydantic writes the choice in English ("'outbox' or 'smtp'"): say it again.
        choices = re.findall(r"'[^']*'", expected)
        return _("{key}: input should be {expected} (got {got!r})").format(
            key=key, expected=either(choices) if choices else expected, got=got)
    if kind in _LIMITS:
        name, text = _LIMITS[kind]
        return _(text).format(key=key, limit=error.get("ctx", {}).get(name, "?"), got=got)
    return keyed(key, msg)


def _toml_problem(path: Path, text: str) -> str:
    """tomllib's complaint with its place said in the operator's language: the
    detail ("Invalid value") stays tomllib's, "(at line 3, column 5)" becomes ours."""
    at = re.fullmatch(r"(?s)(.*) \(at line (\d+), column (\d+)\)", text)
    if at:
        return _("{path}, line {line}, column {column}: not valid TOML: {reason}").format(
            path=path, line=at[2], column=at[3], reason=at[1])
    end = re.fullmatch(r"(?s)(.*) \(at end of document\)", text)
    if end:
        return _("{path}, at its end: not valid TOML: {reason}").format(path=path, reason=end[1])
    return _("{path}: not valid TOML: {reason}").format(path=path, reason=text)


def keyed(key: str, message: str) -> str:
    """`key: message`, with the operator's colon (`key：message` in Chinese), as every
    config error names what it is about."""
    return _("{key}: {message}").format(key=key, message=message)


#: Where a config error sends the operator: a server with the wheel installed has no
#: README.md (and the project has no URL), but `init` writes the commented config.
CONFIG_HINT = N_("compare with the commented config.toml that `gongbao-feed init NEWDIR` "
                 "writes (the usual keys, with their defaults); every key is described in "
                 "the configuration reference of the project's README.md")


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a config file; every problem names its key."""
    cfg_path = Path(path or DEFAULT_CONFIG_NAME)
    if not cfg_path.is_file():
        raise ConfigError(
            _("{path}: no such config file").format(path=cfg_path),
            hint=_("run `gongbao-feed init DIR` to make a working folder, "
                   "or pass --config PATH"),
        )
    try:
        data = tomllib.loads(cfg_path.read_text("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_toml_problem(cfg_path, str(exc))) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(_("{path}: not valid TOML: {reason}").format(
            path=cfg_path, reason=_("not UTF-8 text (byte {n})").format(n=exc.start))) from None
    return config_from_dict(data, root=cfg_path.resolve().parent, source=str(cfg_path))


def config_from_dict(data: dict[str, Any], root: Path, source: str = "config") -> Config:
    if "root" in data:
        raise ConfigError(_("{source}: root: unknown key").format(source=source))
    try:
        config = Config.model_validate({**data, "root": root})
    except ValidationError as exc:
        lines = [_describe(e, data) for e in exc.errors()]
        raise ConfigError(
            keyed(source, ("" if len(lines) == 1 else "\n  ") + "\n  ".join(lines)),
            hint=_(CONFIG_HINT),
        ) from None
    _check_dkim(config, source)
    return config


def _check_dkim(config: Config, source: str) -> None:
    """The [dkim] key file (present, mode 0600), and a warning when the From domain
    and the DKIM domain are not aligned: DMARC (RFC 7489 §3.1.1, relaxed mode)
    passes on DKIM only when both have the same organisational domain."""
    key_path = config.dkim_key_path
    if key_path is None:
        return
    try:
        check_key_file(key_path)
    except ConfigError as exc:
        raise ConfigError(keyed(source, exc.message), hint=exc.hint) from None
    from_domain = split_mailbox(config.email.from_address)[1].rpartition("@")[2]
    if not aligned(from_domain, config.dkim.domain):
        log.warning(_("warning: {source}: the From address's domain {from_domain} and "
                      "dkim.domain {dkim_domain} are not aligned (not the same organisational "
                      "domain), so DMARC will not count the signature for the From domain; "
                      "sign with d={from_domain} or a domain under the same "
                      "organisation").format(source=source, from_domain=from_domain,
                                             dkim_domain=config.dkim.domain))


def organisational_domain(domain: str) -> str:
    """The registered domain under the public suffix (news.example.org.cn → example.org.cn),
    from the Public Suffix List that publicsuffixlist ships (no download)."""
    from publicsuffixlist import PublicSuffixList

    name = domain.lower().rstrip(".")
    return _psl(PublicSuffixList).privatesuffix(name) or name


def aligned(from_domain: str, dkim_domain: str) -> bool:
    """Relaxed DMARC alignment: the same organisational domain (RFC 7489 §3.1.1)."""
    return organisational_domain(from_domain) == organisational_domain(dkim_domain)


_PSL: list[Any] = []


def _psl(factory: Any) -> Any:
    if not _PSL:  # reading the list takes ~50 ms; once per process
        _PSL.append(factory())
    return _PSL[0]


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def domain_problem(name: str) -> str | None:
    """Why `name` cannot be a DKIM domain or selector (DNS labels, ASCII), or None."""
    if not _DNS_NAME.fullmatch(name) or len(name) > 253:
        return _("{name!r} is not a DNS name of letters, digits, hyphens and dots "
                 "(an internationalised name in its xn-- form)").format(name=name)
    return None


def check_key_file(path: Path, key_name: str = "dkim.private_key_file") -> None:
    """Raise ConfigError unless `path` is a file only its owner can read (0600 or 0400).

    A signing key anyone on the machine can read lets them send mail as the paper.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(
            _("{key}: {path} does not exist").format(key=key_name, path=path),
            hint=_("make the key with `gongbao-feed dkim keygen --selector S --domain D "
                   "--out {path}`, or correct the path (relative to the config's folder)")
            .format(path=path),
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(_("{key}: {path} is not a file").format(key=key_name, path=path))
    if sys.platform != "win32" and st.st_mode & 0o077:
        raise ConfigError(
            _("{key}: the DKIM key {path} can be read by other users of this machine "
              "(mode {mode:04o}); anyone who reads it can sign mail as the paper").format(
                key=key_name, path=path, mode=stat.S_IMODE(st.st_mode)),
            hint=_("run `chmod 600 {path}`").format(path=path),
        )


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: the only hosts plain SMTP may reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
