"""Retrieval of the synthetic week against its truth: demo PACS (plain, hospital-like) and Orthanc.

Every series the truth keeps must be stored with its exact start, end and machine; every
excluded one excluded with its reason; broken headers quarantined as failed (never fatal).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pyschedvisu.config import Settings
from pyschedvisu.demo_pacs import Behaviour
from pyschedvisu.extraction import extract
from pyschedvisu.retrieval import forget_capabilities, make_client, record_for, retrieve_day
from pyschedvisu.store import SeriesStore
from pyschedvisu_core.evaluation import evaluate, uptake_mismatches
from pyschedvisu_core.radiopharm import issue_codes
from tests.conftest import free_port


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


def truth_problems(data_dir: Path, truth_dir: Path, days: list[dt.date]) -> list[str]:
    """Every disagreement between the store and the synthetic truth (empty = perfect)."""
    store = SeriesStore(data_dir)
    truth = pl.read_parquet(truth_dir / "truth" / "series.parquet").filter(
        pl.col("date").is_in(days)
    )
    series = store.load("series", days)
    failed = store.load("failed", days)
    excluded = store.load("excluded", days)
    problems: list[str] = []

    kept_t = truth.filter(pl.col("status") == "kept")
    joined = kept_t.join(series, on="series_uid", how="full", suffix="_got", coalesce=True)
    for row in joined.iter_rows(named=True):
        if row["status"] is None:
            problems.append(f"stored but not kept in truth: {row['series_uid']}")
        elif row["start_got"] is None:
            where = failed.filter(pl.col("series_uid") == row["series_uid"])["reason"].to_list()
            where += excluded.filter(
                (pl.col("series_uid") == row["series_uid"])
                | (pl.col("study_uid") == row["study_uid"])
            )["reason"].to_list()
            problems.append(f"kept in truth, missing ({where}): {row['series_uid']}")
        else:
            for col in ("start", "end", "machine", "station_name", "device_serial_number"):
                if row[col] != row[f"{col}_got"]:
                    problems.append(
                        f"{row['series_uid']} {col}: truth {row[col]} got {row[f'{col}_got']}"
                    )
            # the injection (DOMAIN §8): exact, the reason by its codes
            for col in ("radiopharmaceutical", "radionuclide", "injected_at", "half_life_s"):
                if row[col] != row[f"{col}_got"]:
                    problems.append(
                        f"{row['series_uid']} {col}: truth {row[col]} got {row[f'{col}_got']}"
                    )
            a, b = row["activity_mbq"], row["activity_mbq_got"]
            if (a is None) != (b is None) or (a is not None and abs(a - b) > 0.1):
                problems.append(f"{row['series_uid']} activity_mbq: truth {a} got {b}")
            codes = "; ".join(issue_codes(row["radiopharm_issue_got"])) or None
            if codes != row["radiopharm_issue"]:
                problems.append(
                    f"{row['series_uid']} radiopharm_issue: truth {row['radiopharm_issue']}"
                    f" got {row['radiopharm_issue_got']}"
                )

    failed_t = truth.filter(pl.col("status") == "failed").select("series_uid", "reason")
    got_failed = failed.select(
        "series_uid", pl.col("reason").str.split(":").list.first().alias("code")
    )
    for row in failed_t.join(got_failed, on="series_uid", how="full", coalesce=True).iter_rows(
        named=True
    ):
        if row["reason"] != row["code"]:
            problems.append(f"failed {row['series_uid']}: truth {row['reason']} got {row['code']}")

    by_series = dict(
        excluded.filter(pl.col("level") == "series").select("series_uid", "reason").iter_rows()
    )
    by_study = dict(
        excluded.filter(pl.col("level") == "study").select("study_uid", "reason").iter_rows()
    )
    for row in truth.filter(pl.col("status") == "excluded").iter_rows(named=True):
        got = by_study.get(row["study_uid"]) or by_series.get(row["series_uid"])
        got = got.split(":", 1)[0] if got else got  # the code; names may follow it
        if got != row["reason"]:
            problems.append(f"excluded {row['series_uid']}: truth {row['reason']} got {got}")
    return problems


def _settings(port: int, ae: str, data: Path, move_port: int, **pacs: Any) -> Settings:
    conf = {
        "port": port,
        "called_ae": ae,
        "move_port": move_port,
        "move_bind": "127.0.0.1",
        "max_ops_per_s": 400.0,
        **pacs,
    }
    return Settings(pacs=conf, paths={"data_dir": str(data)})


def _run_days(settings: Settings, days: list[dt.date]) -> dict[dt.date, Any]:
    client = make_client(settings)
    try:
        return {d: retrieve_day(d, settings, client=client) for d in days}
    finally:
        client.close()


@pytest.mark.slow
def test_demo_pacs_days_match_truth(synth_week: Path, demo_pacs: Any, tmp_path: Path) -> None:
    pacs = demo_pacs(synth_week)
    settings = _settings(pacs.port, pacs.ae_title, tmp_path / "data", free_port(), max_concurrent=2)
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 7)]
    results = _run_days(settings, days)
    assert truth_problems(tmp_path / "data", synth_week, days) == []
    assert all(r.failed.height > 0 for r in results.values()), "the week has broken headers"
    assert pacs.stats.associations <= 2  # at most one per worker for the whole run
    # and the study table from what was stored is the truth's, a series without
    # InstitutionName in an accepted study left out of its study (§3.1)
    cases = pl.read_parquet(synth_week / "truth" / "cases.parquet").filter(
        pl.col("date").is_in(days)
    )
    assert "partial_institution" in set(cases["case"])
    truth = pl.read_parquet(synth_week / "truth" / "studies.parquet").filter(
        pl.col("date").is_in(days)
    )
    table = pl.read_parquet(extract(settings).path)
    scores = evaluate(table, truth)
    assert (scores.precision, scores.recall, scores.label_accuracy) == (1.0, 1.0, 1.0)
    assert scores.time_error_max_s == 0.0
    uptake = pl.read_parquet(synth_week / "truth" / "uptake.parquet").filter(
        pl.col("date").is_in(days)
    )
    assert uptake_mismatches(table, uptake).is_empty()
    # a second run does no network work at all
    before = pacs.stats.as_dict()
    again = _run_days(settings, days)
    after = pacs.stats.as_dict()
    assert all(r.from_cache for r in again.values())
    assert {k: after[k] for k in ("associations", "find", "get", "move")} == {
        k: before[k] for k in ("associations", "find", "get", "move")
    }


@pytest.mark.slow
def test_hospital_like_pacs_two_days_match_truth(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    """No C-GET, no timing at IMAGE level, 0xC336 beyond 2 in flight or 40 ops/s."""
    move_port = free_port()
    pacs = demo_pacs(
        synth_week,
        behaviour=Behaviour.hospital(max_in_flight=2, max_ops_per_s=40.0),
        move_destinations={"PYSCHEDVISU": ("127.0.0.1", move_port)},
    )
    settings = _settings(
        pacs.port,
        pacs.ae_title,
        tmp_path / "data",
        move_port,
        max_concurrent=3,
        max_ops_per_s=60.0,
        backoff_base_s=0.05,
        backoff_jitter_s=0.05,
        op_retries=6,
    )
    days = [dt.date(2024, 3, 5)]
    results = _run_days(settings, days)
    assert {r.method for r in results.values()} == {"c-move"}
    assert pacs.stats.throttled > 0, "the client must really be pushed back"
    assert pacs.stats.get == 0
    assert truth_problems(tmp_path / "data", synth_week, days) == []
    # the small series of a study move in one retrieve: fewer C-MOVEs than timed series
    moves = [op for op in pacs.stats.ops if op.kind == "move" and op.status is None]
    timed = sum(r.series.height + r.failed.height for r in results.values())
    assert len(moves) < timed
    # the injections came with the files moved for timing (and no probe at IMAGE level)
    assert study_table_scores(settings, synth_week, days) == (1.0, 1.0, 1.0, 0.0)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize(("mode", "method"), [("Always", "image-find"), ("Never", "c-get")])
def test_orthanc_matches_truth(
    synth_week: Path, orthanc_factory: Any, tmp_path: Path, mode: str, method: str
) -> None:
    orthanc = orthanc_factory(synth_week, storage_access_on_find=mode)
    move_port = free_port()
    orthanc.set_modality("PYSCHEDVISU", "127.0.0.1", move_port)
    settings = _settings(
        orthanc.dicom_port, orthanc.aet, tmp_path / "data", move_port, max_concurrent=2
    )
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    results = _run_days(settings, days)
    assert all(r.method.split("+")[0] == method for r in results.values()), {
        d: r.method for d, r in results.items()
    }
    assert truth_problems(tmp_path / "data", synth_week, days) == []
    assert study_table_scores(settings, synth_week, days) == (1.0, 1.0, 1.0, 0.0)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("mode", ["Always", "Never"])
def test_orthanc_series_without_institution_left_out_of_its_study(
    synth_week: Path, orthanc_factory: Any, tmp_path: Path, mode: str
) -> None:
    """Regression: Orthanc answers the study's InstitutionName for every series (SERIES and
    IMAGE level), so a series without one was kept in its study (7 false studies in 10
    unseen days); its instance headers tell."""
    orthanc = orthanc_factory(synth_week, storage_access_on_find=mode)
    move_port = free_port()
    orthanc.set_modality("PYSCHEDVISU", "127.0.0.1", move_port)
    settings = _settings(orthanc.dicom_port, orthanc.aet, tmp_path / "data", move_port)
    cases = pl.read_parquet(synth_week / "truth" / "cases.parquet")
    partial = cases.filter(pl.col("case") == "partial_institution")
    days = sorted(set(partial["date"].to_list()))[:2]
    assert days, "the synthetic week has a series without InstitutionName in an accepted study"
    _run_days(settings, days)
    stored = SeriesStore(tmp_path / "data").load("series", days)
    nameless = stored.filter(pl.col("series_uid").is_in(partial["series_uid"].implode()))
    assert nameless.height == partial.filter(pl.col("date").is_in(days)).height
    assert nameless["institution"].null_count() == nameless.height
    assert study_table_scores(settings, synth_week, days) == (1.0, 1.0, 1.0, 0.0)
    # the other way: trusting the SERIES-level names keeps the series in its study
    trusting = Settings(
        pacs=settings.pacs.model_dump(),
        paths={"data_dir": str(tmp_path / "trusting")},
        retrieve={"institution_from": "series"},
    )
    _run_days(trusting, days)
    assert study_table_scores(trusting, synth_week, days)[0] < 1.0


def study_table_scores(
    settings: Settings, truth_dir: Path, days: list[dt.date]
) -> tuple[float, float, float, float]:
    """(precision, recall, label accuracy, max time error) of the extracted study table; its
    injection columns must be the truth's (uptake to the second, activity to 0.1 MBq)."""
    truth = pl.read_parquet(truth_dir / "truth" / "studies.parquet").filter(
        pl.col("date").is_in(days)
    )
    table = pl.read_parquet(extract(settings).path)
    scores = evaluate(table, truth)
    uptake = pl.read_parquet(truth_dir / "truth" / "uptake.parquet").filter(
        pl.col("date").is_in(days)
    )
    wrong = uptake_mismatches(table, uptake)
    assert wrong.is_empty(), wrong
    return scores.precision, scores.recall, scores.label_accuracy, scores.time_error_max_s


