"""The Modality Worklist as pure data: a day's C-FIND identifiers, its answers as rows, and
the fold of a day's snapshots into its plan (DOMAIN §7, planned against performed).

The appointment book reaches the scanners as the DICOM Modality Worklist (MWL, PS3.4 K.6):
one C-FIND answer per Scheduled Procedure Step, its scheduling attributes in the single item
of its Scheduled Procedure Step Sequence. Most RIS drop an entry once it is performed or at
the end of the day, so the plan of a day is rebuilt from *snapshots* taken during it:

* :func:`worklist_query` asks the steps of one day for one scheduled station AE title or one
  modality (each configured machine has some of either);
* :func:`entry_rows` turns the answers into rows of :data:`ENTRY_SCHEMA` (the patient id
  pseudonymised by the caller's function before any row exists; answers of another day or
  without a start are left out and counted), :func:`assign_machines` names the machine of
  each step from its station AE title and modality;
* :func:`fold_snapshots` folds every snapshot of a day into one row per step
  (:data:`PLANNED_SCHEMA`): first and last seen, the scheduled start as first and as last seen
  (a rescheduled slot), and whether it was added the same day.

A step is identified across snapshots by :func:`step_key`: its accession number, requested
procedure and step IDs (PS3.4 K.6.1.2.2 makes them unique together), else its pre-assigned
Study Instance UID, else its day, patient, station and description.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pyschedvisu_core.dicomtime import combine, parse_da, parse_tm
from pyschedvisu_core.dicomvalues import sequence_items, text_value
from pyschedvisu_core.queries import da
from pyschedvisu_core.schema import DT

#: Attributes of the Scheduled Procedure Step item asked for (PS3.4 K.6.1.2.2).
STEP_KEYWORDS: tuple[str, ...] = (
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepEndDate",
    "ScheduledProcedureStepEndTime",
    "Modality",
    "ScheduledProcedureStepDescription",
    "ScheduledProcedureStepID",
    "ScheduledStationName",
)
#: Top-level attributes asked for. No patient name, birth date or sex: only the id, which is
#: pseudonymised at once (the same HMAC key as the series store's).
ENTRY_KEYWORDS: tuple[str, ...] = (
    "PatientID",
    "AccessionNumber",
    "RequestedProcedureID",
    "RequestedProcedureDescription",
    "StudyInstanceUID",
)

#: One worklist entry (Scheduled Procedure Step) as a snapshot keeps it.
ENTRY_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),  # the scheduled day
    "machine": pl.String(),  # display machine (assign_machines); null: none of ours
    "step_key": pl.String(),  # identity across snapshots (step_key)
    "step_id": pl.String(),  # ScheduledProcedureStepID
    "requested_procedure_id": pl.String(),
    "accession_number": pl.String(),
    "study_uid": pl.String(),  # when the RIS pre-assigns it
    "patient_key": pl.String(),  # HMAC pseudonym, never the raw PatientID
    "modality": pl.String(),
    "station_ae": pl.String(),  # ScheduledStationAETitle
    "station_name": pl.String(),  # ScheduledStationName
    "step_description": pl.String(),  # ScheduledProcedureStepDescription
    "procedure_description": pl.String(),  # RequestedProcedureDescription
    "scheduled_start": DT,
    "scheduled_end": DT,  # ScheduledProcedureStepEndDate/Time when given
}
#: A snapshot file: its entries and when it was taken.
SNAPSHOT_SCHEMA: dict[str, pl.DataType] = {**ENTRY_SCHEMA, "seen_at": DT}

#: The plan of one day (``<data_dir>/worklist/YYYY/YYYY-MM-DD.planned.parquet``).
PLANNED_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "machine": pl.String(),
    "step_key": pl.String(),
    "step_id": pl.String(),
    "requested_procedure_id": pl.String(),
    "accession_number": pl.String(),
    "study_uid": pl.String(),
    "patient_key": pl.String(),
    "modality": pl.String(),
    "station_ae": pl.String(),
    "station_name": pl.String(),
    # the step's description, else its requested procedure's (as the RIS wrote it)
    "scheduled_description": pl.String(),
    "scheduled_start": DT,  # as last seen (after any rescheduling)
    "scheduled_end": DT,  # as last seen; null when the worklist gives no end
    "scheduled_duration_s": pl.Float64(),
    "first_scheduled_start": DT,  # as first seen
    "rescheduled": pl.Boolean(),  # first and last seen starts differ
    "first_seen": DT,  # the first snapshot that held it
    "last_seen": DT,  # the last snapshot that held it
    "n_seen": pl.Int32(),  # snapshots that held it
    # first seen on its day itself, after that day's first snapshot: booked the same day
    "added_same_day": pl.Boolean(),
}


@dataclass(frozen=True)
class WorklistMachine:
    """Which worklist entries are one machine's (``[worklist.machine.<key>]``, plain values)."""

    name: str  # display machine, e.g. "PET Siemens"
    station_aes: tuple[str, ...] = ()
    modalities: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        """A machine with neither station AE titles nor modalities takes no entry."""
        return bool(self.station_aes or self.modalities)


