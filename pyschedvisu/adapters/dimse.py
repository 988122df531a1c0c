"""The pynetdicom implementation of :class:`pyschedvisu_core.pacs.PacsClient`.

Kind to the PACS (DOMAIN §2.4): a small pool of reused associations (at most
``max_concurrent`` open), one global pace for every DIMSE request (``max_ops_per_s``),
and retries with exponential backoff + jitter on "busy" statuses (0xC336, 0xA7xx),
timeouts and aborted associations (a fresh association is made). Headers only: C-STORE'd
datasets (C-GET on the same association, C-MOVE to our own Storage SCP) are parsed in
memory up to the pixel data and never written to disk. C-FIND answers come deflated
(PS3.5 A.5) from a PACS that accepts it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, TypeVar

from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)
from pynetdicom import AE, _config, build_role, evt
from pynetdicom import sop_class as _sop_class
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import (
    CTImageStorage,
    EnhancedCTImageStorage,
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    ModalityWorklistInformationFind,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    NuclearMedicineImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pyschedvisu_core import queries
from pyschedvisu_core import status as dimse_status
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsAnswerError,
    PacsError,
    PacsOperationError,
    PacsThrottledError,
    PacsTimeoutError,
    PacsUnreachableError,
)
from pyschedvisu_core.transport import Capabilities, Method, OpCounters

log = logging.getLogger("pyschedvisu.pacs")

# pynetdicom logs whole identifiers (PatientID...) at INFO by default: never.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_HANDLER_LEVEL = "none"
# Received values are checked by our own parsers (pyschedvisu_core.dicomtime), which
# quarantine a series with a reason; pydicom's own warnings on the same values only
# repeated that, on the console, once per broken header.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

T = TypeVar("T")

#: The NM storage class retired in 1998 (PS3.4 2004 still listed it); gamma cameras of that
#: age kept sending it, and a PACS archive reaching back keeps serving it. pynetdicom knows
#: only the current one: registered so that our Storage SCP and C-GET roles accept it.
NM_IMAGE_STORAGE_RETIRED = "1.2.840.10008.5.1.4.1.1.5"
if not hasattr(_sop_class, "NuclearMedicineImageStorageRetired"):
    _sop_class.register_uid(
        NM_IMAGE_STORAGE_RETIRED, "NuclearMedicineImageStorageRetired", StorageServiceClass
    )

#: Storage SOP classes we accept headers of (C-GET role selection, C-MOVE Storage SCP).
STORAGE_CLASSES = (
    CTImageStorage,
    EnhancedCTImageStorage,
    LegacyConvertedEnhancedCTImageStorage,
    PositronEmissionTomographyImageStorage,
    EnhancedPETImageStorage,
    LegacyConvertedEnhancedPETImageStorage,
    NuclearMedicineImageStorage,
    NM_IMAGE_STORAGE_RETIRED,
    SecondaryCaptureImageStorage,
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
)
#: Pixel data are never decoded, so compressed transfers are as good as plain ones
#: (and spare the PACS a transcoding).
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
]
FIND_MODELS = {
    "study": StudyRootQueryRetrieveInformationModelFind,
    "patient": PatientRootQueryRetrieveInformationModelFind,
}
SWITCH_INTERVAL_S = 0.001
#: Answers read after a C-CANCEL (already on their way) before giving up and aborting.
CANCEL_DRAIN_MAX = 10_000


def _status_code(status: Dataset | None) -> int | None:
    if status is None or "Status" not in status:
        return None
    return int(status.Status)


def _status_error(op: str, code: int, status: Dataset | None = None) -> PacsError:
    comment = ""
    if status is not None and "ErrorComment" in status:
        comment = f" ({status.ErrorComment})"
    if dimse_status.is_busy(code):
        return PacsThrottledError(f"{op}: PACS busy, status 0x{code:04X}{comment}", status=code)
    return PacsOperationError(f"{op}: failed with status 0x{code:04X}{comment}", status=code)


def nodelay(assoc: Any) -> None:
    """Disable Nagle on an association's socket.

    pynetdicom sends the command and the dataset of a message as two PDUs; with Nagle
    the second waits for the peer's delayed ACK (~40 ms per message on Linux).
    """
    try:
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (AttributeError, OSError) as exc:
        log.debug("TCP_NODELAY not set: %s", exc)


_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def quickack(assoc: Any) -> None:
    """ACK what was received now, not after the delayed-ACK timer (Linux; no-op elsewhere).

    A peer without TCP_NODELAY (Orthanc's DCMTK by default) sends a C-STORE command and
    its dataset as two writes; Nagle holds the second until the first is ACKed, and our
    kernel delays that ACK by up to 40 ms: one stall per instance sent to us. Linux
    resets quick-ACK mode by itself, so it is set again after every PDU received.
    """
    if _TCP_QUICKACK is None:
        return
    with contextlib.suppress(AttributeError, OSError):
        assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)


def _at_pixels(tag: BaseTag, vr: str | None, length: int) -> bool:
    # Group 7FE0 holds (Float/Double) Pixel Data: nothing the rules need lies beyond.
    return int(tag) >= 0x7FE00000


def relational_query_items() -> list[SOPClassExtendedNegotiation]:
    """Ask for relational queries on both C-FIND models (PS3.4 C.5.1.1, byte 1 = 1).

    The day-wide queries leave the study key universal or give UID lists below STUDY
    level; a PACS is only bound to answer those when relational queries were negotiated.
    A PACS that ignores the item still gets them, checked and with a hierarchical fallback.
    """
    items = []
    for model in FIND_MODELS.values():
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid = model
        item.service_class_application_information = b"\x01"
        items.append(item)
    return items


def decode_header(raw: bytes, transfer_syntax: Any) -> Dataset:
    """Parse a C-STORE'd dataset in memory, stopping before the pixel data."""
    if getattr(transfer_syntax, "is_deflated", False):
        raw = zlib.decompress(raw, -zlib.MAX_WBITS)
    return read_dataset(
        BytesIO(raw),
        bool(transfer_syntax.is_implicit_VR),
        bool(transfer_syntax.is_little_endian),
        stop_when=_at_pixels,
    )


@dataclass(frozen=True)
class DimseConfig:
    """Plain connection settings (``pyschedvisu.retrieval.clients.dimse_config`` maps ``[pacs]``)."""

    host: str = "127.0.0.1"
    port: int = 11112
    called_ae: str = "ANY-SCP"
    calling_ae: str = "PYSCHEDVISU"
    move_ae: str = ""
    move_port: int = 0
    move_bind: str = "127.0.0.1"
    connect_timeout_s: float = 10.0
    acse_timeout_s: float = 30.0
    dimse_timeout_s: float = 120.0
    network_timeout_s: float = 60.0
    move_timeout_s: float = 600.0
    #: pooled associations unused this long are released (0: kept until ``close``)
    idle_release_s: float = 5.0
    max_concurrent: int = 2
    max_ops_per_s: float = 20.0
    op_retries: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_jitter_s: float = 0.5
    deflate_answers: bool = True

    @property
    def label(self) -> str:
        return f"{self.called_ae}@{self.host}:{self.port}"


class RateLimiter:
    """Spaces requests at least ``1/rate`` s apart, across threads (no bursts)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self, stop: threading.Event) -> None:
        if self.interval <= 0:
            return
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            stop.wait(at - now)


@dataclass
class _Collector:
    series_uid: str
    wanted: set[str] | None  # None = every instance of the series
    got: dict[str, Dataset] = field(default_factory=dict)
    tally: OpCounters | None = None  # of the caller that asked for these instances

    def missing(self) -> set[str]:
        return set() if self.wanted is None else self.wanted - set(self.got)


def _finds_deflated(assoc: Association, models: Iterable[str]) -> bool:
    """True when ``assoc`` accepted a deflated context for one of these C-FIND models
    (pynetdicom then sends on it: it is proposed before the plain one)."""
    wanted = {str(m) for m in models}
    return any(
        str(cx.abstract_syntax) in wanted
        and cx.transfer_syntax[0] == DeflatedExplicitVRLittleEndian
        for cx in assoc.accepted_contexts
    )


class _AskAgain(PacsTimeoutError):
    """An operation to send again at once on a fresh association (its own is aborted)."""


#: The counters of the caller's context (see :meth:`DimseClient.tally`).
_TALLY: contextvars.ContextVar[OpCounters | None] = contextvars.ContextVar(
    "pyschedvisu_dimse_tally", default=None
)


class DimseClient:
    """A pynetdicom client to one PACS; thread-safe, shared by the workers of a run."""

    def __init__(self, config: DimseConfig, *, rng: random.Random | None = None) -> None:
        self.config = config
        self._counters = OpCounters()
        self._count_lock = threading.Lock()
        self._lock = threading.Lock()
        #: pooled associations and when each became idle
        self._idle: list[tuple[Association, float]] = []
        self._reaper: threading.Thread | None = None
        self._open = 0
        self._slots = threading.BoundedSemaphore(config.max_concurrent)
        self._limiter = RateLimiter(config.max_ops_per_s)
        self._stop = threading.Event()
        self._rng = rng or random.Random()
        self._collectors: dict[str, list[_Collector]] = {}
        #: whose operations the data of an association belongs to (leased ones, C-MOVE
        #: deliveries once their first instance told), and bytes not yet attributed
        self._owner: dict[Association, OpCounters | None] = {}
        self._unowned: dict[Association, int] = {}
        self._msg_id = 0
        self._server: Any = None
        self.move_port_bound: int | None = None
        #: C-FIND answers asked deflated (off for good once a PACS's could not be read)
        self.deflate = config.deflate_answers
        #: whether the last association opened gets C-FIND answers deflated (None: none yet)
        self.answers_deflated: bool | None = None
        self._ae = self._make_ae()
        # pynetdicom runs two polling threads per association; with the default 5 ms GIL
        # switch interval every PDU waits for them (x4 slower C-FIND with many answers).
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._roles: list[Any] = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
        self._roles += relational_query_items()

    # -- set-up ------------------------------------------------------------------------
    def _make_ae(self) -> AE:
        c = self.config
        ae = AE(ae_title=c.calling_ae)
        ae.connection_timeout = c.connect_timeout_s
        ae.acse_timeout = c.acse_timeout_s
        ae.dimse_timeout = c.dimse_timeout_s
        ae.network_timeout = c.network_timeout_s
        ae.add_requested_context(Verification)
        if self.deflate:
            # A context of its own, before the plain one: a PACS without deflate rejects
            # it alone, and pynetdicom sends on the first accepted context of a model.
            for model in FIND_MODELS.values():
                ae.add_requested_context(model, [DeflatedExplicitVRLittleEndian])
        for model in (
            StudyRootQueryRetrieveInformationModelFind,
            PatientRootQueryRetrieveInformationModelFind,
            StudyRootQueryRetrieveInformationModelGet,
            StudyRootQueryRetrieveInformationModelMove,
            PatientRootQueryRetrieveInformationModelGet,
            PatientRootQueryRetrieveInformationModelMove,
        ):
            ae.add_requested_context(model)
        for uid in STORAGE_CLASSES:
            ae.add_requested_context(uid, TRANSFER_SYNTAXES)
        # the RIS's appointment book (pyschedvisu.adapters.worklist); a PACS without it
        # rejects this context alone
        ae.add_requested_context(ModalityWorklistInformationFind)
        return ae

    @property
    def counters(self) -> OpCounters:
        return self._counters

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: operations fail with ``client closed``."""
        return self._stop.is_set()

    @contextmanager
    def tally(self) -> Iterator[OpCounters]:
        """Counters of what this context asks (one day of several sharing the client).

        Everything counted in :attr:`counters` while the block runs, on behalf of this
        context (threads started with a copy of it included), is counted here too: exact
        per-day figures where a snapshot difference would also hold the other days'.
        """
        counters = OpCounters()
        token = _TALLY.set(counters)
        try:
            yield counters
        finally:
            _TALLY.reset(token)

    def _count(
        self,
        name: str,
        n: int = 1,
        *,
        owner: OpCounters | None = None,
        context: bool = True,
    ) -> None:
        """Count ``n`` in the client's counters, and in ``owner`` or the context's tally."""
        into = owner if owner is not None else (_TALLY.get() if context else None)
        with self._count_lock:
            setattr(self._counters, name, getattr(self._counters, name) + n)
            if into is not None:
                setattr(into, name, getattr(into, name) + n)

    # -- events ------------------------------------------------------------------------
    def _on_data(self, event: Any) -> None:
        n = len(event.data)
        with self._count_lock:
            self._counters.bytes_received += n
            if event.assoc in self._owner:
                owner = self._owner[event.assoc]
                if owner is not None:
                    owner.bytes_received += n
            else:  # its owner is not known yet (a C-MOVE delivery before its first C-STORE)
                self._unowned[event.assoc] = self._unowned.get(event.assoc, 0) + n
        quickack(event.assoc)

    def _own(self, assoc: Any, tally: OpCounters | None) -> None:
        """Attribute ``assoc``'s data (and what arrived before) to ``tally``."""
        with self._count_lock:
            if assoc in self._owner:
                return
            self._owner[assoc] = tally
            pending = self._unowned.pop(assoc, 0)
            if tally is not None:
                tally.bytes_received += pending
                if assoc.is_acceptor:  # a C-MOVE delivery
                    tally.inbound_associations += 1

    def _disown(self, assoc: Any) -> None:
        """Forget whose ``assoc`` is (lease over, or connection closed)."""
        with self._count_lock:
            self._owner.pop(assoc, None)
            self._unowned.pop(assoc, None)

    def _on_close(self, event: Any) -> None:
        self._disown(event.assoc)

    def _on_sent(self, event: Any) -> None:
        quickack(event.assoc)  # sending re-enables delayed ACKs (Linux "pingpong" mode)

    def _on_inbound(self, event: Any) -> None:
        self._count("inbound_associations", context=False)  # its owner is known at C-STORE
        nodelay(event.assoc)

    def _on_acse(self, event: Any, holder: dict[str, Any]) -> None:
        holder["primitive"] = event.primitive

    def _on_store(self, event: Any) -> int:
        try:
            raw = event.request.DataSet
            data = raw.getvalue() if hasattr(raw, "getvalue") else bytes(raw)
            ds = decode_header(data, event.context.transfer_syntax)
            series_uid = text_value(ds, "SeriesInstanceUID") or ""
            sop = text_value(ds, "SOPInstanceUID") or str(event.request.AffectedSOPInstanceUID)
        except Exception as exc:  # a broken dataset must not kill the association
            log.debug("C-STORE: unreadable dataset (%s)", exc)
            return dimse_status.CANNOT_UNDERSTAND
        with self._lock:
            targets = list(self._collectors.get(series_uid, ()))
        owner = targets[0].tally if targets else None
        if event.assoc.is_acceptor:
            self._own(event.assoc, owner)
        self._count("instances_received", owner=owner, context=False)
        for col in targets:
            if col.wanted is None or sop in col.wanted:
                col.got[sop] = ds
        if not targets:
            log.debug("C-STORE: instance of series %s nobody waits for", series_uid)
        return dimse_status.SUCCESS

    # -- associations ------------------------------------------------------------------
    def _associate(self) -> Association:
        c = self.config
        holder: dict[str, Any] = {}
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_DATA_RECV, self._on_data),
            (evt.EVT_DATA_SENT, self._on_sent),
            (evt.EVT_ACSE_RECV, self._on_acse, [holder]),
            (evt.EVT_CONN_CLOSE, self._on_close),
        ]
        try:
            assoc = self._ae.associate(
                c.host,
                c.port,
                ae_title=c.called_ae,
                ext_neg=list(self._roles),
                evt_handlers=handlers,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise PacsUnreachableError(f"{c.label}: cannot connect ({exc})") from exc
        self._count("associations")
        if assoc.is_established:
            nodelay(assoc)
            self.answers_deflated = _finds_deflated(assoc, FIND_MODELS.values())
            log.debug("association %d to %s established", self._counters.associations, c.label)
            return assoc
        if assoc.is_rejected:
            prim = holder.get("primitive")
            result = getattr(prim, "result", None)
            why = getattr(prim, "reason_str", "") or "no reason given"
            if result == 0x02:
                raise PacsThrottledError(f"{c.label}: association rejected for now ({why})")
            raise AssociationRejectedError(
                f"{c.label}: the PACS rejected our association (calling AE {c.calling_ae!r}, "
                f"called AE {c.called_ae!r}): {why}. Check that our AE title is registered at the PACS."
            )
        raise PacsUnreachableError(
            f"{c.label}: no association (connection refused, timed out or aborted): "
            "check host, port and firewall"
        )

    def _start_reaper(self) -> None:
        """Start the thread releasing idle associations (caller holds ``_lock``)."""
        if self.config.idle_release_s <= 0 or self._reaper is not None:
            return
        self._reaper = threading.Thread(target=self._reap, name="dimse-idle-release", daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        """Release the pooled associations once the client has been idle ``idle_release_s``.

        pynetdicom polls every open association every millisecond in two threads (three
        more on an in-process demo PACS): kept open between runs, they would take CPU
        from the report rendering that follows a retrieval.
        """
        period = self.config.idle_release_s
        while not self._stop.wait(min(period / 2, 1.0)):
            now = time.monotonic()
            with self._lock:
                # only when the whole client is idle: during a run every worker keeps its
                # association (one per worker), even through a serial stretch
                if self._open != len(self._idle) or not self._idle:
                    continue
                if now - max(since for _, since in self._idle) < period:
                    continue
                old = [a for a, _ in self._idle]
                self._idle = []
                self._open -= len(old)
            for assoc in old:
                try:
                    if assoc.is_established:
                        assoc.release()
                except Exception as exc:  # releasing must never fail a run
                    log.debug("idle release failed: %s", exc)
            if old:
                log.debug("%d idle association(s) released", len(old))

    @contextmanager
    def _lease(self) -> Iterator[Association]:
        """An established association from the pool (at most ``max_concurrent`` at once)."""
        self._slots.acquire()
        assoc: Association | None = None
        keep = False
        try:
            if self._stop.is_set():  # closed while this one waited for a slot
                raise PacsTimeoutError(f"{self.config.label}: client closed")
            with self._lock:
                while self._idle and assoc is None:
                    cand, _ = self._idle.pop()
                    if cand.is_established:
                        assoc = cand
                    else:  # released or aborted by the PACS while idle
                        self._open -= 1
                        self._count("aborted")
            if assoc is None:
                assoc = self._associate()
                with self._lock:
                    self._open += 1
            self._own(assoc, _TALLY.get())
            try:
                yield assoc
                keep = True
            except PacsTimeoutError:
                raise
            except PacsError:
                keep = True  # the association itself is fine
                raise
        finally:
            if assoc is not None:
                self._disown(assoc)
                if keep and assoc.is_established and not self._stop.is_set():
                    with self._lock:
                        self._idle.append((assoc, time.monotonic()))
                        self._start_reaper()
                else:
                    if assoc.is_established:
                        assoc.abort()
                    with self._lock:
                        self._open -= 1
            self._slots.release()

    def _call(self, what: str, fn: Callable[[Association], T], *, retries: int | None = None) -> T:
        """Run one DIMSE operation with pacing and retries."""
        c = self.config
        limit = c.op_retries if retries is None else retries
        attempt = 0
        while True:
            if self._stop.is_set():
                raise PacsTimeoutError(f"{c.label}: client closed")
            self._limiter.wait(self._stop)
            t0 = time.monotonic()
            try:
                with self._lease() as assoc:
                    result = fn(assoc)
                log.debug("%s: ok in %.3f s", what, time.monotonic() - t0)
                return result
            except _AskAgain as exc:
                # without deflate now: at most once per association that negotiated it
                if self._stop.is_set():
                    raise
                self._count("retries")
                log.debug("%s: %s; asked again", what, exc)
            except (PacsThrottledError, PacsTimeoutError, PacsUnreachableError) as exc:
                if self._stop.is_set():
                    raise  # closed meanwhile: no retry
                if isinstance(exc, PacsThrottledError):
                    self._count("throttled")
                elif isinstance(exc, PacsTimeoutError):
                    self._count("timeouts")
                if attempt >= limit:
                    log.debug("%s: giving up after %d retries: %s", what, attempt, exc)
                    raise
                delay = min(c.backoff_max_s, c.backoff_base_s * 2**attempt)
                delay += self._rng.uniform(0, c.backoff_jitter_s)
                attempt += 1
                self._count("retries")
                log.debug("%s: %s; retry %d/%d in %.2f s", what, exc, attempt, limit, delay)
                self._stop.wait(delay)

    # -- operations --------------------------------------------------------------------
    def echo(self) -> None:
        """C-ECHO (no retry on unreachable: answers fast)."""

        def op(assoc: Association) -> None:
            self._count("echo")
            try:
                status = assoc.send_c_echo()
            except (ValueError, RuntimeError) as exc:
                raise PacsOperationError(
                    f"{self.config.label}: C-ECHO not accepted ({exc})"
                ) from exc
            code = _status_code(status)
            if code is None:
                raise PacsTimeoutError(f"{self.config.label}: no C-ECHO response")
            if code != 0:
                raise _status_error("C-ECHO", code, status)

        self._call("C-ECHO", op, retries=0)

    def find(
        self,
        level: queries.Level,
        query: Dataset,
        root: queries.Root = "study",
        *,
        limit: int | None = None,
    ) -> list[Dataset]:
        """C-FIND: every pending identifier until the final status.

        Beyond ``limit`` answers (a PACS that ignored a filter), the query is cancelled
        (C-CANCEL; the association is aborted if the PACS goes on) and
        ``PacsOperationError`` is raised: the caller asks a narrower way.
        """
        model = FIND_MODELS[root]
        label = self.config.label

        def op(assoc: Association) -> list[Dataset]:
            out: list[Dataset] = []
            self._count("find")
            msg_id = self._next_msg_id()
            try:
                responses = assoc.send_c_find(query, model, msg_id=msg_id)
                for status, ident in responses:
                    code = _status_code(status)
                    if code is None:
                        raise PacsTimeoutError(
                            f"{label}: C-FIND {level}: no response (timeout or abort)"
                        )
                    if dimse_status.is_pending(code):
                        self._count("responses")
                        if ident is None:  # pynetdicom could not decode it
                            raise self._unreadable(assoc, model, f"C-FIND {level}", len(out))
                        out.append(ident)
                        if limit is not None and len(out) > limit:
                            self._cancel(assoc, responses, model, msg_id, limit)
                            raise PacsOperationError(
                                f"{label}: C-FIND {level}: more than {limit} answers, cancelled"
                            )
                        continue
                    if code == 0:
                        return out
                    raise _status_error(f"C-FIND {level}", code, status)
            except (ValueError, RuntimeError) as exc:
                if not assoc.is_established:
                    raise PacsTimeoutError(
                        f"{label}: C-FIND {level}: association lost ({exc})"
                    ) from exc
                raise PacsOperationError(f"{label}: C-FIND {level} not accepted ({exc})") from exc
            raise PacsTimeoutError(f"{label}: C-FIND {level}: no final status")

        return self._call(f"C-FIND {level}", op)

    def find_worklist(self, query: Dataset, *, limit: int | None = None) -> list[Dataset]:
        """C-FIND on the Modality Worklist model: :func:`pyschedvisu.adapters.worklist.find`."""
        from pyschedvisu.adapters.worklist import find

        return find(self, query, limit=limit)

    def _unreadable(self, assoc: Association, model: str, what: str, index: int) -> PacsError:
        """The error for an answer pynetdicom could not decode (never skipped: lost series).

        Deflated: the PACS's deflate is taken as broken, and the operation asked again
        uncompressed on a new association (the pooled ones negotiated deflate too).
        """
        label = self.config.label
        if not _finds_deflated(assoc, (model,)):
            assoc.abort()  # the rest of its answers would reach the next operation
            return PacsAnswerError(f"{label}: {what}: answer {index + 1} could not be decoded")
        with self._lock:
            stale = [a for a, _ in self._idle]
            self._idle = []
            self._open -= len(stale)
            if self.deflate:
                self.deflate = False
                self._ae = self._make_ae()
                log.warning(
                    "%s: deflated C-FIND answers could not be read: asking uncompressed", label
                )
        for old in stale:
            with contextlib.suppress(Exception):
                old.abort()
        return _AskAgain(f"{label}: {what}: deflated answer {index + 1} unreadable")

    def _next_msg_id(self) -> int:
        with self._count_lock:
            self._msg_id = self._msg_id % 0xFFFF + 1
            return self._msg_id

    def _cancel(
        self, assoc: Association, responses: Iterator[Any], model: Any, msg_id: int, limit: int
    ) -> None:
        """C-CANCEL a C-FIND and drain its answers; abort when the PACS does not stop."""
        try:
            assoc.send_c_cancel(msg_id, query_model=model)
            for n, (status, _) in enumerate(responses):
                code = _status_code(status)
                if code is None or not dimse_status.is_pending(code):
                    return  # final status (0xFE00 Cancel, success or failure)
                if n > max(limit, CANCEL_DRAIN_MAX):  # answers already sent, or ignored
                    break
        except (ValueError, RuntimeError, AttributeError) as exc:
            log.debug("C-CANCEL failed: %s", exc)
        if assoc.is_established:
            assoc.abort()

    def fetch_headers(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uids: Sequence[str] | None,
        method: Method,
    ) -> list[Dataset]:
        """Headers of the listed instances (None = whole series) by C-GET or C-MOVE."""
        if method == "c-get":
            return self._retrieve("get", study_uid, series_uid, sop_instance_uids)
        if method == "c-move":
            self._ensure_scp()
            return self._retrieve("move", study_uid, series_uid, sop_instance_uids)
        raise ValueError(f"fetch_headers cannot use {method!r}")

    def fetch_headers_many(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]], method: Method
    ) -> dict[str, list[Dataset]]:
        """Headers of listed instances of several series in one C-GET / C-MOVE.

        ``wanted`` holds (study, series, SOP Instance UIDs). Relational-style (UID lists
        above the IMAGE level): a strictly hierarchical PACS refuses it
        (``PacsOperationError``). Returns what arrived, by series; the caller checks it.
        """
        kind = self._retrieve_kind(method)
        ident = queries.retrieve_many_identifier(wanted)
        cols = [_Collector(series, set(sops)) for _, series, sops in wanted]
        got = self._retrieve_into(kind, ident, cols, strict=False, what=f"{len(cols)} series")
        return {c.series_uid: list(c.got.values()) for c in got if c.got}

    def fetch_whole_series(
        self, study_uid: str, series_uids: Sequence[str], method: Method
    ) -> dict[str, list[Dataset]]:
        """Every instance of several series of one study in one C-GET / C-MOVE.

        A SERIES-level retrieve with a UID list, which hierarchical PACS accept too
        (PS3.4 C.4.2.2.1). Returns what arrived, by series; the caller checks the counts.
        """
        kind = self._retrieve_kind(method)
        ident = queries.series_retrieve_identifier(study_uid, series_uids)
        cols = [_Collector(series, None) for series in dict.fromkeys(series_uids)]
        what = f"{len(cols)} series of study {study_uid}"
        got = self._retrieve_into(kind, ident, cols, strict=False, what=what)
        return {c.series_uid: list(c.got.values()) for c in got if c.got}

    def _retrieve_kind(self, method: Method) -> str:
        """ "get" or "move" for ``method`` (our Storage SCP started for C-MOVE)."""
        if method not in ("c-get", "c-move"):
            raise ValueError(f"cannot retrieve files with {method!r}")
        if method == "c-move":
            self._ensure_scp()
            return "move"
        return "get"

    def _retrieve(
        self, kind: str, study_uid: str, series_uid: str, sop_uids: Sequence[str] | None
    ) -> list[Dataset]:
        ident = queries.retrieve_identifier(study_uid, series_uid, sop_uids)
        col = _Collector(series_uid, set(sop_uids) if sop_uids else None)
        (done,) = self._retrieve_into(kind, ident, [col], strict=True, what=series_uid)
        return list(done.got.values())

    def _retrieve_into(
        self, kind: str, ident: Dataset, template: list[_Collector], *, strict: bool, what: str
    ) -> list[_Collector]:
        name = f"C-{kind.upper()}"
        label = self.config.label
        move_ae = self.config.move_ae or self.config.calling_ae

        def op(assoc: Association) -> list[_Collector]:
            tally = _TALLY.get()
            cols = [_Collector(c.series_uid, c.wanted, tally=tally) for c in template]
            with self._lock:
                for col in cols:
                    self._collectors.setdefault(col.series_uid, []).append(col)
            old_timeout = assoc.dimse_timeout
            assoc.dimse_timeout = max(self.config.dimse_timeout_s, self.config.move_timeout_s)
            try:
                self._count(kind)
                try:
                    if kind == "get":
                        responses = assoc.send_c_get(
                            ident, StudyRootQueryRetrieveInformationModelGet
                        )
                    else:
                        responses = assoc.send_c_move(
                            ident, move_ae, StudyRootQueryRetrieveInformationModelMove
                        )
                    final: int | None = None
                    last: Dataset | None = None
                    for status, _ in responses:
                        code = _status_code(status)
                        if code is None:
                            raise PacsTimeoutError(
                                f"{label}: {name}: no response (timeout or abort)"
                            )
                        last = status
                        if dimse_status.is_pending(code):
                            continue
                        final = code
                        break
                except (ValueError, RuntimeError) as exc:
                    if not assoc.is_established:
                        raise PacsTimeoutError(
                            f"{label}: {name}: association lost ({exc})"
                        ) from exc
                    raise PacsOperationError(
                        f"{label}: {name} not accepted by the PACS ({exc})"
                    ) from exc
                if final is None:
                    raise PacsTimeoutError(f"{label}: {name}: no final status")
                if final == dimse_status.MOVE_DESTINATION_UNKNOWN:
                    raise PacsOperationError(
                        f"{label}: C-MOVE destination {move_ae!r} unknown to the PACS: register it "
                        f"with this host and port {self.move_port_bound or self.config.move_port}",
                        status=final,
                    )
                if final != dimse_status.SUCCESS and not dimse_status.is_warning(final):
                    raise _status_error(name, final, last)
                missing = sum(len(col.missing()) for col in cols)
                if missing and strict:
                    raise PacsOperationError(
                        f"{label}: {name} ended with status 0x{final:04X} but {missing} "
                        f"instance(s) of series {what} did not arrive",
                        status=final,
                    )
                return cols
            finally:
                assoc.dimse_timeout = old_timeout
                with self._lock:
                    for col in cols:
                        lst = self._collectors.get(col.series_uid, [])
                        if col in lst:
                            lst.remove(col)
                        if not lst:
                            self._collectors.pop(col.series_uid, None)

        return self._call(f"{name} {what}", op)

    def _ensure_scp(self) -> None:
        """Start our Storage SCP for C-MOVE results, once per client."""
        with self._lock:
            if self._stop.is_set():  # never after close(): nothing would stop it
                raise PacsTimeoutError(f"{self.config.label}: client closed")
            if self._server is not None:
                return
            c = self.config
            ae = AE(ae_title=c.move_ae or c.calling_ae)
            ae.network_timeout = c.network_timeout_s
            ae.acse_timeout = c.acse_timeout_s
            ae.dimse_timeout = c.dimse_timeout_s
            ae.maximum_associations = max(4, 2 * c.max_concurrent)
            ae.add_supported_context(Verification)
            for uid in STORAGE_CLASSES:
                ae.add_supported_context(uid, TRANSFER_SYNTAXES)
            handlers: list[Any] = [
                (evt.EVT_C_STORE, self._on_store),
                (evt.EVT_DATA_RECV, self._on_data),
                (evt.EVT_DATA_SENT, self._on_sent),
                (evt.EVT_CONN_OPEN, self._on_inbound),
                (evt.EVT_CONN_CLOSE, self._on_close),
            ]
            try:
                server = ae.start_server(
                    (c.move_bind, c.move_port), block=False, evt_handlers=handlers
                )
            except OSError as exc:
                raise PacsOperationError(
                    f"cannot listen on {c.move_bind}:{c.move_port} for C-MOVE results ({exc}): "
                    "is another program using pacs.move_port?"
                ) from exc
            self._server = server
            self.move_port_bound = int(server.server_address[1])
            log.debug(
                "Storage SCP for C-MOVE listening on %s:%d", c.move_bind, self.move_port_bound
            )

    # -- probe -------------------------------------------------------------------------
    def probe(
        self, sample: tuple[str, str] | None = None, *, thorough: bool = False
    ) -> Capabilities:
        """C-ECHO, then test IMAGE-level timing, C-GET and C-MOVE on ``sample`` (study, series).

        When IMAGE-level C-FIND answers the timing tags, C-GET / C-MOVE are not tried (no
        instance moves at all) unless ``thorough``: they are then only fallbacks, tried in
        order when a series needs them, and both are reported as usable.
        """
        self.echo()
        if sample is None:
            return Capabilities(echo=True, notes=("no sample series to test retrieval with",))
        study_uid, series_uid = sample
        notes: list[str] = []
        responses = self.find("IMAGE", queries.image_query(study_uid, series_uid, timing=True))
        timing = any(queries.has_timing(r) for r in responses)
        notes.append(
            "IMAGE-level C-FIND returns AcquisitionTime"
            if timing
            else "IMAGE-level C-FIND does not return AcquisitionTime"
        )
        uids = [u for u in (queries.sop_uid(r) for r in responses) if u]
        ok: dict[str, bool] = {"c-get": False, "c-move": False}
        if timing and not thorough:
            notes.append("C-GET / C-MOVE not tested: only fallbacks here")
            return Capabilities(
                echo=True, image_find_timing=True, c_get=True, c_move=True, notes=tuple(notes)
            )
        if not uids:
            notes.append("no instance found in the sample series: C-GET / C-MOVE not tested")
        for method in ("c-get", "c-move"):
            if not uids:
                break
            if method == "c-move" and not self.config.move_port:
                # an ephemeral port cannot be registered at the PACS
                notes.append("C-MOVE not tested (pacs.move_port = 0)")
                continue
            try:
                got = self.fetch_headers(study_uid, series_uid, uids[:1], method)  # type: ignore[arg-type]
                ok[method] = len(got) == 1
                notes.append(
                    f"{method.upper()} works"
                    if ok[method]
                    else f"{method.upper()} delivered nothing"
                )
            except PacsError as exc:
                notes.append(f"{method.upper()} refused: {exc}")
        if self.closed:
            # closed meanwhile (Ctrl-C): what failed says nothing of the PACS, remember nothing
            raise PacsTimeoutError(f"{self.config.label}: client closed during the probe")
        return Capabilities(
            echo=True,
            image_find_timing=timing,
            c_get=ok["c-get"],
            c_move=ok["c-move"],
            notes=tuple(notes),
        )

    # -- end ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release pooled associations and stop the Storage SCP (again: nothing).

        Operations in flight elsewhere end at their next request (``client closed``).
        """
        with self._lock:  # with _ensure_scp's check: no Storage SCP starts after this
            if self._stop.is_set():
                return
            self._stop.set()
            idle, self._idle = [a for a, _ in self._idle], []
            server, self._server = self._server, None
        for assoc in idle:
            try:
                if assoc.is_established:
                    assoc.release()
            except Exception as exc:  # closing must not fail the run
                log.debug("release failed: %s", exc)
        if server is not None:
            server.shutdown()
        c = self._counters
        log.info(
            "PACS %s: %d association(s), %d DIMSE ops, %d retries (%d busy, %d timeouts), "
            "%d instances / %.1f MB received",
            self.config.label,
            c.associations,
            c.dimse_ops,
            c.retries,
            c.throttled,
            c.timeouts,
            c.instances_received,
            c.bytes_received / 1e6,
        )

    def __enter__(self) -> DimseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
