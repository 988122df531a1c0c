"""The DICOM files of a data directory read into the demo PACS's index: one row per instance.

Every file under ``DIR/dicom/**`` is read once (header only, the attributes of
:data:`LEVEL_KEYWORDS`), in worker processes when there are many; the rows are cached in
``DIR/dicom/.index.v1.parquet`` and on the next load only files whose size or mtime changed
are read again. Values are kept as text, multi-values joined by a backslash
(:func:`value_str`), as the queries of :mod:`pyschedvisu.demo_pacs.index` compare them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl
import pydicom
from pydicom import config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pyschedvisu_core.errors import StoreError

log = logging.getLogger("pyschedvisu.demo_pacs.index")  # the index's own log, as before

INDEX_FILE = ".index.v2.parquet"

#: Indexed attributes, by the level they belong to.
LEVEL_KEYWORDS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "PatientSex"),
    "STUDY": (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "StudyDescription",
        "ReferringPhysicianName",
    ),
    "SERIES": (
        "SeriesInstanceUID",
        "Modality",
        "SeriesNumber",
        "SeriesDate",
        "SeriesTime",
        "SeriesDescription",
        "ProtocolName",
        "InstitutionName",
        "BodyPartExamined",
        "Manufacturer",
        "ManufacturerModelName",
        "StationName",
        "DeviceSerialNumber",
    ),
    "IMAGE": (
        "SOPInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "AcquisitionDate",
        "AcquisitionTime",
        "ContentDate",
        "ContentTime",
        "ImageType",
        "NumberOfFrames",
        "ActualFrameDuration",
        "SpecificCharacterSet",
    ),
}
#: Sequences whose presence the index records (column ``Sequences``: the keywords present,
#: joined by a backslash): an instance without them is answered without reading its file.
SEQUENCES: tuple[str, ...] = (
    "PhaseInformationSequence",
    "RotationInformationSequence",
    "RadiopharmaceuticalInformationSequence",
)
KEYWORD_LEVEL = {kw: lv for lv, kws in LEVEL_KEYWORDS.items() for kw in kws}
INDEXED = tuple(KEYWORD_LEVEL)
FILE_COLUMNS = ("path", "size", "mtime_ns", "TransferSyntaxUID", "Sequences")

_TAG_KEYWORD: dict[int, str] = {int(tag_for_keyword(k) or 0): k for k in INDEXED}
_SEQUENCE_TAGS: dict[int, str] = {int(tag_for_keyword(k) or 0): k for k in SEQUENCES}
_SPECIFIC_TAGS: list[int] = [*_TAG_KEYWORD, *_SEQUENCE_TAGS]


def sequences_value(present: Iterable[str]) -> str | None:
    """The ``Sequences`` column of a file holding the top-level sequences ``present``."""
    have = set(present)
    found = [k for k in SEQUENCES if k in have]
    return "\\".join(found) or None


_RAW_TEXT_VRS = {
    "AE",
    "AS",
    "CS",
    "DA",
    "DS",
    "DT",
    "IS",
    "LO",
    "LT",
    "PN",
    "SH",
    "ST",
    "TM",
    "UC",
    "UI",
    "UR",
    "UT",
}


def raw_element(ds: Dataset, tag: int) -> DataElement | None:
    """Element ``tag`` of ``ds`` with text values taken raw (no VR validation, so a garbled
    TM/DA value neither warns nor raises: the server answers it as it is, like a real PACS)."""
    try:
        item = ds.get_item(tag)
    except Exception:  # a broken element is as good as none
        return None
    if item is None:
        return None
    if isinstance(item, RawDataElement):
        vr = item.VR or _dict_vr(tag)
        if vr in _RAW_TEXT_VRS and isinstance(item.value, bytes):
            return _text_element(tag, vr, item.value)
        try:
            return ds[tag]
        except Exception:
            return None
    return item


def _text_element(tag: int, vr: str, raw: bytes) -> DataElement:
    text = _decode_raw(raw).rstrip(" \x00")
    try:
        return DataElement(tag, vr, text or None, validation_mode=config.IGNORE)
    except (ValueError, TypeError, OverflowError):  # IS/DS that no number parses
        return DataElement(tag, vr, None)


#: Text VRs whose pydicom value is the text itself (no number, no name parsing).
_PLAIN_VRS = frozenset(_RAW_TEXT_VRS - {"DS", "IS", "PN"})


@lru_cache(maxsize=64)
def _keyword_tag_vr(keyword: str) -> tuple[int, str]:
    tag = int(tag_for_keyword(keyword) or 0)
    return tag, _dict_vr(tag)


def encoded_value(keyword: str, raw: bytes | None) -> str | None:
    """The index's value of ``keyword`` (a text VR) for the bytes a file holds (None: absent):
    what reading the file gives (:func:`read_row`), without reading it."""
    if raw is None:
        return None
    tag, vr = _keyword_tag_vr(keyword)
    # Plain ASCII with one value is its own text: no pydicom element (10 us each) needed.
    if raw.isascii() and b"\\" not in raw and (vr in _PLAIN_VRS or (vr == "IS" and raw.isdigit())):
        return raw.decode("ascii").rstrip(" \x00").strip() or None
    return value_str(_text_element(tag, vr, raw))


def _dict_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def _decode_raw(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")


def value_str(elem: DataElement | None) -> str | None:
    """String form of an element value (multi-values joined by a backslash); None if empty."""
    if elem is None or elem.VR == "SQ" or elem.value is None:
        return None
    v = elem.value
    if isinstance(v, bytes | bytearray):
        return None
    if isinstance(v, list | tuple | pydicom.multival.MultiValue):
        s = "\\".join(str(x) for x in v)
    else:
        s = str(v)
    s = s.strip()
    return s or None


def _walk_files(root: Path) -> list[tuple[str, int, int]]:
    """(path relative to ``root``, size, mtime_ns) of every file under ``root``.

    The order of ``os.walk`` top-down with sorted names (a folder's files, then each sub-folder
    in turn); names starting with a dot are left out, symlinked folders are not entered.
    """
    out: list[tuple[str, int, int]] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(root / rel_dir if rel_dir else root) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                if entry.is_dir():
                    if not entry.is_symlink():
                        subdirs.append(rel)
                    continue
                st = entry.stat()
            except OSError:
                continue
            out.append((rel, st.st_size, st.st_mtime_ns))
        stack.extend(reversed(subdirs))
    return out


#: Files to read beyond which worker processes share the reading (each costs ~1 s to start).
PARALLEL_MIN_FILES = 4000
_CHUNK = 1000
_PROGRESS_EVERY_S = 5.0


def _can_spawn() -> bool:
    """Spawned workers re-import ``__main__``: impossible for ``python -`` or a REPL file."""
    import sys

    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return main is None or Path(main).is_file()


def _read_chunk(root: Path, items: list[tuple[str, int, int, int]]) -> list[dict[str, Any]]:
    """Rows of the readable DICOM files of ``items`` (path, size, mtime_ns, order)."""
    out = []
    for rel, size, mtime_ns, order in items:
        row = read_row(root / rel, rel, size, mtime_ns)
        if row is not None:
            row["_order"] = order
            out.append(row)
    return out


def _read_files(
    root: Path, items: list[tuple[str, int, int, int]], workers: int | None
) -> list[dict[str, Any]]:
    """:func:`_read_chunk` over ``items``, in worker processes when there are many."""
    import time

    n_workers = min(workers or os.cpu_count() or 1, -(-len(items) // _CHUNK))
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    rows: list[dict[str, Any]] = []
    done, last = 0, time.monotonic()

    def tick(n: int) -> None:
        nonlocal done, last
        done += n
        if done < len(items) and time.monotonic() - last >= _PROGRESS_EVERY_S:
            last = time.monotonic()
            log.info("indexing: %s/%s files read", f"{done:,}", f"{len(items):,}")

    if len(items) >= PARALLEL_MIN_FILES and n_workers > 1 and _can_spawn():
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        # spawn: forking a process that runs threads (polars, pynetdicom) may deadlock
        with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(_read_chunk, root, chunk): len(chunk) for chunk in chunks}
            for future in as_completed(futures):
                rows += future.result()
                tick(futures[future])
        return rows
    for chunk in chunks:
        rows += _read_chunk(root, chunk)
        tick(len(chunk))
    return rows


def read_row(path: Path, rel: str, size: int, mtime_ns: int) -> dict[str, Any] | None:
    """The index row of the file ``path`` (``rel``: its path under the indexed folder), or
    None when it is not DICOM with its three UIDs."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_SPECIFIC_TAGS)
    except (InvalidDicomError, OSError, EOFError, ValueError) as exc:
        log.debug("skipping %s: not readable DICOM (%s)", rel, exc)
        return None
    row: dict[str, Any] = dict.fromkeys(INDEXED)
    # By tag, not keyword: keyword lookups dominate the indexing time otherwise.
    for tag in _TAG_KEYWORD.keys() & set(ds.keys()):
        row[_TAG_KEYWORD[tag]] = value_str(raw_element(ds, tag))
    if not (row["SOPInstanceUID"] and row["StudyInstanceUID"] and row["SeriesInstanceUID"]):
        log.warning("skipping %s: no SOP/Study/Series Instance UID", rel)
        return None
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    sequences = sequences_value(_SEQUENCE_TAGS[t] for t in _SEQUENCE_TAGS.keys() & set(ds.keys()))
    row.update(
        path=rel,
        size=size,
        mtime_ns=mtime_ns,
        TransferSyntaxUID=ts and str(ts),
        Sequences=sequences,
    )
    return row