@pytest.mark.integration
@pytest.mark.slow
def test_orthanc_by_c_move(synth_week: Path, orthanc_factory: Any, tmp_path: Path) -> None:
    orthanc = orthanc_factory(synth_week, storage_access_on_find="Never")
    move_port = free_port()
    orthanc.set_modality("PYSCHEDVISU", "127.0.0.1", move_port)
    settings = _settings(
        orthanc.dicom_port, orthanc.aet, tmp_path / "data", move_port, retrieval="c-move"
    )
    day = dt.date(2024, 3, 6)
    result = _run_days(settings, [day])[day]
    assert result.method == "c-move"
    assert result.ops["inbound_associations"] > 0
    assert truth_problems(tmp_path / "data", synth_week, [day]) == []
    assert study_table_scores(settings, synth_week, [day]) == (1.0, 1.0, 1.0, 0.0)


def _preset_radiopharm(settings: Settings, returned: bool) -> None:
    """Remember, as a probe would have, whether the PACS returns the injection sequence."""
    import dataclasses

    from pyschedvisu_core.transport import Capabilities

    record = record_for(settings)
    caps = record.capabilities() or Capabilities(probed=False)
    record.remember(dataclasses.replace(caps, image_find_radiopharm=returned))


@pytest.mark.slow
def test_injection_travels_with_the_timing_answers_and_moves_no_file(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    """IMAGE-level mode on a PACS returning the sequence: the injection of every series with
    the timing keys, no instance moved for it (the same moves and finds as without it, but
    the probe, once)."""
    pacs = demo_pacs(synth_week)
    day = dt.date(2024, 3, 5)
    runs: dict[bool, dict[str, int]] = {}
    for returned in (True, False):
        forget_capabilities()
        data = tmp_path / f"data-{returned}"
        settings = _settings(
            pacs.port,
            pacs.ae_title,
            data,
            free_port(),
            retrieval="image-find",
            max_ops_per_s=400.0,
        ).model_copy(deep=True)
        settings.retrieve.institution_from = "series"  # timing answers alone move no file
        if not returned:
            _preset_radiopharm(settings, False)
        before = pacs.stats.as_dict()
        (result,) = _run_days(settings, [day]).values()
        after = pacs.stats.as_dict()
        runs[returned] = {k: after[k] - before[k] for k in ("find", "get", "move", "store_sent")}
        assert result.method.startswith("image-find")
        stored = (
            SeriesStore(data).load("series", [day]).filter(pl.col("modality").is_in(["PT", "NM"]))
        )
        if returned:
            assert truth_problems(data, synth_week, [day]) == []
            assert record_for(settings).capabilities().image_find_radiopharm is True  # type: ignore[union-attr]
        else:
            codes = stored["radiopharm_issue"].map_elements(
                lambda v: issue_codes(v)[0], return_dtype=pl.String
            )
            assert set(codes) == {"radiopharm_not_returned"}
    probe = 1  # asked once per PACS, remembered: none in the run told the answer
    assert runs[True] == {**runs[False], "find": runs[False]["find"] + probe}
    # the only files moved are those of the series whose timing needs them (broken headers)
    assert runs[True]["store_sent"] == runs[False]["store_sent"]


@pytest.mark.slow
def test_image_level_without_the_sequence_reads_it_from_the_files_moved_anyway(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    """A PACS answering timing but not the sequence at IMAGE level: the instance moved for the
    series' InstitutionName (retrieve.institution_from = "instances") carries it."""
    forget_capabilities()
    pacs = demo_pacs(synth_week)
    settings = _settings(
        pacs.port, pacs.ae_title, tmp_path / "data", free_port(), retrieval="image-find"
    )
    _preset_radiopharm(settings, False)
    day = dt.date(2024, 3, 6)
    _run_days(settings, [day])
    assert truth_problems(tmp_path / "data", synth_week, [day]) == []
    assert study_table_scores(settings, synth_week, [day]) == (1.0, 1.0, 1.0, 0.0)
