"""C-FIND on the Modality Worklist Information Model – FIND, over a :class:`DimseClient`.

The appointment book of the RIS (DOMAIN §7) is asked like the PACS: through the client's
pacing, retries with backoff on busy statuses (0xC336, 0xA7xx), timeouts and aborted
associations, and its pool of associations (``DimseClient._call``). The worklist is a client
instance of its own, configured from ``[worklist]`` (see
:func:`pyschedvisu.retrieval.clients.worklist_client`); its associations propose the
Modality Worklist context with the others (:meth:`DimseClient._make_ae`).

Answers are Scheduled Procedure Steps with a PatientID: never logged here (pynetdicom's
identifier logging is off, see :mod:`pyschedvisu.adapters.dimse`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pynetdicom.association import Association
from pynetdicom.sop_class import ModalityWorklistInformationFind

from pyschedvisu_core import status as dimse_status
from pyschedvisu_core.errors import (
    PacsError,
    PacsOperationError,
    PacsThrottledError,
    PacsTimeoutError,
)

if TYPE_CHECKING:  # the client calls this module: no import back at run time
    from pyschedvisu.adapters.dimse import DimseClient

#: The information model of the Modality Worklist (PS3.4 K.6.1).
MODEL = ModalityWorklistInformationFind
WHAT = "C-FIND worklist"


def _code(status: Dataset | None) -> int | None:
    """The Status of a response; None for the empty dataset of a timeout or an abort."""
    if status is None or "Status" not in status:
        return None
    return int(status.Status)


def _failure(code: int, status: Dataset) -> PacsError:
    """A failure status: busy ones (0xC336, 0xA7xx) are retried by the client, others not."""
    comment = f" ({status.ErrorComment})" if "ErrorComment" in status else ""
    if dimse_status.is_busy(code):
        return PacsThrottledError(f"{WHAT}: busy, status 0x{code:04X}{comment}", status=code)
    return PacsOperationError(f"{WHAT}: failed with status 0x{code:04X}{comment}", status=code)


def find(client: DimseClient, query: Dataset, *, limit: int | None = None) -> list[Dataset]:
    """Every entry of the worklist matching ``query`` (a ``worklist.worklist_query``).

    Beyond ``limit`` answers the query is cancelled and ``PacsOperationError`` raised. A
    worklist that does not offer the model (a PACS without one) fails with
    ``PacsOperationError`` naming it, which no retry changes.
    """
    label = client.config.label

    def op(assoc: Association) -> list[Dataset]:
        out: list[Dataset] = []
        client._count("find")
        msg_id = client._next_msg_id()
        try:
            responses = assoc.send_c_find(query, MODEL, msg_id=msg_id)
            for status, ident in responses:
                code = _code(status)
                if code is None:
                    raise PacsTimeoutError(f"{label}: {WHAT}: no response (timeout or abort)")
                if dimse_status.is_pending(code):
                    client._count("responses")
                    if ident is None:  # pynetdicom could not decode it
                        raise client._unreadable(assoc, MODEL, WHAT, len(out))
                    out.append(ident)
                    if limit is not None and len(out) > limit:
                        client._cancel(assoc, responses, MODEL, msg_id, limit)
                        raise PacsOperationError(
                            f"{label}: {WHAT}: more than {limit} answers, cancelled"
                        )
                    continue
                if code == 0:
                    return out
                raise _failure(code, status)
        except (ValueError, RuntimeError) as exc:
            if not assoc.is_established:
                raise PacsTimeoutError(f"{label}: {WHAT}: association lost ({exc})") from exc
            raise PacsOperationError(
                f"{label}: the Modality Worklist is not offered here ({exc}): check "
                "worklist.host, worklist.port and worklist.called_ae"
            ) from exc
        raise PacsTimeoutError(f"{label}: {WHAT}: no final status")

    return client._call(WHAT, op)
