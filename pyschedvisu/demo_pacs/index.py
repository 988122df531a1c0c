"""In-memory index of the DICOM files of a data directory, and C-FIND over it.

:class:`PacsIndex` holds one row per instance, read from the files' headers by
:mod:`pyschedvisu.demo_pacs.indexing` (cached on disk). Queries filter that frame; attributes
that are not indexed are read from the header of the matching instance (like Orthanc with
``StorageAccessOnFind = Always``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pyschedvisu.demo_pacs.indexing import (
    KEYWORD_LEVEL,
    SEQUENCES,
    raw_element,
    read_index,
    value_str,
)
from pyschedvisu.demo_pacs.matching import compile_query, exact_values, is_universal
from pyschedvisu_core import status
from pyschedvisu_core.errors import PacsOperationError

log = logging.getLogger(__name__)

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
_RANK = {lv: i for i, lv in enumerate(LEVELS)}

#: Attributes computed from the hierarchy, and the lowest level they describe.
COMPUTED_LEVEL = {
    "NumberOfPatientRelatedStudies": "PATIENT",
    "NumberOfPatientRelatedSeries": "PATIENT",
    "NumberOfPatientRelatedInstances": "PATIENT",
    "ModalitiesInStudy": "STUDY",
    "SOPClassesInStudy": "STUDY",
    "NumberOfStudyRelatedSeries": "STUDY",
    "NumberOfStudyRelatedInstances": "STUDY",
    "NumberOfSeriesRelatedInstances": "SERIES",
}

UNIQUE_KEY = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}

#: What a PACS that keeps IMAGE-level queries light returns (the hospital PACS).
MINIMAL_IMAGE_KEYS = frozenset(
    {"SOPInstanceUID", "SOPClassUID", "InstanceNumber", "StudyInstanceUID", "SeriesInstanceUID"}
)

_SKIP_TAGS = {0x00080052, 0x00080005, 0x00080054}  # QR level, charset, RetrieveAETitle


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """Instances in a stable, natural order: the first row of an entity represents it."""
    return frame.sort(
        [
            pl.col("PatientID"),
            pl.col("StudyDate"),
            pl.col("StudyTime"),
            pl.col("StudyInstanceUID"),
            pl.col("SeriesNumber").cast(pl.Int64, strict=False),
            pl.col("SeriesInstanceUID"),
            pl.col("InstanceNumber").cast(pl.Int64, strict=False),
            pl.col("path"),
        ],
        nulls_last=True,
    )


@dataclass(frozen=True)
class _Stats:
    study: dict[str, dict[str, str]]
    series: dict[str, dict[str, str]]
    patient: dict[str, dict[str, str]]


class PacsIndex:
    """Instances of ``DIR/dicom/**`` with their patient/study/series/instance attributes."""

    def __init__(self, root: Path, frame: pl.DataFrame, header_cache: int = 4096) -> None:
        self.root = root
        self.frame = _sorted(frame.unique(subset=["SOPInstanceUID"], keep="first"))
        self._stats = self._compute_stats(self.frame)
        #: (study, modality) pairs, for ModalitiesInStudy (asked by every STUDY query)
        self._study_modalities = self.frame.select("StudyInstanceUID", "Modality").unique()
        #: per column, its distinct stored values holding several values (``a\\b``)
        self._multi: dict[str, list[str]] = {}
        #: per column, the row positions of each value (see :meth:`_narrowed`)
        self._rows_of: dict[str, dict[str, list[int]]] = {}
        self._headers: OrderedDict[str, Dataset] = OrderedDict()
        self._headers_max = header_cache
        self._lock = threading.Lock()

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def load(
        cls, data_dir: str | Path, *, write_cache: bool = True, workers: int | None = None
    ) -> PacsIndex:
        """Index ``data_dir/dicom`` (or ``data_dir`` itself if it has no ``dicom`` folder).

        Reuses the on-disk cache for files whose size and mtime did not change. Beyond
        :data:`.indexing.PARALLEL_MIN_FILES` files to read, ``workers`` processes read them
        (default: one per CPU; 1 = in this process). Logs what it does, every few seconds
        while reading (:func:`.indexing.read_index`).
        """
        root, frame = read_index(data_dir, write_cache=write_cache, workers=workers)
        return cls(root, frame)

    def __len__(self) -> int:
        return self.frame.height

    def _multi_values(self, kw: str) -> list[str]:
        """Distinct values of column ``kw`` that hold several values (computed once)."""
        with self._lock:
            found = self._multi.get(kw)
        if found is None:
            col = self.frame.get_column(kw)
            found = col.filter(col.str.contains("\\", literal=True)).unique().to_list()
            with self._lock:
                self._multi[kw] = found
        return found

    @staticmethod
    def _compute_stats(frame: pl.DataFrame) -> _Stats:
        study: dict[str, dict[str, str]] = {}
        for r in (
            frame.group_by("StudyInstanceUID")
            .agg(
                pl.col("SeriesInstanceUID").n_unique().alias("ns"),
                pl.len().alias("ni"),
                pl.col("Modality").drop_nulls().unique().sort().str.join("\\").alias("mods"),
                pl.col("SOPClassUID").drop_nulls().unique().sort().str.join("\\").alias("sops"),
            )
            .iter_rows(named=True)
        ):
            study[r["StudyInstanceUID"]] = {
                "NumberOfStudyRelatedSeries": str(r["ns"]),
                "NumberOfStudyRelatedInstances": str(r["ni"]),
                "ModalitiesInStudy": r["mods"],
                "SOPClassesInStudy": r["sops"],
            }
        series = {
            r[0]: {"NumberOfSeriesRelatedInstances": str(r[1])}
            for r in frame.group_by("SeriesInstanceUID").agg(pl.len()).iter_rows()
        }
        patient: dict[str, dict[str, str]] = {}
        for r in (
            frame.filter(pl.col("PatientID").is_not_null())
            .group_by("PatientID")
            .agg(
                pl.col("StudyInstanceUID").n_unique().alias("nst"),
                pl.col("SeriesInstanceUID").n_unique().alias("nse"),
                pl.len().alias("ni"),
            )
            .iter_rows(named=True)
        ):
            patient[r["PatientID"]] = {
                "NumberOfPatientRelatedStudies": str(r["nst"]),
                "NumberOfPatientRelatedSeries": str(r["nse"]),
                "NumberOfPatientRelatedInstances": str(r["ni"]),
            }
        return _Stats(study, series, patient)

    # -- files --------------------------------------------------------------------------
    def file(self, rel: str) -> Path:
        """Absolute path of an indexed file."""
        return self.root / rel

    def header(self, rel: str) -> Dataset:
        """Header (no pixel data) of an indexed file, kept in a small LRU cache."""
        with self._lock:
            ds = self._headers.get(rel)
            if ds is not None:
                self._headers.move_to_end(rel)
                return ds
        ds = pydicom.dcmread(self.file(rel), stop_before_pixels=True)
        with self._lock:
            self._headers[rel] = ds
            while len(self._headers) > self._headers_max:
                self._headers.popitem(last=False)
        return ds

    def dataset(self, rel: str) -> Dataset:
        """The whole instance (with pixel data), for a C-STORE sub-operation."""
        return pydicom.dcmread(self.file(rel))

    # -- queries ------------------------------------------------------------------------
    def match(self, identifier: Dataset, level: str) -> pl.DataFrame:
        """Representative instance rows (one per matching entity at ``level``).

        Attributes at or above ``level`` filter every instance (so upper-level attributes work
        as filters at lower levels, like Orthanc and dcm4chee); ModalitiesInStudy matches a
        study if any of its modalities matches; other attributes are matched against the
        entity's first instance (indexed value, else its header).
        """
        level = _check_level(level)
        rows = self._narrowed(identifier, level)
        post: list[tuple[str, DataElement]] = []
        # one query for every condition: polars' fixed cost per call outweighs the filtering
        # of the few rows a series or a study has
        conditions: list[pl.Expr] = []
        for elem in identifier:
            if _skipped(elem) or elem.VR == "SQ":
                continue
            kw = elem.keyword
            query = value_str(elem)
            if is_universal(query):
                continue
            if kw == "ModalitiesInStudy":
                if level == "PATIENT":
                    continue
                pred = compile_query(query, "CS")
                mods = self._study_modalities
                ok_mods = {m for m in mods["Modality"].unique().to_list() if pred and pred(m)}
                studies = mods.filter(pl.col("Modality").is_in(list(ok_mods)))["StudyInstanceUID"]
                conditions.append(pl.col("StudyInstanceUID").is_in(studies.unique().to_list()))
            elif kw in COMPUTED_LEVEL:
                post.append((kw, elem))
            elif kw in KEYWORD_LEVEL and _RANK[KEYWORD_LEVEL[kw]] <= _RANK[level]:
                condition = _column_condition(rows, kw, query, elem.VR, self._multi_values(kw))
                if condition is not None:
                    conditions.append(condition)
            else:
                post.append((kw, elem))
        key = UNIQUE_KEY[level]
        reps = (
            rows.lazy()
            .filter(*conditions, pl.col(key).is_not_null())
            .unique(subset=[key], keep="first", maintain_order=True)
            .collect()
        )
        if post and reps.height:
            keep = [
                all(_post_ok(self._value(r, kw, level), elem) for kw, elem in post)
                for r in reps.iter_rows(named=True)
            ]
            reps = reps.filter(pl.Series(keep, dtype=pl.Boolean))
        return reps

    def instances(self, identifier: Dataset, level: str) -> pl.DataFrame:
        """Every instance under the entities matched at ``level`` (what C-GET / C-MOVE send)."""
        level = _check_level(level)
        reps = self.match(identifier, level)
        key = UNIQUE_KEY[level]
        positions = self._positions(key)
        return self.frame[sorted(i for v in reps[key].to_list() for i in positions.get(v, []))]

    def responses(
        self,
        reps: pl.DataFrame,
        identifier: Dataset,
        level: str,
        *,
        minimal: bool = False,
        retrieve_ae: str | None = None,
    ) -> Iterable[Dataset]:
        """C-FIND response identifiers: only the requested keys, plus QueryRetrieveLevel,
        SpecificCharacterSet and (PS3.4 C.4.1.1.3.2, as Orthanc and dcm4chee do) the
        RetrieveAETitle. ``minimal`` IMAGE level keeps only :data:`MINIMAL_IMAGE_KEYS`."""
        level = _check_level(level)
        wanted = [e for e in identifier if not _skipped(e)]
        for r in reps.iter_rows(named=True):
            ds = Dataset()
            ds.SpecificCharacterSet = "ISO_IR 192"
            ds.QueryRetrieveLevel = level
            if retrieve_ae:
                ds.RetrieveAETitle = retrieve_ae
            for elem in wanted:
                kw = elem.keyword
                if minimal and level == "IMAGE" and kw not in MINIMAL_IMAGE_KEYS:
                    continue
                out = self._element(r, elem, level)
                if out is not None:
                    ds[elem.tag] = out
            yield ds

    # -- internals ----------------------------------------------------------------------
    #: Keys a query often names by one exact value, most selective first.
    _NARROWING = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "StudyDate")

    def _narrowed(self, identifier: Dataset, level: str) -> pl.DataFrame:
        """The rows a query can match at all: those of the one series, study or day it names
        by an exact value, else every row (the filters that follow give the same answer
        either way; this only spares them the whole index)."""
        for kw in self._NARROWING:
            if kw not in identifier or _RANK[KEYWORD_LEVEL[kw]] > _RANK[level]:
                continue
            elem = identifier[kw]
            exact = exact_values(value_str(elem), _vr_of(kw, str(elem.VR)))
            if exact is None or len(exact) != 1 or self._multi_values(kw):
                continue
            (value,) = exact
            return self.frame[self._positions(kw).get(value, [])]
        return self.frame

    def _positions(self, kw: str) -> dict[str, list[int]]:
        """Row positions of each value of column ``kw`` (computed once)."""
        with self._lock:
            found = self._rows_of.get(kw)
        if found is None:
            groups = (
                self.frame.select(pl.col(kw), pl.int_range(pl.len()).alias("_row"))
                .filter(pl.col(kw).is_not_null())
                .group_by(kw, maintain_order=True)
                .agg(pl.col("_row"))
            )
            found = dict(zip(groups[kw].to_list(), groups["_row"].to_list(), strict=True))
            with self._lock:
                self._rows_of[kw] = found
        return found

    def _computed(self, row: dict[str, Any], kw: str, level: str) -> str | None:
        lvl = COMPUTED_LEVEL[kw]
        if lvl == "STUDY":
            return self._stats.study.get(row["StudyInstanceUID"], {}).get(kw)
        if lvl == "SERIES":
            if level in ("PATIENT", "STUDY"):
                return None
            return self._stats.series.get(row["SeriesInstanceUID"], {}).get(kw)
        return self._stats.patient.get(row["PatientID"] or "", {}).get(kw)

    def _value(self, row: dict[str, Any], kw: str, level: str) -> str | None:
        if kw in COMPUTED_LEVEL:
            return self._computed(row, kw, level)
        if kw in KEYWORD_LEVEL:
            v = row[kw]
            return str(v) if v is not None else None
        return value_str(self._header_elem(row, kw))

    def _header_elem(self, row: dict[str, Any], kw: str | int) -> DataElement | None:
        try:
            hdr = self.header(row["path"])
        except (OSError, InvalidDicomError) as exc:
            log.warning("%s: unreadable header (%s)", row["path"], exc)
            return None
        tag = tag_for_keyword(kw) if isinstance(kw, str) else kw
        return raw_element(hdr, tag) if tag is not None else None

    def _element(self, row: dict[str, Any], elem: DataElement, level: str) -> DataElement | None:
        """The answer element for requested ``elem``: empty when the value is unknown; None
        (left out) for a sequence the instance does not have, as Orthanc does."""
        kw = elem.keyword
        if kw in COMPUTED_LEVEL or kw in KEYWORD_LEVEL:
            value = self._value(row, kw, level)
            vr = _vr(elem)
            return DataElement(elem.tag, vr, value if value is not None else None)
        if kw in SEQUENCES and kw not in (row.get("Sequences") or "").split("\\"):
            return None  # the index knows the file has not got it: no need to read it
        found = self._header_elem(row, kw if kw else int(elem.tag))
        if found is not None:
            return DataElement(elem.tag, found.VR, _copy_value(found))
        return None if elem.VR == "SQ" else DataElement(elem.tag, elem.VR, None)


def _copy_value(elem: DataElement) -> Any:
    if elem.VR == "SQ":
        import copy

        return copy.deepcopy(elem.value)
    return elem.value


def _vr(elem: DataElement) -> str:
    try:
        vr = dictionary_VR(elem.tag)
    except KeyError:
        return str(elem.VR)
    return vr if " or " not in vr else str(elem.VR)


def _skipped(elem: DataElement) -> bool:
    tag = int(elem.tag)
    return tag in _SKIP_TAGS or elem.tag.group < 0x0008 or elem.tag.element == 0


def _check_level(level: str) -> str:
    lv = (level or "").strip().upper()
    if lv == "INSTANCE":  # some SCUs write INSTANCE
        lv = "IMAGE"
    if lv not in _RANK:
        raise PacsOperationError(
            f"unknown QueryRetrieveLevel {level!r}", status=status.BAD_IDENTIFIER
        )
    return lv


def _column_condition(
    rows: pl.DataFrame, kw: str, query: str | None, vr: str, multi: list[str]
) -> pl.Expr | None:
    """The condition keeping the rows whose ``kw`` matches ``query`` (None: every row).

    An exact query (one value or a list, no wildcard, no range, not a person name) is one
    vectorised look-up; the predicate then only runs on the stored values that hold several
    values (``multi``: a component may match). Anything else runs the predicate on the
    distinct values of ``rows``. Both keep the rows :func:`compile_query` accepts.
    """
    vr = _vr_of(kw, vr)
    pred = compile_query(query, vr)
    if pred is None:
        return None
    exact = exact_values(query, vr)
    if exact is not None:
        return pl.col(kw).is_in([*exact, *(v for v in multi if pred(v))])
    values = rows[kw].unique().to_list()
    return pl.col(kw).is_in([v for v in values if v is not None and pred(v)])


def _vr_of(kw: str, fallback: str) -> str:
    tag = tag_for_keyword(kw)
    if tag is None:
        return fallback
    vr = dictionary_VR(tag)
    return vr if " or " not in vr else fallback


def _post_ok(value: str | None, elem: DataElement) -> bool:
    pred = compile_query(value_str(elem), _vr_of(elem.keyword, str(elem.VR)))
    return True if pred is None else pred(value)


__all__ = [
    "COMPUTED_LEVEL",
    "LEVELS",
    "MINIMAL_IMAGE_KEYS",
    "UNIQUE_KEY",
    "PacsIndex",
]