def worklist_query(day: dt.date, *, station_ae: str = "", modality: str = "") -> Dataset:
    """MWL C-FIND identifier: the steps scheduled on ``day`` for one station AE title and/or
    one modality (empty: any), with the attributes :func:`entry_rows` reads.

    The Modality Worklist model has no QueryRetrieveLevel; the matching keys of the step go
    in the single item of its Scheduled Procedure Step Sequence (PS3.4 K.6.1.2.2).
    """
    step = Dataset()
    for keyword in STEP_KEYWORDS:
        setattr(step, keyword, "")
    step.ScheduledStationAETitle = station_ae
    step.ScheduledProcedureStepStartDate = da(day)
    step.Modality = modality
    ds = Dataset()
    for keyword in ENTRY_KEYWORDS:
        setattr(ds, keyword, "")
    ds.ScheduledProcedureStepSequence = DicomSequence([step])
    return ds


def machine_queries(day: dt.date, machines: Sequence[WorklistMachine]) -> list[Dataset]:
    """The identifiers of a day's snapshot: one per station AE title of each machine, one per
    modality of a machine without station AE titles; the same query is asked once."""
    seen: dict[tuple[str, str], Dataset] = {}
    for m in machines:
        if m.station_aes:
            for ae in m.station_aes:
                seen.setdefault((ae, ""), worklist_query(day, station_ae=ae))
        else:
            for modality in m.modalities:
                seen.setdefault(("", modality), worklist_query(day, modality=modality))
    return list(seen.values())


def step_key(
    accession: str | None,
    requested_procedure_id: str | None,
    step_id: str | None,
    study_uid: str | None,
    patient_key: str | None,
    station_ae: str | None,
    description: str | None,
    day: dt.date,
) -> str:
    """What identifies one step across snapshots (see the module docstring).

    The last resort (patient, station, description) holds the day too: it cannot tell the
    same step seen on two days (moved) from two appointments of one patient on two days.
    """
    if accession or requested_procedure_id or step_id:
        return f"acc:{accession or ''}/{requested_procedure_id or ''}/{step_id or ''}"
    if study_uid:
        return f"uid:{study_uid}"
    return f"pat:{day.isoformat()}/{patient_key or ''}/{station_ae or ''}/{description or ''}"


@dataclass(frozen=True)
class Entries:
    """A snapshot's answers as rows, and what was left out."""

    rows: pl.DataFrame  # ENTRY_SCHEMA, one row per step
    other_days: int = 0  # answers scheduled another day (a worklist ignoring the date key)
    unusable: int = 0  # answers without a Scheduled Procedure Step or its start date
    not_ours: int = 0  # answers of no configured machine


