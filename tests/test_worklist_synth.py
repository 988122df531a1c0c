"""Planned against performed end to end, against the synthetic department's appointment truth.

Studies retrieved over DICOM and extracted, the worklist snapshotted every 30 minutes of each
simulated day while performed steps vanish from it, every plan matched to the study table:
``plan_matches.parquet`` must be ``truth/plan.parquet`` exactly (statuses, no-shows,
unplanned studies, match rules, retakes, add-ons, rescheduled slots, delays to the
microsecond of the times). Through the demo PACS (PACS and worklist in one), and through Orthanc: the
PACS for the studies, a second Orthanc with its Modality Worklists plugin as the RIS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pyschedvisu.config import Settings
from pyschedvisu.demo_pacs import Behaviour
from pyschedvisu.extraction import extract
from pyschedvisu.retrieval import forget_capabilities, make_client, retrieve_day
from pyschedvisu.synth.appointments import worklist_at
from pyschedvisu.worklist.matches import update_matches
from pyschedvisu.worklist.snapshot import take_snapshot
from pyschedvisu_core import schema
from pyschedvisu_core.planmatch import PLAN_MATCH_SCHEMA
from tests.conftest import free_port
from tests.fixtures.orthanc import Orthanc, start_orthanc, write_worklist_files

pytestmark = pytest.mark.slow

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 7)]


def ticks(day: dt.date) -> list[dt.datetime]:
    """06:00, 06:30, ..., 18:00 of ``day``."""
    return [dt.datetime.combine(day, dt.time(m // 60, m % 60)) for m in range(360, 1081, 30)]


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


def settings_for(pacs: tuple[int, str], worklist: tuple[int, str], data: Path) -> Settings:
    return Settings(
        pacs={
            "port": pacs[0],
            "called_ae": pacs[1],
            "move_port": free_port(),
            "move_bind": "127.0.0.1",
            "max_ops_per_s": 400.0,
        },
        worklist={"enabled": True, "port": worklist[0], "called_ae": worklist[1]},
        paths={"data_dir": str(data)},
    )


def retrieve_and_extract(settings: Settings) -> None:
    client = make_client(settings)
    try:
        for day in DAYS:
            retrieve_day(day, settings, client=client)
    finally:
        client.close()
    extract(settings)


def assert_matches_equal_the_truth(settings: Settings, synth: Path) -> pl.DataFrame:
    """``plan_matches.parquet`` of ``DAYS`` equals the truth, row for row (returns it)."""
    stored = pl.read_parquet(update_matches(settings).path).filter(pl.col("date").is_in(DAYS))
    assert stored[schema.SITE_COLUMN].unique().to_list() == [schema.DEFAULT_SITE]
    got = stored.drop(schema.SITE_COLUMN)
    truth = pl.read_parquet(synth / "truth" / "plan.parquet").filter(pl.col("date").is_in(DAYS))
    order = ["date", "status", "step_key", "study_key"]
    assert dict(got.schema) == PLAN_MATCH_SCHEMA
    # first the counts a physicist reads, then every row and column
    counts = {s: got.filter(pl.col("status") == s).height for s in ("no_show", "unplanned")}
    want = {s: truth.filter(pl.col("status") == s).height for s in ("no_show", "unplanned")}
    assert counts == want and all(want.values())
    # every value equal; seconds (delays, durations) to well under the microsecond the times
    # are written with (polars divides by a constant through its reciprocal: the last bit of
    # a float may differ from Python's division, never the microsecond)
    assert_frame_equal(
        got.sort(order, nulls_last=True),
        truth.sort(order, nulls_last=True),
        check_exact=False,
        rel_tol=0,
        abs_tol=5e-7,
    )
    delays = got.filter(pl.col("status") == "performed")["delay_s"]
    assert delays.null_count() == 0 and delays.len() > 0
    assert set(got["match"].drop_nulls()) == {"uid", "accession", "patient"}
    return got


def test_demo_pacs_planned_against_performed_equals_the_truth(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    pacs = demo_pacs(synth_week, behaviour=Behaviour(forget_performed=True))
    settings = settings_for(
        (pacs.port, pacs.ae_title), (pacs.port, pacs.ae_title), tmp_path / "data"
    )
    retrieve_and_extract(settings)
    for day in DAYS:
        for now in ticks(day):
            pacs.behaviour.worklist_now = now
            take_snapshot(day, settings, now=now)
    got = assert_matches_equal_the_truth(settings, synth_week)
    assert got.filter(pl.col("retakes") > 0).height > 0


@pytest.fixture
def orthanc_ris(tmp_path: Path) -> Iterator[tuple[Orthanc, Path]]:
    """An Orthanc without images serving the ``.wl`` files of a folder: the RIS."""
    folder = tmp_path / "worklists"
    folder.mkdir()
    orth = start_orthanc(tmp_path / "ris", worklists=folder)
    try:
        yield orth, folder
    finally:
        orth.stop()


@pytest.mark.integration
def test_orthanc_planned_against_performed_equals_the_truth(
    synth_week: Path, orthanc_factory: Any, orthanc_ris: tuple[Orthanc, Path], tmp_path: Path
) -> None:
    pacs = orthanc_factory(synth_week, storage_access_on_find="Always")
    ris, folder = orthanc_ris
    settings = settings_for(
        (pacs.dicom_port, pacs.aet), (ris.dicom_port, ris.aet), tmp_path / "data"
    )
    retrieve_and_extract(settings)
    book = pl.read_parquet(synth_week / "truth" / "book.parquet")
    for day in DAYS:
        for now in ticks(day):
            # the RIS exports what its worklist shows now (performed steps gone)
            write_worklist_files(folder, worklist_at(book, now, forget_performed=True))
            take_snapshot(day, settings, now=now)
    assert_matches_equal_the_truth(settings, synth_week)
