"""Small, hand-checked study tables shared by the report tests (figures, render)."""

from __future__ import annotations

import datetime as dt

import polars as pl

from pyschedvisu_core import schema

MON = dt.date(2019, 11, 18)
TUE = dt.date(2019, 11, 19)
END = dt.date(2019, 11, 22)  # a Friday
SECRET_PATIENT = "PKSECRETPATIENT0042"


def study(
    day: dt.date,
    start: str,
    end: str,
    description: str,
    uid: str,
    take: int = 1,
    machine: str = "PET GE",
    prep: int = 10,
) -> dict[str, object]:
    """One row of the study table (times ``HH:MM``), prep-padded by ``prep`` minutes."""
    s = dt.datetime.combine(day, dt.time.fromisoformat(start))
    e = dt.datetime.combine(day, dt.time.fromisoformat(end))
    pad = dt.timedelta(minutes=prep)
    return {
        "date": day,
        "machine": machine,
        "machine_group": machine,
        "study_uid": uid,
        "take": take,
        "study_key": f"{uid}_{take}",
        "description": description,
        "start": s,
        "end": e,
        "start_prep": s - pad,
        "end_prep": e + pad,
        "patient_key": SECRET_PATIENT,
        "modalities": "CT,PT",
        "n_series": 2,
        "fully_contained": False,
    }


def frame(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Rows as a frame with exactly ``schema.STUDY_SCHEMA``."""
    f = pl.DataFrame(rows)
    return f.select(
        [
            (pl.col(c) if c in f.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in schema.STUDY_SCHEMA.items()
        ]
    )


def known_week(machine: str = "PET GE") -> pl.DataFrame:
    """8 studies, 2 gaps (>= 30 min), one study inside another, one study with a retake.

    Mon: A 08:00-08:30, B 08:40-09:10, [gap 09:20-10:20 = 60 min], C 10:30-11:00,
    D 11:00-13:00 (OTHER) with E 11:30-12:00 inside it, F 13:30-14:15 (10 min after D's
    padded end: no gap). Tue: G 08:00-08:20 (OS 3 PHASE take 1), [gap 08:30-09:20 = 50 min],
    H 09:30-09:50 (its take 2).
    """
    m = machine
    return frame(
        [
            study(MON, "08:00", "08:30", "FDG STAND.", "u1", machine=m),
            study(MON, "08:40", "09:10", "FDG CORPS", "u2", machine=m),
            study(MON, "10:30", "11:00", "FDG STAND.", "u3", machine=m),
            study(MON, "11:00", "13:00", "OTHER", "u4", machine=m),
            study(MON, "11:30", "12:00", "RB82 COEUR", "u5", machine=m),
            study(MON, "13:30", "14:15", "FDG STAND.", "u6", machine=m),
            study(TUE, "08:00", "08:20", "OS 3 PHASE", "u7", 1, machine=m),
            study(TUE, "09:30", "09:50", "OS 3 PHASE", "u7", 2, machine=m),
        ]
    )


def injected(
    studies: pl.DataFrame, injections: dict[str, tuple[str, float | None, float]]
) -> pl.DataFrame:
    """``studies`` with the injection of the listed study keys: key -> (tracer, minutes
    before the start (None: no injection time read), activity MBq). Uptake and flag follow
    the rule (``pyschedvisu_core.uptake``)."""
    rows = []
    for r in studies.iter_rows(named=True):
        found = injections.get(r["study_key"])
        if found is not None:
            tracer, minutes, mbq = found
            at = None if minutes is None else r["start"] - dt.timedelta(minutes=minutes)
            uptake = None if minutes is None else minutes * 60.0
            flag = None
            if uptake is not None and uptake < 0:
                flag = "injection_after_scan"
            elif uptake is not None and uptake > 86400:
                flag = "injection_over_24h"
            r = {
                **r,
                "tracer": tracer,
                "radionuclide": "^18^Fluorine",
                "injected_at": at,
                "activity_mbq": mbq,
                "uptake_s": uptake,
                "uptake_flag": flag,
                "radiopharm_issue": None if at is not None else "injection_time_unparseable: x",
            }
        rows.append(r)
    return frame(rows)


FDG = "Fludeoxyglucose F^18^"
#: The known week's PET studies with their injections: u1, u3 in the FDG window, u6 late,
#: u2 (FDG CORPS) early, u5 (Rb-82) at the start, u4 entered after its start (flagged), u7
#: (NM) none.
WEEK_INJECTIONS: dict[str, tuple[str, float | None, float]] = {
    "u1_1": (FDG, 62, 240.0),
    "u2_1": (FDG, 50, 310.0),
    "u3_1": (FDG, 58, 260.0),
    "u4_1": (FDG, -5, 280.0),
    "u5_1": ("Rubidium chloride Rb-82", 0.5, 1100.0),
    "u6_1": (FDG, 80, 200.0),
}


def injected_week(machine: str = "PET GE") -> pl.DataFrame:
    """:func:`known_week` with :data:`WEEK_INJECTIONS`."""
    return injected(known_week(machine), WEEK_INJECTIONS)
