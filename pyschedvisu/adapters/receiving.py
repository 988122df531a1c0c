"""What a client did and what reached it: counters per day, and C-STORE'd headers to their askers.

:class:`Counting` keeps a client's :class:`OpCounters` and, for the caller's context (one day
of several sharing the client: :meth:`Counting.tally`), the same counts on its behalf, bytes
received included (an association's bytes belong to whoever leased it; a C-MOVE delivery's to
whoever its first instance was for). :class:`Receiver` hands the headers C-STORE'd to us (by
C-GET on our association, or by C-MOVE to our own Storage SCP, which it runs) to the
operations waiting for them, parsed in memory up to the pixel data, and runs the C-GET /
C-MOVE exchange that makes them come.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pyschedvisu.adapters.dicomnet import (
    STORAGE_CLASSES,
    TRANSFER_SYNTAXES,
    decode_header,
    nodelay,
    quickack,
    status_code,
    status_error,
)
from pyschedvisu_core import status as dimse_status
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import PacsOperationError, PacsTimeoutError
from pyschedvisu_core.transport import OpCounters

log = logging.getLogger("pyschedvisu.pacs")

#: The counters of the caller's context (see :meth:`Counting.tally`).
_TALLY: contextvars.ContextVar[OpCounters | None] = contextvars.ContextVar(
    "pyschedvisu_dimse_tally", default=None
)


class Counting:
    """A client's counters, and the same counts for each caller's context (thread-safe)."""

    def __init__(self) -> None:
        self.counters = OpCounters()
        self._lock = threading.Lock()
        #: whose operations the data of an association belongs to (leased ones, C-MOVE
        #: deliveries once their first instance told), and bytes not yet attributed
        self._owner: dict[Any, OpCounters | None] = {}
        self._unowned: dict[Any, int] = {}

    @staticmethod
    def current() -> OpCounters | None:
        """The tally of the caller's context (None outside :meth:`tally`)."""
        return _TALLY.get()

    @contextmanager
    def tally(self) -> Iterator[OpCounters]:
        """Counters of what this context asks (threads started with a copy of it included)."""
        counters = OpCounters()
        token = _TALLY.set(counters)
        try:
            yield counters
        finally:
            _TALLY.reset(token)

    def count(
        self, name: str, n: int = 1, *, owner: OpCounters | None = None, context: bool = True
    ) -> None:
        """Count ``n`` in the client's counters, and in ``owner`` or the context's tally."""
        into = owner if owner is not None else (_TALLY.get() if context else None)
        with self._lock:
            setattr(self.counters, name, getattr(self.counters, name) + n)
            if into is not None:
                setattr(into, name, getattr(into, name) + n)

    def received(self, assoc: Any, n: int) -> None:
        """``n`` bytes arrived on ``assoc``: its owner's, or kept until it has one."""
        with self._lock:
            self.counters.bytes_received += n
            if assoc in self._owner:
                owner = self._owner[assoc]
                if owner is not None:
                    owner.bytes_received += n
            else:  # its owner is not known yet (a C-MOVE delivery before its first C-STORE)
                self._unowned[assoc] = self._unowned.get(assoc, 0) + n

    def own(self, assoc: Any, tally: OpCounters | None) -> None:
        """Attribute ``assoc``'s data (and what arrived before) to ``tally``."""
        with self._lock:
            if assoc in self._owner:
                return
            self._owner[assoc] = tally
            pending = self._unowned.pop(assoc, 0)
            if tally is not None:
                tally.bytes_received += pending
                if assoc.is_acceptor:  # a C-MOVE delivery
                    tally.inbound_associations += 1

    def disown(self, assoc: Any) -> None:
        """Forget whose ``assoc`` is (lease over, or connection closed)."""
        with self._lock:
            self._owner.pop(assoc, None)
            self._unowned.pop(assoc, None)


@dataclass
class Collector:
    """The instances of one series an operation waits for, and what arrived of them."""

    series_uid: str
    wanted: set[str] | None  # None = every instance of the series
    got: dict[str, Dataset] = field(default_factory=dict)
    tally: OpCounters | None = None  # of the caller that asked for these instances

    def missing(self) -> set[str]:
        return set() if self.wanted is None else self.wanted - set(self.got)


