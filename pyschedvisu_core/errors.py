"""Every exception pySchedVisu raises on purpose.

Errors from pynetdicom, pydicom, polars or the SMTP library are translated at the
boundary (``raise ... from exc``) so that callers only need this tree::

    PySchedVisuError
    ├── ConfigError                 bad or missing configuration (exit code 2)
    ├── PseudonymKeyError           no key to pseudonymise patient ids
    ├── PacsError                   anything that went wrong talking to a PACS
    │   ├── PacsUnreachableError    TCP connect / association request failed
    │   │   └── PacsCircuitOpenError  failed so many times in a row that nothing is asked
    │   ├── AssociationRejectedError  the PACS refused our AE title or contexts
    │   ├── PacsThrottledError      0xC336-like "busy / out of resources" status
    │   ├── PacsTimeoutError        DIMSE / network timeout, aborted association
    │   └── PacsOperationError      a DIMSE failure status that retrying won't fix
    │       └── PacsAnswerError     an answer that could not be decoded (not a refusal)
    ├── RetrievalError              a day could not be retrieved after its retries
    ├── WorklistError               a worklist snapshot could not be taken (retried)
    ├── HeaderError                 a DICOM header lacks what a rule needs (series quarantined)
    ├── StoreError                  the on-disk series / study store is unreadable
    │   ├── StoreFullError          no space left where the store writes
    │   └── DayUnreadableError      one stored day's file cannot be read (moved aside, fetched again)
    ├── ExtractionError             series could not be turned into studies
    ├── ReportError                 a page or the PDF / HTML could not be produced
    ├── DeliveryError               the e-mail could not be sent
    └── DeployError                 the deployments of the sites could not be written or applied
"""

from __future__ import annotations

import datetime as dt


class PySchedVisuError(Exception):
    """Root of every error raised on purpose by pySchedVisu."""


class ConfigError(PySchedVisuError):
    """The configuration is invalid; ``problems`` holds one ``file: key: what`` line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class PseudonymKeyError(PySchedVisuError):
    """No secret key is available to pseudonymise patient identifiers."""


class PacsError(PySchedVisuError):
    """Something went wrong while talking to a PACS."""


class PacsUnreachableError(PacsError):
    """The PACS did not accept a TCP connection or an association request."""


class PacsCircuitOpenError(PacsUnreachableError):
    """The PACS failed ``attempts`` associations in a row since ``since``: nothing is asked of it
    until a C-ECHO answers again (the client's circuit breaker is open)."""

    def __init__(self, message: str, *, since: str = "", attempts: int = 0) -> None:
        self.since = since
        self.attempts = attempts
        super().__init__(message)


class AssociationRejectedError(PacsError):
    """The PACS rejected the association (AE title unknown, no accepted context...).

    ``result``, ``source``, ``reason``: the A-ASSOCIATE-RJ fields (PS3.8 9.3.4), when known.
    """

    def __init__(
        self,
        message: str,
        *,
        result: int | None = None,
        source: int | None = None,
        reason: int | None = None,
    ) -> None:
        self.result = result
        self.source = source
        self.reason = reason
        super().__init__(message)


class PacsThrottledError(PacsError):
    """The PACS answered with a 'busy / out of resources' status (e.g. 0xC336)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PacsTimeoutError(PacsError):
    """A DIMSE or network timeout, or an association aborted mid-operation."""


class PacsOperationError(PacsError):
    """A DIMSE operation failed with a status that retrying will not fix."""

    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class PacsAnswerError(PacsOperationError):
    """An answer of the PACS could not be decoded.

    Not a refusal: it says nothing of what the PACS accepts, so no capability is switched
    off for it; the query is asked in smaller parts instead, down to the series it is about.
    """


class RetrievalError(PySchedVisuError):
    """A day could not be retrieved after all its retries."""


class WorklistError(PySchedVisuError):
    """A Modality Worklist snapshot could not be taken (nothing was written for it)."""


class HeaderError(PySchedVisuError):
    """A DICOM header lacks what a rule needs; the series is quarantined with this reason."""


class StoreError(PySchedVisuError):
    """The on-disk store is unreadable or inconsistent."""


class StoreFullError(StoreError):
    """No space left on the device of ``path``; ``needed`` bytes were being written."""

    def __init__(self, message: str, *, path: str = "", needed: int = 0, free: int = 0) -> None:
        self.path = path
        self.needed = needed
        self.free = free
        super().__init__(message)


class DayUnreadableError(StoreError):
    """The file ``path`` of the stored ``day`` cannot be read (None: a file of no one day)."""

    def __init__(self, message: str, *, day: dt.date | None = None, path: str = "") -> None:
        self.day = day
        self.path = path
        super().__init__(message)


class ExtractionError(PySchedVisuError):
    """Series could not be turned into studies."""


class ReportError(PySchedVisuError):
    """A report page, the PDF or the HTML could not be produced."""


class DeliveryError(PySchedVisuError):
    """The report could not be delivered by e-mail."""


class DeployError(PySchedVisuError):
    """The deployments could not be written or applied (one line: the reason)."""
