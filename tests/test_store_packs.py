"""Yearly series packs: a fast read path that never gives rows other than the day files'."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pyschedvisu.config import Settings
from pyschedvisu.extraction import STUDIES_FILE, extract
from pyschedvisu.store import SeriesStore, day_token
from pyschedvisu_core import schema
from tests.test_extraction import day_series, store_day

DAYS = [dt.date(2023, 12, 29), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]


def tokens(store: SeriesStore, days: list[dt.date] | None = None) -> dict[dt.date, str]:
    out = {}
    for day in store.days() if days is None else days:
        man = store.manifest(day)
        assert man is not None
        out[day] = day_token(man)
    return out


def by_day_files(store: SeriesStore, days: list[dt.date]) -> pl.DataFrame:
    return store.load("series", days).sort("series_uid")


@pytest.fixture
def store(tmp_path: Path) -> SeriesStore:
    st = SeriesStore(tmp_path / "data")
    for day in DAYS:
        store_day(st, day, day_series(day))
    return st


def test_packed_days_read_from_the_pack_equal_the_day_files(store: SeriesStore) -> None:
    toks = tokens(store)
    series, unpacked = store.read_series(toks)
    assert unpacked == DAYS  # nothing packed yet
    assert store.write_packs(series, toks) == [2023, 2024]
    assert set(store.pack_index(2024)) == {"2024-01-02", "2024-01-03"}
    again, unpacked = store.read_series(toks)
    assert unpacked == []
    assert_frame_equal(again.sort("series_uid"), by_day_files(store, DAYS))
    # a subset of a year's packed days reads only those days
    one, unpacked = store.read_series({DAYS[1]: toks[DAYS[1]]})
    assert unpacked == [] and one["date"].unique().to_list() == [DAYS[1]]


def test_a_day_written_again_in_the_same_second_is_read_from_its_new_files(
    store: SeriesStore,
) -> None:
    toks = tokens(store)
    store.write_packs(store.read_series(toks)[0], toks)
    store_day(store, DAYS[2], day_series(DAYS[2], n=4, shift_min=7))  # same counts, new times
    man = store.manifest(DAYS[2])
    assert man is not None and day_token(man) != toks[DAYS[2]]
    series, unpacked = store.read_series(tokens(store))
    assert unpacked == [DAYS[2]]
    assert_frame_equal(series.sort("series_uid"), by_day_files(store, DAYS))


def test_an_unreadable_pack_falls_back_to_the_day_files(store: SeriesStore) -> None:
    toks = tokens(store)
    store.write_packs(store.read_series(toks)[0], toks)
    store.pack_path(2024).write_bytes(b"not parquet")
    series, unpacked = store.read_series(toks)
    assert unpacked == DAYS[1:]
    assert_frame_equal(series.sort("series_uid"), by_day_files(store, DAYS))
    store.write_packs(series, {d: toks[d] for d in unpacked})  # and it is rewritten
    assert store.read_series(toks)[1] == []


def test_writing_some_days_keeps_the_other_days_of_the_pack(store: SeriesStore) -> None:
    toks = tokens(store)
    store.write_packs(store.read_series(toks)[0], toks)
    new_day = dt.date(2024, 1, 4)
    store_day(store, new_day, day_series(new_day, n=2))
    toks = tokens(store)
    series, unpacked = store.read_series(toks)
    assert unpacked == [new_day]
    store.write_packs(series.filter(pl.col("date") == new_day), {new_day: toks[new_day]})
    assert set(store.pack_index(2024)) == {"2024-01-02", "2024-01-03", "2024-01-04"}
    again, unpacked = store.read_series(toks)
    assert unpacked == []
    assert_frame_equal(again.sort("series_uid"), by_day_files(store, [*DAYS, new_day]))


def test_a_day_without_series_is_packed_and_read_as_empty(store: SeriesStore) -> None:
    empty_day = dt.date(2024, 1, 5)
    store_day(store, empty_day, schema.empty(schema.SERIES_SCHEMA))
    toks = tokens(store)
    store.write_packs(store.read_series(toks)[0], toks)
    series, unpacked = store.read_series({empty_day: toks[empty_day]})
    assert unpacked == [] and series.is_empty()
    assert dict(series.schema) == schema.SERIES_SCHEMA


def test_manifests_of_stores_before_write_ids_still_identify_their_day(
    store: SeriesStore,
) -> None:
    """A store written by the previous version (no write_id) is read, and packed, as is."""
    for day in DAYS:
        path = store.path(day, "manifest")
        man = json.loads(path.read_text())
        del man["write_id"]
        path.write_text(json.dumps(man))
    toks = tokens(store)
    assert all(t.startswith("m-") for t in toks.values())
    series, unpacked = store.read_series(toks)
    assert unpacked == DAYS
    store.write_packs(series, toks)
    again, unpacked = store.read_series(tokens(store))
    assert unpacked == []
    assert_frame_equal(again.sort("series_uid"), by_day_files(store, DAYS))


def test_every_write_of_a_day_gets_a_new_write_id(store: SeriesStore) -> None:
    first = store.manifest(DAYS[0])
    store_day(store, DAYS[0], day_series(DAYS[0]))
    second = store.manifest(DAYS[0])
    assert first is not None and second is not None
    assert first["write_id"] != second["write_id"]


def test_extraction_packs_the_store_and_a_rebuild_from_packs_gives_the_same_table(
    tmp_path: Path, store: SeriesStore
) -> None:
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    extract(settings)
    first = pl.read_parquet(tmp_path / "data" / STUDIES_FILE)
    assert store.read_series(tokens(store))[1] == []  # every day is now in a pack
    (tmp_path / "data" / STUDIES_FILE).unlink()
    result = extract(settings)
    assert result.full and result.days_recomputed == DAYS
    assert_frame_equal(pl.read_parquet(tmp_path / "data" / STUDIES_FILE), first)


def test_a_day_rewritten_in_the_same_second_is_recomputed_and_read_anew(
    tmp_path: Path, store: SeriesStore
) -> None:
    """Regression: same written_at, fingerprint and counts used to look unchanged."""
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    extract(settings)
    store_day(store, DAYS[1], day_series(DAYS[1], n=4, shift_min=9))
    result = extract(settings)
    assert result.days_recomputed == [DAYS[1]]
    table = pl.read_parquet(tmp_path / "data" / STUDIES_FILE)
    day = table.filter(pl.col("date") == DAYS[1], pl.col("machine") == "PET GE")
    expected = dt.datetime.combine(DAYS[1], dt.time(8, 9))
    assert day["start"].min() == expected


def test_a_state_written_before_write_tokens_is_still_a_no_op_and_can_be_forced(
    tmp_path: Path, store: SeriesStore
) -> None:
    """The extraction state of the previous version has no day tokens: nothing is recomputed
    for it, and a forced run finds the tokens in the manifests."""
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    extract(settings)
    table = pl.read_parquet(tmp_path / "data" / STUDIES_FILE)
    state_path = tmp_path / "data" / "studies.state.json"
    state = json.loads(state_path.read_text())
    for stamp in state["days"].values():
        del stamp["token"]
    state_path.write_text(json.dumps(state))
    assert not extract(settings).written
    forced = extract(settings, force=True)
    assert forced.days_recomputed == DAYS
    assert_frame_equal(pl.read_parquet(tmp_path / "data" / STUDIES_FILE), table)


def _as_version_1(store: SeriesStore, day: dt.date) -> None:
    """Rewrite ``day``'s files as store version 1 wrote them: no ``accession_number``."""
    for kind in ("series", "failed"):
        path = store.path(day, kind)
        pl.read_parquet(path).drop("accession_number").write_parquet(path)


