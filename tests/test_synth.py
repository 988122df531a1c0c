"""The synthetic department: determinism, truth consistent with the files, every case, CLI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import polars as pl
import pydicom
import pytest
from polars.testing import assert_frame_equal
from pydicom import config as dicom_config
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import Settings
from pyschedvisu.demo_pacs.indexing import INDEX_FILE
from pyschedvisu.synth import catalog, generate, plan
from pyschedvisu.synth.generate import Dept
from pyschedvisu.synth.plan import plan_day
from pyschedvisu.synth.truth import label_of
from pyschedvisu.synth.writer import tm
from pyschedvisu_core import schema
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.schema import Reason
from pyschedvisu_core.series import normalise_institution
from tests.fixtures.synth import WEEK_SEED

SETTINGS = Settings()

#: Every case the rules handle; each must occur several times in a week.
CASES = list(plan.CASES)


def tree_digest(root: Path) -> dict[str, str]:
    """Digest of every file under ``root`` but the demo PACS's index cache (it holds the
    files' mtimes)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != INDEX_FILE
    }


# -- an independent reading of the files, with the rules of DOMAIN §2-3 ---------------------

_TM = re.compile(r"^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{1,6}))?)?)?$")


def parse_tm(day: dt.date, value: Any) -> dt.datetime | None:
    m = _TM.match(str(value or "").strip())
    if not m:
        return None
    h, mi, s, f = m.groups()
    if int(h) > 23 or int(mi or 0) > 59 or int(s or 0) > 59:
        return None
    return dt.datetime.combine(
        day, dt.time(int(h), int(mi or 0), int(s or 0), int((f or "0").ljust(6, "0")))
    )


def nm_duration_ms(ds: pydicom.Dataset) -> int | None:
    if "PhaseInformationSequence" in ds:
        return sum(
            int(i.ActualFrameDuration) * int(i.NumberOfFramesInPhase)
            for i in ds.PhaseInformationSequence
        )
    if "RotationInformationSequence" in ds:
        total = 0
        for i in ds.RotationInformationSequence:
            n = (
                int(i.NumberOfFramesInRotation)
                if "NumberOfFramesInRotation" in i
                else len(i.RadialPosition)
            )
            total += int(i.ActualFrameDuration) * n
        return total
    if "ActualFrameDuration" in ds:
        return int(ds.ActualFrameDuration) * int(ds.NumberOfFrames)
    return None


def read(path: Path) -> tuple[pydicom.Dataset, str | None]:
    """The header and its raw AcquisitionTime (garbled on purpose in a few files)."""
    with dicom_config.disable_value_validation():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        raw = ds.get("AcquisitionTime")
        return ds, None if raw is None else str(raw)


def series_from_files(day_dir: Path) -> dict[str, dict[str, Any]]:
    """Per series UID: what the rules make of its first and last instances."""
    day = dt.datetime.strptime(day_dir.name, "%Y%m%d").date()
    out: dict[str, dict[str, Any]] = {}
    for series_dir in sorted(day_dir.glob("*/*")):
        files = sorted(series_dir.glob("*.dcm"), key=lambda p: int(p.stem))
        (first, first_tm), (last, last_tm) = read(files[0]), read(files[-1])
        assert int(first.InstanceNumber) == 1 and int(last.InstanceNumber) == len(files)
        assert (first.get("SeriesDate") or first.AcquisitionDate) == day_dir.name
        start, end = parse_tm(day, first_tm), parse_tm(day, last_tm)
        if first.Modality == "NM" and start is not None:
            ms = nm_duration_ms(first)
            end = None if ms is None else start + dt.timedelta(milliseconds=ms)
        brain = re.search(r"cerveau\s*(\d+)\s*min", str(first.get("SeriesDescription", "")), re.I)
        if brain and start is not None:
            end = start + dt.timedelta(minutes=int(brain.group(1)))
        if start is not None and end is not None and end < start:
            start, end = end, start
        out[series_dir.name] = {
            "ds": first,
            "n": len(files),
            "start": start,
            "end": end,
            "machine": first.get("ManufacturerModelName"),
        }
    return out


