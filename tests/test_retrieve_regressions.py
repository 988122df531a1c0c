"""Regressions of the retrieval found in review, against an in-memory PACS client.

The client answers C-FIND like a lenient PACS (Orthanc): matching on the UIDs, UID lists,
InstanceNumber; what it leaves out (NumberOfSeriesRelatedInstances) is configurable.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pyschedvisu.config import Settings
from pyschedvisu.retrieval import forget_capabilities, record_for, retrieve_day
from pyschedvisu.store import SeriesStore
from pyschedvisu_core import dicomvalues, transport
from pyschedvisu_core import queries as core
from pyschedvisu_core.errors import PacsOperationError, PacsTimeoutError, RetrievalError
from pyschedvisu_core.schema import Reason

DAY = dt.date(2024, 3, 4)


def series_uid(study: str, name: str) -> str:
    return f"1.2.3.{study}." + ".".join(str(ord(c)) for c in name)


def instance(
    study: str,
    series: str,
    number: int,
    acq_time: str,
    *,
    modality: str = "PT",
    study_desc: str = "PET-CT FDG",
    series_date: str | None = "20240304",
    acq_date: str = "20240304",
    model: str = "Biograph64_Vision 600",
) -> Dataset:
    ds = Dataset()
    ds.PatientID = "1001"
    ds.StudyInstanceUID = f"1.2.3.{study}"
    ds.StudyDate = "20240304"
    ds.StudyTime = "080000"
    ds.StudyDescription = study_desc
    ds.SeriesInstanceUID = series_uid(study, series)
    if series_date is not None:
        ds.SeriesDate = series_date
    ds.SeriesDescription = series  # names the series in the assertions
    ds.Modality = modality
    ds.InstitutionName = "CHUV"
    ds.SOPInstanceUID = f"{series_uid(study, series)}.{number}"
    ds.InstanceNumber = str(number)
    ds.AcquisitionDate = acq_date
    ds.AcquisitionTime = acq_time
    ds.ManufacturerModelName = model
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    if modality == "NM":
        ds.ActualFrameDuration = "60000"
        ds.NumberOfFrames = "2"
    return ds


class MemoryPacs:
    """A PacsClient over a list of instance datasets (IMAGE-level timing keys answered)."""

    def __init__(self, instances: Sequence[Dataset], *, with_counts: bool = True) -> None:
        self.instances = list(instances)
        self.with_counts = with_counts
        self.counters = transport.OpCounters()
        self.queries: list[tuple[str, Dataset]] = []

    def echo(self) -> None:
        self.counters.echo += 1

    def _matches(self, ds: Dataset, query: Dataset) -> bool:
        for kw in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "InstanceNumber"):
            want = query.get(kw)
            if want in (None, ""):
                continue
            wanted = [str(w) for w in want] if isinstance(want, list | MultiValue) else [str(want)]
            if str(ds.get(kw)) not in wanted:
                return False
        if query.get("ModalitiesInStudy"):
            study = ds.StudyInstanceUID
            mods = {i.Modality for i in self.instances if i.StudyInstanceUID == study}
            return query.ModalitiesInStudy in mods
        return True

    def find(
        self,
        level: core.Level,
        query: Dataset,
        root: core.Root = "study",
        *,
        limit: int | None = None,
    ) -> list[Dataset]:
        self.counters.find += 1
        self.queries.append((level, query))
        key = {
            "STUDY": "StudyInstanceUID",
            "SERIES": "SeriesInstanceUID",
            "IMAGE": "SOPInstanceUID",
        }[level]
        seen: dict[str, Dataset] = {}
        for ds in self.instances:
            if self._matches(ds, query) and ds.get(key) not in seen:
                seen[str(ds.get(key))] = ds
        out = []
        for rep in seen.values():
            ans = Dataset()
            for elem in query:
                if elem.keyword in rep:
                    setattr(ans, elem.keyword, rep.get(elem.keyword))
            ans.SeriesInstanceUID = rep.SeriesInstanceUID
            if level == "SERIES":
                n = sum(1 for i in self.instances if i.SeriesInstanceUID == rep.SeriesInstanceUID)
                ans.NumberOfSeriesRelatedInstances = str(n) if self.with_counts else ""
            out.append(ans)
        return out

    def fetch_headers(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uids: Sequence[str] | None,
        method: transport.Method,
    ) -> list[Dataset]:
        raise PacsOperationError("no file transfer here", status=0xA801)

    def fetch_headers_many(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]], method: transport.Method
    ) -> dict[str, list[Dataset]]:
        raise PacsOperationError("no file transfer here", status=0xA801)

    def fetch_whole_series(
        self, study_uid: str, series_uids: Sequence[str], method: transport.Method
    ) -> dict[str, list[Dataset]]:
        raise PacsOperationError("no file transfer here", status=0xA801)

    def probe(self, sample: Any = None, *, thorough: bool = False) -> transport.Capabilities:
        return transport.Capabilities(image_find_timing=True, notes=("memory",))

    @property
    def closed(self) -> bool:
        return False

    @property
    def answers_deflated(self) -> bool | None:
        return None

    @contextlib.contextmanager
    def tally(self) -> Iterator[transport.OpCounters]:
        yield self.counters

    @contextlib.contextmanager
    def deadline(self, at: float | None) -> Iterator[None]:
        yield

    @property
    def pace(self) -> transport.Pace:
        return transport.Pace(1, 1000.0)

    def resume_pace(self, pace: transport.Pace) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


def memory_settings(tmp_path: Path) -> Settings:
    return Settings.model_validate(
        {
            "pacs": {"retrieval": "image-find", "probe_cache": False},
            "paths": {"data_dir": str(tmp_path / "data")},
        }
    )


def run(tmp_path: Path, pacs: MemoryPacs) -> Any:
    settings = memory_settings(tmp_path)
    return retrieve_day(DAY, settings, pacs, SeriesStore(tmp_path / "data"), force=True)


def times(result: Any) -> dict[str, tuple[str, str]]:
    return {
        r["series_description"]: (
            r["start"].strftime("%H%M%S"),
            r["end"].strftime("%H%M%S"),
        )
        for r in result.series.iter_rows(named=True)
    }


@pytest.mark.parametrize("with_counts", [True, False])
def test_missing_instance_count_is_counted_at_image_level(
    tmp_path: Path, with_counts: bool
) -> None:
    pacs = MemoryPacs(
        [
            *(instance("1", "pt", n, f"0820{n:02d}") for n in (1, 2, 3)),
            # a derived NM series (3 instances): excluded only when its count is known
            *(instance("1", "nm", n, "090000", modality="NM") for n in (1, 2, 3)),
        ],
        with_counts=with_counts,
    )
    result = run(tmp_path, pacs)
    assert times(result) == {"pt": ("082001", "082003")}  # end = last instance, not start
    assert Reason.NM_DERIVED in result.excluded.get_column("reason").to_list()


def test_first_and_last_are_lowest_and_highest_instance_numbers(tmp_path: Path) -> None:
    gaps = [instance("1", "gaps", n, f"0830{n:02d}") for n in (1, 3, 5, 7, 9)]  # N = 5
    from_zero = [instance("1", "zero", n, f"0840{n:02d}") for n in (0, 1, 2)]
    result = run(tmp_path, MemoryPacs([*gaps, *from_zero]))
    assert times(result) == {"gaps": ("083001", "083009"), "zero": ("084000", "084002")}


def test_each_series_keeps_its_own_study_description(tmp_path: Path) -> None:
    pacs = MemoryPacs(
        [
            instance("1", "a", 1, "080000", study_desc="PET-CT FDG"),
            instance("1", "b", 1, "081000", study_desc="PET-CT FDG CERVEAU"),
        ]
    )
    result = run(tmp_path, pacs)
    got = dict(result.series.select("series_uid", "study_description").iter_rows())
    assert sorted(got.values()) == ["PET-CT FDG", "PET-CT FDG CERVEAU"]


def test_series_without_series_date_acquired_another_day_is_left_out(tmp_path: Path) -> None:
    pacs = MemoryPacs(
        [
            instance("1", "today", 1, "080000", series_date=None),
            instance("1", "before", 1, "235000", series_date=None, acq_date="20240303"),
        ]
    )
    result = run(tmp_path, pacs)
    assert set(times(result)) == {"today"}
    assert result.failed.height == 0
    # left out of the day, not unseen (issue 15): excluded with the day it was acquired
    assert result.excluded.select("series_uid", "reason").rows() == [
        (series_uid("1", "before"), f"{Reason.OTHER_DAY}: acquired 2024-03-03")
    ]


class StudyTimeoutPacs(MemoryPacs):
    """A hierarchical PACS whose IMAGE listing of study 2 as a whole times out, every time."""

    def __init__(self, instances: Sequence[Dataset]) -> None:
        super().__init__(instances)
        self.study_listings = 0

    def find(
        self,
        level: core.Level,
        query: Dataset,
        root: core.Root = "study",
        *,
        limit: int | None = None,
    ) -> list[Dataset]:
        study = query.get("StudyInstanceUID")
        if level != "STUDY" and isinstance(study, list | MultiValue):
            raise PacsOperationError("one study below STUDY level", status=0xA900)
        if level == "IMAGE" and study == "1.2.3.2" and not query.get("SeriesInstanceUID"):
            self.study_listings += 1
            raise PacsTimeoutError("C-FIND IMAGE: no response (timeout or abort)")
        return super().find(level, query, root, limit=limit)


def test_a_failed_study_level_query_is_not_asked_again_by_each_of_its_series(
    tmp_path: Path,
) -> None:
    """Regression (issue 15): a per-study query that failed was asked again (with all its
    retries) by every series of the study, in every pass: an outage multiplied."""
    pacs = StudyTimeoutPacs(
        [
            *(instance("1", "ok", n, f"0800{n:02d}") for n in (1, 2, 3)),
            *(instance("2", name, n, f"0900{n:02d}") for name in "abc" for n in (1, 2, 3)),
        ]
    )
    settings = memory_settings(tmp_path).model_copy(
        update={
            "retrieve": memory_settings(tmp_path).retrieve.model_copy(update={"retries_per_day": 1})
        }
    )
    with pytest.raises(RetrievalError, match="3 series could not be retrieved after 2 passes"):
        retrieve_day(DAY, settings, pacs, SeriesStore(tmp_path / "data"), force=True)
    assert pacs.study_listings == 2  # once a pass, not once per series (6)


def test_timing_keys_asked_for_first_and_last_instances_only(tmp_path: Path) -> None:
    pacs = MemoryPacs([instance("1", "pt", n, f"0820{n:02d}") for n in range(1, 11)])
    run(tmp_path, pacs)
    timed = [q for lvl, q in pacs.queries if lvl == "IMAGE" and "AcquisitionTime" in q]
    assert len(timed) == 1  # one UID-list query for the study
    assert sorted(str(u) for u in timed[0].SOPInstanceUID) == [
        f"{series_uid('1', 'pt')}.1",
        f"{series_uid('1', 'pt')}.10",
    ]


def test_text_without_charset_is_utf8_first() -> None:
    ds = Dataset()
    ds.add_new(0x00080080, "LO", "Hôpital".encode())  # raw UTF-8 bytes, no charset
    assert dicomvalues.text_value(ds, "InstitutionName") == "Hôpital"
    ds.add_new(0x00080080, "LO", "Hôpital".encode("latin-1"))
    assert dicomvalues.text_value(ds, "InstitutionName") == "Hôpital"


@pytest.mark.parametrize(("raw", "expected"), [("2147483647", 2**31 - 1), ("2147483648", None)])
def test_instance_number_beyond_int32_is_none(raw: str, expected: int | None) -> None:
    ds = Dataset()
    ds.add_new(0x00200013, "IS", raw.encode())
    assert core.instance_number(ds) == expected


def timing_queries(pacs: MemoryPacs) -> list[tuple[str, Dataset]]:
    """The queries asked, less the once-per-PACS one asking whether IMAGE-level answers carry
    the injection sequence (instance 1 of a PT series, no timing key)."""
    return [
        (lvl, q)
        for lvl, q in pacs.queries
        if not (core.RADIOPHARM_SEQUENCE in q and "AcquisitionTime" not in q)
    ]


def image_answers(pacs: MemoryPacs) -> list[Dataset]:
    """IMAGE-level queries that could answer a whole series (no SOP UID list, no number)."""
    return [
        q
        for lvl, q in pacs.queries
        if lvl == "IMAGE" and not q.get("SOPInstanceUID") and not q.get("InstanceNumber")
    ]


def test_large_series_are_timed_by_instance_1_and_n_without_listing(tmp_path: Path) -> None:
    pacs = MemoryPacs(
        [
            *(instance("1", "pet", n, f"08{n:02d}00") for n in range(1, 31)),
            *(instance("1", "ct", n, f"0750{n:02d}", modality="CT") for n in range(1, 31)),
        ]
    )
    result = run(tmp_path, pacs)
    assert times(result) == {"pet": ("080100", "083000"), "ct": ("075001", "075030")}
    numbers = sorted(
        str(q.InstanceNumber) for lvl, q in timing_queries(pacs) if q.get("InstanceNumber")
    )
    assert numbers == ["1", "30", "31"]  # both series in each query; 31: is 30 the last?
    assert image_answers(pacs) == []  # 60 instances never listed


def test_large_series_without_instance_n_is_listed_and_picked_by_lowest_and_highest(
    tmp_path: Path,
) -> None:
    from_zero = [instance("1", "zero", n, f"08{n:02d}00") for n in range(0, 30)]
    twice = []  # numbering restarted: 1..15 twice, instance 1 answers twice
    for i in range(30):
        ds = instance("1", "twice", i % 15 + 1, f"09{i:02d}00")
        ds.SOPInstanceUID = f"{ds.SeriesInstanceUID}.9{i}"
        twice.append(ds)
    pacs = MemoryPacs([*from_zero, *twice])
    result = run(tmp_path, pacs)
    # lowest and highest number, the PACS order deciding between equal numbers
    assert times(result) == {"zero": ("080000", "082900"), "twice": ("090000", "091400")}
    assert len(image_answers(pacs)) >= 1  # listed


class NumberBlindPacs(MemoryPacs):
    """A PACS that ignores InstanceNumber as a matching key."""

    def _matches(self, ds: Dataset, query: Dataset) -> bool:
        q = Dataset()
        for elem in query:
            if elem.keyword != "InstanceNumber":
                q.add(elem)
        return super()._matches(ds, q)


def test_pacs_ignoring_instance_number_is_listed_instead(tmp_path: Path) -> None:
    pacs = NumberBlindPacs([instance("1", "pet", n, f"08{n:02d}00") for n in range(1, 31)])
    result = run(tmp_path, pacs)
    assert times(result) == {"pet": ("080100", "083000")}
    assert len(image_answers(pacs)) >= 1
    # remembered: the next day lists at once, without asking by InstanceNumber again
    assert record_for(memory_settings(tmp_path)).allows("direct_picks") is False
    asked = len(pacs.queries)
    run(tmp_path, pacs)
    again = pacs.queries[asked:]
    assert again and not [q for _, q in again if q.get("InstanceNumber")]


def test_days_starting_together_probe_the_pacs_once(tmp_path: Path) -> None:
    import threading

    settings = Settings.model_validate(
        {"pacs": {"probe_cache": False}, "paths": {"data_dir": str(tmp_path / "data")}}
    )
    probing = threading.Event()
    second = threading.Event()
    calls: list[str] = []

    class SlowProbe(MemoryPacs):
        def probe(self, sample: Any = None, *, thorough: bool = False) -> transport.Capabilities:
            calls.append(threading.current_thread().name)
            if len(calls) == 1:
                probing.set()
                second.wait(1.0)  # a second probe (the bug) releases at once
            else:
                second.set()
            return super().probe(sample)

    pacs = SlowProbe([])
    results: list[Any] = []

    def day() -> None:
        results.append(record_for(settings).resolve("auto", pacs, ("1.2.3", "1.2.3.4")))

    first = threading.Thread(target=day, name="day-1")
    first.start()
    assert probing.wait(5)
    other = threading.Thread(target=day, name="day-2")
    other.start()
    first.join(5)
    other.join(5)
    assert calls == ["day-1"]
    assert [r.method for r in results] == ["image-find", "image-find"]


def test_relational_learnt_during_a_probe_is_kept_and_the_probe_too(tmp_path: Path) -> None:
    """Regression: a day remembering "relational" while another probed undid the probe."""
    import threading

    settings = Settings.model_validate({"paths": {"data_dir": str(tmp_path / "data")}})
    probing, learnt = threading.Event(), threading.Event()

    class SlowProbe(MemoryPacs):
        def probe(self, sample: Any = None, *, thorough: bool = False) -> transport.Capabilities:
            probing.set()
            assert learnt.wait(5)
            return super().probe(sample)

    record = record_for(settings)
    day = threading.Thread(
        target=record.resolve, args=("auto", SlowProbe([]), ("1.2.3", "1.2.3.4"))
    )
    day.start()
    assert probing.wait(5)
    record.set_relational(True)  # another day found day-wide queries answered
    learnt.set()
    day.join(5)
    forget_capabilities()  # what the file says, not only the memory
    caps = record_for(settings).capabilities()
    assert caps is not None and caps.probed and caps.relational is True
    assert caps.image_find_timing


def test_instance_n_that_is_not_the_last_is_listed(tmp_path: Path) -> None:
    """Regression: a series numbered past its count (a deleted instance) ended at instance N."""
    deleted = [instance("1", "pet", n, f"08{n:02d}00") for n in range(1, 32) if n != 26]
    pacs = MemoryPacs(deleted)  # 30 instances numbered 1..31: instance 30 is not the last
    assert times(run(tmp_path, pacs)) == {"pet": ("080100", "083100")}
    assert len(image_answers(pacs)) >= 1  # listed, lowest and highest picked


def test_series_counted_by_listing_are_picked_from_that_listing(tmp_path: Path) -> None:
    """Regression: a count found by listing was then used to ask for instance N directly."""
    deleted = [instance("1", "pet", n, f"08{n:02d}00") for n in range(1, 33) if n not in (26, 31)]
    pacs = MemoryPacs(deleted, with_counts=False)  # N+1 = 31 is missing too
    assert times(run(tmp_path, pacs)) == {"pet": ("080100", "083200")}
    assert not [q for _, q in timing_queries(pacs) if q.get("InstanceNumber")]


def test_configured_method_keeps_its_file_fallbacks_once_day_wide_queries_are_known() -> None:
    """Regression: remembering "relational" left unprobed capabilities that allowed no fallback."""
    learnt = transport.Capabilities(probed=False, relational=True)
    assert transport.fallback_methods("image-find", learnt) == ["c-get", "c-move"]
    probed = transport.Capabilities(image_find_timing=True, c_get=True, c_move=False)
    assert transport.fallback_methods("image-find", probed) == ["c-get"]


def test_one_doubtful_day_does_not_turn_day_wide_queries_off_for_good(tmp_path: Path) -> None:
    """Regression: a day started before another found day-wide queries answered recorded False."""
    from pyschedvisu.retrieval.planner import DayPlanner

    settings = Settings.model_validate({"paths": {"data_dir": str(tmp_path / "data")}})
    pacs = MemoryPacs([])
    record = record_for(settings)
    early, late = DayPlanner(DAY, settings, pacs, record), DayPlanner(DAY, settings, pacs, record)
    assert early.relational is None and late.relational is None
    early.day_wide_answered()
    late.day_wide_failed("3 series answered, 4 announced")
    assert record_for(settings).relational is True
    assert late.relational is False  # this day goes on study by study
