"""The synthetic department hands its files to the demo PACS's index as it writes them."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pyschedvisu.config import Settings
from pyschedvisu.demo_pacs import indexing
from pyschedvisu.synth import generate

SETTINGS = Settings()
#: Two weeks of the reference department, with its broken headers and odd time formats.
START, END = dt.date(2024, 3, 4), dt.date(2024, 3, 15)


def read_back(dicom: Path) -> pl.DataFrame:
    """The index as the demo PACS builds it by reading every file (no cache)."""
    scratch = dicom.parent.parent / "read-back"
    shutil.copytree(dicom, scratch, copy_function=shutil.copy2)  # keeps the mtimes
    (scratch / indexing.INDEX_FILE).unlink()
    return indexing.read_index(scratch, write_cache=False)[1]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = indexing.read_row

    def counting(path: Path, rel: str, size: int, mtime_ns: int) -> Any:
        seen.append(rel)
        return real(path, rel, size, mtime_ns)

    monkeypatch.setattr(indexing, "read_row", counting)
    return seen


@pytest.mark.slow
def test_the_index_written_with_the_files_is_the_one_reading_them_gives(tmp_path: Path) -> None:
    generate(tmp_path / "dept", START, END, 5, SETTINGS, workers=2)
    dicom = tmp_path / "dept" / "dicom"
    written = pl.read_parquet(dicom / indexing.INDEX_FILE)
    expected = read_back(dicom)
    assert written.height == expected.height > 1000
    assert_frame_equal(
        written.sort("path"), expected.select(written.columns).sort("path"), check_dtypes=False
    )


def test_serving_a_generated_department_reads_no_file_and_a_new_day_is_added(
    tmp_path: Path, reads: list[str]
) -> None:
    out = tmp_path / "dept"
    day = dt.date(2024, 3, 4)
    generate(out, day, day, 5, SETTINGS, workers=1)
    reads.clear()  # the generator reads each series' first file back
    root, first = indexing.read_index(out)
    assert reads == []
    assert first.height > 100
    generate(out, day, day + dt.timedelta(days=1), 5, SETTINGS, workers=1)  # one day more
    reads.clear()
    root, both = indexing.read_index(out)
    assert reads == []
    assert both.height > first.height
    assert both.filter(pl.col("path").str.starts_with("20240305/")).height == (
        both.height - first.height
    )
    # a file changed since it was written is read again; the others are not
    changed = next((root / "20240304").rglob("*.dcm"))
    changed.write_bytes(changed.read_bytes() + b"\0\0")
    indexing.read_index(out)
    assert reads == [changed.relative_to(root).as_posix()]


def test_a_department_generated_without_the_index_is_read_by_the_pacs(
    tmp_path: Path, reads: list[str]
) -> None:
    out = tmp_path / "dept"
    day = dt.date(2024, 3, 4)
    generate(out, day, day, 5, SETTINGS, workers=1, index=False)
    assert not (out / "dicom" / indexing.INDEX_FILE).exists()
    _, frame = indexing.read_index(out)
    assert len(reads) == frame.height > 100


def test_the_index_records_the_sequences_a_file_holds() -> None:
    """Regression: a generator consumed by the first keyword left every later one out (PET
    instances were indexed without their Radiopharmaceutical Information Sequence)."""
    assert (
        indexing.sequences_value(
            iter(["RadiopharmaceuticalInformationSequence", "PhaseInformationSequence", "Other"])
        )
        == "PhaseInformationSequence\\RadiopharmaceuticalInformationSequence"
    )
    assert indexing.sequences_value(iter([])) is None
