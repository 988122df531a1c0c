"""The demo PACS: an index of DICOM files and a pynetdicom Q/R SCP over it.

``DemoPacs(data_dir, behaviour=Behaviour.hospital())`` serves ``data_dir/dicom/**`` like
the hospital PACS of DOMAIN.md §2.4; ``pyschedvisu pacs serve`` runs it from the CLI.
"""

from pyschedvisu.pacs.index import PacsIndex
from pyschedvisu.pacs.server import (
    STATUS_MOVE_DEST_UNKNOWN,
    STATUS_THROTTLED,
    Behaviour,
    DemoPacs,
    OpRecord,
    PacsStats,
)

__all__ = [
    "STATUS_MOVE_DEST_UNKNOWN",
    "STATUS_THROTTLED",
    "Behaviour",
    "DemoPacs",
    "OpRecord",
    "PacsIndex",
    "PacsStats",
]