def test_days_stored_before_the_accession_number_still_read_it_as_null(
    store: SeriesStore, tmp_path: Path
) -> None:
    # store version 2 added the column; days stored before must read, not fail the report
    _as_version_1(store, DAYS[0])
    with_acc = day_series(DAYS[1]).with_columns(accession_number=pl.lit("ACC1"))
    store_day(store, DAYS[1], with_acc)
    loaded = store.load("series", DAYS)
    assert dict(loaded.schema) == schema.SERIES_SCHEMA
    by_day = dict(
        loaded.group_by("date").agg(pl.col("accession_number").drop_nulls().len()).iter_rows()
    )
    assert by_day == {DAYS[0]: 0, DAYS[1]: with_acc.height, DAYS[2]: 0}
    assert store.load("failed", DAYS).height == 0
    series, _ = store.read_series(tokens(store))
    assert_frame_equal(series.sort("series_uid"), loaded.sort("series_uid"))
    # a pack written by version 1 (without the column) is read the same way
    toks = tokens(store)
    store.write_packs(series, toks)
    old_pack = pl.read_parquet(store.pack_path(2024))
    meta = pl.read_parquet_metadata(store.pack_path(2024))
    old_pack.drop("accession_number").write_parquet(store.pack_path(2024), metadata=meta)
    again, unpacked = store.read_series(toks)
    assert unpacked == []
    assert again.filter(pl.col("date") >= DAYS[1])["accession_number"].null_count() == (
        again.filter(pl.col("date") >= DAYS[1]).height
    )
    settings = Settings()
    settings.paths.data_dir = tmp_path / "data"
    extract(settings)
    table = pl.read_parquet(tmp_path / "data" / STUDIES_FILE)
    assert "accession_number" in table.columns