def expected_series_reason(ds: pydicom.Dataset, n: int) -> str | None:
    desc = str(ds.get("SeriesDescription", ""))
    if any(re.match(p, desc, re.I) for p in SETTINGS.retrieve.series_description_exclude):
        return Reason.SERIES_DESCRIPTION
    if str(ds.get("ProtocolName", "")) in SETTINGS.retrieve.series_protocol_exclude:
        return Reason.PROTOCOL
    if ds.Modality == "NM" and n > 1:
        return Reason.NM_DERIVED
    if "SECONDARY" in list(ds.ImageType):
        return Reason.SECONDARY
    return None


# -- tests -----------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_truth_and_a_day_is_independent_of_its_range(
    synth_week: Path, tmp_path: Path
) -> None:
    # one day alone, in-process, must be byte-identical to the same day of the week (pool)
    day = dt.date(2024, 3, 6)
    summary = generate(tmp_path / "one", day, day, WEEK_SEED, SETTINGS, workers=1)
    assert summary.days == 1 and summary.generated_days == 1
    assert tree_digest(tmp_path / "one" / "dicom" / "20240306") == tree_digest(
        synth_week / "dicom" / "20240306"
    )
    assert tree_digest(tmp_path / "one" / "truth" / "days") == {
        k: v
        for k, v in tree_digest(synth_week / "truth" / "days").items()
        if k.startswith("20240306")
    }
    # two days with a process pool: identical to the same days of the week
    two = generate(
        tmp_path / "two", dt.date(2024, 3, 7), dt.date(2024, 3, 8), WEEK_SEED, SETTINGS, workers=2
    )
    assert two.generated_days == 2
    week = tree_digest(synth_week)
    for part in ("dicom", "truth/days"):
        got = tree_digest(tmp_path / "two" / part)
        assert got and got == {
            k: v
            for k, v in tree_digest(synth_week / part).items()
            if k[:8] in ("20240307", "20240308")
        }
    assert week
    # a different seed is a different department
    dept = Dept.from_settings(SETTINGS)
    seven, eight = (plan_day(day, seed, dept.slots, dept.machine_keys) for seed in (7, 8))
    assert [s.patient_id for s in seven.studies] != [s.patient_id for s in eight.studies]
    assert {s.uid for s in seven.studies}.isdisjoint(s.uid for s in eight.studies)


def test_no_wall_clock_in_files(synth_week: Path) -> None:
    info = json.loads((synth_week / "synth.json").read_text())
    assert info["seed"] == WEEK_SEED and info["start"] == "2024-03-04" and info["version"]
    assert info["days"] == [f"2024-03-0{d}" for d in range(4, 9)]
    assert not re.search(r"20(2[5-9]|3\d)-", json.dumps(info))  # only the generated days' dates
    marker = json.loads((synth_week / "truth" / "days" / "20240304" / "day.json").read_text())
    assert set(marker) == {"day", "seed", "version", "config", "counts"}


def test_holidays_and_weekends_are_skipped(tmp_path: Path) -> None:
    # Good Friday 2024-03-29, weekend, Easter Monday 2024-04-01 (Vaud public holidays)
    summary = generate(tmp_path, dt.date(2024, 3, 29), dt.date(2024, 4, 1), 1, SETTINGS, workers=1)
    assert summary.days == 0 and summary.instances == 0
    assert list((tmp_path / "dicom").iterdir()) == []
    for kind, target in (
        ("studies", schema.TRUTH_STUDY_SCHEMA),
        ("series", schema.TRUTH_SERIES_SCHEMA),
    ):
        assert_frame_equal(
            pl.read_parquet(tmp_path / "truth" / f"{kind}.parquet"), schema.empty(target)
        )


