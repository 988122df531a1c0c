"""The demo PACS: an index of DICOM files and a pynetdicom Q/R SCP over it.

``DemoPacs(data_dir, behaviour=Behaviour.hospital())`` serves ``data_dir/dicom/**`` like
the hospital PACS of DOMAIN.md §2.4; ``pyschedvisu pacs serve`` runs it from the CLI.
"""

from pyschedvisu.demo_pacs.index import PacsIndex
from pyschedvisu.demo_pacs.server import (
    Behaviour,
    DemoPacs,
    OpRecord,
    PacsStats,
)

__all__ = [
    "Behaviour",
    "DemoPacs",
    "OpRecord",
    "PacsIndex",
    "PacsStats",
]
