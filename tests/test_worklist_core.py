"""The Modality Worklist as pure data: identifiers, answers, machines, the fold of snapshots."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from pyschedvisu_core import worklist as wl

DAY = dt.date(2024, 3, 4)
MACHINES = [
    wl.WorklistMachine("PET Siemens", ("PETSIEMENS",), ("PT",)),
    wl.WorklistMachine("PET GE", ("PETGE",), ("PT",)),
    wl.WorklistMachine("Millennium", (), ("NM",)),
    wl.WorklistMachine("Intevo", (), ()),
]


def pseudo(pid: str | None) -> str | None:
    return None if pid is None else f"key-{pid}"


def answer(
    *,
    pid: str = "1001",
    acc: str | None = "A1",
    rp: str | None = "RP1",
    sps: str | None = "SPS1",
    uid: str | None = None,
    ae: str = "PETSIEMENS",
    modality: str = "PT",
    date: str = "20240304",
    time: str | None = "083000",
    end: str | None = "090000",
    desc: str | None = "PET FDG",
) -> Dataset:
    step = Dataset()
    step.ScheduledStationAETitle = ae
    step.ScheduledProcedureStepStartDate = date
    if time is not None:
        step.ScheduledProcedureStepStartTime = time
    if end is not None:
        step.ScheduledProcedureStepEndDate = date
        step.ScheduledProcedureStepEndTime = end
    step.Modality = modality
    if desc is not None:
        step.ScheduledProcedureStepDescription = desc
    if sps is not None:
        step.ScheduledProcedureStepID = sps
    ds = Dataset()
    ds.PatientID = pid
    ds.PatientName = "Doe^John"
    if acc is not None:
        ds.AccessionNumber = acc
    if rp is not None:
        ds.RequestedProcedureID = rp
    if uid is not None:
        ds.StudyInstanceUID = uid
    ds.RequestedProcedureDescription = "Procedure " + (desc or "")
    ds.ScheduledProcedureStepSequence = DicomSequence([step])
    return ds


def test_the_query_asks_one_day_in_the_step_item_and_no_patient_name() -> None:
    q = wl.worklist_query(DAY, station_ae="PETGE")
    assert "QueryRetrieveLevel" not in q
    (item,) = q.ScheduledProcedureStepSequence
    assert item.ScheduledProcedureStepStartDate == "20240304"
    assert item.ScheduledStationAETitle == "PETGE"
    assert item.Modality == ""
    assert "PatientName" not in q and "PatientBirthDate" not in q
    assert q.PatientID == "" and q.AccessionNumber == "" and q.StudyInstanceUID == ""


def test_one_query_per_station_ae_else_per_modality_each_once() -> None:
    machines = [*MACHINES, wl.WorklistMachine("Other NM", (), ("NM",))]
    items = [q.ScheduledProcedureStepSequence[0] for q in wl.machine_queries(DAY, machines)]
    asked = [(i.ScheduledStationAETitle, i.Modality) for i in items]
    assert asked == [("PETSIEMENS", ""), ("PETGE", ""), ("", "NM")]


def test_an_answer_becomes_a_row_with_the_pseudonym_and_never_the_raw_id() -> None:
    row = wl.entry_row(answer(), DAY, pseudo)
    assert isinstance(row, dict)
    assert row["patient_key"] == "key-1001"
    assert "1001" not in {str(v) for v in row.values()}
    assert row["scheduled_start"] == dt.datetime(2024, 3, 4, 8, 30)
    assert row["scheduled_end"] == dt.datetime(2024, 3, 4, 9, 0)
    assert row["step_key"] == "acc:A1/RP1/SPS1"
    assert row["station_ae"] == "PETSIEMENS" and row["modality"] == "PT"
    assert row["procedure_description"] == "Procedure PET FDG"


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"date": "20240305"}, "other_day"),
        ({"date": ""}, "unusable"),
        ({"time": None}, "unusable"),
        ({"time": "2561"}, "unusable"),  # a garbled time cannot be placed in the day
    ],
)
def test_answers_of_another_day_or_without_a_start_are_left_out(
    kwargs: dict[str, Any], why: str
) -> None:
    assert wl.entry_row(answer(**kwargs), DAY, pseudo) == why


def test_an_answer_without_step_item_is_unusable() -> None:
    ds = answer()
    del ds.ScheduledProcedureStepSequence
    assert wl.entry_row(ds, DAY, pseudo) == "unusable"


def test_an_end_before_the_start_is_dropped_not_a_negative_duration() -> None:
    row = wl.entry_row(answer(end="080000"), DAY, pseudo)
    assert isinstance(row, dict) and row["scheduled_end"] is None


def test_step_keys_fall_back_on_the_uid_then_the_patient() -> None:
    row = wl.entry_row(answer(acc=None, rp=None, sps=None, uid="1.2.3"), DAY, pseudo)
    assert isinstance(row, dict) and row["step_key"] == "uid:1.2.3"
    row = wl.entry_row(answer(acc=None, rp=None, sps=None), DAY, pseudo)
    assert isinstance(row, dict) and row["step_key"] == "pat:2024-03-04/key-1001/PETSIEMENS/PET FDG"


def test_machines_by_station_ae_first_then_by_modality_of_machines_without_aes() -> None:
    answers = [
        answer(sps="1", ae="PETGE"),
        answer(sps="2", ae=" petsiemens "),  # typed by hand
        answer(sps="3", ae="GAMMA1", modality="NM"),  # Millennium: by modality
        answer(sps="4", ae="CT1", modality="CT"),  # another department
        answer(sps="5", ae="PETOLD", modality="PT"),  # PT, but both PET have their AEs
        answer(sps="6", date="20240305"),
        answer(sps="1", ae="PETGE"),  # the same step answered by two queries
    ]
    got = wl.entry_rows(answers, DAY, MACHINES, pseudo)
    assert dict(got.rows.select("step_id", "machine").iter_rows()) == {
        "1": "PET GE",
        "2": "PET Siemens",
        "3": "Millennium",
    }
    assert (got.other_days, got.unusable, got.not_ours) == (1, 0, 2)
    assert dict(got.rows.schema) == wl.ENTRY_SCHEMA


def snap(at: str, *rows: dict[str, Any]) -> pl.DataFrame:
    seen = dt.datetime.combine(DAY, dt.time.fromisoformat(at))
    base = {k: None for k in wl.ENTRY_SCHEMA}
    full = [{**base, "date": DAY, "machine": "PET GE", **r} for r in rows]
    return wl.snapshot_frame(pl.DataFrame(full, schema=wl.ENTRY_SCHEMA), seen)


def at(hhmm: str) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time.fromisoformat(hhmm))


def test_the_fold_keeps_every_step_seen_once_though_performed_ones_vanish() -> None:
    a = {"step_key": "a", "scheduled_start": at("08:00"), "scheduled_end": at("08:30")}
    b = {"step_key": "b", "scheduled_start": at("09:00"), "step_description": "X"}
    b2 = {**b, "scheduled_start": at("10:00")}  # rescheduled at 08:45
    c = {"step_key": "c", "scheduled_start": at("11:00"), "procedure_description": "Y"}
    snaps = pl.concat(
        [
            snap("06:00", a, b),
            snap("08:30", b),  # a performed: gone
            snap("09:00", b2, c),  # c booked the same day
            snap("10:30", c),
        ]
    )
    taken = [at("06:00"), at("08:30"), at("09:00"), at("10:30"), at("11:00")]
    plan = wl.fold_snapshots(DAY, snaps, taken)
    assert dict(plan.schema) == wl.PLANNED_SCHEMA
    rows = {r["step_key"]: r for r in plan.iter_rows(named=True)}
    assert set(rows) == {"a", "b", "c"}
    assert rows["a"]["last_seen"] == at("06:00") and rows["a"]["scheduled_duration_s"] == 1800
    assert rows["b"]["first_scheduled_start"] == at("09:00")
    assert rows["b"]["scheduled_start"] == at("10:00")
    assert rows["b"]["rescheduled"] and not rows["a"]["rescheduled"]
    assert rows["b"]["n_seen"] == 3
    assert [rows[k]["added_same_day"] for k in "abc"] == [False, False, True]
    assert rows["b"]["scheduled_description"] == "X"
    assert rows["c"]["scheduled_description"] == "Y"  # the requested procedure's


def test_a_step_first_seen_at_the_first_snapshot_of_its_day_was_not_added_that_day() -> None:
    # the day's first snapshot came at 09:00 (the worklist was down before): what it holds was
    # booked before, whatever the time
    s = {"step_key": "s", "scheduled_start": at("10:00")}
    plan = wl.fold_snapshots(DAY, snap("09:00", s), [at("09:00")])
    assert plan["added_same_day"].to_list() == [False]
    # seen first the day before: booked before
    before = snap("06:00", s).with_columns(seen_at=pl.lit(dt.datetime(2024, 3, 1, 17)))
    plan = wl.fold_snapshots(
        DAY, pl.concat([before, snap("07:00", s)]), [dt.datetime(2024, 3, 1, 17), at("07:00")]
    )
    assert plan["added_same_day"].to_list() == [False]


def test_a_day_whose_snapshots_found_nothing_has_an_empty_plan() -> None:
    plan = wl.fold_snapshots(DAY, pl.DataFrame(schema=wl.SNAPSHOT_SCHEMA), [at("06:00")])
    assert plan.height == 0 and dict(plan.schema) == wl.PLANNED_SCHEMA