def test_truth_files_have_the_shared_schemas(synth_week: Path) -> None:
    for kind, target in (
        ("studies", schema.TRUTH_STUDY_SCHEMA),
        ("series", schema.TRUTH_SERIES_SCHEMA),
        ("excluded", schema.EXCLUDED_SCHEMA),
    ):
        frame = pl.read_parquet(synth_week / "truth" / f"{kind}.parquet")
        assert dict(frame.schema) == target, kind
        assert frame.height > 0
    series = pl.read_parquet(synth_week / "truth" / "series.parquet")
    assert set(series["status"]) == {"kept", "excluded", "failed"}
    assert set(series.filter(pl.col("status") != "kept")["reason"]) <= set(
        Reason.EXCLUDED + Reason.FAILED
    )
    assert series.filter(pl.col("status") == "kept").select(
        pl.col("start", "end").is_null().any()
    ).row(0) == (False, False)
    failed = series.filter(pl.col("status") == "failed").height / series.height
    assert 0.01 < failed < 0.05  # a small share of broken headers
    studies = pl.read_parquet(synth_week / "truth" / "studies.parquet")
    assert studies.filter(pl.col("end") < pl.col("start")).height == 0
    assert studies["patient_id"].str.contains(r"^\d+$").all()
    assert set(studies["machine"]) == {
        "PET Siemens",
        "PET GE",
        "Discovery 670 NM",
        "Millennium",
        "Intevo",
    }
    # a realistic day: 25-50 studies, mornings start 07:30-08:30 (later when the first is left out), days end in the afternoon
    per_day = studies.group_by("date").len()["len"]
    assert per_day.min() >= 25 and per_day.max() <= 60  # type: ignore[operator]
    bounds = studies.group_by("date", "machine").agg(pl.col("start").min(), pl.col("end").max())
    assert bounds["start"].dt.hour().min() >= 7 and bounds["start"].dt.hour().max() <= 9  # type: ignore[operator]
    assert bounds.filter(pl.col("machine").str.starts_with("PET"))["end"].dt.hour().min() >= 13  # type: ignore[operator]


def test_every_series_in_the_truth_matches_its_files(synth_week: Path) -> None:
    truth = pl.read_parquet(synth_week / "truth" / "series.parquet")
    rows = {r["series_uid"]: r for r in truth.iter_rows(named=True)}
    excluded_studies = {
        r["study_uid"]: r["reason"]
        for r in pl.read_parquet(synth_week / "truth" / "excluded.parquet")
        .filter(pl.col("level") == "study")
        .iter_rows(named=True)
    }
    accepted = set(SETTINGS.retrieve.accepted_institutions)
    seen = 0
    # only the day folders: a PACS serving this folder may keep its index file beside them
    for day_dir in sorted(
        d for d in (synth_week / "dicom").iterdir() if d.is_dir() and d.name.isdigit()
    ):
        files = series_from_files(day_dir)
        by_study: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for uid, f in files.items():
            by_study[str(f["ds"].StudyInstanceUID)].append(f)
            row = rows[uid]
            seen += 1
            assert row["n_instances"] == f["n"] and row["modality"] == f["ds"].Modality
            assert row["machine"] == f["machine"], uid
            if row["status"] == "kept":
                assert (row["start"], row["end"]) == (f["start"], f["end"]), (
                    uid,
                    row,
                    f["start"],
                    f["end"],
                )
                assert expected_series_reason(f["ds"], f["n"]) is None
            elif row["status"] == "failed":
                why = {
                    Reason.NO_START: f["start"] is None,
                    Reason.NO_END: f["start"] is not None and f["end"] is None,
                    Reason.NO_MACHINE: f["machine"] is None
                    and f["start"] is not None
                    and f["end"] is not None,
                }
                assert why[row["reason"]], (uid, row["reason"])
            elif row["study_uid"] not in excluded_studies:
                assert expected_series_reason(f["ds"], f["n"]) == row["reason"], (
                    uid,
                    row["reason"],
                )
        # study-level exclusions follow from the headers, in retrieval order
        for study_uid, series in by_study.items():
            ds = series[0]["ds"]
            names = {
                re.sub(r"\s+", "", str(s["ds"].InstitutionName).lower())
                for s in series
                if s["ds"].get("InstitutionName")
            }
            if not str(ds.PatientID).isdigit():
                expected = Reason.PATIENT_ID
            elif str(ds.StudyDescription).upper() in SETTINGS.retrieve.study_description_exclude:
                expected = Reason.STUDY_DESCRIPTION
            elif not names:
                expected = Reason.NO_INSTITUTION
            elif not names & accepted:
                expected = Reason.INSTITUTION
            else:
                expected = None
            assert excluded_studies.get(study_uid) == expected, study_uid
    assert seen == truth.height