class Receiver:
    """C-STORE'd headers to the collectors waiting for them; our Storage SCP for C-MOVE."""

    def __init__(self, counting: Counting) -> None:
        self.counting = counting
        self._lock = threading.Lock()
        self._collectors: dict[str, list[Collector]] = {}
        self._server: Any = None
        self._closed = False
        self.port_bound: int | None = None

    # -- who waits ----------------------------------------------------------------------
    @contextmanager
    def expecting(self, template: Sequence[Collector]) -> Iterator[list[Collector]]:
        """Fresh collectors like ``template`` (for the caller's tally), registered meanwhile."""
        tally = Counting.current()
        cols = [Collector(c.series_uid, c.wanted, tally=tally) for c in template]
        with self._lock:
            for col in cols:
                self._collectors.setdefault(col.series_uid, []).append(col)
        try:
            yield cols
        finally:
            with self._lock:
                for col in cols:
                    lst = self._collectors.get(col.series_uid, [])
                    if col in lst:
                        lst.remove(col)
                    if not lst:
                        self._collectors.pop(col.series_uid, None)

    # -- events -------------------------------------------------------------------------
    def handlers(self) -> list[Any]:
        """Event handlers of our own associations (C-GET delivers on them)."""
        return [
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_DATA_RECV, self.on_data),
            (evt.EVT_DATA_SENT, self.on_sent),
            (evt.EVT_CONN_CLOSE, self.on_close),
        ]

    def on_data(self, event: Any) -> None:
        self.counting.received(event.assoc, len(event.data))
        quickack(event.assoc)

    def on_close(self, event: Any) -> None:
        self.counting.disown(event.assoc)

    def on_sent(self, event: Any) -> None:
        quickack(event.assoc)  # sending re-enables delayed ACKs (Linux "pingpong" mode)

    def on_inbound(self, event: Any) -> None:
        # its owner is known at its first C-STORE
        self.counting.count("inbound_associations", context=False)
        nodelay(event.assoc)

    def on_store(self, event: Any) -> int:
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
            self.counting.own(event.assoc, owner)
        self.counting.count("instances_received", owner=owner, context=False)
        for col in targets:
            if col.wanted is None or sop in col.wanted:
                col.got[sop] = ds
        if not targets:
            log.debug("C-STORE: instance of series %s nobody waits for", series_uid)
        return dimse_status.SUCCESS

    # -- the C-GET / C-MOVE exchange --------------------------------------------------------
    def retrieve(
        self,
        assoc: Any,
        kind: str,
        ident: Dataset,
        cols: list[Collector],
        *,
        label: str,
        move_ae: str,
        move_port: int,
        wait_s: float,
        strict: bool,
        what: str,
    ) -> list[Collector]:
        """One C-GET (``kind`` "get") or C-MOVE ("move") of ``ident`` on ``assoc``, into ``cols``.

        The instances arrive through :meth:`on_store` (C-GET on ``assoc`` itself, C-MOVE to
        our Storage SCP as ``move_ae`` on ``move_port``) while the PACS answers pending
        statuses, each awaited up to ``wait_s``. ``strict``: every wanted instance must have
        arrived (else :class:`PacsOperationError`).
        """
        name = f"C-{kind.upper()}"
        old_timeout = assoc.dimse_timeout
        assoc.dimse_timeout = wait_s
        try:
            self.counting.count(kind)
            try:
                if kind == "get":
                    responses = assoc.send_c_get(ident, StudyRootQueryRetrieveInformationModelGet)
                else:
                    responses = assoc.send_c_move(
                        ident, move_ae, StudyRootQueryRetrieveInformationModelMove
                    )
                final: int | None = None
                last: Dataset | None = None
                for status, _ in responses:
                    code = status_code(status)
                    if code is None:
                        raise PacsTimeoutError(f"{label}: {name}: no response (timeout or abort)")
                    last = status
                    if dimse_status.is_pending(code):
                        continue
                    final = code
                    break
            except (ValueError, RuntimeError) as exc:
                if not assoc.is_established:
                    raise PacsTimeoutError(f"{label}: {name}: association lost ({exc})") from exc
                raise PacsOperationError(
                    f"{label}: {name} not accepted by the PACS ({exc})"
                ) from exc
            if final is None:
                raise PacsTimeoutError(f"{label}: {name}: no final status")
            if final == dimse_status.MOVE_DESTINATION_UNKNOWN:
                raise PacsOperationError(
                    f"{label}: C-MOVE destination {move_ae!r} unknown to the PACS: register it "
                    f"with this host and port {move_port}",
                    status=final,
                )
            if final != dimse_status.SUCCESS and not dimse_status.is_warning(final):
                raise status_error(name, final, last)
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

    # -- our Storage SCP for C-MOVE -----------------------------------------------------
    def ensure_scp(
        self,
        *,
        ae_title: str,
        bind: str,
        port: int,
        timeouts: tuple[float, float, float],
        max_associations: int,
    ) -> bool:
        """Start the Storage SCP once (False after :meth:`close`: nothing would stop it).

        ``timeouts``: network, ACSE and DIMSE (s).
        """
        with self._lock:
            if self._closed:
                return False
            if self._server is not None:
                return True
            ae = AE(ae_title=ae_title)
            ae.network_timeout, ae.acse_timeout, ae.dimse_timeout = timeouts
            ae.maximum_associations = max_associations
            ae.add_supported_context(Verification)
            for uid in STORAGE_CLASSES:
                ae.add_supported_context(uid, TRANSFER_SYNTAXES)
            handlers = [*self.handlers(), (evt.EVT_CONN_OPEN, self.on_inbound)]
            try:
                server = ae.start_server((bind, port), block=False, evt_handlers=handlers)
            except OSError as exc:
                raise PacsOperationError(
                    f"cannot listen on {bind}:{port} for C-MOVE results ({exc}): "
                    "is another program using pacs.move_port?"
                ) from exc
            self._server = server
            self.port_bound = int(server.server_address[1])  # type: ignore[union-attr]
            log.debug("Storage SCP for C-MOVE listening on %s:%d", bind, self.port_bound)
            return True

    def close(self) -> None:
        """Stop the Storage SCP; none starts after this."""
        with self._lock:
            self._closed = True
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()


__all__ = ["Collector", "Counting", "Receiver"]