def _schema() -> dict[str, pl.DataType]:
    sch: dict[str, pl.DataType] = {kw: pl.String() for kw in INDEXED}
    sch.update(
        path=pl.String(),
        size=pl.Int64(),
        mtime_ns=pl.Int64(),
        TransferSyntaxUID=pl.String(),
        Sequences=pl.String(),
    )
    return sch


def add_to_index(root: Path, rows: list[dict[str, Any]], replaced: list[str]) -> None:
    """Put ``rows`` (as :func:`read_row` gives) in the index cache of the folder ``root``, in
    place of the cached rows under the folders ``replaced`` (relative to ``root``).

    How a writer of files under ``root`` (the synthetic department) hands them to the demo
    PACS as it writes them, as a PACS indexes what it is sent: the next load reads none of
    them again, unless its size or mtime changed.
    """
    cache_path = root / INDEX_FILE
    frames = [pl.DataFrame(rows, schema=_schema())]
    if cache_path.exists():
        try:
            old = pl.read_parquet(cache_path)
        except (OSError, pl.exceptions.PolarsError):
            old = None  # rebuilt by the next load
        if old is not None and set(old.columns) == set(_schema()):
            prefixes = [f"{r.rstrip('/')}/" for r in replaced]
            keep = ~pl.any_horizontal(
                [pl.col("path").str.starts_with(p) for p in prefixes] or [pl.lit(False)]
            )
            frames.insert(0, old.select(list(_schema())).cast(_schema()).filter(keep))  # type: ignore[arg-type]
    from pyschedvisu.store import atomic_write_parquet

    atomic_write_parquet(cache_path, pl.concat(frames))