def test_truth_studies_follow_the_rules(synth_week: Path) -> None:
    studies = pl.read_parquet(synth_week / "truth" / "studies.parquet")
    series = pl.read_parquet(synth_week / "truth" / "series.parquet")
    kept = series.filter(pl.col("status") == "kept")
    cases = pl.read_parquet(synth_week / "truth" / "cases.parquet")

    def uids(case: str) -> list[str]:
        return cases.filter(pl.col("case") == case)["study_uid"].unique().sort().to_list()

    takes = studies.group_by("study_uid").agg(pl.col("take").sort(), pl.len())
    assert all(t == list(range(1, len(t) + 1)) for t in takes["take"].to_list())
    # every truth study starts and ends on one of its kept series (VENT PERF.: see below)
    for row in studies.filter(pl.col("description") != "VENT PERF.").iter_rows(named=True):
        own = kept.filter(pl.col("study_uid") == row["study_uid"])
        assert row["start"] in own["start"].to_list() and row["end"] in own["end"].to_list()
    # retakes: 3-phase bone scan early + late, one UID, two takes hours apart
    for uid in uids("retake"):
        rows = studies.filter(pl.col("study_uid") == uid).sort("take")
        assert rows.height == 2 and rows["description"].to_list() == ["OS 3 PHASE"] * 2
        assert (rows["start"][1] - rows["end"][0]).total_seconds() > SETTINGS.extract.retake_split_s
    # another patient between two series: two takes less than retake_split_s apart
    for uid in uids("interleaved"):
        rows = studies.filter(pl.col("study_uid") == uid).sort("take")
        assert rows.height == 2
        pause = (rows["start"][1] - rows["end"][0]).total_seconds()
        assert 0 < pause < SETTINGS.extract.retake_split_s
        day, machine = rows["date"][0], rows["machine"][0]
        between = studies.filter(
            (pl.col("date") == day)
            & (pl.col("machine") == machine)
            & (pl.col("study_uid") != uid)
            & (pl.col("start") > rows["end"][0])
            & (pl.col("start") < rows["start"][1])
        )
        assert between.height == 1 and between["study_uid"][0] in uids("interleaved_other")
    # ventilation + perfusion: one row per pair (the earlier study's UID), spanning both studies
    pairs = (
        cases.filter(pl.col("case") == "vent_perf")
        .group_by("date")
        .agg(pl.col("study_uid").unique())
    )
    assert pairs.height == 5
    for day, pair in pairs.iter_rows():
        rows = studies.filter(pl.col("study_uid").is_in(pair))
        both = kept.filter(pl.col("study_uid").is_in(pair))
        earlier = both.sort("start")["study_uid"][0]
        assert rows.height == 1 and rows["description"][0] == "VENT PERF.", day
        assert (rows["study_uid"][0], rows["take"][0]) == (earlier, 1)
        assert (rows["start"][0], rows["end"][0]) == (both["start"].min(), both["end"].max())
    # left out of the truth: mixed cases and every excluded study
    absent = set(uids("mixed_cases")) | set(
        pl.read_parquet(synth_week / "truth" / "excluded.parquet").filter(
            pl.col("level") == "study"
        )["study_uid"]
    )
    assert absent and not absent & set(studies["study_uid"])
    # broken headers: the study stays, timed by its good series only
    for uid in uids("broken"):
        good = kept.filter(pl.col("study_uid") == uid)
        rows = studies.filter(pl.col("study_uid") == uid)
        assert rows.height >= 1
        assert rows["start"].min() == good["start"].min() and rows["end"].max() == good["end"].max()
    # mixed institutions are kept
    assert set(uids("mixed_institution")) <= set(studies["study_uid"])
    # duplicated series: two kept series with the same times, one study
    dup = cases.filter(pl.col("case") == "duplicate_series")
    times = (
        kept.join(dup.select("series_uid"), on="series_uid")
        .group_by("study_uid")
        .agg(pl.col("start").n_unique(), pl.len())
    )
    assert (times["start"] == 1).all() and (times["len"] == 2).all()
    # some descriptions match no pattern: OTHER
    assert (studies["description"] == "OTHER").sum() >= 5


