"""The pynetdicom server of the demo PACS and its associations, gated.

:class:`AssociationServer` (pynetdicom's, without its frequent full garbage collections)
with :class:`GatedHandler` makes every association of a
:class:`~pyschedvisu.demo_pacs.server.DemoPacs` a :class:`GatedAssociation`: its C-FIND,
C-GET and C-MOVE requests pass ``DemoPacs.admit`` first, and ``DemoPacs.done`` after.
"""

from __future__ import annotations

import gc
import time
from typing import TYPE_CHECKING, Any, cast

from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_FIND, C_GET, C_MOVE
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer

if TYPE_CHECKING:
    from pyschedvisu.demo_pacs.server import DemoPacs


class GatedAssociation(Association):
    """An association of the demo PACS: its Q/R requests pass the PACS's gate first.

    The gate answers 0xC336 when the PACS is busy, and refuses a bad retrieve identifier,
    before any work: pynetdicom has no public hook to fail a C-MOVE before it associates with
    the destination. Only the demo PACS's own associations are of this class (see
    :class:`GatedHandler`): nothing changes for the rest of the process.
    """

    pacs: DemoPacs

    def _serve_request(self, msg: Any, context_id: int) -> None:
        if not isinstance(msg, C_FIND | C_GET | C_MOVE):
            super()._serve_request(msg, context_id)
            return
        context = next((cx for cx in self.accepted_contexts if cx.context_id == context_id), None)
        if context is None:  # pynetdicom answers an unknown context itself
            super()._serve_request(msg, context_id)
            return
        refusal = self.pacs.admit(msg, context, self)
        if refusal is not None:
            self._refuse(msg, context_id, refusal)
            return
        try:
            super()._serve_request(msg, context_id)
        finally:
            self.pacs.done()

    def _refuse(self, req: Any, context_id: int, code: int) -> None:
        """Send the final response with a failure ``code`` and no sub-operation."""
        rsp: Any = type(req)()
        rsp.MessageIDBeingRespondedTo = req.MessageID
        rsp.AffectedSOPClassUID = req.AffectedSOPClassUID
        rsp.Status = code
        if not isinstance(req, C_FIND):
            rsp.NumberOfCompletedSuboperations = 0
            rsp.NumberOfWarningSuboperations = 0
            rsp.NumberOfFailedSuboperations = 0
        self.dimse.send_msg(rsp, context_id)


class GatedHandler(RequestHandler):
    """Makes every association of one demo PACS server a :class:`GatedAssociation`."""

    server: AssociationServer

    def _create_association(self) -> Association:
        assoc = super()._create_association()
        assoc.__class__ = GatedAssociation  # same object, with the gate in front of Q/R
        cast(GatedAssociation, assoc).pacs = self.server.pacs
        return assoc


class AssociationServer(ThreadedAssociationServer):
    """pynetdicom's server, without its full ``gc.collect()`` every 60 polling loops.

    At our 50 ms poll that is a full collection every 3 s, holding the GIL for a long time
    in a big process (the weekly flow runs the demo PACS in-process). Dead association
    threads are still collected, once a minute and by the interpreter's own GC.
    """

    GC_INTERVAL_S = 60.0
    #: the demo PACS whose gate this server's associations pass (set before serving)
    pacs: DemoPacs
    #: the listening socket is shared with other processes serving the same files
    #: (``pacs serve --processes``): a busy one leaves a new association to an idle one
    shared = False
    #: how long a busy process leaves a waiting association to the others (s)
    SHARED_WAIT_S = 0.05
    _waiting_since: float | None = None

    def _handle_request_noblock(self) -> None:
        if self.shared and self.active_associations:
            now = time.monotonic()
            if self._waiting_since is None:
                self._waiting_since = now
            if now - self._waiting_since < self.SHARED_WAIT_S:
                time.sleep(0.005)  # the connection waits in the backlog for an idle process
                return
        self._waiting_since = None
        # non-blocking socket: when another process took the connection, accept() fails
        # and socketserver returns to its loop
        super()._handle_request_noblock()  # type: ignore[misc]

    def service_actions(self) -> None:
        now = time.monotonic()
        last = getattr(self, "_last_gc", None)
        if last is None:
            self._last_gc = now
        elif now - last >= self.GC_INTERVAL_S:
            self._last_gc = now
            gc.collect()


__all__ = ["AssociationServer", "GatedAssociation", "GatedHandler"]
