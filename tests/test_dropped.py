"""What the rules left out, with the values that did not match (never silent, issue 16)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import polars as pl

from pyschedvisu_core import dropped
from pyschedvisu_core.schema import Reason

D1, D2, D3 = dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)


def test_institution_names_are_read_from_the_excluded_reasons() -> None:
    reasons = [
        f"{Reason.INSTITUTION}: hopitalx, cliniquey",
        f"{Reason.INSTITUTION}: hopitalx",
        Reason.NO_INSTITUTION,
        "series_description_excluded",
        None,
    ]
    assert dropped.institution_names(reasons) == Counter({"hopitalx": 2, "cliniquey": 1})


def test_day_status_warns_when_filters_removed_every_study_or_none_was_found() -> None:
    assert dropped.day_status({"studies_found": 40, "studies": 38}) == "ok"
    assert dropped.day_status({"studies_found": 40, "studies": 0}) == dropped.NO_STUDIES_KEPT
    assert dropped.day_status({"studies_found": 0, "studies": 0}) == dropped.NO_STUDIES_FOUND
    assert dropped.day_status({"studies": 3}) == "ok"  # a summary of before the warnings


def tables() -> tuple[pl.DataFrame, pl.DataFrame]:
    studies = pl.DataFrame(
        {
            "date": [D1, D1, D1, D2],
            "machine": ["PET", "PET", "SPECT", "PET"],
            "description": ["FDG", "OTHER", "OTHER", "OTHER"],
            "study_descriptions": ["PET FDG", "PET-CT Choline", "Octréoscan,Octreoscan", None],
        }
    )
    mixed = pl.DataFrame(
        {
            "date": [D1, D3, D3],
            "models": ["ctx,nmy", "ct540,nm830", "ct540,nm830"],
            "stations": [None, "nuk-spect3", "nuk-spect3"],
            "serials": [None, "", ""],
        }
    )
    return studies, mixed


def test_from_tables_counts_mixed_combinations_other_descriptions_and_unreported_days() -> None:
    studies, mixed = tables()
    got = dropped.from_tables(studies, mixed, [D1, D2, D3])
    assert got.combinations == Counter({"ct540,nm830 @ station nuk-spect3": 2, "ctx,nmy": 1})
    # minified, accents gone, one study counted once per description
    assert got.other == {
        "PET": Counter({"petctcholine": 1, "(none)": 1}),
        "SPECT": Counter({"octreoscan": 1}),
    }
    assert got.days == {D3: dropped.NO_STUDY_REPORTED}  # D3: only mixed cases
    assert (got.n_mixed, got.n_other) == (3, 3)


def test_manifests_and_tables_merge_into_lines_an_artifact_and_short_notes() -> None:
    manifests = {
        D1: {
            "studies_found": 50,
            "studies": 48,
            "reasons": {},
            "dropped": {"institutions": {"hopitalx": 2}},
        },
        D2: {
            "studies_found": 56,
            "studies": 0,
            "reasons": {"institution_not_accepted": 56},
            "dropped": {"institutions": {"ksseeland": 56}},
        },
        D3: {"studies_found": 0, "studies": 0, "reasons": {}},
    }
    studies, mixed = tables()
    got = dropped.from_manifests(manifests).merge(dropped.from_tables(studies, mixed, [D1, D2]))
    lines = got.lines()
    assert lines[0] == (
        "58 studies excluded by institution (retrieve.accepted_institutions): "
        "ksseeland (56), hopitalx (2)"
    )
    assert (
        "1 business day(s) with no studies kept: 2024-03-05 (institution_not_accepted 56)" in lines
    )
    assert "1 business day(s) with no studies found: 2024-03-06" in lines
    assert any(line.startswith("1 studies left out as mixed cases") and "ctx,nmy (1)" in line for line in lines)  # fmt: skip
    md = got.markdown()
    assert "| ksseeland | 56 |" in md
    assert "| 2024-03-05 | no studies kept | institution_not_accepted 56 |" in md
    short = got.markdown(top=1)  # the latest days only
    assert "| 2024-03-06 |" in short and "| 2024-03-05 |" not in short
    assert "| … 1 earlier | | |" in short
    # two short lines at most (on every page); the day with no study found is not one
    assert got.notes("en") == [
        "Left out: 58 stud(ies) of other institutions (ksseeland 56, …) ; "
        "1 business day(s) with no study kept (2024-03-05).",
        "Not configured: 1 stud(ies) of unknown scanners, not in this report (ctx,nmy 1) ; "
        "3 labelled OTHER ((none) 1, …).",
    ]
    assert got.notes("fr")[1].startswith("Non configuré : 1 examen(s) d'appareils inconnus")
    assert not dropped.Dropped() and dropped.Dropped().notes() == []
    assert "Nothing" in dropped.Dropped().markdown()