def test_every_case_occurs_several_times_a_week(synth_week: Path) -> None:
    cases = pl.read_parquet(synth_week / "truth" / "cases.parquet")
    counts = Counter(cases.unique(["study_uid", "series_uid", "case"])["case"].to_list())
    rare = {c: counts.get(c, 0) for c in CASES if counts.get(c, 0) < 2}
    assert not rare, rare
    days = cases.group_by("case").agg(pl.col("date").n_unique())
    per_day = dict(days.iter_rows())
    for case in (
        "retake",
        "vent_perf",
        "interleaved",
        "brain_fdg",
        "mixed_cases",
        "no_machine",
        "tm_hour",
        "overlapping_other",
    ):
        assert per_day[case] == 5, case


def test_another_patients_overlapping_series_cuts_no_study_in_the_truth(synth_week: Path) -> None:
    # DOMAIN §3.3: the "overlapping_other" series starts in the pause after the overlapped
    # study's first series and runs minutes into it: the 2019 rule left its first series
    # (a 0-second scout) as a study of its own. The truth keeps one take.
    cases = pl.read_parquet(synth_week / "truth" / "cases.parquet")
    studies = pl.read_parquet(synth_week / "truth" / "studies.parquet")
    series = pl.read_parquet(synth_week / "truth" / "series.parquet")
    overlapped = cases.filter(pl.col("case") == "overlapped")["study_uid"].unique()
    others = cases.filter(pl.col("case") == "overlapping_other")["study_uid"].unique()
    assert overlapped.len() == others.len() == 5
    ours = studies.filter(pl.col("study_uid").is_in(overlapped.implode()))
    assert ours["take"].to_list() == [1] * 5
    assert ((ours["end"] - ours["start"]).dt.total_seconds() > 600).all()
    theirs = series.filter(pl.col("study_uid").is_in(others.implode()))
    for (day,), day_series in theirs.group_by("date"):
        (other,) = day_series.iter_rows(named=True)
        (study,) = ours.filter(pl.col("date") == day).iter_rows(named=True)
        assert study["start"] < other["start"] and other["end"] < study["end"]


def test_catalog_descriptions_get_their_intended_labels() -> None:
    for machine in catalog.MACHINES.values():
        patterns = SETTINGS.descriptions[machine.key]
        for st in machine.types:
            for desc in st.descriptions:
                assert label_of(desc, patterns) == st.label, (machine.key, desc)
    for st in (catalog.VENT, catalog.PERF):
        for key in ("discovery670nm", "intevo"):
            assert {label_of(d, SETTINGS.descriptions[key]) for d in st.descriptions} == {
                "VENT PERF."
            }
    assert minify_machine("Biograph64_Vision 600") == "biograph64vision600"


