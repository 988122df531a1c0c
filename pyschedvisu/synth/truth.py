"""The truth of a planned day: what a perfect pipeline must store and report.

Derived from the plan (what was scheduled and written), with the rules of DOMAIN §2-3 applied
to it directly — no pipeline code is run. Frames use the shared schemas.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import polars as pl

from pyschedvisu.config import display_machine
from pyschedvisu.synth.plan import DayPlan, Series, Study
from pyschedvisu.synth.radiopharm import series_truth, uptake_truth
from pyschedvisu_core import schema
from pyschedvisu_core.labels import minify_machine

VENT_PERF = "VENT PERF."
OTHER = "OTHER"

#: Kept series as retrieval stores them, with the raw PatientID instead of the pseudonym
#: (``radiopharm_issue``: the issue codes only, "; "-joined, as in TRUTH_SERIES_SCHEMA).
KEPT_SERIES_SCHEMA: dict[str, pl.DataType] = {
    ("patient_id" if k == "patient_key" else k): v for k, v in schema.SERIES_SCHEMA.items()
}
#: Where each special case is (study- or series-level) — for tests and for people.
CASES_SCHEMA: dict[str, pl.DataType] = {
    "date": pl.Date(),
    "study_uid": pl.String(),
    "series_uid": pl.String(),
    "case": pl.String(),
}


@dataclass(frozen=True)
class Rules:
    """The config values the truth depends on (plain values, picklable)."""

    #: machine group -> minified model names, or a table naming them and the scanner's
    #: station_names / device_serial_numbers (identical scanners)
    machines: dict[str, list[str] | dict[str, list[str]]]
    descriptions: dict[str, dict[str, list[str]]]  # display key -> label -> patterns
    retake_split_s: int
    overlap_tolerance_s: int = 60


def minify_description(text: str) -> str:
    """DOMAIN §3.5: lower case, without spaces and ``_ - ^ ( ) + : . '`` (nor accents)."""
    plain = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[\s_\-^()+:.']", "", plain.lower())


def label_of(description: str, patterns: dict[str, list[str]]) -> str:
    """First label one of whose patterns matches the whole minified description, else OTHER."""
    mini = minify_description(description)
    for label, pats in patterns.items():
        if any(re.fullmatch(p, mini) for p in pats):
            return label
    return OTHER


def normalise_institution(name: str) -> str:
    """DOMAIN §2.2: lower case, every space removed."""
    return re.sub(r"\s+", "", name.lower())


def series_status(study: Study, s: Series) -> tuple[str, str | None]:
    """(status, reason) of a series; a study-level exclusion applies to all its series."""
    if study.reason:
        return "excluded", study.reason
    return s.status, s.reason


def _identifier(value: str) -> str:
    """A StationName / DeviceSerialNumber as compared: no whitespace, lower case."""
    return re.sub(r"\s+", "", value).lower()


def _group(rules: Rules, models: set[str], stations: set[str], serials: set[str]) -> str | None:
    """The machine group of a study's scanner (DOMAIN §3.2, §7), None for a mixed case.

    Entries with the study's model set whose named identifiers (if any) the study carries;
    those naming more identifier kinds win; winners of different groups: no group.
    """
    key = ",".join(sorted(models))
    seen: set[tuple[str, frozenset[str], frozenset[str]]] = set()
    found: list[tuple[int, str]] = []
    for group, wanted in rules.machines.items():
        named = wanted if isinstance(wanted, dict) else {"models": wanted}
        own = ",".join(sorted({minify_machine(m) for m in named.get("models", [])}))
        st = frozenset(_identifier(v) for v in named.get("station_names", []))
        se = frozenset(_identifier(v) for v in named.get("device_serial_numbers", []))
        if (own, st, se) in seen:
            continue  # the same scanner named twice: the first one counts
        seen.add((own, st, se))
        if own != key or (st and not st & stations) or (se and not se & serials):
            continue
        found.append((int(bool(st)) + int(bool(se)), group))
    if not found:
        return None
    top = max(n for n, _ in found)
    groups = {g for n, g in found if n == top}
    return groups.pop() if len(groups) == 1 else None


def day_truth(plan: DayPlan, rules: Rules) -> dict[str, pl.DataFrame]:
    """studies, uptake, series, excluded, kept_series and cases frames of one day."""
    day = plan.day
    series_rows: list[dict[str, Any]] = []
    kept_rows: list[dict[str, Any]] = []
    excluded_rows: list[dict[str, Any]] = []
    case_rows: list[dict[str, Any]] = []
    # study uid -> (display machine, kept spans); only studies that map to a machine group
    reportable: dict[str, tuple[str, list[tuple[dt.datetime, dt.datetime]]]] = {}
    kept_of: dict[str, list[Series]] = {}  # the series of each reportable study
    for study in plan.studies:
        case_rows += [
            {"date": day, "study_uid": study.uid, "series_uid": None, "case": c}
            for c in study.cases
        ]
        if study.reason:
            excluded_rows.append(
                {
                    "date": day,
                    "level": "study",
                    "study_uid": study.uid,
                    "series_uid": None,
                    "reason": study.reason,
                }
            )
        kept: list[Series] = []
        names = {normalise_institution(s.institution) for s in study.series if s.institution}
        for s in study.series:
            case_rows += [
                {"date": day, "study_uid": study.uid, "series_uid": s.uid, "case": c}
                for c in s.cases
            ]
            status, reason = series_status(study, s)
            start, end = s.span() if status == "kept" else (None, None)
            series_rows.append(
                {
                    "date": day,
                    "study_uid": study.uid,
                    "series_uid": s.uid,
                    "modality": s.modality,
                    "machine": s.model,
                    "n_instances": s.n_instances,
                    "start": start,
                    "end": end,
                    "station_name": s.station if status == "kept" else None,
                    "device_serial_number": s.serial if status == "kept" else None,
                    "status": status,
                    "reason": reason,
                    **(series_truth(s) if status == "kept" else {}),
                }
            )
            if status == "excluded" and not study.reason:
                excluded_rows.append(
                    {
                        "date": day,
                        "level": "series",
                        "study_uid": study.uid,
                        "series_uid": s.uid,
                        "reason": reason,
                    }
                )
            own = normalise_institution(s.institution) if s.institution else None
            if status == "kept":
                if own is not None:  # §3.1: a row without institution is not in the study
                    kept.append(s)
                kept_rows.append(
                    {
                        "date": day,
                        "patient_id": study.patient_id,
                        "study_uid": study.uid,
                        "series_uid": s.uid,
                        "study_description": study.description,
                        "series_description": s.description,
                        "protocol_name": s.protocol,
                        "institution": None if own is None else "mixed" if len(names) > 1 else own,
                        "modality": s.modality,
                        "n_instances": s.n_instances,
                        "machine": s.model,
                        "start": start,
                        "end": end,
                        "station_name": s.station,
                        "device_serial_number": s.serial,
                        **series_truth(s),
                    }
                )
        if not kept:
            continue  # every series excluded or failed: no study
        group = _group(
            rules,
            {minify_machine(s.model or "") for s in kept},
            {_identifier(s.station) for s in kept if s.station and _identifier(s.station)},
            {_identifier(s.serial) for s in kept if s.serial and _identifier(s.serial)},
        )
        if group is None:
            continue  # "mixed cases": left out of reports
        spans = sorted({s.span() for s in kept})  # same start/end in one study = duplicate series
        reportable[study.uid] = (display_machine(group), spans)
        kept_of[study.uid] = kept

    # series spans per display machine, to find another patient scanned in between
    spans_on: dict[str, list[tuple[dt.datetime, dt.datetime, str]]] = defaultdict(list)
    for uid, (machine, spans) in reportable.items():
        spans_on[machine] += [(a, b, uid) for a, b in spans]

    by_uid = {s.uid: s for s in plan.studies}
    tol = dt.timedelta(seconds=rules.overlap_tolerance_s)
    rows: list[dict[str, Any]] = []
    for uid, (machine, spans) in reportable.items():
        study = by_uid[uid]
        take, begin, finish = 1, spans[0][0], spans[0][1]
        takes: list[tuple[int, dt.datetime, dt.datetime]] = []
        reach = spans[0][1]  # the latest end of the study's series so far
        for start, end in spans[1:]:
            pause = (start - reach).total_seconds()
            # another patient's series in the idle stretch [reach, start), overlapping neither
            # side by more than the tolerance (an overlapping one cannot have been scanned in
            # between on one scanner: it cuts nothing)
            between = reach < start and any(
                a < start and b >= reach and a >= reach - tol and b <= start + tol
                for a, b, other in spans_on[machine]
                if by_uid[other].patient_id != study.patient_id  # another patient, not a study
            )
            if pause > rules.retake_split_s or between:
                takes.append((take, begin, finish))
                take, begin, finish = take + 1, start, end
            else:
                finish = max(finish, end)
            reach = max(reach, end)
        takes.append((take, begin, finish))
        label = label_of(study.description, rules.descriptions.get(minify_machine(machine), {}))
        rows += [
            {
                "date": day,
                "machine": machine,
                "study_uid": uid,
                "take": n,
                "description": label,
                "start": a,
                "end": b,
                "patient_id": study.patient_id,
            }
            for n, a, b in takes
        ]

    # ventilation + perfusion of one patient on one machine: one study
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for row in sorted(rows, key=lambda r: (r["start"], r["study_uid"], r["take"])):
        if row["description"] != VENT_PERF:
            out.append(row)
            continue
        key = (row["patient_id"], row["machine"])
        if key in merged:
            first = merged[key]
            first["end"] = max(first["end"], row["end"])
        else:
            merged[key] = row
            out.append(row)
    out.sort(key=lambda r: (r["machine"], r["start"], r["study_uid"], r["take"]))
    # the injection of each study take: its own PT / NM series (a merged VENT PERF row keeps
    # its first study's, as it keeps its uid)
    uptake = [
        {
            **{k: row[k] for k in ("date", "machine", "study_uid", "take")},
            **uptake_truth(
                [s for s in kept_of[row["study_uid"]] if row["start"] <= s.span()[0] <= row["end"]]
            ),
        }
        for row in out
    ]
    return {
        "studies": pl.DataFrame(out, schema=schema.TRUTH_STUDY_SCHEMA),
        "uptake": pl.DataFrame(uptake, schema=schema.TRUTH_UPTAKE_SCHEMA),
        "series": pl.DataFrame(series_rows, schema=schema.TRUTH_SERIES_SCHEMA),
        "excluded": pl.DataFrame(excluded_rows, schema=schema.EXCLUDED_SCHEMA),
        "kept_series": pl.DataFrame(kept_rows, schema=KEPT_SERIES_SCHEMA),
        "cases": pl.DataFrame(case_rows, schema=CASES_SCHEMA),
    }
