"""The demo PACS index: files read once, cached on disk, computed attributes, matching."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pydicom
import pytest

import pyschedvisu.demo_pacs.indexing as indexing
from pyschedvisu.demo_pacs.index import PacsIndex
from pyschedvisu.demo_pacs.indexing import INDEX_FILE
from tests.fixtures.pacs import TINY, query, uid, write_tiny


@pytest.fixture
def tiny_copy(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "data")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Relative paths read from disk by the index (not served from its cache)."""
    seen: list[str] = []
    real = indexing.read_row

    def counting(path: Path, rel: str, size: int, mtime_ns: int) -> Any:
        seen.append(rel)
        return real(path, rel, size, mtime_ns)

    monkeypatch.setattr(indexing, "read_row", counting)
    return seen


def test_index_has_one_row_per_instance_with_header_values(tiny_copy: Path) -> None:
    idx = PacsIndex.load(tiny_copy)
    assert len(idx) == len(TINY)
    row = idx.frame.filter(pl.col("SOPInstanceUID") == uid("i3")).row(0, named=True)
    assert row["AcquisitionTime"] == "082500"
    assert row["ManufacturerModelName"] == "Biograph64_Vision 600"
    assert row["ImageType"] == "ORIGINAL\\PRIMARY"
    assert row["path"] == "1001/st1/se2/i3.dcm"
    assert row["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"


def test_index_cache_reads_files_once_and_only_changed_files_again(
    tiny_copy: Path, reads: list[str]
) -> None:
    PacsIndex.load(tiny_copy)
    assert len(reads) == len(TINY)
    assert (tiny_copy / "dicom" / INDEX_FILE).exists()
    reads.clear()
    PacsIndex.load(tiny_copy)
    assert reads == []

    # change one file, remove another, add a non-DICOM file
    target = tiny_copy / "dicom/1002/st3/se4/i6.dcm"
    ds = pydicom.dcmread(target)
    ds.StudyDescription = "CT ABDOMEN"
    ds.save_as(target, enforce_file_format=True)
    (tiny_copy / "dicom/ABC/st4/se6/i9.dcm").unlink()
    (tiny_copy / "dicom/README.txt").write_text("not DICOM")
    idx = PacsIndex.load(tiny_copy)
    assert sorted(reads) == ["1002/st3/se4/i6.dcm", "README.txt"]
    assert len(idx) == len(TINY) - 1
    assert idx.frame.filter(pl.col("SOPInstanceUID") == uid("i6"))[
        "StudyDescription"
    ].to_list() == ["CT ABDOMEN"]


def test_index_without_writable_cache_still_works(tiny_copy: Path) -> None:
    idx = PacsIndex.load(tiny_copy, write_cache=False)
    assert len(idx) == len(TINY)
    assert not (tiny_copy / "dicom" / INDEX_FILE).exists()


def test_computed_attributes_count_the_hierarchy(tiny_pacs_dir: Path) -> None:
    idx = PacsIndex.load(tiny_pacs_dir)
    q = query(
        "STUDY",
        StudyInstanceUID=uid("st1"),
        ModalitiesInStudy="",
        NumberOfStudyRelatedSeries="",
        NumberOfStudyRelatedInstances="",
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedInstances="",
    )
    (ds,) = list(idx.responses(idx.match(q, "STUDY"), q, "STUDY"))
    assert list(ds.ModalitiesInStudy) == ["CT", "PT"]
    assert (ds.NumberOfStudyRelatedSeries, ds.NumberOfStudyRelatedInstances) == (2, 4)
    assert (ds.NumberOfPatientRelatedStudies, ds.NumberOfPatientRelatedInstances) == (1, 4)
    q = query(
        "SERIES",
        StudyInstanceUID=uid("st4"),
        SeriesInstanceUID="",
        NumberOfSeriesRelatedInstances="",
    )
    got = {
        d.SeriesInstanceUID: d.NumberOfSeriesRelatedInstances
        for d in idx.responses(idx.match(q, "SERIES"), q, "SERIES")
    }
    assert got == {uid("se5"): 1, uid("se6"): 2}


def test_upper_level_keys_filter_lower_levels(tiny_pacs_dir: Path) -> None:
    idx = PacsIndex.load(tiny_pacs_dir)
    q = query("SERIES", StudyDate="20240304", PatientID="1002", SeriesInstanceUID="")
    assert idx.match(q, "SERIES")["SeriesInstanceUID"].to_list() == [uid("se3")]
    q = query("IMAGE", PatientID="1001", Modality="PT", SOPInstanceUID="")
    assert idx.match(q, "IMAGE")["SOPInstanceUID"].to_list() == [uid("i2"), uid("i3"), uid("i4")]


def test_unindexed_attribute_is_matched_and_returned_from_the_header(tiny_pacs_dir: Path) -> None:
    idx = PacsIndex.load(tiny_pacs_dir)
    q = query(
        "IMAGE",
        SeriesInstanceUID=uid("se3"),
        PatientBirthDate="",
        Rows=2,
        PhaseInformationSequence=[],
    )
    (ds,) = list(idx.responses(idx.match(q, "IMAGE"), q, "IMAGE"))
    assert ds.Rows == 2
    assert ds.PhaseInformationSequence[0].NumberOfFramesInPhase == 2
    assert "PatientName" not in ds  # only the requested keys
    q.Rows = 3
    assert idx.match(q, "IMAGE").height == 0


def test_index_of_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "dicom").mkdir()
    assert len(PacsIndex.load(tmp_path)) == 0
    shutil.rmtree(tmp_path / "dicom")
    from pyschedvisu_core.errors import StoreError

    with pytest.raises(StoreError):
        PacsIndex.load(tmp_path / "nowhere")


def test_files_are_walked_in_os_walk_order_without_dot_names_or_symlinked_folders(
    tiny_copy: Path,
) -> None:
    """The first file of a SOP Instance UID found twice is the one kept: the order matters."""
    import os

    root = tiny_copy / "dicom"
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.dcm").write_bytes(b"x")
    (root / "1001" / ".part.dcm").write_bytes(b"x")
    (root / "linked").symlink_to(root / "1001", target_is_directory=True)
    (root / "1001" / "z-link.dcm").symlink_to(root / "1001/st1/se2/i3.dcm")
    (root / "broken.dcm").symlink_to(root / "nowhere.dcm")
    expected = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(n for n in filenames if not n.startswith(".")):
            full = Path(dirpath) / name
            if full.exists():
                st = full.stat()
                expected.append((full.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    assert indexing._walk_files(root) == expected
    assert ("1001/z-link.dcm", (root / "1001/st1/se2/i3.dcm").stat().st_size) in [
        (p, s) for p, s, _ in expected
    ]


def test_worker_processes_index_exactly_what_this_process_does(
    tiny_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = PacsIndex.load(tiny_copy, write_cache=False, workers=1).frame
    monkeypatch.setattr(indexing, "PARALLEL_MIN_FILES", 2)
    monkeypatch.setattr(indexing, "_CHUNK", 3)
    parallel = PacsIndex.load(tiny_copy, write_cache=False, workers=2).frame
    assert parallel.height == len(TINY)
    assert parallel.equals(serial)
