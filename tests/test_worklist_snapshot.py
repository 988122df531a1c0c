"""Worklist snapshots against the demo PACS's worklist (the synthetic week's appointment book).

A simulated day: the worklist shows what the RIS shows at each snapshot's time (bookings,
reschedulings, cancellations; performed steps dropped), and the day's plan folded from the
snapshots every 30 minutes must be the book's truth. A worklist that does not answer fails
that snapshot and keeps nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pyschedvisu.config import Settings
from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from pyschedvisu.store import conform
from pyschedvisu.worklist.matches import update_matches
from pyschedvisu.worklist.snapshot import take_snapshot
from pyschedvisu.worklist.store import WorklistStore
from pyschedvisu_core import schema
from pyschedvisu_core.errors import AssociationRejectedError, WorklistError
from tests.conftest import free_port

DAY = dt.date(2024, 3, 5)
#: 06:00, 06:30, ..., 18:00: what the worklist-snapshot deployment takes.
TICKS = [dt.datetime.combine(DAY, dt.time(h // 60, h % 60)) for h in range(360, 1081, 30)]


def worklist_settings(pacs: DemoPacs, data: Path, **pacs_settings: Any) -> Settings:
    return Settings(
        worklist={"enabled": True, "port": pacs.port, "called_ae": pacs.ae_title},
        pacs={"op_retries": 2, "backoff_base_s": 0.01, "backoff_jitter_s": 0.01, **pacs_settings},
        paths={"data_dir": str(data)},
    )


def simulate(pacs: DemoPacs, settings: Settings, ticks: list[dt.datetime]) -> list[Any]:
    """A snapshot at each tick, the worklist showing that time."""
    out = []
    for now in ticks:
        pacs.behaviour.worklist_now = now
        out.append(take_snapshot(now.date(), settings, now=now))
    return out


def truth_steps(synth: Path, day: dt.date) -> pl.DataFrame:
    truth = pl.read_parquet(synth / "truth" / "plan.parquet")
    return truth.filter((pl.col("date") == day) & (pl.col("status") != "unplanned"))


@pytest.fixture
def forgetting(synth_week: Path, demo_pacs: Any) -> DemoPacs:
    """The demo PACS whose worklist drops performed steps, as most RIS do."""
    pacs: DemoPacs = demo_pacs(synth_week, behaviour=Behaviour(forget_performed=True))
    return pacs


def test_snapshots_every_30_minutes_rebuild_the_plan_though_performed_steps_vanish(
    forgetting: DemoPacs, synth_week: Path, tmp_path: Path
) -> None:
    settings = worklist_settings(forgetting, tmp_path / "data")
    results = simulate(forgetting, settings, TICKS)
    truth = truth_steps(synth_week, DAY)
    # the worklist of the evening holds a fraction of the day: performed steps are gone
    assert results[-1].entries < truth.height / 3
    plan = WorklistStore(tmp_path / "data").plan(DAY)
    assert plan is not None and plan.snapshots == len(TICKS)
    got = plan.steps.join(truth, on="step_key", how="full", coalesce=True, suffix="_truth")
    assert got.height == truth.height == plan.steps.height
    for col in ("scheduled_start", "first_scheduled_start", "added_same_day", "rescheduled"):
        assert (got[col] == got[f"{col}_truth"]).all(), col
    assert (got["machine"] == got["machine_truth"]).all()
    # the day has what the test is about
    assert truth["rescheduled"].sum() > 0 and truth["added_same_day"].sum() > 0
    # a late cancellation was seen, then gone: it stays in the plan (a no-show then)
    book = pl.read_parquet(synth_week / "truth" / "book.parquet")
    cancelled = book.filter((pl.col("date") == DAY) & pl.col("cancelled_at").is_not_null())
    keys = [
        f"acc:{a}/{r}/{s}"
        for a, r, s in cancelled.select(
            "accession_number", "requested_procedure_id", "step_id"
        ).iter_rows()
    ]
    assert keys
    seen = plan.steps.filter(pl.col("step_key").is_in(keys))
    assert seen.height == len(keys)
    assert (seen["last_seen"] < cancelled["cancelled_at"].max()).all()
    assert set(plan.steps["machine"]) == {
        "PET Siemens",
        "PET GE",
        "Discovery 670 NM",
        "Millennium",
        "Intevo",
    }


def test_a_worklist_down_during_a_snapshot_fails_it_and_keeps_nothing(
    forgetting: DemoPacs, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = worklist_settings(forgetting, data)
    simulate(forgetting, settings, TICKS[:2])
    store = WorklistStore(data)
    before = store.planned_path(DAY).read_bytes()
    files = store.snapshot_files(DAY)
    # the worklist aborts every query about the day (down mid-run): retried, then failed
    forgetting.behaviour.fail_dates = {DAY}
    forgetting.behaviour.worklist_now = TICKS[2]
    with pytest.raises(WorklistError, match="nothing kept"):
        take_snapshot(DAY, settings, now=TICKS[2])
    assert store.snapshot_files(DAY) == files
    assert store.planned_path(DAY).read_bytes() == before
    # unreachable (nobody listens there)
    down = worklist_settings(forgetting, data, connect_timeout_s=2)
    down.worklist.port = free_port()
    with pytest.raises(WorklistError, match="nothing kept"):
        take_snapshot(DAY, down, now=TICKS[2])
    assert store.snapshot_files(DAY) == files
    # back up: the next snapshot goes on from the plan kept
    forgetting.behaviour.fail_dates = set()
    simulate(forgetting, settings, TICKS[3:4])
    assert len(store.snapshot_files(DAY)) == len(files) + 1


def test_a_worklist_that_refuses_our_ae_title_is_not_retried(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    pacs = demo_pacs(synth_week, behaviour=Behaviour(reject_calling_aes={"PYSCHEDVISU"}))
    with pytest.raises(AssociationRejectedError):
        take_snapshot(DAY, worklist_settings(pacs, tmp_path / "data"), now=TICKS[0])
    assert pacs.stats.rejected == 1  # once: no retry can fix a refused AE title
    assert not WorklistStore(tmp_path / "data").planned_days()


def test_a_pacs_without_a_worklist_says_so_and_keeps_nothing(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    pacs = demo_pacs(synth_week, behaviour=Behaviour(offer_worklist=False))
    with pytest.raises(WorklistError, match="Modality Worklist is not offered"):
        take_snapshot(DAY, worklist_settings(pacs, tmp_path / "data"), now=TICKS[0])
    assert not WorklistStore(tmp_path / "data").planned_days()


def test_a_busy_worklist_is_answered_after_backoff(
    synth_week: Path, demo_pacs: Any, tmp_path: Path
) -> None:
    pacs = demo_pacs(synth_week, behaviour=Behaviour(max_ops_per_s=2.0, worklist_now=TICKS[0]))
    settings = worklist_settings(
        pacs, tmp_path / "data", op_retries=8, backoff_base_s=0.2, max_ops_per_s=50.0
    )
    result = take_snapshot(DAY, settings, now=TICKS[0])
    assert pacs.stats.throttled > 0, "the worklist must really push back (0xC336)"
    assert result.ops["retries"] > 0
    assert result.entries > 0 and result.queries == 5


def test_patient_ids_and_names_never_reach_a_file_or_the_log(
    forgetting: DemoPacs, synth_week: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    settings = worklist_settings(forgetting, data)
    with caplog.at_level(logging.INFO, logger="pyschedvisu"):
        simulate(forgetting, settings, TICKS[::6])
        update_matches(settings)
    book = pl.read_parquet(synth_week / "truth" / "book.parquet").filter(pl.col("date") == DAY)
    secrets = set(book["patient_id"]) | set(book["patient_name"])
    seen: set[str] = set()
    for path in [*data.rglob("*.parquet")]:
        frame = pl.read_parquet(path)
        for col, dtype in frame.schema.items():
            if dtype == pl.String():
                seen |= set(frame[col].drop_nulls())
        seen |= {str(v) for v in pl.read_parquet_metadata(path).values()}
    assert seen, "the files hold something"
    assert not {s for s in seen if any(x in s for x in secrets)}
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "worklist snapshot at" in logged
    assert not [x for x in secrets if x in logged]


def test_a_day_without_snapshot_is_no_plan_not_all_no_shows(
    forgetting: DemoPacs, synth_week: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    settings = worklist_settings(forgetting, data)
    simulate(forgetting, settings, TICKS[:1])
    other = dt.date(2024, 3, 6)
    # studies on both days; a plan only for DAY
    studies = pl.read_parquet(synth_week / "truth" / "studies.parquet").filter(
        pl.col("date").is_in([DAY, other])
    )
    table = studies.with_columns(
        machine_group=pl.col("machine"),
        study_key=pl.col("study_uid") + "_" + pl.col("take").cast(pl.String),
    )
    conform(table, schema.STUDY_SCHEMA).write_parquet(data / "studies.parquet")
    result = update_matches(settings)
    matches = pl.read_parquet(result.path)
    assert set(matches["date"]) == {DAY}
    assert WorklistStore(data).planned_days() == [DAY]
    coverage = pl.read_parquet(result.days_path)
    assert set(coverage["date"]) == {DAY} and coverage.height == 5


def test_a_worklist_answering_beyond_the_limit_is_cancelled_and_the_association_kept(
    synth_week: Path, demo_pacs: Any
) -> None:
    from pyschedvisu.adapters.dimse import DimseClient, DimseConfig
    from pyschedvisu_core.errors import PacsOperationError
    from pyschedvisu_core.worklist import worklist_query

    pacs = demo_pacs(synth_week)
    client = DimseClient(DimseConfig(port=pacs.port, called_ae=pacs.ae_title, op_retries=0))
    try:
        query = worklist_query(DAY)  # every station: the whole day
        with pytest.raises(PacsOperationError, match="more than 3 answers, cancelled"):
            client.find_worklist(query, limit=3)
        assert len(client.find_worklist(query)) > 3  # asked again on the same association
        assert client.counters.associations == 1
    finally:
        client.close()