def entry_row(
    ds: Dataset, day: dt.date, pseudonym: Callable[[str | None], str | None]
) -> dict[str, Any] | str:
    """One MWL answer as a row of :data:`ENTRY_SCHEMA` (machine unset), or why it cannot be:
    ``"unusable"`` (no step item, no start date) or ``"other_day"``.

    ``pseudonym`` turns the raw PatientID into the patient key: the raw id never reaches a row.
    """
    items = sequence_items(ds, "ScheduledProcedureStepSequence")
    if not items:
        return "unusable"
    step = items[0]  # one item per answer (PS3.4 K.6.1.2.2)
    start_day = parse_da(text_value(step, "ScheduledProcedureStepStartDate"))
    if start_day is None:
        return "unusable"
    if start_day != day:
        return "other_day"
    start = combine(start_day, parse_tm(text_value(step, "ScheduledProcedureStepStartTime")))
    if start is None:
        return "unusable"
    end_time = parse_tm(text_value(step, "ScheduledProcedureStepEndTime"))
    end_day = parse_da(text_value(step, "ScheduledProcedureStepEndDate")) or start_day
    end = combine(end_day, end_time) if end_time is not None else None
    if end is not None and end < start:
        end = None  # a garbled or midnight-wrapped end says nothing usable
    patient = pseudonym(text_value(ds, "PatientID"))
    accession = text_value(ds, "AccessionNumber")
    procedure_id = text_value(ds, "RequestedProcedureID")
    step_id = text_value(step, "ScheduledProcedureStepID")
    study_uid = text_value(ds, "StudyInstanceUID")
    station = text_value(step, "ScheduledStationAETitle")
    step_desc = text_value(step, "ScheduledProcedureStepDescription")
    proc_desc = text_value(ds, "RequestedProcedureDescription")
    return {
        "date": day,
        "machine": None,
        "step_key": step_key(
            accession,
            procedure_id,
            step_id,
            study_uid,
            patient,
            station,
            step_desc or proc_desc,
            day,
        ),
        "step_id": step_id,
        "requested_procedure_id": procedure_id,
        "accession_number": accession,
        "study_uid": study_uid,
        "patient_key": patient,
        "modality": (text_value(step, "Modality") or "").upper() or None,
        "station_ae": station,
        "station_name": text_value(step, "ScheduledStationName"),
        "step_description": step_desc,
        "procedure_description": proc_desc,
        "scheduled_start": start,
        "scheduled_end": end,
    }


def entry_rows(
    answers: Iterable[Dataset],
    day: dt.date,
    machines: Sequence[WorklistMachine],
    pseudonym: Callable[[str | None], str | None],
) -> Entries:
    """The answers of a day's queries as one row per step of one of ``machines``.

    A step answered by several queries (its AE title and its modality) is kept once.
    """
    rows: dict[str, dict[str, Any]] = {}
    other = unusable = 0
    for ds in answers:
        row = entry_row(ds, day, pseudonym)
        if row == "other_day":
            other += 1
        elif isinstance(row, str):
            unusable += 1
        else:
            rows.setdefault(row["step_key"], row)
    frame = assign_machines(pl.DataFrame(list(rows.values()), schema=ENTRY_SCHEMA), machines)
    ours = frame.filter(pl.col("machine").is_not_null())
    return Entries(ours, other, unusable, frame.height - ours.height)


