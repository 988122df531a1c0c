"""The pynetdicom implementation of :class:`pyschedvisu_core.transport.PacsClient`.

Kind to the PACS (DOMAIN §2.4), and quick to give up on a dead one. A :class:`DimseClient`
composes, for one PACS:

- an association pool (:mod:`.pool`): at most ``max_concurrent`` associations, reused;
- a pacer (:mod:`.pacing`): the requests in flight and per second adapt to what the PACS
  answers (AIMD: halved on a "busy" answer — 0xC336, 0xA7xx, an association rejected for
  load — raised again slowly while it answers); a busy answer is asked again after a backoff
  for as long as the caller's deadline allows (a day's), not a fixed number of times;
- a circuit breaker (:mod:`.pacing`): ``breaker_failures`` connection refusals / timeouts in
  a row, whatever asked, and every operation fails at once ("PACS unreachable since ..."),
  leased associations are aborted, until a C-ECHO answers again after ``breaker_cooldown_s``;
- retries with exponential backoff and jitter on timeouts and aborted associations (a fresh
  association is made), ``op_retries`` times.

Headers only: C-STORE'd datasets (C-GET on the same association, C-MOVE to our own Storage
SCP) are parsed in memory up to the pixel data and never written to disk. C-FIND answers come
deflated (PS3.5 A.5) from a PACS that accepts it. The DICOM plumbing shared with the demo
PACS is in :mod:`.dicomnet`; the C-GET / C-MOVE operations in :mod:`.retrieve`, the Modality
Worklist C-FIND in :mod:`.worklist`, the probe in :mod:`.probe`.
"""

from __future__ import annotations

import contextvars
import logging
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom import AE, build_role
from pynetdicom.association import Association
from pynetdicom.sop_class import (
    ModalityWorklistInformationFind,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pyschedvisu.adapters import retrieve
from pyschedvisu.adapters.dicomnet import (
    FIND_MODELS,
    STORAGE_CLASSES,
    TRANSFER_SYNTAXES,
    finds_deflated,
    relational_query_items,
    status_code,
    status_error,
)
from pyschedvisu.adapters.pacing import Backoff, Breaker, Outcome, Pacer
from pyschedvisu.adapters.pool import AssociationPool
from pyschedvisu.adapters.probe import probe
from pyschedvisu.adapters.receiving import Counting, Receiver
from pyschedvisu_core import queries
from pyschedvisu_core import status as dimse_status
from pyschedvisu_core.errors import (
    PacsAnswerError,
    PacsError,
    PacsOperationError,
    PacsThrottledError,
    PacsTimeoutError,
    PacsUnreachableError,
)
from pyschedvisu_core.transport import Capabilities, Method, OpCounters, Pace

log = logging.getLogger("pyschedvisu.pacs")

T = TypeVar("T")

SWITCH_INTERVAL_S = 0.001
#: Answers read after a C-CANCEL (already on their way) before giving up and aborting.
CANCEL_DRAIN_MAX = 10_000


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
    #: refusals / timeouts in a row that open the circuit; seconds before a C-ECHO probes
    breaker_failures: int = 5
    breaker_cooldown_s: float = 10.0
    #: the config section these settings come from (``pacs``, ``worklist``): errors name its keys
    section: str = "pacs"

    @property
    def label(self) -> str:
        return f"{self.called_ae}@{self.host}:{self.port}"


class _AskAgain(PacsTimeoutError):
    """An operation to send again at once on a fresh association (its own is aborted)."""


#: Until when "busy" answers are asked again in the caller's context (see ``deadline``).
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "pyschedvisu_dimse_deadline", default=None
)


