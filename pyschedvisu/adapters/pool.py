"""The associations of one client to one PACS: made on demand, reused, released when idle.

At most ``max_concurrent`` are open at once; an association that failed mid-operation is
aborted, not reused; one that the PACS released or aborted while idle is replaced. When the
whole client has been idle ``idle_release_s``, the pool releases them (pynetdicom polls each
open association in two threads: kept open between runs, they would take CPU from what
follows a retrieval). The client's circuit breaker aborts the leased ones at once
(:meth:`AssociationPool.abort_leased`) so that operations blocked on a dead PACS end now.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.association import Association

from pyschedvisu.adapters.dicomnet import nodelay
from pyschedvisu_core import diagnosis
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsError,
    PacsThrottledError,
    PacsTimeoutError,
    PacsUnreachableError,
)

log = logging.getLogger("pyschedvisu.pacs")

#: A-ASSOCIATE-RJ result "rejected-transient": the PACS is there, only not now (load).
REJECTED_TRANSIENT = 0x02


class AssociationPool:
    """Leases established associations (thread-safe); see the module docstring."""

    def __init__(
        self,
        *,
        label: str,
        host: str,
        port: int,
        called_ae: str,
        calling_ae: str,
        move_port: int = 0,
        section: str = "pacs",
        max_concurrent: int,
        idle_release_s: float,
        make_ae: Callable[[], AE],
        handlers: Sequence[Any],
        ext_neg: Sequence[Any],
        count: Callable[[str], None],
        on_lease: Callable[[Association], None],
        on_return: Callable[[Association], None],
        on_established: Callable[[Association], None],
    ) -> None:
        self.label = label
        self._host, self._port = host, port
        self._called_ae, self._calling_ae = called_ae, calling_ae
        self._move_port = move_port
        self._section = section
        self._idle_release_s = idle_release_s
        self._make_ae = make_ae
        self._ae = make_ae()
        self._handlers = list(handlers)
        self._ext_neg = list(ext_neg)
        self._count = count
        self._on_lease, self._on_return = on_lease, on_return
        self._on_established = on_established
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        #: pooled associations and when each became idle
        self._idle: list[tuple[Association, float]] = []
        self._leased: set[Association] = set()
        self._open = 0
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()

    # -- associations -------------------------------------------------------------------
    def _associate(self) -> Association:
        holder: dict[str, Any] = {}

        def on_acse(event: Any) -> None:
            holder["primitive"] = event.primitive

        handlers = [*self._handlers, (evt.EVT_ACSE_RECV, on_acse)]
        try:
            assoc = self._ae.associate(
                self._host,
                self._port,
                ae_title=self._called_ae,
                ext_neg=list(self._ext_neg),
                evt_handlers=handlers,
            )
        except (OSError, RuntimeError, ValueError) as exc:
            raise PacsUnreachableError(f"{self.label}: cannot connect ({exc})") from exc
        self._count("associations")
        if assoc.is_established:
            nodelay(assoc)
            self._guard_reactor(assoc)
            self._on_established(assoc)
            log.debug("association to %s established", self.label)
            return assoc
        if assoc.is_rejected:
            prim = holder.get("primitive")
            result = getattr(prim, "result", None)
            why = getattr(prim, "reason_str", "") or "no reason given"
            if result == REJECTED_TRANSIENT:
                raise PacsThrottledError(f"{self.label}: association rejected for now ({why})")
            source, reason = getattr(prim, "result_source", None), getattr(prim, "diagnostic", None)
            told = diagnosis.rejected(
                result,
                source,
                reason,
                called_ae=self._called_ae,
                calling_ae=self._calling_ae,
                move_port=self._move_port,
                section=self._section,
            )
            raise AssociationRejectedError(
                f"{self.label}: {told.summary} (calling AE {self._calling_ae!r}, called AE "
                f"{self._called_ae!r}). Hint: {told.hint}",
                result=result,
                source=source,
                reason=reason,
            )
        raise PacsUnreachableError(
            f"{self.label}: no association (connection refused, timed out or aborted): "
            "check host, port and firewall"
        )

    def _guard_reactor(self, assoc: Association) -> None:
        """Keep pynetdicom's reactor thread off the answers while the association is leased.

        A request pauses the reactor (it polls the DIMSE queue, without blocking, to serve the
        peer's requests) with a handshake that can be passed: the reactor may already be past
        its pause when the request is sent, and a PACS that answers within a millisecond then
        has its answer taken by the reactor ("Received unexpected C-FIND service message"),
        dropped, and the request waits for the DIMSE timeout. Our requests read their answers
        (and the C-STORE sub-operations of a C-GET) with blocking reads; the reactor's
        non-blocking reads find nothing while the association is ours.
        """
        dimse = assoc.dimse
        get_msg = dimse.get_msg
        leased = self._leased

        def guarded(block: bool = False) -> Any:
            if not block and assoc in leased:
                return None, None
            return get_msg(block)

        dimse.get_msg = guarded  # type: ignore[method-assign]

    @contextmanager
    def lease(self) -> Iterator[Association]:
        """An established association (at most ``max_concurrent`` at once).

        Kept for reuse unless the operation timed out or the association broke.
        """
        self._slots.acquire()
        assoc: Association | None = None
        keep = False
        try:
            if self._stop.is_set():  # closed while this one waited for a slot
                raise PacsTimeoutError(f"{self.label}: client closed")
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
            with self._lock:
                self._leased.add(assoc)
            self._on_lease(assoc)
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
                self._on_return(assoc)
                with self._lock:
                    self._leased.discard(assoc)
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

    def renew(self, make_ae: Callable[[], AE] | None = None) -> None:
        """Abort the idle associations (and make new ones with ``make_ae`` from now on)."""
        with self._lock:
            stale = [a for a, _ in self._idle]
            self._idle = []
            self._open -= len(stale)
            if make_ae is not None:
                self._make_ae = make_ae
                self._ae = make_ae()
        for old in stale:
            with contextlib.suppress(Exception):
                old.abort()

    def abort_leased(self) -> int:
        """Abort the associations in use now (their operations end at once); how many.

        pynetdicom's abort stops the association but does not wake a thread waiting for its
        next DIMSE message (a frozen PACS: up to ``move_timeout_s``); its own abort indications
        wake it with an empty message (``fsm.AA_2``..``AA_4``), and so does this.
        """
        with self._lock:
            leased = list(self._leased)
        for assoc in leased:
            with contextlib.suppress(Exception):
                if assoc.is_established:
                    assoc.abort()
            with contextlib.suppress(Exception):
                assoc.dimse.msg_queue.put((None, None))
        return len(leased)

    # -- idle release -------------------------------------------------------------------
    def _start_reaper(self) -> None:
        """Start the thread releasing idle associations (caller holds ``_lock``)."""
        if self._idle_release_s <= 0 or self._reaper is not None:
            return
        self._reaper = threading.Thread(target=self._reap, name="dimse-idle-release", daemon=True)
        self._reaper.start()

    def _reap(self) -> None:
        """Release the pooled associations once the client has been idle ``idle_release_s``."""
        period = self._idle_release_s
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
            _release(old, "idle release")
            if old:
                log.debug("%d idle association(s) released", len(old))

    def close(self) -> None:
        """Release the idle associations; leases still out are aborted when they return."""
        with self._lock:
            self._stop.set()
            idle, self._idle = [a for a, _ in self._idle], []
        _release(idle, "release")


def _release(assocs: list[Association], what: str) -> None:
    for assoc in assocs:
        try:
            if assoc.is_established:
                assoc.release()
        except Exception as exc:  # releasing must never fail a run
            log.debug("%s failed: %s", what, exc)


__all__ = ["REJECTED_TRANSIENT", "AssociationPool"]
