"""DICOM network plumbing shared by our client, our Storage SCP and the demo PACS.

What every association of ours agrees on: the storage classes and transfer syntaxes we accept
headers of, the C-FIND models (and their relational-query negotiation), how a C-STORE'd dataset
is read in memory up to its pixel data, the socket options that keep small DIMSE messages from
waiting on delayed ACKs, and how a DIMSE failure status becomes an error of
:mod:`pyschedvisu_core.errors`. Nothing here holds state.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import zlib
from collections.abc import Iterable
from io import BytesIO
from typing import Any

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
from pynetdicom import _config
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
    MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    MultiFrameTrueColorSecondaryCaptureImageStorage,
    NuclearMedicineImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
)

from pyschedvisu_core import status as dimse_status
from pyschedvisu_core.errors import PacsError, PacsOperationError, PacsThrottledError

log = logging.getLogger("pyschedvisu.pacs")

# pynetdicom logs whole identifiers (PatientID...) at INFO by default: never.
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
_config.LOG_HANDLER_LEVEL = "none"
# Received values are checked by our own parsers (pyschedvisu_core.dicomtime), which
# quarantine a series with a reason; pydicom's own warnings on the same values only
# repeated that, on the console, once per broken header.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

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


def status_code(status: Dataset | None) -> int | None:
    """The Status of a DIMSE response; None when there is none (timeout, abort)."""
    if status is None or "Status" not in status:
        return None
    return int(status.Status)


def status_error(op: str, code: int, status: Dataset | None = None) -> PacsError:
    """The error a final failure ``code`` means: busy (retried, paced) or a refusal."""
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


def finds_deflated(assoc: Association, models: Iterable[str]) -> bool:
    """True when ``assoc`` accepted a deflated context for one of these C-FIND models
    (pynetdicom then sends on it: it is proposed before the plain one)."""
    wanted = {str(m) for m in models}
    return any(
        str(cx.abstract_syntax) in wanted
        and cx.transfer_syntax[0] == DeflatedExplicitVRLittleEndian
        for cx in assoc.accepted_contexts
    )


__all__ = [
    "FIND_MODELS",
    "NM_IMAGE_STORAGE_RETIRED",
    "STORAGE_CLASSES",
    "TRANSFER_SYNTAXES",
    "decode_header",
    "finds_deflated",
    "nodelay",
    "quickack",
    "relational_query_items",
    "status_code",
    "status_error",
]
