"""Synthetic studies tables (``schema.STUDY_SCHEMA``) for the report benchmark and demos.

Built directly as a frame (no PACS, no extraction): realistic days of 5 machines with prep
padding, retakes and a few gaps. Deterministic for a given seed.
"""

from __future__ import annotations

import datetime as dt
import random

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu_core import schema
from pyschedvisu_core.calendar import business_days
from pyschedvisu_core.labels import minify_machine


def synthetic_studies(
    start: dt.date, end: dt.date, settings: Settings | None = None, seed: int = 7
) -> pl.DataFrame:
    """Studies of every display machine of ``settings`` on the business days start..end."""
    settings = settings or Settings()
    rng = random.Random(seed)
    names = settings.machine_names()
    rows: list[dict[str, object]] = []
    days = business_days(start, end)
    for key, name in names.items():
        draw = settings.draw.machine[key]
        labels = [*settings.descriptions.get(key, {}).keys(), "OTHER"]
        weights = [1.0 / (i + 1) for i in range(len(labels))]
        prep = dt.timedelta(minutes=draw.prep_minutes)
        for day in days:
            if rng.random() < 0.03:  # machine down / not retrieved
                continue
            n = max(1, round(draw.slots_per_weekday[day.weekday()] * rng.uniform(0.6, 1.05)))
            t = dt.datetime.combine(day, dt.time(7, 30)) + dt.timedelta(minutes=rng.randint(0, 30))
            for i in range(n):
                label = rng.choices(labels, weights)[0]
                long = draw.slots_per_weekday[day.weekday()] <= 7
                dur = dt.timedelta(minutes=rng.uniform(20, 60) if long else rng.uniform(10, 28))
                uid = f"1.2.826.0.1.{key}.{day:%Y%m%d}.{i}"
                takes = [t]
                if label in settings.draw.retake_descriptions and rng.random() < 0.7:
                    takes.append(t + dt.timedelta(hours=rng.uniform(2, 3)))
                for take, st in enumerate(takes, start=1):
                    rows.append(
                        {
                            "date": day,
                            "machine": name,
                            "machine_group": name,
                            "study_uid": uid,
                            "take": take,
                            "study_key": f"{uid}_{take}",
                            "description": label,
                            "start": st,
                            "end": st + dur,
                            "start_prep": st - prep,
                            "end_prep": st + dur + prep,
                            "patient_key": f"PK{rng.getrandbits(64):016x}",
                            "modalities": "CT,PT",
                            "n_series": 3,
                            "fully_contained": False,
                        }
                    )
                t = (
                    t
                    + dur
                    + 2 * prep
                    + dt.timedelta(minutes=rng.choice([0] * 12 + [5, 10, 20, 45, 75]))
                )
    frame = pl.DataFrame(rows)
    for col, dtype in schema.STUDY_SCHEMA.items():
        if col not in frame.columns:
            frame = frame.with_columns(pl.lit(None, dtype=dtype).alias(col))
    return frame.select([pl.col(c).cast(t) for c, t in schema.STUDY_SCHEMA.items()])


__all__ = ["minify_machine", "synthetic_studies"]
