"""The appointment book of a synthetic day (what the RIS holds) and its truth (DOMAIN §7).

The book is drawn *after* the day is planned, from its own random source seeded by
``(seed, day)``: the studies, series and files of the day are the same with or without it.
Every study of the truth (its take 1) is either an appointment or performed unplanned; a few
appointments are never performed (no-shows, some cancelled during the day). Each appointment
is one Scheduled Procedure Step on its machine's station AE title, with a timeline:

* ``booked_at``: when it enters the RIS (days before; for a same-day add-on, on the day after
  06:30, at least 35 minutes before it starts);
* ``first_start`` then ``start``: its scheduled start, changed at ``rescheduled_at``;
* ``performed_at``: when the modality started it (its take 1's start): a RIS that forgets
  performed entries drops it from then on; ``cancelled_at``: a late cancellation.

How it can be matched to its study is drawn too: a pre-assigned Study Instance UID
(``uid``), only the accession number of the study (``accession``), or neither, the RIS's own
accession number differing from the one in the files (``patient``: same patient, machine,
day). The truth (``truth/plan.parquet``, ``planmatch.PLAN_MATCH_SCHEMA``) is what a perfect
pipeline reports, computed here from the book and the truth studies, never by the matcher.

:func:`worklist_at` is the worklist as the RIS shows it at a given time, as DICOM datasets:
the demo PACS answers C-FIND from it, the Orthanc tests write it as ``.wl`` files.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from typing import Any

import polars as pl
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pyschedvisu import reference as ref
from pyschedvisu.synth import catalog as cat
from pyschedvisu.synth.plan import DayPlan, uid
from pyschedvisu.synth.truth import Rules, label_of
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.planmatch import PLAN_MATCH_SCHEMA
from pyschedvisu_core.schema import DT

#: Scheduled Station AE Title and modality of each scanner's steps (the reference config's).
STATIONS: dict[str, tuple[str, str]] = {
    key: (table["station_aes"][0], table["modalities"][0])
    for key, table in ref.WORKLIST_MACHINES.items()
}
#: Shares of the draws (per study take 1, per appointment, per machine and day).
P_UNPLANNED = 0.06
P_ADD_ON = 0.08
P_RESCHEDULED = 0.10
P_NO_END = 0.2
P_CANCELLED = 0.3
MATCH_WEIGHTS = {"uid": 4, "accession": 4, "patient": 2}
NO_SHOWS_PER_MACHINE = (0, 0, 1, 1, 2)
#: Earliest booking / rescheduling time of the day, and how long before its start at least:
#: snapshots every 30 min from 06:00 see every version of every entry.
EARLIEST = dt.time(6, 35)
LEAD = dt.timedelta(minutes=35)

#: The RIS's book of one day (raw patient ids: a synthetic RIS, like the DICOM files).
BOOK_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "machine": pl.String(),  # display name
    "station_ae": pl.String(),
    "station_name": pl.String(),
    "modality": pl.String(),
    "patient_id": pl.String(),
    "patient_name": pl.String(),
    "accession_number": pl.String(),
    "requested_procedure_id": pl.String(),
    "step_id": pl.String(),
    "study_uid": pl.String(),  # pre-assigned, else null
    "description": pl.String(),  # step and requested procedure description
    "booked_at": DT,
    "first_start": DT,
    "rescheduled_at": DT,
    "start": DT,
    "end": DT,  # null: the step gives no end
    "performed_at": DT,
    "cancelled_at": DT,
}


def _floor5(t: dt.datetime) -> dt.datetime:
    return t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)


def _between(rng: random.Random, lo: dt.datetime, hi: dt.datetime) -> dt.datetime:
    """A time in [lo, hi] to the second."""
    span = int((hi - lo).total_seconds())
    return lo + dt.timedelta(seconds=rng.randint(0, max(span, 0)))


def _delay(rng: random.Random) -> dt.timedelta:
    """How late the study starts against its slot (a few early, most a little late)."""
    r = rng.random()
    if r < 0.15:
        return -dt.timedelta(seconds=rng.randint(30, 600))
    if r < 0.85:
        return dt.timedelta(seconds=rng.randint(0, 1200))
    return dt.timedelta(seconds=rng.randint(1500, 4500))


def _step_key(accession: str, rp: str, sps: str) -> str:
    return f"acc:{accession}/{rp}/{sps}"


def day_book(plan: DayPlan, truth_studies: pl.DataFrame, rules: Rules) -> dict[str, pl.DataFrame]:
    """``{"book": BOOK_SCHEMA, "plan": PLAN_MATCH_SCHEMA}`` of one planned day."""
    day = plan.day
    rng = random.Random(f"appointments|{plan.seed}|{day.isoformat()}")
    by_uid = {s.uid: s for s in plan.studies}
    patients = {s.patient_id for s in plan.studies}
    retakes = Counter(r["study_uid"] for r in truth_studies.iter_rows(named=True) if r["take"] > 1)
    firsts = sorted(
        (r for r in truth_studies.iter_rows(named=True) if r["take"] == 1),
        key=lambda r: (r["machine"], r["start"], r["study_uid"]),
    )
    day0 = dt.datetime.combine(day, dt.time())
    earliest = dt.datetime.combine(day, EARLIEST)
    book: list[dict[str, Any]] = []
    truth: list[dict[str, Any]] = []
    n = 0

    def booked_before() -> dt.datetime:
        return (
            day0
            - dt.timedelta(days=rng.randint(1, 14))
            + dt.timedelta(hours=rng.randint(8, 17), minutes=rng.randint(0, 59))
        )

    for row in firsts:
        study = by_uid[row["study_uid"]]
        key = minify_machine(row["machine"])
        ae, modality = STATIONS[key]
        actual, actual_end = row["start"], row["end"]
        base_truth = {
            "date": day,
            "machine": row["machine"],
            "study_key": f"{row['study_uid']}_1",
            "actual_start": actual,
            "actual_end": actual_end,
            "description": row["description"],
            "retakes": retakes.get(row["study_uid"], 0),
        }
        if rng.random() < P_UNPLANNED:
            truth.append({**base_truth, "status": "unplanned", "accession_number": study.accession})
            continue
        n += 1
        how = rng.choices(list(MATCH_WEIGHTS), list(MATCH_WEIGHTS.values()))[0]
        accession = study.accession if how != "patient" else f"R{day:%y%m%d}{n:04d}"
        rp, sps = f"RP{n:04d}", f"SPS{n:04d}"
        start = _floor5(actual - _delay(rng))
        planned_s = max(600, round((actual_end - actual).total_seconds() / 300) * 300)
        end = (
            None
            if rng.random() < P_NO_END
            else start + dt.timedelta(seconds=planned_s + rng.choice((0, 0, 300, 600)))
        )
        add_on = actual.time() >= dt.time(8, 30) and rng.random() < P_ADD_ON
        booked = _between(rng, earliest, actual - LEAD) if add_on else booked_before()
        first_start, moved_at = start, None
        if not add_on and rng.random() < P_RESCHEDULED and actual - LEAD > earliest:
            shift = dt.timedelta(minutes=rng.choice((-90, -60, -30, 30, 45, 60, 90, 120)))
            first_start = start + shift
            moved_at = _between(rng, earliest, actual - LEAD)
        book.append(
            {
                "date": day,
                "machine": row["machine"],
                "station_ae": ae,
                "station_name": row["machine"],
                "modality": modality,
                "patient_id": study.patient_id,
                "patient_name": study.patient_name,
                "accession_number": accession,
                "requested_procedure_id": rp,
                "step_id": sps,
                "study_uid": study.uid if how == "uid" else None,
                "description": study.description,
                "booked_at": booked,
                "first_start": first_start,
                "rescheduled_at": moved_at,
                "start": start,
                "end": end,
                "performed_at": actual,
                "cancelled_at": None,
            }
        )
        duration = (end - start).total_seconds() if end is not None else None
        truth.append(
            {
                **base_truth,
                "status": "performed",
                "accession_number": accession,
                "scheduled_start": start,
                "delay_s": (actual - start).total_seconds(),
                "scheduled_duration_s": duration,
                "overrun_s": (actual_end - actual).total_seconds() - duration
                if duration is not None
                else None,
                "scheduled_description": study.description,
                "step_key": _step_key(accession, rp, sps),
                "match": how,
                "added_same_day": add_on,
                "rescheduled": moved_at is not None,
                "first_scheduled_start": first_start,
            }
        )

    machines = list(dict.fromkeys(r["machine"] for r in firsts))
    for machine in machines:
        key = minify_machine(machine)
        ae, modality = STATIONS[key]
        types = [t for t in cat.MACHINES[key].types if t.label != "OTHER"]
        for _ in range(rng.choice(NO_SHOWS_PER_MACHINE)):
            n += 1
            while True:
                pid = str(rng.randint(10_000_000, 99_999_999))
                if pid not in patients:
                    patients.add(pid)
                    break
            description = rng.choice(rng.choice(types).descriptions)
            start = dt.datetime.combine(day, dt.time(8)) + dt.timedelta(
                minutes=5 * rng.randint(0, 90)
            )
            end = start + dt.timedelta(minutes=rng.choice((30, 45, 60)))
            cancelled = (
                _between(rng, earliest, start - dt.timedelta(minutes=5))
                if rng.random() < P_CANCELLED and start - dt.timedelta(minutes=5) > earliest
                else None
            )
            accession, rp, sps = f"N{day:%y%m%d}{n:04d}", f"RP{n:04d}", f"SPS{n:04d}"
            book.append(
                {
                    "date": day,
                    "machine": machine,
                    "station_ae": ae,
                    "station_name": machine,
                    "modality": modality,
                    "patient_id": pid,
                    "patient_name": f"{rng.choice(cat.LAST_NAMES)}^{rng.choice(cat.FIRST_NAMES)}",
                    "accession_number": accession,
                    "requested_procedure_id": rp,
                    "step_id": sps,
                    "study_uid": uid(plan.seed, day.isoformat(), "no-show", n)
                    if rng.random() < 0.4
                    else None,
                    "description": description,
                    "booked_at": booked_before(),
                    "first_start": start,
                    "rescheduled_at": None,
                    "start": start,
                    "end": end,
                    "performed_at": None,
                    "cancelled_at": cancelled,
                }
            )
            truth.append(
                {
                    "date": day,
                    "machine": machine,
                    "status": "no_show",
                    "accession_number": accession,
                    "scheduled_start": start,
                    "scheduled_duration_s": (end - start).total_seconds(),
                    "scheduled_description": description,
                    "description": label_of(description, rules.descriptions.get(key, {})),
                    "step_key": _step_key(accession, rp, sps),
                    "added_same_day": False,
                    "rescheduled": False,
                    "first_scheduled_start": start,
                }
            )
    base = {k: None for k in PLAN_MATCH_SCHEMA}
    truth_frame = pl.DataFrame([{**base, **t} for t in truth], schema=PLAN_MATCH_SCHEMA)
    order = pl.coalesce("scheduled_start", "actual_start")
    return {
        "book": pl.DataFrame(book, schema=BOOK_SCHEMA).sort("machine", "start", "step_id"),
        "plan": truth_frame.with_columns(order.alias("_t"))
        .sort("date", "machine", "_t", "step_key", "study_key", nulls_last=True)
        .drop("_t"),
    }


# -- the worklist as the RIS shows it ----------------------------------------------------------


def visible_at(book: pl.DataFrame, at: dt.datetime, *, forget_performed: bool) -> pl.DataFrame:
    """The steps of ``book`` in the worklist at ``at``, each with the start it shows then.

    Booked by then, not cancelled yet, and (``forget_performed``) not performed yet: a RIS
    that keeps performed entries shows them until the end of the day.
    """
    when = pl.lit(at, dtype=DT)
    shown = (pl.col("booked_at") <= when) & (
        pl.col("cancelled_at").is_null() | (when < pl.col("cancelled_at"))
    )
    if forget_performed:
        shown &= pl.col("performed_at").is_null() | (when < pl.col("performed_at"))
    moved = pl.col("rescheduled_at").is_not_null() & (pl.col("rescheduled_at") <= when)
    start = pl.when(moved).then(pl.col("start")).otherwise(pl.col("first_start"))
    shift = pl.col("start") - pl.col("first_start")
    end = pl.when(moved).then(pl.col("end")).otherwise(pl.col("end") - shift)
    return book.filter(shown).with_columns(start.alias("shown_start"), end.alias("shown_end"))


def mwl_dataset(row: dict[str, Any]) -> Dataset:
    """One row of :func:`visible_at` as the MWL entry a RIS answers (PS3.4 K.6.1.2.2)."""
    step = Dataset()
    step.ScheduledStationAETitle = row["station_ae"]
    step.ScheduledStationName = row["station_name"]
    start: dt.datetime = row["shown_start"]
    step.ScheduledProcedureStepStartDate = start.strftime("%Y%m%d")
    step.ScheduledProcedureStepStartTime = start.strftime("%H%M%S")
    end: dt.datetime | None = row["shown_end"]
    if end is not None:
        step.ScheduledProcedureStepEndDate = end.strftime("%Y%m%d")
        step.ScheduledProcedureStepEndTime = end.strftime("%H%M%S")
    step.Modality = row["modality"]
    step.ScheduledProcedureStepDescription = row["description"]
    step.ScheduledProcedureStepID = row["step_id"]
    step.ScheduledPerformingPhysicianName = ""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientID = row["patient_id"]
    ds.PatientName = row["patient_name"]
    ds.AccessionNumber = row["accession_number"]
    ds.RequestedProcedureID = row["requested_procedure_id"]
    ds.RequestedProcedureDescription = row["description"]
    if row["study_uid"]:
        ds.StudyInstanceUID = row["study_uid"]
    ds.ScheduledProcedureStepSequence = DicomSequence([step])
    return ds


def worklist_at(
    book: pl.DataFrame, at: dt.datetime, *, forget_performed: bool = True
) -> list[Dataset]:
    """Every MWL entry of ``book`` as the RIS shows it at ``at`` (see :func:`visible_at`)."""
    return [
        mwl_dataset(r)
        for r in visible_at(book, at, forget_performed=forget_performed).iter_rows(named=True)
    ]