def read_index(
    data_dir: str | Path, *, write_cache: bool = True, workers: int | None = None
) -> tuple[Path, pl.DataFrame]:
    """The indexed folder (``data_dir/dicom``, or ``data_dir`` itself if it has no ``dicom``
    folder) and one row per readable DICOM file under it (see the module docstring)."""
    base = Path(data_dir)
    root = base / "dicom" if (base / "dicom").is_dir() else base
    if not root.is_dir():
        raise StoreError(f"{root}: no such DICOM directory")
    cache_path = root / INDEX_FILE
    cached = pl.DataFrame(schema=_schema())
    if cache_path.exists():
        try:
            old = pl.read_parquet(cache_path)
            if set(old.columns) == set(_schema()):
                cached = old.select(list(_schema())).cast(_schema())  # type: ignore[arg-type]
        except (OSError, pl.exceptions.PolarsError) as exc:
            log.warning("%s: unreadable index cache, rebuilding (%s)", cache_path, exc)
    files = _walk_files(root)
    walked = pl.DataFrame(
        {
            "path": [f[0] for f in files],
            "size": [f[1] for f in files],
            "mtime_ns": [f[2] for f in files],
            "_order": list(range(len(files))),
        },
        schema={"path": pl.String, "size": pl.Int64, "mtime_ns": pl.Int64, "_order": pl.Int64},
    )
    # a cached row stands for a file whose size and mtime are unchanged
    reused = walked.join(cached, on=["path", "size", "mtime_ns"], how="inner")
    todo = walked.join(reused.select("path"), on="path", how="anti").sort("_order")
    if todo.height:
        log.info(
            "indexing %s DICOM file(s) under %s (%s from the cache)",
            f"{todo.height:,}",
            root,
            f"{reused.height:,}",
        )
    new_rows = _read_files(root, list(todo.iter_rows()), workers)
    new = pl.DataFrame(new_rows, schema={**_schema(), "_order": pl.Int64()})
    frame = (
        pl.concat([reused.select(new.columns), new])
        .sort("_order")
        .drop("_order")
        .select(list(_schema()))
    )
    changed = todo.height > 0 or reused.height != cached.height or not cache_path.exists()
    if write_cache and changed:
        from pyschedvisu.store import atomic_write_parquet

        try:
            atomic_write_parquet(cache_path, frame)
        except OSError as exc:
            log.warning("%s: cannot write the index cache (%s)", cache_path, exc)
    log.info("indexed %d instances under %s (%d files read)", frame.height, root, todo.height)
    return root, frame


__all__ = [
    "INDEXED",
    "INDEX_FILE",
    "KEYWORD_LEVEL",
    "LEVEL_KEYWORDS",
    "PARALLEL_MIN_FILES",
    "SEQUENCES",
    "add_to_index",
    "encoded_value",
    "raw_element",
    "read_index",
    "read_row",
    "sequences_value",
    "value_str",
]
