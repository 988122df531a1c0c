"""Injection to scan (DOMAIN §8): each study take's injection and uptake, the windows and the
numbers of the report's panel."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu_core import schema
from pyschedvisu_core.uptake import (
    FLAG_AFTER_SCAN,
    FLAG_OVER_24H,
    TOTAL,
    WINDOWED,
    UptakeWindow,
    uptake_table,
    uptake_totals,
    window_of,
)
from tests.test_studies import CT, NM, PT, SLOW, run, series, t

D = dt.date(2024, 3, 4)


# -- the study rule ----------------------------------------------------------------------------


def inj(at: dt.datetime | None, mbq: float | None = 250.0, tracer: str = "FDG") -> dict[str, Any]:
    return {
        "radiopharmaceutical": tracer,
        "radionuclide": "^18^Fluorine",
        "injected_at": at,
        "activity_mbq": mbq,
        "radiopharm_issue": None if at is not None else "injection_time_missing: x",
    }


def pet_study(uid: str, start: dt.datetime, **pt: Any) -> list[dict[str, Any]]:
    """A CT then a PET acquisition of study ``uid`` (PET ``pt`` columns)."""
    return [
        {"study_uid": uid, "machine": CT, "start": start, "end": start + dt.timedelta(minutes=1)},
        {
            "study_uid": uid,
            "machine": PT,
            "start": start + dt.timedelta(minutes=3),
            "end": start + dt.timedelta(minutes=20),
            **pt,
        },
    ]


def test_uptake_is_the_first_isotope_acquisition_start_minus_the_injection() -> None:
    out = run(series(*pet_study("a", t(9), **inj(t(8, 2, 30)))))
    row = out.row(0, named=True)
    assert row["uptake_s"] == 3600.0 + 30  # 09:03 - 08:02:30 (not the CT's 09:00)
    assert (row["tracer"], row["activity_mbq"], row["uptake_flag"]) == ("FDG", 250.0, None)
    assert row["injected_at"] == t(8, 2, 30)


def test_injection_after_the_scan_or_more_than_a_day_before_is_flagged_and_kept() -> None:
    out = run(
        series(
            *pet_study("after", t(9), **inj(t(9, 5))),
            *pet_study("old", t(12), **inj(t(12, 3) - dt.timedelta(days=1, seconds=1))),
            *pet_study("day", t(15), **inj(t(15, 3) - dt.timedelta(days=1))),
        )
    ).sort("study_uid")
    assert out["uptake_flag"].to_list() == [FLAG_AFTER_SCAN, None, FLAG_OVER_24H]
    assert out["uptake_s"].to_list() == [-120.0, 86400.0, 86401.0]


def test_first_series_with_an_injection_time_gives_it_else_the_first_for_its_issue() -> None:
    rows = [
        {"study_uid": "a", "machine": PT, "start": t(9), "end": t(9, 10), **inj(None)},
        {"study_uid": "a", "machine": PT, "start": t(9, 12), "end": t(9, 20), **inj(t(8), 300)},
        {"study_uid": "b", "machine": PT, "start": t(11), "end": t(11, 10), **inj(None)},
    ]
    out = run(series(*rows)).sort("study_uid")
    a, b = out.row(0, named=True), out.row(1, named=True)
    assert (a["injected_at"], a["activity_mbq"], a["uptake_s"]) == (t(8), 300.0, 3600.0)
    assert a["radiopharm_issue"] is None
    assert (b["injected_at"], b["uptake_s"]) == (None, None)
    assert b["radiopharm_issue"] == "injection_time_missing: x"


def test_a_study_without_isotope_series_or_stored_before_them_has_null_injection() -> None:
    ct_only = series({"study_uid": "c", "machine": CT, "start": t(9), "end": t(9, 5)})
    out = run(ct_only)
    assert out.height == 1 and out["tracer"].null_count() == 1
    old = series(*pet_study("a", t(9))).drop(
        "radiopharmaceutical", "injected_at", "activity_mbq", "radiopharm_issue"
    )
    out = run(old)
    assert out.height == 1 and out["uptake_s"].null_count() == 1


def test_each_take_measures_its_uptake_from_the_same_injection() -> None:
    """A bone scan: flow at injection, late phase 3 h later (one UID, two takes)."""
    rows = [
        {"study_uid": "os", "machine": NM, "start": t(8), "end": t(8, 5), **inj(t(7, 59, 50))},
        {"study_uid": "os", "machine": NM, "start": t(11), "end": t(11, 20), **inj(t(7, 59, 50))},
    ]
    out = run(series(*rows)).sort("take")
    assert out["take"].to_list() == [1, 2]
    assert out["uptake_s"].to_list() == [10.0, 3 * 3600 + 10.0]


def test_merged_vent_perf_keeps_the_injection_of_its_first_study() -> None:
    rows = [
        {
            "study_uid": "v",
            "machine": NM,
            "start": t(9),
            "end": t(9, 10),
            "study_description": "Ventilation",
            "patient_key": "p1",
            **inj(t(8, 58), 30, "Technegas"),
        },
        {
            "study_uid": "q",
            "machine": NM,
            "start": t(9, 20),
            "end": t(9, 30),
            "study_description": "Perfusion",
            "patient_key": "p1",
            **inj(t(9, 10), 150, "MAA"),
        },
    ]
    out = run(series(*rows))
    assert out.height == 1
    assert (out["tracer"][0], out["uptake_s"][0], out["activity_mbq"][0]) == (
        "Technegas",
        120.0,
        30.0,
    )


@st.composite
def injected_frames(draw: st.DrawFn) -> pl.DataFrame:
    rows = []
    for i in range(draw(st.integers(1, 12))):
        start = t(7) + dt.timedelta(seconds=draw(st.integers(0, 10 * 3600)))
        back = draw(st.one_of(st.none(), st.integers(-1800, 30 * 3600)))
        rows.append(
            {
                "study_uid": f"u{draw(st.integers(0, 3))}",
                "patient_key": "p",
                "machine": draw(st.sampled_from([PT, CT, NM])),
                "start": start,
                "end": start + dt.timedelta(seconds=draw(st.integers(60, 1800))),
                "series_uid": f"s{i}",
                **inj(None if back is None else start - dt.timedelta(seconds=back)),
            }
        )
    return series(*rows)


@SLOW
@given(injected_frames())
def test_uptake_is_the_rule_written_out(frame: pl.DataFrame) -> None:
    out = run(frame)
    # as DOMAIN §3.3 counts them: a series sent twice (same study, patient, start, end) once,
    # the lowest UID kept
    once = frame.sort("series_uid").unique(
        ["study_uid", "patient_key", "start", "end"], keep="first", maintain_order=True
    )
    iso = once.filter(pl.col("modality").is_in(["PT", "NM"]))
    for row in out.iter_rows(named=True):
        mine = iso.filter(
            (pl.col("study_uid") == row["study_uid"])
            & pl.col("start").is_between(row["start"], row["end"])
        ).sort("start", "series_uid")
        if mine.is_empty():
            assert row["tracer"] is None and row["uptake_s"] is None
            continue
        timed = mine.filter(pl.col("injected_at").is_not_null())
        chosen = (timed if timed.height else mine).row(0, named=True)
        assert row["injected_at"] == chosen["injected_at"]
        if chosen["injected_at"] is None:
            assert row["uptake_s"] is None and row["uptake_flag"] is None
            continue
        uptake = (mine["start"][0] - chosen["injected_at"]).total_seconds()
        assert row["uptake_s"] == uptake
        expected = FLAG_AFTER_SCAN if uptake < 0 else FLAG_OVER_24H if uptake > 86400 else None
        assert row["uptake_flag"] == expected


# -- windows and numbers -------------------------------------------------------------------------

FDG_W = UptakeWindow(
    "FDG",
    descriptions=("FDG STAND.",),
    tracers=("fdg", "fludeoxyglucose"),
    min_s=55 * 60,
    target_s=3600,
    max_s=75 * 60,
    activity_ref_mbq=250.0,
)
BRAIN = UptakeWindow("FDG CERV.")  # named, no bounds: no target, and no FDG fallback


def test_window_by_description_first_then_by_tracer() -> None:
    windows = [BRAIN, FDG_W]
    assert window_of("FDG STAND.", None, windows) is FDG_W
    assert window_of("FDG CERV.", "Fludeoxyglucose F^18^", windows) is BRAIN
    assert window_of("OTHER", "FLUDEOXYGLUCOSE", windows) is FDG_W
    assert window_of("OTHER", "Ga-68 PSMA-11", windows) is None
    assert window_of("OTHER", None, windows) is None


def studies(*rows: tuple[str, str | None, float | None, float | None, str | None]) -> pl.DataFrame:
    """(description, tracer, uptake min, activity MBq, flag) rows of PET studies."""
    return pl.DataFrame(
        [
            {
                "date": D,
                "description": d,
                "tracer": tr,
                "modalities": "CT,PT",
                "injected_at": None if up is None else t(8),
                "uptake_s": None if up is None else up * 60,
                "activity_mbq": act,
                "uptake_flag": flag,
            }
            for d, tr, up, act, flag in rows
        ],
        schema={
            k: schema.STUDY_SCHEMA[k]
            for k in (
                "date",
                "description",
                "tracer",
                "modalities",
                "injected_at",
                "uptake_s",
                "activity_mbq",
                "uptake_flag",
            )
        },
    )


def test_table_per_description_share_in_window_and_activity_against_reference() -> None:
    frame = studies(
        ("FDG STAND.", "FDG", 50, 200, None),
        ("FDG STAND.", "FDG", 60, 250, None),
        ("FDG STAND.", "FDG", 70, 300, None),
        ("FDG STAND.", "FDG", 80, 350, None),
        ("FDG STAND.", "FDG", -5, 260, FLAG_AFTER_SCAN),
        ("FDG STAND.", None, None, None, None),
        ("GA68 PSMA", "Ga-68 PSMA-11", 62, 150, None),
    )
    table = uptake_table(frame, ["GA68 PSMA", "FDG STAND."], [FDG_W])
    assert table["label"].to_list() == ["GA68 PSMA", "FDG STAND.", WINDOWED, TOTAL]
    fdg = table.row(1, named=True)
    assert (fdg["n"], fdg["n_uptake"], fdg["flagged"], fdg["no_injection"]) == (6, 4, 1, 1)
    assert (fdg["n_windowed"], fdg["in_window"], fdg["in_window_pct"]) == (4, 2, 50.0)
    assert fdg["median_s"] == 65 * 60 and fdg["p10_s"] == pytest.approx(53 * 60)
    assert (fdg["window"], fdg["min_s"], fdg["max_s"], fdg["activity_ref_mbq"]) == (
        "FDG",
        3300.0,
        4500.0,
        250.0,
    )
    assert fdg["activity_median_mbq"] == 260.0  # every PET study's activity, flagged or not
    psma = table.row(0, named=True)
    assert (psma["window"], psma["in_window_pct"], psma["n_windowed"]) == (None, None, 0)
    windowed, total = table.row(2, named=True), table.row(3, named=True)
    assert (total["n"], total["n_windowed"], total["in_window"]) == (7, 4, 2)
    # the studies with a window: one tracer, comparable activities (the summary's numbers)
    assert (windowed["n"], windowed["activity_median_mbq"]) == (6, 260.0)
    assert total["activity_median_mbq"] == 255.0
    totals = uptake_totals(frame, [FDG_W])
    keys = ("n", "median_s", "in_window_pct", "activity_median_mbq", "activity_p90_mbq")
    assert {k: totals[k] for k in keys} == {k: windowed[k] for k in keys}
    # without any window: every PET study
    assert uptake_totals(frame, [])["n"] == total["n"]


def test_without_windows_the_numbers_come_without_targets() -> None:
    frame = studies(("FDG STAND.", "FDG", 60, 250, None))
    table = uptake_table(frame, [], [])
    assert table["label"].to_list() == ["FDG STAND.", TOTAL]  # no "with a window" row
    row = table.row(0, named=True)
    assert (row["window"], row["in_window_pct"], row["median_s"]) == (None, None, 3600.0)


def test_nm_studies_are_not_in_the_pet_numbers() -> None:
    frame = studies(("OS", "Tc", 180, 700, None)).with_columns(pl.lit("NM").alias("modalities"))
    assert uptake_table(frame, [], [FDG_W]).is_empty()
    assert uptake_totals(frame, [FDG_W])["n"] == 0


def test_uptake_seconds_are_the_exact_quotient_not_a_reciprocal_product() -> None:
    """Regression: polars divides a column by a literal with its reciprocal, so 7,291,672 µs
    read 7.291671999999999 s against the truth's 7.291672 (3 in 10 values off by an ulp)."""
    rows = []
    for i in range(40):
        start = t(8) + dt.timedelta(minutes=10 * i)
        uptake = dt.timedelta(microseconds=7_291_672 + 1_000_003 * i)
        rows += pet_study(f"u{i:02d}", start, **inj(start + dt.timedelta(minutes=3) - uptake))
    out = run(series(*rows)).sort("study_uid")
    frame = series(*rows).filter(pl.col("modality") == "PT").sort("study_uid")
    expected = [(a - b).total_seconds() for a, b in frame.select("start", "injected_at").rows()]
    assert out["uptake_s"].to_list() == expected
