"""The Seeland department in the tests: another hospital's names on the synthetic days.

Helpers shared by the tests of ``discover`` and of the loud mismatches: the labels a user
gives the study descriptions a draft lists, and the truth of those days under a config.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Any

import polars as pl

from pyschedvisu.config import Settings, default_toml, load_settings
from pyschedvisu.synth import SEELAND, truth_frames
from pyschedvisu.synth import catalog as cat
from pyschedvisu.synth.generate import Dept, day_plan

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]
SEED = 7

_SUGGESTION = re.compile(r'^# (?P<label>"[^"]*"|\S+) = \["(?P<pattern>[^"]*)"\]  # ')


def intended_labels() -> dict[str, str]:
    """Seeland StudyDescription -> the label its study type has in the reference catalog."""
    back = {new: old for old, new in SEELAND.descriptions.items()}
    types = [t for m in cat.MACHINES.values() for t in m.types]
    types += [cat.VENT, cat.PERF, cat.INTERLEAVED]
    label_of = {d: t.label for t in types for d in t.descriptions}
    return {new: label_of[old] for new, old in back.items() if old in label_of}


def suggestions(draft: str) -> dict[str, list[tuple[str, str]]]:
    """Per ``[descriptions.<key>]`` table of a draft, its commented (label, pattern) lines."""
    out: dict[str, list[tuple[str, str]]] = {}
    key = None
    for line in draft.splitlines():
        if line.startswith("[descriptions."):
            key = tomllib.loads(f"{line}\n")["descriptions"].popitem()[0]
            out[key] = []
        elif line.startswith("["):
            key = None
        elif key is not None and (m := _SUGGESTION.match(line)):
            label = (
                tomllib.loads(f"x = {m['label']}")["x"]
                if m["label"].startswith('"')
                else m["label"]
            )
            out[key].append((label, m["pattern"]))
    return out


def label_draft(draft_path: Path, out: Path, *, skip: tuple[str, ...] = ()) -> Path:
    """The draft with its suggested descriptions named as the department names them: the one
    edit a user makes (every suggestion labelled, except the machines in ``skip``)."""
    text = draft_path.read_text(encoding="utf-8")
    labels = intended_labels()
    settings = load_settings(draft_path)
    tables: dict[str, dict[str, list[str]]] = {}
    for key, found in suggestions(text).items():
        table: dict[str, list[str]] = {}
        if key not in skip:
            for suggested, pattern in found:
                label = labels.get(suggested, suggested)  # a description as it was typed
                if label != "OTHER":
                    table.setdefault(label, []).append(pattern)
        tables[key] = table
    settings.descriptions = tables
    out.write_text(default_toml(settings), encoding="utf-8")
    return out


def truth(settings: Settings, days: list[dt.date] = DAYS) -> pl.DataFrame:
    """The studies a perfect pipeline reports with ``settings`` on the Seeland days."""
    return truth_frames(days, SEED, settings, SEELAND)["studies"]


def scanners_of(days: list[dt.date] = DAYS) -> dict[str, str]:
    """study uid -> the (reference) key of the scanner it was planned on."""
    dept = Dept.from_settings(Settings(), SEELAND)
    return {s.uid: s.machine for d in days for s in day_plan(d, SEED, dept).studies if s.machine}


def patient_values(days: list[dt.date] = DAYS) -> set[str]:
    """Every PatientID and PatientName written on those days (must never be shown)."""
    dept = Dept.from_settings(Settings(), SEELAND)
    out: set[str] = set()
    for d in days:
        for s in day_plan(d, SEED, dept).studies:
            out |= {s.patient_id, s.patient_name}
    return out


__all__: list[str] = [
    "DAYS",
    "SEED",
    "intended_labels",
    "label_draft",
    "patient_values",
    "scanners_of",
    "suggestions",
    "truth",
]
_ = Any
