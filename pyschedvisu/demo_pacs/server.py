"""The demo PACS: a pynetdicom Query/Retrieve SCP over the files of a data directory.

It answers C-ECHO, C-FIND (Patient Root and Study Root, PATIENT/STUDY/SERIES/IMAGE),
C-GET (C-STORE on the same association) and C-MOVE (C-STORE on a new association to a
registered destination), and, for a department with an appointment book, C-FIND on the
Modality Worklist (:mod:`pyschedvisu.demo_pacs.worklist`). :class:`Behaviour` switches make it act like the hospital PACS of
DOMAIN.md §2.4 (C-GET refused, IMAGE level without timing tags, 0xC336 when pushed too hard)
and inject faults; it is read at every association / operation, so it can change while the
server runs. Every association is served in its own thread by pynetdicom: the counters and
the throttle are protected by one lock. Its Q/R requests pass :meth:`DemoPacs.admit` first
(:mod:`pyschedvisu.demo_pacs.associations`).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, build_context, evt
from pynetdicom.dimse_primitives import C_FIND, C_GET
from pynetdicom.dsutils import decode
from pynetdicom.presentation import PresentationContext, StoragePresentationContexts
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

from pyschedvisu.adapters.dicomnet import nodelay
from pyschedvisu.demo_pacs.associations import AssociationServer, GatedHandler
from pyschedvisu.demo_pacs.behaviour import Behaviour, OpRecord, PacsStats, Throttle
from pyschedvisu.demo_pacs.index import UNIQUE_KEY, PacsIndex
from pyschedvisu.demo_pacs.indexing import value_str
from pyschedvisu.demo_pacs.matching import compile_query, is_universal
from pyschedvisu.demo_pacs.worklist import DemoWorklist
from pyschedvisu_core import status
from pyschedvisu_core.errors import PacsError, PacsOperationError

log = logging.getLogger(__name__)


FIND_UIDS = {
    str(PatientRootQueryRetrieveInformationModelFind): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelFind): "STUDY",
}
GET_UIDS = {
    str(PatientRootQueryRetrieveInformationModelGet): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelGet): "STUDY",
}
MOVE_UIDS = {
    str(PatientRootQueryRetrieveInformationModelMove): "PATIENT",
    str(StudyRootQueryRetrieveInformationModelMove): "STUDY",
}
_UNCOMPRESSED = [str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)]
MWL_UID = str(ModalityWorklistInformationFind)


def _level(ident: Dataset, model: str) -> str:
    """The QueryRetrieveLevel of ``ident``, checked against the information ``model``."""
    level = str(ident.get("QueryRetrieveLevel", "")).strip().upper()
    if level == "PATIENT" and model == "STUDY":
        raise PacsOperationError("PATIENT level in Study Root", status=status.BAD_IDENTIFIER)
    if level not in ("PATIENT", "STUDY", "SERIES", "IMAGE", "INSTANCE"):
        raise PacsOperationError(f"bad QueryRetrieveLevel {level!r}", status=status.BAD_IDENTIFIER)
    return "IMAGE" if level == "INSTANCE" else level


def _calling_ae(assoc: Any) -> str:
    try:
        return str(assoc.requestor.ae_title or assoc.requestor.primitive.calling_ae_title).strip()
    except AttributeError:
        return ""


class DemoPacs:
    """A Q/R SCP over ``data_dir/dicom/**`` on ``host:port`` (``port=0``: a free one).

    ``move_destinations`` maps AE titles to ``(host, port)`` for C-MOVE; it may be changed
    while the server runs, and so may :attr:`behaviour`.
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        ae_title: str = "DEMOPACS",
        host: str = "127.0.0.1",
        port: int = 0,
        behaviour: Behaviour | None = None,
        move_destinations: dict[str, tuple[str, int]] | None = None,
        index: PacsIndex | None = None,
        listen_socket: socket.socket | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.ae_title = ae_title
        self.host = host
        self.port = port
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self.move_destinations: dict[str, tuple[str, int]] = dict(move_destinations or {})
        self.index = index if index is not None else PacsIndex.load(self.data_dir)
        #: a listening socket shared with other processes serving the same files (one GIL
        #: each): this one takes a new association at once only when it serves none
        self.listen_socket = listen_socket
        #: the department's RIS (its appointment book), None when it has none
        self.worklist = DemoWorklist.load(self.data_dir)
        self.stats = PacsStats()
        self._throttle = Throttle()
        self._server: Any = None
        self._ae: AE | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------------
    def start(self) -> int:
        """Start serving in background threads; return the bound port."""
        if self._server is not None:
            return self.port
        ae = AE(ae_title=self.ae_title)
        ae.maximum_associations = 64
        ae.network_timeout = 60
        ae.dimse_timeout = 60
        ae.add_supported_context(Verification)
        for uid in (*FIND_UIDS, *GET_UIDS, *MOVE_UIDS):
            ae.add_supported_context(uid)
        ae.add_supported_context(MWL_UID)
        # C-GET sends C-STORE on the same association: accept the requestor's SCP role.
        syntaxes = self._transfer_syntaxes()
        sop_classes = {str(cx.abstract_syntax) for cx in StoragePresentationContexts}
        sop_classes |= set(self.index.frame["SOPClassUID"].drop_nulls().unique().to_list())
        for uid in sorted(sop_classes):
            ae.add_supported_context(uid, syntaxes, scu_role=False, scp_role=True)
        handlers = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            (evt.EVT_SOP_EXTENDED, self._on_sop_extended),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_GET, self._on_get),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_STORE, self._on_store),
        ]
        try:
            # AE.start_server(block=False) equivalent, but polling every 50 ms instead of
            # 500 ms, so that stop() returns at once (tests start and stop many servers).
            server = ae.make_server(
                (self.host, self.port if self.listen_socket is None else 0),
                evt_handlers=handlers,
                server_class=AssociationServer,
                request_handler=GatedHandler,
            )
        except OSError as exc:
            raise PacsError(f"demo PACS cannot listen on {self.host}:{self.port}: {exc}") from exc
        server.pacs = self
        if self.listen_socket is not None:
            server.socket.close()  # the ephemeral one it was made with
            self.listen_socket.setblocking(False)
            server.socket = self.listen_socket
            server.server_address = self.listen_socket.getsockname()
            server.shared = True
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"DemoPacs@{self.ae_title}",
            daemon=True,
        )
        thread.start()
        self._ae, self._server, self._thread = ae, server, thread
        self.port = int(server.server_address[1])
        log.info(
            "demo PACS %s listening on %s:%d (%d instances)",
            self.ae_title,
            self.host,
            self.port,
            len(self.index),
        )
        return self.port

    def stop(self) -> None:
        """Stop listening and abort the associations still open."""
        server, self._server = self._server, None
        if server is None:
            return
        for assoc in list(server.active_associations):
            if assoc.dul.state_machine.current_state in ("Sta1", "Sta2"):
                # a bare TCP connection (a reachability probe) has nothing to abort: an
                # A-ABORT there is an invalid event that pynetdicom raises in its thread
                assoc.kill()
            else:
                assoc.abort()
        # socketserver's own shutdown: pynetdicom's expects a server made by start_server.
        socketserver.BaseServer.shutdown(server)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._ae is not None:
            self._ae.shutdown()

    def __enter__(self) -> DemoPacs:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self.stats.lock:
            fresh = PacsStats()
            for name in fresh.__dict__:
                if name != "lock":
                    setattr(self.stats, name, getattr(fresh, name))

    def reindex(self) -> None:
        """Pick up files added or changed under ``data_dir`` since the start."""
        self.index = PacsIndex.load(self.data_dir)
        self.worklist = DemoWorklist.load(self.data_dir)

    # -- the gate of Q/R requests (see associations.GatedAssociation) -------------------
    def admit(self, req: Any, context: PresentationContext, assoc: Any) -> int | None:
        """None when ``req`` may be served now (then :meth:`done` after it), else its status.

        Counts the request; refuses a bad retrieve identifier (before pynetdicom opens the
        C-MOVE association) and, beyond the busy limits of :attr:`behaviour`, answers 0xC336.
        """
        kind = "find" if isinstance(req, C_FIND) else "get" if isinstance(req, C_GET) else "move"
        self.stats.add(**{kind: 1})
        if kind != "find":
            # C-FIND answers its own identifier errors from the handler.
            bad = self._check_retrieve(req, context)
            if bad is not None:
                self._record(kind, None, assoc, bad)
                return bad
        if not self._throttle.enter(self.behaviour):
            self._record(kind, None, assoc, status.BUSY, throttled=1)
            return status.BUSY
        with self.stats.lock:
            self.stats.max_in_flight_seen = max(
                self.stats.max_in_flight_seen, self._throttle.in_flight
            )
        return None

    def done(self) -> None:
        """A request :meth:`admit` let through has been answered."""
        self._throttle.leave()

    # -- helpers ------------------------------------------------------------------------
    def _transfer_syntaxes(self) -> list[str]:
        found = self.index.frame["TransferSyntaxUID"].drop_nulls().unique().sort().to_list()
        out = list(_UNCOMPRESSED)
        out += [ts for ts in found if ts not in out]
        return out

    def _record(
        self,
        kind: str,
        level: str | None,
        assoc: Any,
        code: int | None,
        matches: int = 0,
        **inc: int,
    ) -> None:
        rec = OpRecord(kind, level, _calling_ae(assoc), code, time.monotonic(), matches)
        with self.stats.lock:
            self.stats.ops.append(rec)
            for name, n in inc.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)

    def _touches_fail_dates(self, identifier: Dataset, rows: pl.DataFrame) -> bool:
        fail = {d.strftime("%Y%m%d") for d in self.behaviour.fail_dates}
        if not fail:
            return False
        q = value_str(identifier["StudyDate"]) if "StudyDate" in identifier else None
        pred = compile_query(q, "DA")
        if pred is not None and any(pred(d) for d in fail):
            return True
        return bool(set(rows["StudyDate"].drop_nulls().to_list()) & fail)

    def _abort(self, event: Any, kind: str, level: str | None) -> None:
        log.info("demo PACS: fault injection, aborting a %s about a failing date", kind)
        self._record(kind, level, event.assoc, None)
        event.assoc.abort()

    # -- association events -------------------------------------------------------------
    def _on_requested(self, event: Any) -> None:
        assoc = event.assoc
        calling = str(assoc.requestor.primitive.calling_ae_title).strip()
        b = self.behaviour
        if calling in b.reject_calling_aes or (
            b.allowed_calling_aes is not None and calling not in b.allowed_calling_aes
        ):
            log.info("demo PACS: rejecting calling AE %s", calling)
            self.stats.add(rejected=1)
            assoc.acse.send_reject(0x01, 0x01, 0x03)  # permanent, user, calling AE unknown
            assoc.kill()
            return
        if b.refuse_get:
            # A PACS that does not support C-GET rejects its presentation contexts.
            assoc.acceptor.supported_contexts = [
                cx
                for cx in assoc.acceptor.supported_contexts
                if str(cx.abstract_syntax) not in GET_UIDS
            ]
        if not b.offer_worklist or self.worklist is None:
            assoc.acceptor.supported_contexts = [
                cx for cx in assoc.acceptor.supported_contexts if str(cx.abstract_syntax) != MWL_UID
            ]

    def _on_sop_extended(self, event: Any) -> dict[str, bytes]:
        """Relational queries (byte 1 of a C-FIND model's item) granted when ``relational``."""
        asked = {str(uid): bytes(info) for uid, info in event.app_info.items()}
        with self.stats.lock:
            self.stats.relational_asked += sum(
                1 for uid, info in asked.items() if uid in FIND_UIDS and info[:1] == b"\x01"
            )
        granted = b"\x01" if self.behaviour.relational else b"\x00"
        return {uid: granted for uid, info in asked.items() if uid in FIND_UIDS and info}

    def _on_established(self, event: Any) -> None:
        # without it every answer PDU waits for the SCU's delayed ACK (~40 ms per message)
        nodelay(event.assoc)
        self.stats.add(associations=1)

    def _on_aborted(self, event: Any) -> None:
        self.stats.add(aborted=1)

    def _on_echo(self, event: Any) -> int:
        self._record("echo", None, event.assoc, None, echo=1)
        return status.SUCCESS

    def _on_store(self, event: Any) -> int:
        return status.OUT_OF_RESOURCES  # read-only

    # -- Q/R ----------------------------------------------------------------------------
    def _identifier(self, event: Any, model: str) -> tuple[Dataset, str]:
        try:
            ident: Dataset = event.identifier
        except Exception as exc:  # any decoding problem is a bad identifier
            raise PacsOperationError(
                f"undecodable identifier: {exc}", status=status.UNABLE_TO_PROCESS
            ) from exc
        return ident, _level(ident, model)

    def _on_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        # A plain function (not a generator): an abort here is seen by pynetdicom at once.
        if str(event.request.AffectedSOPClassUID) == MWL_UID:
            return self._on_worklist_find(event)
        model = FIND_UIDS.get(str(event.request.AffectedSOPClassUID), "STUDY")
        try:
            ident, level = self._identifier(event, model)
            ident = self._hierarchical(ident, level)
            reps = self.index.match(ident, level)
        except PacsOperationError as exc:
            self._record("find", None, event.assoc, exc.status)
            return iter([(exc.status or status.UNABLE_TO_PROCESS, None)])
        if self._touches_fail_dates(ident, reps):
            self._abort(event, "find", level)
            return iter(())
        self._record("find", level, event.assoc, None, matches=reps.height)
        minimal = self.behaviour.image_level_minimal

        def answers() -> Iterator[tuple[int, Dataset | None]]:
            for ds in self.index.responses(
                reps, ident, level, minimal=minimal, retrieve_ae=self.ae_title
            ):
                if event.is_cancelled:
                    yield status.CANCEL, None
                    return
                yield status.PENDING_ANSWER, ds

        return answers()

    def _on_worklist_find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        """C-FIND on the Modality Worklist (see :mod:`pyschedvisu.demo_pacs.worklist`)."""
        b = self.behaviour
        worklist = self.worklist
        try:
            ident: Dataset = event.identifier
            if worklist is None:  # its context is not offered then: defensive
                raise PacsOperationError("no worklist", status=status.UNABLE_TO_PROCESS)
            at = b.worklist_now or dt.datetime.now()
            found = worklist.answers(ident, at, forget_performed=b.forget_performed)
            item = ident.ScheduledProcedureStepSequence[0]
            key = "ScheduledProcedureStepStartDate"
            asked = value_str(item[key]) if key in item else None
        except PacsOperationError as exc:
            self._record("find", "WORKLIST", event.assoc, exc.status)
            return iter([(exc.status or status.UNABLE_TO_PROCESS, None)])
        except Exception:  # any decoding problem is a bad identifier
            self._record("find", "WORKLIST", event.assoc, status.UNABLE_TO_PROCESS)
            return iter([(status.UNABLE_TO_PROCESS, None)])
        fail = {d.strftime("%Y%m%d") for d in b.fail_dates}
        pred = compile_query(asked, "DA")
        if fail and (pred is None or any(pred(d) for d in fail)):
            self._abort(event, "find", "WORKLIST")
            return iter(())
        self._record("find", "WORKLIST", event.assoc, None, matches=len(found))

        def answers() -> Iterator[tuple[int, Dataset | None]]:
            for ds in found:
                if event.is_cancelled:
                    yield status.CANCEL, None
                    return
                yield status.PENDING_ANSWER, ds

        return answers()

    def _hierarchical(self, ident: Dataset, level: str) -> Dataset:
        """``ident`` as a hierarchical PACS reads it (see :class:`Behaviour` ``relational``)."""
        b = self.behaviour
        if b.relational or level not in ("SERIES", "IMAGE"):
            return ident
        study = value_str(ident["StudyInstanceUID"]) if "StudyInstanceUID" in ident else None
        if not is_universal(study) and "\\" not in str(study):
            return ident
        if not b.hierarchical_ignores_keys:
            raise PacsOperationError(
                "one StudyInstanceUID is required below STUDY level", status=status.BAD_IDENTIFIER
            )
        out = Dataset()
        out.update(ident)
        for keyword in ("StudyInstanceUID", "StudyDate"):
            if keyword in out:
                setattr(out, keyword, "")
        return out

    def _check_retrieve(self, req: Any, context: PresentationContext) -> int | None:
        """Failure status of a C-GET / C-MOVE identifier, or None when it is usable.

        A retrieve names what it wants (PS3.4 C.4.2.2.1): never "everything".
        """
        model = {**GET_UIDS, **MOVE_UIDS}.get(str(req.AffectedSOPClassUID), "STUDY")
        ts = context.transfer_syntax[0]
        try:
            ident = decode(req.Identifier, ts.is_implicit_VR, ts.is_little_endian, ts.is_deflated)
            level = _level(ident, model)
        except PacsOperationError as exc:
            return exc.status
        except Exception:  # any decoding problem is a bad identifier
            return status.UNABLE_TO_PROCESS
        key = UNIQUE_KEY[level]
        value = value_str(ident[key]) if key in ident else None
        if is_universal(value):
            return status.BAD_IDENTIFIER
        if self.behaviour.single_uid_retrieve and "\\" in str(value):
            return status.BAD_IDENTIFIER
        if not self.behaviour.relational and level in ("SERIES", "IMAGE"):
            # hierarchical retrieve (PS3.4 C.4.2.2.1): one study, and one series below
            upper = ["StudyInstanceUID"] + (["SeriesInstanceUID"] if level == "IMAGE" else [])
            for kw in upper:
                value = value_str(ident[kw]) if kw in ident else None
                if is_universal(value) or "\\" in str(value):
                    return status.BAD_IDENTIFIER
        return None

    def _instances(self, event: Any, kind: str, uids: dict[str, str]) -> tuple[pl.DataFrame, str]:
        model = uids.get(str(event.request.AffectedSOPClassUID), "STUDY")
        ident, level = self._identifier(event, model)
        return self.index.instances(ident, level), level

    def _stores(self, event: Any, rows: pl.DataFrame) -> Iterator[tuple[int, Dataset | None]]:
        for rel, size in rows.select("path", "size").iter_rows():
            if event.is_cancelled:
                yield status.CANCEL, None
                return
            try:
                ds = self.index.dataset(rel)
            except OSError as exc:
                log.warning("demo PACS: cannot read %s (%s)", rel, exc)
                yield status.SUBOPERATIONS_REFUSED, None
                return
            self.stats.add(store_sent=1, bytes_sent=int(size))
            yield status.PENDING_ANSWER, ds

    def _on_get(self, event: Any) -> Iterator[Any]:
        try:
            rows, level = self._instances(event, "get", GET_UIDS)
        except PacsOperationError as exc:
            self._record("get", None, event.assoc, exc.status)
            return iter([1, (exc.status or status.UNABLE_TO_PROCESS, None)])
        if self._touches_fail_dates(event.identifier, rows):
            self._abort(event, "get", level)
            return iter(())
        self._record("get", level, event.assoc, None, matches=rows.height)

        def results() -> Iterator[Any]:
            yield rows.height
            yield from self._stores(event, rows)

        return results()

    def _on_move(self, event: Any) -> Iterator[Any]:
        dest_ae = event.move_destination
        dest_ae = (
            dest_ae.decode("ascii", "replace") if isinstance(dest_ae, bytes) else str(dest_ae)
        ).strip()
        try:
            rows, level = self._instances(event, "move", MOVE_UIDS)
        except PacsOperationError as exc:
            # Checked before by the gate (admit); pynetdicom can only fail a C-MOVE here
            # through its destination, so this is a defensive fallback.
            self._record("move", None, event.assoc, exc.status)
            return iter([(None, None)])
        if self._touches_fail_dates(event.identifier, rows):
            self._abort(event, "move", level)
            return iter(())
        dest = self.move_destinations.get(dest_ae)
        if dest is None:
            log.info("demo PACS: unknown move destination %s", dest_ae)
            self._record("move", level, event.assoc, status.MOVE_DESTINATION_UNKNOWN)
            return iter([(None, None)])
        self._record("move", level, event.assoc, None, matches=rows.height)
        contexts = self._store_contexts(rows)

        def results() -> Iterator[Any]:
            yield dest[0], dest[1], {"contexts": contexts}
            yield rows.height
            yield from self._stores(event, rows)

        return results()

    def _store_contexts(self, rows: pl.DataFrame) -> list[PresentationContext]:
        """Presentation contexts for the C-STORE association of a C-MOVE (≤ 128)."""
        pairs = rows.select("SOPClassUID", "TransferSyntaxUID").unique().sort("SOPClassUID")
        by_class: dict[str, list[str]] = {}
        for sop, ts in pairs.iter_rows():
            if sop is None:
                continue
            lst = by_class.setdefault(sop, list(_UNCOMPRESSED))
            if ts and ts not in lst:
                lst.insert(0, ts)
        return [build_context(sop, ts) for sop, ts in list(by_class.items())[:128]]


__all__ = [
    "Behaviour",
    "DemoPacs",
    "OpRecord",
    "PacsStats",
]
