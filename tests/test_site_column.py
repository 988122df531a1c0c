"""Every stored table carries its site; stores written before the column still read."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl

from pyschedvisu.config import Settings
from pyschedvisu.extraction import STUDIES_FILE, extract
from pyschedvisu.store import SeriesStore
from pyschedvisu_core import schema


def _series(day: dt.date) -> pl.DataFrame:
    start = dt.datetime.combine(day, dt.time(9))
    row = {
        "date": day,
        "patient_key": "p1",
        "study_uid": "1.2.3",
        "series_uid": "1.2.3.1",
        "study_description": "PET FDG",
        "series_description": "PET WB",
        "protocol_name": "",
        "institution": "chuv",
        "modality": "PT",
        "n_instances": 3,
        "machine": "Discovery 690",
        "start": start,
        "end": start + dt.timedelta(minutes=20),
        "station_name": None,
        "device_serial_number": None,
    }
    return pl.DataFrame([row], schema=schema.SERIES_SCHEMA)


def _write(store: SeriesStore, day: dt.date, manifest: dict[str, object]) -> None:
    store.write_day(
        day,
        _series(day),
        schema.empty(schema.FAILED_SCHEMA),
        schema.empty(schema.EXCLUDED_SCHEMA),
        {"fingerprint": "t", "final": True, **manifest},
    )


def test_stored_day_files_carry_their_site(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path)
    day = dt.date(2024, 3, 4)
    _write(store, day, {"site": "geneve"})
    for kind in ("series", "failed", "excluded"):
        assert pl.read_parquet_schema(store.path(day, kind))["site"] == pl.String()
    assert pl.read_parquet(store.path(day, "series"))["site"].to_list() == ["geneve"]
    assert store.manifest(day)["site"] == "geneve"  # type: ignore[index]
    # readers that do not ask for it see the schema they always saw
    assert dict(store.load("series").schema) == schema.SERIES_SCHEMA
    assert store.load("series", site="other")["site"].to_list() == ["geneve"]
    other = dt.date(2024, 3, 5)
    _write(store, other, {})
    assert pl.read_parquet(store.path(other, "series"))["site"].to_list() == ["default"]


def test_a_store_written_before_the_site_column_still_reads(tmp_path: Path) -> None:
    store = SeriesStore(tmp_path)
    day = dt.date(2024, 3, 4)
    _write(store, day, {})
    path = store.path(day, "series")
    pl.read_parquet(path).drop("site").write_parquet(path)  # as written before issue 20
    manifest = json.loads(store.path(day, "manifest").read_text())
    del manifest["site"]
    store.path(day, "manifest").write_text(json.dumps(manifest))
    assert store.load("series").height == 1
    assert store.load("series", site="lausanne")["site"].to_list() == ["lausanne"]
    series, _ = store.read_series({day: "x"})
    assert series.height == 1 and dict(series.schema) == schema.SERIES_SCHEMA


def test_the_study_tables_carry_the_site_and_old_tables_still_read(tmp_path: Path) -> None:
    settings = Settings(
        paths={"data_dir": tmp_path / "d"},
        machines={"PET GE": ["discovery690"]},
        descriptions={"petge": {"FDG": ["petfdg"]}},
        draw={"machine": {"petge": {"slots_per_weekday": [5, 5, 5, 5, 5]}}},
        retrieve={"accepted_institutions": ["chuv"]},
    )
    store = SeriesStore(settings.paths.data_dir)
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    _write(store, days[0], {})
    extract(settings)
    table = pl.read_parquet(settings.paths.data_dir / STUDIES_FILE)
    assert table["site"].to_list() == ["default"] and table["description"].to_list() == ["FDG"]
    # a table of before the column: dropped on disk, then a new day is extracted
    table.drop("site").write_parquet(settings.paths.data_dir / STUDIES_FILE)
    _write(store, days[1], {})
    result = extract(settings)
    assert result.days_recomputed == [days[1]] and not result.full
    table = pl.read_parquet(settings.paths.data_dir / STUDIES_FILE)
    assert table.height == 2 and table["site"].to_list() == ["default", "default"]
    # the same store becoming a site's is rewritten once with the site's name
    site = settings.model_copy(update={"site": "geneve"})
    result = extract(site)
    assert result.full
    table = pl.read_parquet(site.paths.data_dir / STUDIES_FILE)
    assert table["site"].to_list() == ["geneve", "geneve"]