def test_tm_values_have_the_real_shapes() -> None:
    t = dt.datetime(2024, 3, 4, 8, 30, 15, 123456)
    assert tm(t, "frac") == "083015.123456"
    assert tm(t.replace(microsecond=0), "full", exact=True) == "083015"
    assert tm(t.replace(second=0, microsecond=0), "min", exact=True) == "0830"
    assert tm(dt.datetime(2024, 3, 4, 8), "hour", exact=True) == "08"
    with pytest.raises(ValueError, match="without loss"):
        tm(t, "min", exact=True)


def test_cli_generates_skips_complete_days_and_forces(tmp_path: Path, synth_week: Path) -> None:
    runner = CliRunner()
    args = [
        "synth",
        "--out",
        str(tmp_path),
        "--start",
        "2024-03-08",
        "--end",
        "2024-03-10",
        "--seed",
        "7",
        "--workers",
        "1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "1 business days (1 generated" in result.output
    assert tree_digest(tmp_path / "dicom") == {
        k: v for k, v in tree_digest(synth_week / "dicom").items() if k.startswith("20240308")
    }
    a_file = next((tmp_path / "dicom").rglob("*.dcm"))
    stamp = a_file.stat().st_mtime_ns
    result = runner.invoke(app, args)
    assert result.exit_code == 0 and "(0 generated, 1 already there)" in result.output
    assert a_file.stat().st_mtime_ns == stamp
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0 and "(1 generated" in result.output
    assert a_file.stat().st_mtime_ns != stamp
    result = runner.invoke(
        app, ["synth", "--out", str(tmp_path), "--start", "2024-03-08", "--end", "nope"]
    )
    assert result.exit_code == 2


def test_another_department_matches_nothing_of_the_reference_config_but_its_filters() -> None:
    """Seeland: every study description falls to OTHER with the reference patterns, every
    institution and scanner model is unknown to it; the two SPECT/CT are one model."""
    from pyschedvisu.synth import SEELAND

    for machine in catalog.MACHINES.values():
        for st in machine.types:
            for desc in st.descriptions:
                new = SEELAND.descriptions[desc]
                for patterns in SETTINGS.descriptions.values():
                    assert label_of(new, patterns) == "OTHER", (desc, new)
    per_machine = {
        m.key: {SEELAND.descriptions[d] for st in m.types for d in st.descriptions}
        for m in catalog.MACHINES.values()
    }
    for key, names in per_machine.items():  # a description is one label on its machine
        minified = [re.sub(r"[\s_\-^()+:.']", "", n.lower()) for n in names]
        assert len(set(minified)) == len(minified), key
    accepted = set(SETTINGS.retrieve.accepted_institutions)
    assert not {normalise_institution(n) for n in SEELAND.institutions.values()} & accepted
    reference_models = {minify_machine(m) for v in SETTINGS.machines.values() for m in v}  # type: ignore[union-attr]
    assert not {minify_machine(m) for m in SEELAND.models.values()} & reference_models
    d670, intevo = catalog.MACHINES["discovery670nm"], catalog.MACHINES["intevo"]
    assert {SEELAND.models[m] for m in d670.models.values()} == {
        SEELAND.models[m] for m in intevo.models.values()
    }
    assert SEELAND.stations[d670.station] != SEELAND.stations[intevo.station]


def test_another_department_relabels_the_same_days(tmp_path: Path) -> None:
    from pyschedvisu.synth import SEELAND

    day = dt.date(2024, 3, 5)
    generate(tmp_path / "ref", day, day, 3, SETTINGS, workers=1)
    generate(tmp_path / "see", day, day, 3, SETTINGS, workers=1, department=SEELAND)
    ref = sorted((tmp_path / "ref" / "dicom").rglob("*.dcm"))
    see = sorted((tmp_path / "see" / "dicom").rglob("*.dcm"))
    assert [p.relative_to(tmp_path / "ref") for p in ref] == [
        p.relative_to(tmp_path / "see") for p in see
    ]
    a, b = pydicom.dcmread(ref[0]), pydicom.dcmread(see[0])
    assert (a.SOPInstanceUID, a.AcquisitionTime, a.PatientID) == (
        b.SOPInstanceUID,
        b.AcquisitionTime,
        b.PatientID,
    )
    assert b.StationName == SEELAND.stations[a.StationName]
    assert b.ManufacturerModelName == SEELAND.models[a.ManufacturerModelName]
    assert b.StudyDescription == SEELAND.descriptions.get(a.StudyDescription, a.StudyDescription)
    info = json.loads((tmp_path / "see" / "synth.json").read_text())
    assert info["department"] == "seeland"


def test_every_injection_in_the_truth_is_what_its_files_say(synth_week: Path) -> None:
    """The truth is set from the plan; the files, read by the retrieval's own reader, agree."""
    from pyschedvisu_core.radiopharm import issue_codes, read_radiopharm

    kept = pl.read_parquet(synth_week / "truth" / "kept_series.parquet").filter(
        pl.col("modality").is_in(["PT", "NM"])
    )
    assert kept.height > 100
    columns = ("radiopharmaceutical", "radionuclide", "injected_at", "activity_mbq", "half_life_s")
    for r in kept.iter_rows(named=True):
        folder = synth_week / "dicom" / f"{r['date']:%Y%m%d}" / r["study_uid"] / r["series_uid"]
        first = pydicom.dcmread(sorted(folder.glob("*.dcm"))[0], stop_before_pixels=True)
        found = read_radiopharm(r["modality"], r["date"], [first], r["date"])
        assert found is not None
        got = (found.tracer, found.radionuclide, found.injected_at)
        got += (found.activity_mbq, found.half_life_s)
        assert got == tuple(r[c] for c in columns), r["series_uid"]
        assert "; ".join(issue_codes(found.issue)) == (r["radiopharm_issue"] or ""), r["series_uid"]
    # PET doses in Bq, NM doses in MBq: the same activities read in MBq
    assert kept.filter(pl.col("modality") == "PT")["activity_mbq"].median() > 100  # type: ignore[operator]
    assert kept.filter(pl.col("modality") == "NM")["activity_mbq"].median() > 20  # type: ignore[operator]


def test_injection_truth_has_a_realistic_spread_and_its_broken_values(synth_week: Path) -> None:
    uptake = pl.read_parquet(synth_week / "truth" / "uptake.parquet")
    studies = pl.read_parquet(synth_week / "truth" / "studies.parquet")
    assert dict(uptake.schema) == schema.TRUTH_UPTAKE_SCHEMA
    keys = ["date", "machine", "study_uid", "take"]
    assert uptake.select(keys).sort(keys).equals(studies.select(keys).sort(keys))
    fdg = uptake.join(studies, on=keys).filter(
        pl.col("description").is_in(["FDG STAND.", "FDG CORPS", "FDG ORL"])
        & pl.col("uptake_flag").is_null()
    )
    minutes = fdg["uptake_s"].drop_nulls() / 60
    inside = minutes.is_between(55, 75)
    assert 0.7 < inside.mean() < 0.97  # type: ignore[operator]  # mostly in the EANM window
    assert (minutes < 55).any() and (minutes > 75).any()
    flags = uptake["uptake_flag"].drop_nulls().value_counts()
    assert set(flags["uptake_flag"]) == {"injection_after_scan", "injection_over_24h"}
    # every broken value leaves its study in the truth, with the reason
    cases = pl.read_parquet(synth_week / "truth" / "cases.parquet")
    broken = cases.filter(pl.col("case").str.starts_with("radiopharm_"))["study_uid"]
    rows = uptake.filter(pl.col("study_uid").is_in(broken.implode()))
    assert rows.height >= broken.n_unique()
    assert rows["radiopharm_issue"].null_count() == 0
