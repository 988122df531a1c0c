"""Incremental extraction over a real series store: only changed days are recomputed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import MachineDraw, Settings
from pyschedvisu.extraction import MIXED_FILE, STATE_FILE, STUDIES_FILE, extract
from pyschedvisu.store import SeriesStore
from pyschedvisu_core import schema

DAYS = [dt.date(2024, 3, 4), dt.date(2024, 3, 5), dt.date(2024, 3, 6)]


def day_series(day: dt.date, n: int = 4, shift_min: int = 0) -> pl.DataFrame:
    """``n`` PET GE studies (CT + PT) 40 min apart, one Millennium study, one mixed-cases study."""
    rows = []

    def at(h: int, m: int) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(h)) + dt.timedelta(minutes=m + shift_min)

    for i in range(n):
        uid = f"{day:%Y%m%d}.{i}"
        for j, (mod, a, b) in enumerate((("CT", 0, 3), ("PT", 4, 25))):
            rows.append(
                (
                    uid,
                    f"{uid}.{j}",
                    "Discovery 690",
                    mod,
                    at(8, 40 * i + a),
                    at(8, 40 * i + b),
                    "PET-CT FDG Tronc",
                )
            )
    rows.append(
        (
            f"{day:%Y%m%d}.m",
            f"{day:%Y%m%d}.m.0",
            "MILLENNIUM MPR",
            "NM",
            at(9, 0),
            at(9, 30),
            "MAG3 post",
        )
    )
    rows.append(
        (f"{day:%Y%m%d}.x", f"{day:%Y%m%d}.x.0", "Discovery 690", "PT", at(10, 0), at(10, 20), "x")
    )
    rows.append(
        (f"{day:%Y%m%d}.x", f"{day:%Y%m%d}.x.1", "Encore2", "NM", at(10, 0), at(10, 20), "x")
    )
    frame = pl.DataFrame(
        rows,
        schema=[
            "study_uid",
            "series_uid",
            "machine",
            "modality",
            "start",
            "end",
            "study_description",
        ],
        orient="row",
    ).with_columns(
        pl.lit(day).alias("date"),
        ("key-" + pl.col("study_uid")).alias("patient_key"),
        pl.lit("chuv").alias("institution"),
        pl.lit(1, dtype=pl.Int32()).alias("n_instances"),
    )
    return frame


def store_day(store: SeriesStore, day: dt.date, frame: pl.DataFrame) -> None:
    empty = schema.empty(schema.FAILED_SCHEMA)
    store.write_day(
        day,
        frame,
        empty,
        schema.empty(schema.EXCLUDED_SCHEMA),
        {"fingerprint": "f1", "final": True},
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.paths.data_dir = tmp_path / "data"
    return s


@pytest.fixture
def store(settings: Settings) -> SeriesStore:
    st = SeriesStore(settings.paths.data_dir)
    for day in DAYS:
        store_day(st, day, day_series(day))
    return st


def read(settings: Settings, name: str = STUDIES_FILE) -> pl.DataFrame:
    return pl.read_parquet(Path(settings.paths.data_dir) / name)


def test_first_run_writes_every_stored_day_with_the_study_schema(
    settings: Settings, store: SeriesStore
) -> None:
    result = extract(settings)
    assert result.written and result.full
    assert result.days_recomputed == DAYS
    table = read(settings)
    assert dict(table.drop(schema.SITE_COLUMN).schema) == schema.STUDY_SCHEMA
    assert table[schema.SITE_COLUMN].unique().to_list() == [schema.DEFAULT_SITE]
    assert result.per_machine == {"Millennium": 3, "PET GE": 12}
    assert table.filter(pl.col("machine") == "Millennium")["description"].unique().to_list() == [
        "MAG3"
    ]
    mixed = read(settings, MIXED_FILE)
    assert mixed["machine_group"].unique().to_list() == ["mixed cases"]
    assert mixed["models"].unique().to_list() == ["discovery690,encore2"]
    assert result.n_mixed == 3


def test_nothing_new_is_a_no_op(settings: Settings, store: SeriesStore) -> None:
    extract(settings)
    path = Path(settings.paths.data_dir) / STUDIES_FILE
    before = (path.stat().st_mtime_ns, path.read_bytes())
    again = extract(settings)
    assert not again.written
    assert again.days_recomputed == [] and again.n_studies == 15
    assert again.per_machine == {"Millennium": 3, "PET GE": 12}
    assert (path.stat().st_mtime_ns, path.read_bytes()) == before


def test_only_the_changed_day_is_recomputed_and_equals_a_full_rebuild(
    settings: Settings, store: SeriesStore
) -> None:
    extract(settings)
    store_day(store, DAYS[1], day_series(DAYS[1], n=6, shift_min=7))
    result = extract(settings)
    assert result.written and not result.full
    assert result.days_recomputed == [DAYS[1]]
    incremental = read(settings)
    assert incremental.filter(pl.col("date") == DAYS[1], pl.col("machine") == "PET GE").height == 6
    forced = extract(settings, force=True)
    assert forced.days_recomputed == DAYS
    assert_frame_equal(read(settings), incremental)


def test_a_new_day_is_added_and_only_it_is_computed(settings: Settings, store: SeriesStore) -> None:
    extract(settings)
    new_day = dt.date(2024, 3, 7)
    store_day(store, new_day, day_series(new_day, n=2))
    result = extract(settings, [new_day])
    assert result.days_recomputed == [new_day]
    assert result.days_total == 4
    assert read(settings)["date"].unique().sort().to_list() == [*DAYS, new_day]


def test_a_day_removed_from_the_store_leaves_the_table(
    settings: Settings, store: SeriesStore
) -> None:
    extract(settings)
    store.path(DAYS[0], "manifest").unlink()
    result = extract(settings)
    assert result.days_removed == [DAYS[0]] and result.days_recomputed == []
    assert DAYS[0] not in read(settings)["date"].to_list()
    assert DAYS[0] not in read(settings, MIXED_FILE)["date"].to_list()


def test_a_config_change_rebuilds_everything(settings: Settings, store: SeriesStore) -> None:
    extract(settings)
    before = read(settings)
    settings.draw.machine["petge"] = MachineDraw(
        slots_per_weekday=[15] * 5, gap_minutes=30, prep_minutes=0
    )
    result = extract(settings, [DAYS[0]])  # even when asked for one day: the whole table is stale
    assert result.full and result.days_recomputed == DAYS
    after = read(settings).filter(pl.col("machine") == "PET GE")
    assert (after["start_prep"] == after["start"]).all()
    assert not (before.filter(pl.col("machine") == "PET GE")["start_prep"] == after["start"]).all()


def test_a_lost_table_is_rebuilt_from_the_state_and_the_store(
    settings: Settings, store: SeriesStore
) -> None:
    extract(settings)
    (Path(settings.paths.data_dir) / STUDIES_FILE).unlink()
    result = extract(settings)
    assert result.written and result.full and result.days_recomputed == DAYS


def test_state_records_each_day_manifest(settings: Settings, store: SeriesStore) -> None:
    extract(settings)
    state = json.loads((Path(settings.paths.data_dir) / STATE_FILE).read_text())
    assert sorted(state["days"]) == [d.isoformat() for d in DAYS]
    man = store.manifest(DAYS[0])
    assert man is not None
    assert state["days"][DAYS[0].isoformat()]["written_at"] == man["written_at"]


def test_empty_store_writes_empty_tables(settings: Settings) -> None:
    result = extract(settings)
    assert result.written and result.n_studies == 0
    assert read(settings).is_empty()
    assert not extract(settings).written


def test_prefect_task_returns_the_table_path(settings: Settings, store: SeriesStore) -> None:
    from tasks.extract import extract_studies

    # .fn: the task body without an orchestration run (the flows run it for real)
    with pytest.MonkeyPatch.context() as mp:
        import logging

        import tasks.extract as mod

        mp.setattr(mod, "get_run_logger", lambda: logging.getLogger("test"))
        path = extract_studies.fn(settings, None)
    assert path == str(Path(settings.paths.data_dir) / STUDIES_FILE)
    assert read(settings).height == 15


def test_cli_extract_prints_counts_and_path(
    settings: Settings, store: SeriesStore, tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[paths]\ndata_dir = "{settings.paths.data_dir}"\n')
    runner = CliRunner()
    cli = ["--config", str(cfg), "extract"]
    out = runner.invoke(app, cli)
    assert out.exit_code == 0, out.output
    assert "3 day(s) recomputed" in out.output and STUDIES_FILE in out.output
    assert [line.split() for line in out.output.splitlines() if "PET GE" in line] == [
        ["PET", "GE", "12"]
    ]
    store_day(store, DAYS[2], day_series(DAYS[2], n=1))
    outside = runner.invoke(app, [*cli, "--start", "2024-03-04", "--end", "2024-03-05"])
    assert outside.exit_code == 0 and "nothing new" in outside.output
    inside = runner.invoke(app, [*cli, "--start", "2024-03-06", "--end", "2024-03-06"])
    assert inside.exit_code == 0 and "1 day(s) recomputed" in inside.output
    assert (
        read(settings).filter(pl.col("date") == DAYS[2], pl.col("machine") == "PET GE").height == 1
    )
    bad = runner.invoke(app, [*cli, "--start", "2024-03-09", "--end", "2024-03-01"])
    assert bad.exit_code == 2
