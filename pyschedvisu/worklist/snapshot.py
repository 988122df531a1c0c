"""One snapshot of the Modality Worklist for a day, kept and folded into the day's plan.

``take_snapshot`` asks the worklist (``[worklist]``) for the day's steps of every configured
machine (one C-FIND per station AE title, or per modality), pseudonymises the patient ids
as the answers are read (the series store's HMAC key), keeps the snapshot atomically and
folds the day's snapshots again (:class:`~pyschedvisu.worklist.store.WorklistStore`). A
worklist that cannot be asked raises :class:`WorklistError` and keeps nothing: that snapshot
fails (and is retried by its task), the plans already kept and every report stay as they are.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pyschedvisu.config import Settings
from pyschedvisu.privacy import load_key, pseudonymise
from pyschedvisu.retrieval.clients import worklist_client
from pyschedvisu.worklist.store import DayPlan, WorklistStore
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    ConfigError,
    PacsError,
    WorklistError,
)
from pyschedvisu_core.transport import PacsClient
from pyschedvisu_core.worklist import (
    WorklistMachine,
    entry_rows,
    machine_queries,
    snapshot_frame,
)

log = logging.getLogger("pyschedvisu.worklist")

#: Answers one worklist query may give before it is cancelled (a worklist ignoring the date
#: key would answer its whole book): the snapshot then fails instead of keeping garbage.
MAX_ANSWERS = 5000


def worklist_machines(settings: Settings) -> list[WorklistMachine]:
    """The configured machines' worklist entries, in ``[machines]`` order (plain values)."""
    names = settings.machine_names()
    out = []
    for key in settings.display_machines():
        table = settings.worklist.machine.get(key)
        if table is not None:
            out.append(
                WorklistMachine(names[key], tuple(table.station_aes), tuple(table.modalities))
            )
    return [m for m in out if m.configured]


@dataclass
class SnapshotResult:
    """What one snapshot saw (counts only: no patient data) and the day's plan after it."""

    day: dt.date
    taken_at: dt.datetime
    entries: int
    per_machine: dict[str, int]
    queries: int
    other_days: int
    unusable: int
    not_ours: int
    seconds: float
    plan: DayPlan
    ops: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Plain summary (the task result, the CLI line)."""
        return {
            "day": self.day.isoformat(),
            "taken_at": self.taken_at.isoformat(timespec="seconds"),
            "entries": self.entries,
            "per_machine": dict(self.per_machine),
            "queries": self.queries,
            "other_days": self.other_days,
            "unusable": self.unusable,
            "not_ours": self.not_ours,
            "seconds": round(self.seconds, 3),
            "planned_steps": self.plan.steps.height,
            "snapshots_of_day": self.plan.snapshots,
            "dimse_ops": int(self.ops.get("dimse_ops", 0)),
        }


def take_snapshot(
    day: dt.date,
    settings: Settings,
    client: PacsClient | None = None,
    *,
    now: dt.datetime | None = None,
) -> SnapshotResult:
    """Snapshot the worklist of ``day`` as of ``now`` (default: now, local time); keep it.

    Raises :class:`ConfigError` when the worklist is off or no machine has station AE titles
    or modalities, :class:`PseudonymKeyError` without a key, :class:`AssociationRejectedError`
    when the worklist refuses our AE title (no retry fixes it), :class:`WorklistError` for
    anything else that kept the worklist from answering.
    """
    wl = settings.worklist
    if not wl.enabled:
        raise ConfigError(
            ["worklist.enabled: false: set it to true (and worklist.host, port, called_ae)"]
        )
    machines = worklist_machines(settings)
    if not machines:
        raise ConfigError(
            ["worklist.machine: no machine has station_aes or modalities: nothing to ask"]
        )
    key = load_key(settings.privacy)  # before any patient id is seen
    queries = machine_queries(day, machines)
    taken_at = now or dt.datetime.now()
    own = client is None
    mwl = client if client is not None else worklist_client(settings)
    t0 = time.monotonic()
    answers = []
    try:
        with mwl.tally() as counted:
            for query in queries:
                answers += mwl.find_worklist(query, limit=MAX_ANSWERS)
        if mwl.closed:
            raise WorklistError(f"{day}: worklist snapshot interrupted; nothing kept")
    except AssociationRejectedError:
        raise
    except PacsError as exc:
        raise WorklistError(f"{day}: worklist snapshot failed, nothing kept: {exc}") from exc
    finally:
        if own:
            mwl.close()
    entries = entry_rows(answers, day, machines, lambda pid: pseudonymise(pid, key))
    del answers  # the raw answers (patient ids) go no further
    per_machine = {
        m.name: entries.rows.filter(entries.rows["machine"] == m.name).height for m in machines
    }
    counts = {
        "entries": entries.rows.height,
        "other_days": entries.other_days,
        "unusable": entries.unusable,
        "not_ours": entries.not_ours,
    }
    plan = WorklistStore(settings.paths.data_dir, settings.site).add_snapshot(
        day, snapshot_frame(entries.rows, taken_at), taken_at, [m.name for m in machines], counts
    )
    seconds = time.monotonic() - t0
    log.info(
        "%s: worklist snapshot at %s: %d step(s) (%s), %d query(ies) in %.2f s; plan of the day: "
        "%d step(s) from %d snapshot(s)",
        day,
        taken_at.strftime("%H:%M:%S"),
        entries.rows.height,
        ", ".join(f"{k} {v}" for k, v in per_machine.items()),
        len(queries),
        seconds,
        plan.steps.height,
        plan.snapshots,
    )
    if entries.other_days or entries.unusable:
        log.warning(
            "%s: the worklist answered %d step(s) of another day and %d without a start: left out",
            day,
            entries.other_days,
            entries.unusable,
        )
    return SnapshotResult(
        day=day,
        taken_at=taken_at,
        entries=entries.rows.height,
        per_machine=per_machine,
        queries=len(queries),
        other_days=entries.other_days,
        unusable=entries.unusable,
        not_ours=entries.not_ours,
        seconds=seconds,
        plan=plan,
        ops=counted.as_dict(),
    )