def assign_machines(entries: pl.DataFrame, machines: Sequence[WorklistMachine]) -> pl.DataFrame:
    """``entries`` with ``machine`` set: the first machine (config order) whose station AE
    titles hold the entry's, else the first machine *without* station AE titles whose
    modalities hold the entry's modality; null when none (another department's step).

    AE titles compare stripped and case-insensitively (AE values are case-sensitive in
    theory, typed by hand in practice); modalities in upper case.
    """
    ae = pl.col("station_ae").str.strip_chars().str.to_uppercase()
    modality = pl.col("modality").str.strip_chars().str.to_uppercase()
    branches: list[pl.Expr] = []
    for m in machines:
        aes = [a.strip().upper() for a in m.station_aes]
        if aes:
            branches.append(pl.when(ae.is_in(aes)).then(pl.lit(m.name)))
    for m in machines:
        mods = [x.strip().upper() for x in m.modalities]
        if mods and not m.station_aes:
            branches.append(pl.when(modality.is_in(mods)).then(pl.lit(m.name)))
    machine = pl.coalesce([*branches, pl.lit(None, dtype=pl.String())])
    return entries.with_columns(machine.alias("machine"))


def snapshot_frame(entries: pl.DataFrame, seen_at: dt.datetime) -> pl.DataFrame:
    """The rows a snapshot file keeps: ``entries`` and the time they were seen."""
    return (
        entries.with_columns(pl.lit(seen_at, dtype=DT).alias("seen_at"))
        .select(list(SNAPSHOT_SCHEMA))
        .cast(SNAPSHOT_SCHEMA)  # type: ignore[arg-type]
    )


def fold_snapshots(
    day: dt.date, snapshots: pl.DataFrame, taken: Sequence[dt.datetime]
) -> pl.DataFrame:
    """One row per step of ``day`` over all its snapshots (:data:`PLANNED_SCHEMA`).

    ``snapshots``: the rows of every snapshot of the day (:data:`SNAPSHOT_SCHEMA`);
    ``taken``: when each snapshot was taken, those that found nothing included (they tell
    when the day's first snapshot was). The step's attributes are those of the last snapshot
    that held it (a step moved to another scanner counts there); ``added_same_day`` when it
    was first seen on ``day`` itself after the first snapshot taken that day.
    """
    on_day = [t for t in taken if t.date() == day]
    first_of_day = min(on_day) if on_day else None
    if snapshots.height == 0:
        return pl.DataFrame(schema=PLANNED_SCHEMA)
    rows = snapshots.filter(pl.col("date") == day).sort("step_key", "seen_at")
    last = pl.col("seen_at").max()
    added = (pl.col("first_seen").dt.date() == day) & (
        pl.col("first_seen") > first_of_day if first_of_day is not None else pl.lit(False)
    )
    folded = rows.group_by("step_key", maintain_order=True).agg(
        pl.all().exclude("step_key", "seen_at").sort_by("seen_at").last(),
        pl.col("scheduled_start").sort_by("seen_at").first().alias("first_scheduled_start"),
        pl.col("seen_at").min().alias("first_seen"),
        last.alias("last_seen"),
        pl.len().cast(pl.Int32).alias("n_seen"),
    )
    duration = (pl.col("scheduled_end") - pl.col("scheduled_start")).dt.total_microseconds() / 1e6
    out = folded.with_columns(
        pl.coalesce("step_description", "procedure_description").alias("scheduled_description"),
        duration.alias("scheduled_duration_s"),
        (pl.col("first_scheduled_start") != pl.col("scheduled_start")).alias("rescheduled"),
    ).with_columns(added.fill_null(False).alias("added_same_day"))
    return (
        out.select(list(PLANNED_SCHEMA))
        .cast(PLANNED_SCHEMA)  # type: ignore[arg-type]
        .sort("machine", "scheduled_start", "step_key", nulls_last=True)
    )


def machines_from(
    names: Mapping[str, str], table: Mapping[str, tuple[Sequence[str], Sequence[str]]]
) -> list[WorklistMachine]:
    """Plain :class:`WorklistMachine` values from ``names`` (key -> display name, config
    order) and ``table`` (key -> (station AE titles, modalities)); unknown keys ignored."""
    out = []
    for key, name in names.items():
        aes, mods = table.get(key, ((), ()))
        out.append(WorklistMachine(name, tuple(aes), tuple(mods)))
    return out
