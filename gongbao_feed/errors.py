"""Errors a user can act on.

    GongbaoError            every error the CLI prints without a traceback
    ├── ConfigError         config.toml: names the key, says what was expected
    ├── PageError           one input file: names the file (and line)
    ├── StoreError          the database
    ├── AssembleError       making an issue
    ├── RenderError         templates and output files
    ├── MemberError         an address or name for the member list: names the line
    ├── DeliveryError       outbox or SMTP: names the setting to check
    ├── BounceError         the bounce mailbox (Maildir or IMAP): names the [bounces] key
    └── ServiceError        the scheduler service: another one holds the folder

Each carries a `hint` saying what would be right, so the message a newsroom
operator sees tells them what to do next, not just what broke. Message and
hint are in the operator's language (`i18n._` where they are raised); the
"hint:" label is translated when the error is shown.
"""

from __future__ import annotations

from .i18n import _


class GongbaoError(Exception):
    """Base of every expected failure."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        #: What the operation had done when it stopped (a send's counts), if anything.
        self.report: object | None = None

    def __str__(self) -> str:
        if self.hint:
            return self.message + "\n  " + _("hint: {hint}").format(hint=self.hint)
        return self.message


class ConfigError(GongbaoError):
    pass


class PageError(GongbaoError):
    def __init__(self, path: str, message: str, hint: str | None = None) -> None:
        super().__init__(f"{path}: {message}", hint)
        self.path = path


class StoreError(GongbaoError):
    pass


class AssembleError(GongbaoError):
    pass


class RenderError(GongbaoError):
    pass


class MemberError(GongbaoError):
    pass


class DeliveryError(GongbaoError):
    pass


class ServiceError(GongbaoError):
    pass


class BounceError(GongbaoError):
    """The bounce mailbox (Maildir or IMAP): names the [bounces] key to check."""
