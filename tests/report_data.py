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
