"""Retrieval: one day of PACS metadata into the series store, the lightest way the PACS allows.

The pipeline of a day, one module each::

    clients.py       the PacsClient of a PACS (one per process), config mapped field by field;
                     the worklist's client (its own, from [worklist])
    capabilities.py  PacsRecord: the one record of what that PACS allows (probed, kept; learned)
    planner.py       DayPlanner: which C-FIND queries the day needs (day-wide or per study)
    picks.py         DirectPicks, a base of DayPlanner: instance 1 and N asked by number
    headers.py       HeaderReader: the instance headers that time each series (C-FIND/GET/MOVE)
    institutions.py  InstitutionName from the files where the PACS index cannot be trusted
    day.py           retrieve_day: the above in order, frames assembled by the core, stored
    check.py         what ``pacs check`` asks beyond a retrieval, and why a PACS keeps us out
    survey.py        ``discover``: what the PACS holds over some days (no file moved by default)

Frames are built by :mod:`pyschedvisu_core.dayframes` (pure); queries by
:mod:`pyschedvisu_core.queries`; the client interface is :mod:`pyschedvisu_core.transport`.
"""

from pyschedvisu.retrieval.capabilities import (
    CAPABILITIES_FILE,
    PacsRecord,
    forget_capabilities,
    pacs_key,
    record_for,
)
from pyschedvisu.retrieval.check import (
    check_day_wide,
    diagnose,
    failure_hint,
    find_sample,
    tcp_probe,
)
from pyschedvisu.retrieval.clients import (
    close_clients,
    dimse_config,
    make_client,
    shared_client,
    worklist_client,
    worklist_config,
)
from pyschedvisu.retrieval.day import (
    STORE_VERSION,
    DayResult,
    is_final,
    retrieval_fingerprint,
    retrieve_day,
    stored_summary,
)

__all__ = [
    "CAPABILITIES_FILE",
    "STORE_VERSION",
    "DayResult",
    "PacsRecord",
    "check_day_wide",
    "close_clients",
    "diagnose",
    "dimse_config",
    "failure_hint",
    "find_sample",
    "forget_capabilities",
    "is_final",
    "make_client",
    "pacs_key",
    "record_for",
    "retrieval_fingerprint",
    "retrieve_day",
    "shared_client",
    "stored_summary",
    "tcp_probe",
    "worklist_client",
    "worklist_config",
]