class DimseClient:
    """A pynetdicom client to one PACS; thread-safe, shared by the workers of a run."""

    def __init__(
        self,
        config: DimseConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._counting = Counting()
        self._receiver = Receiver(self._counting)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: set while no operation may start (closed, or the circuit open): waits end at once
        self._halt = threading.Event()
        self._rng = rng or random.Random()
        self._clock = clock
        self._msg_id = 0
        #: C-FIND answers asked deflated (off for good once a PACS's could not be read)
        self.deflate = config.deflate_answers
        #: whether the last association opened gets C-FIND answers deflated (None: none yet)
        self.answers_deflated: bool | None = None
        # pynetdicom runs two polling threads per association; with the default 5 ms GIL
        # switch interval every PDU waits for them (x4 slower C-FIND with many answers).
        if sys.getswitchinterval() > SWITCH_INTERVAL_S:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        roles: list[Any] = [build_role(uid, scp_role=True) for uid in STORAGE_CLASSES]
        self._pacer = Pacer(config.max_concurrent, config.max_ops_per_s, label=config.label)
        self._breaker = Breaker(config.label, config.breaker_failures, config.breaker_cooldown_s)
        self._backoff = Backoff(
            config.backoff_base_s, config.backoff_max_s, config.backoff_jitter_s
        )
        self._pool = AssociationPool(
            label=config.label,
            host=config.host,
            port=config.port,
            called_ae=config.called_ae,
            calling_ae=config.calling_ae,
            move_port=config.move_port,
            section=config.section,
            max_concurrent=config.max_concurrent,
            idle_release_s=config.idle_release_s,
            make_ae=self._make_ae,
            handlers=self._receiver.handlers(),
            ext_neg=roles + relational_query_items(),
            count=self._count,
            on_lease=lambda assoc: self._counting.own(assoc, Counting.current()),
            on_return=self._counting.disown,
            on_established=self._on_established,
        )

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
        return self._counting.counters

    @property
    def move_port_bound(self) -> int | None:
        """The port our Storage SCP listens on for C-MOVE (None: not started)."""
        return self._receiver.port_bound

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: operations fail with ``client closed``."""
        return self._stop.is_set()

    @property
    def pace(self) -> Pace:
        """The pace the pacer runs at now (see :class:`~.pacing.Pacer`)."""
        return self._pacer.pace

    def resume_pace(self, pace: Pace) -> None:
        """Start from ``pace`` (what an earlier run settled on), within the configured ceilings."""
        self._pacer.start_from(pace)

    def tally(self) -> AbstractContextManager[OpCounters]:
        """Counters of what this context asks (one day of several sharing the client).

        Everything counted in :attr:`counters` while the block runs, on behalf of this
        context (threads started with a copy of it included), is counted here too: exact
        per-day figures where a snapshot difference would also hold the other days'.
        """
        return self._counting.tally()

    @contextmanager
    def deadline(self, at: float | None) -> Iterator[None]:
        """Busy answers to operations of this context are asked again until ``at``
        (``time.monotonic()``), as often as needed; without one, ``op_retries`` times."""
        token = _DEADLINE.set(at)
        try:
            yield
        finally:
            _DEADLINE.reset(token)

    def _count(
        self,
        name: str,
        n: int = 1,
        *,
        owner: OpCounters | None = None,
        context: bool = True,
    ) -> None:
        self._counting.count(name, n, owner=owner, context=context)

    def _on_established(self, assoc: Association) -> None:
        self.answers_deflated = finds_deflated(assoc, FIND_MODELS.values())
        self._breaker.success()  # the PACS is there: a refusal streak ends

    # -- the circuit breaker -----------------------------------------------------------
    def _admit(self) -> None:
        """Raise when no operation may start: closed, or the circuit open (a half-open
        caller probes with C-ECHO first, and goes on when it answers)."""
        if self._stop.is_set():
            raise PacsTimeoutError(f"{self.config.label}: client closed")
        if self._breaker.admit():
            return
        try:
            self._echo_once()
        except PacsThrottledError:
            pass  # rejected for load: it answers, the pacer deals with the load
        except PacsError as exc:
            self._breaker.failure(f"C-ECHO: {exc}")
            raise self._breaker.error() from exc
        except BaseException:
            self._breaker.failure("C-ECHO interrupted")
            raise
        self._breaker.success()
        if not self._stop.is_set():
            self._halt.clear()

    def _trip(self) -> None:
        """The circuit just opened: every wait ends and every leased association is aborted."""
        self._halt.set()
        self._pacer.wake()
        aborted = self._pool.abort_leased()
        if aborted:
            log.debug("%s: %d association(s) in use aborted", self.config.label, aborted)

    # -- one operation -----------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[Association], T], *, retries: int | None = None) -> T:
        """Run one DIMSE operation: admitted by the breaker, paced, retried (see module)."""
        c = self.config
        limit = c.op_retries if retries is None else retries
        until = _DEADLINE.get()
        failures = busy = 0
        while True:
            self._admit()
            ticket = self._pacer.acquire(self._halt, until)
            if ticket is None:
                self._admit()  # closed, or the circuit opened: say so
                raise PacsThrottledError(f"{c.label}: {what}: still waiting at the deadline")
            outcome: Outcome = "other"
            t0 = time.monotonic()
            try:
                with self._pool.lease() as assoc:
                    result = fn(assoc)
                outcome = "ok"
            except _AskAgain as exc:
                # without deflate now: at most once per association that negotiated it
                if self._stop.is_set():
                    raise
                self._count("retries")
                log.debug("%s: %s; asked again", what, exc)
                continue
            except PacsThrottledError as exc:
                outcome = "busy"
                self._count("throttled")
                delay = self._backoff.delay(busy, self._rng)
                if self._stop.is_set():
                    raise
                if until is None and busy >= limit:
                    log.debug("%s: giving up after %d retries: %s", what, busy, exc)
                    raise
                if until is not None and self._clock() + delay >= until:
                    raise PacsThrottledError(
                        f"{exc}; still busy after {busy} retries at the deadline", status=exc.status
                    ) from exc
                busy += 1
            except (PacsTimeoutError, PacsUnreachableError) as exc:
                if self._stop.is_set():
                    raise  # closed meanwhile: no retry
                if isinstance(exc, PacsTimeoutError):
                    self._count("timeouts")
                # out of retries on refusals: the PACS is down for every request, not this one
                give_up = failures >= limit and isinstance(exc, PacsUnreachableError)
                if self._breaker.failure(str(exc), give_up=give_up):
                    self._trip()
                if self._breaker.is_open:
                    raise self._breaker.error() from exc
                if failures >= limit:
                    log.debug("%s: giving up after %d retries: %s", what, failures, exc)
                    raise
                delay = self._backoff.delay(failures, self._rng)
                failures += 1
            finally:
                self._pacer.release(ticket, outcome)
            if outcome == "ok":
                self._breaker.success()
                log.debug("%s: ok in %.3f s", what, time.monotonic() - t0)
                return result
            self._count("retries")
            log.debug("%s: retry in %.2f s (%d busy, %d failures)", what, delay, busy, failures)
            self._halt.wait(delay)

    # -- operations --------------------------------------------------------------------
    def _echo_op(self, assoc: Association) -> None:
        self._count("echo")
        try:
            status = assoc.send_c_echo()
        except (ValueError, RuntimeError) as exc:
            raise PacsOperationError(f"{self.config.label}: C-ECHO not accepted ({exc})") from exc
        code = status_code(status)
        if code is None:
            raise PacsTimeoutError(f"{self.config.label}: no C-ECHO response")
        if code != 0:
            raise status_error("C-ECHO", code, status)

    def _echo_once(self) -> None:
        """One C-ECHO, outside the breaker and the pacer (the half-open probe)."""
        with self._pool.lease() as assoc:
            self._echo_op(assoc)

    def echo(self) -> None:
        """C-ECHO (no retry on unreachable: answers fast)."""
        self._call("C-ECHO", self._echo_op, retries=0)

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
                    code = status_code(status)
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
                    raise status_error(f"C-FIND {level}", code, status)
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
        if not finds_deflated(assoc, (model,)):
            assoc.abort()  # the rest of its answers would reach the next operation
            return PacsAnswerError(f"{label}: {what}: answer {index + 1} could not be decoded")
        with self._lock:
            switch = self.deflate
            self.deflate = False
        if switch:
            log.warning("%s: deflated C-FIND answers could not be read: asking uncompressed", label)
        self._pool.renew(self._make_ae if switch else None)
        return _AskAgain(f"{label}: {what}: deflated answer {index + 1} unreadable")

    def _next_msg_id(self) -> int:
        with self._lock:
            self._msg_id = self._msg_id % 0xFFFF + 1
            return self._msg_id

    def _cancel(
        self, assoc: Association, responses: Iterator[Any], model: Any, msg_id: int, limit: int
    ) -> None:
        """C-CANCEL a C-FIND and drain its answers; abort when the PACS does not stop."""
        try:
            assoc.send_c_cancel(msg_id, query_model=model)
            for n, (status, _) in enumerate(responses):
                code = status_code(status)
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
        """Headers of the listed instances (None = whole series) by C-GET or C-MOVE
        (:func:`.retrieve.fetch_headers`)."""
        return retrieve.fetch_headers(self, study_uid, series_uid, sop_instance_uids, method)

    def fetch_headers_many(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]], method: Method
    ) -> dict[str, list[Dataset]]:
        """Headers of listed instances of several series in one C-GET / C-MOVE
        (:func:`.retrieve.fetch_headers_many`)."""
        return retrieve.fetch_headers_many(self, wanted, method)

    def fetch_whole_series(
        self, study_uid: str, series_uids: Sequence[str], method: Method
    ) -> dict[str, list[Dataset]]:
        """Every instance of several series of one study in one C-GET / C-MOVE
        (:func:`.retrieve.fetch_whole_series`)."""
        return retrieve.fetch_whole_series(self, study_uid, series_uids, method)

    def _ensure_scp(self) -> None:
        """Start our Storage SCP for C-MOVE results, once per client."""
        c = self.config
        started = self._receiver.ensure_scp(
            ae_title=c.move_ae or c.calling_ae,
            bind=c.move_bind,
            port=c.move_port,
            timeouts=(c.network_timeout_s, c.acse_timeout_s, c.dimse_timeout_s),
            max_associations=max(4, 2 * c.max_concurrent),
        )
        if not started or self._stop.is_set():  # never after close(): nothing would stop it
            raise PacsTimeoutError(f"{c.label}: client closed")

    # -- probe -------------------------------------------------------------------------
    def probe(
        self, sample: tuple[str, str] | None = None, *, thorough: bool = False
    ) -> Capabilities:
        """What this PACS accepts (see :func:`.probe.probe`)."""
        return probe(self, sample, thorough=thorough, move_port=self.config.move_port)

    # -- end ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release pooled associations and stop the Storage SCP (again: nothing).

        Operations in flight elsewhere end at their next request (``client closed``).
        """
        with self._lock:  # with _ensure_scp's check: no Storage SCP starts after this
            if self._stop.is_set():
                return
            self._stop.set()
            self._halt.set()
        self._pacer.wake()
        self._pool.close()
        self._receiver.close()
        c = self.counters
        log.info(
            "PACS %s: %d association(s), %d DIMSE ops, %d retries (%d busy, %d timeouts), "
            "%d instances / %.1f MB received; pace at the end: %s",
            self.config.label,
            c.associations,
            c.dimse_ops,
            c.retries,
            c.throttled,
            c.timeouts,
            c.instances_received,
            c.bytes_received / 1e6,
            self._pacer.pace,
        )

    def __enter__(self) -> DimseClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
