"""A tiny in-test Q/R SCP over hand-built datasets (adapter unit tests only)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    NuclearMedicineImageStorage,
    PositronEmissionTomographyImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from pyschedvisu.adapters.dicomnet import nodelay

#: the NM storage class retired in 1998, still in archives reaching back (see dimse.py)
NM_RETIRED = "1.2.840.10008.5.1.4.1.1.5"
STORAGE = [
    CTImageStorage,
    PositronEmissionTomographyImageStorage,
    NuclearMedicineImageStorage,
    NM_RETIRED,
]


def make_instance(
    study: dict[str, Any], series: dict[str, Any], number: int, **extra: Any
) -> Dataset:
    ds = Dataset()
    sop_class = {
        "CT": CTImageStorage,
        "PT": PositronEmissionTomographyImageStorage,
        "NM": NuclearMedicineImageStorage,
    }[series["Modality"]]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    for k, v in study.items():
        setattr(ds, k, v)
    for k, v in series.items():
        setattr(ds, k, v)
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    for k, v in extra.items():
        setattr(ds, k, v)
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = b"\x00\x01" * 16 * 64  # a little more than the header
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def tiny_day(day: dt.date = dt.date(2024, 3, 4)) -> list[Dataset]:
    """One PET/CT study (CT of 3, PT of 4 instances) and one NM study, on ``day``."""
    d = day.strftime("%Y%m%d")
    pet = {
        "PatientID": "1001",
        "PatientName": "A^B",
        "StudyInstanceUID": generate_uid(),
        "StudyDate": d,
        "StudyTime": "080000",
        "StudyDescription": "PET FDG",
        "AccessionNumber": "1",
    }
    nm = {
        "PatientID": "1002",
        "PatientName": "C^D",
        "StudyInstanceUID": generate_uid(),
        "StudyDate": d,
        "StudyTime": "090000",
        "StudyDescription": "OS 1 PHASE",
        "AccessionNumber": "2",
    }
    out = []
    ct = {
        "SeriesInstanceUID": generate_uid(),
        "Modality": "CT",
        "SeriesDate": d,
        "SeriesTime": "080500",
        "SeriesDescription": "CT",
        "InstitutionName": "CHUV",
        "ProtocolName": "P",
        "SeriesNumber": 1,
    }
    for i, t in enumerate(["080500", "080530", "080600"], start=1):
        out.append(
            make_instance(
                pet,
                ct,
                i,
                AcquisitionDate=d,
                AcquisitionTime=t,
                ManufacturerModelName="Discovery 690",
            )
        )
    pt = {
        "SeriesInstanceUID": generate_uid(),
        "Modality": "PT",
        "SeriesDate": d,
        "SeriesTime": "081000",
        "SeriesDescription": "PET WB",
        "InstitutionName": "CHUV",
        "ProtocolName": "P",
        "SeriesNumber": 2,
    }
    for i, t in enumerate(["081000", "081500", "082000", "083000"], start=1):
        out.append(
            make_instance(
                pet,
                pt,
                i,
                AcquisitionDate=d,
                AcquisitionTime=t,
                ManufacturerModelName="Discovery 690",
            )
        )
    nms = {
        "SeriesInstanceUID": generate_uid(),
        "Modality": "NM",
        "SeriesDate": d,
        "SeriesTime": "090000",
        "SeriesDescription": "WB",
        "InstitutionName": "CHUV",
        "ProtocolName": "P",
        "SeriesNumber": 1,
    }
    item = Dataset()
    item.ActualFrameDuration = 60000
    item.NumberOfFramesInPhase = 20
    out.append(
        make_instance(
            nm,
            nms,
            1,
            AcquisitionDate=d,
            AcquisitionTime="090000",
            ManufacturerModelName="MILLENNIUM MPR",
            PhaseInformationSequence=DicomSequence([item]),
            NumberOfFrames=20,
        )
    )
    return out


def _matches(ds: Dataset, query: Dataset) -> bool:
    for elem in query:
        if elem.keyword in ("QueryRetrieveLevel", "SpecificCharacterSet") or elem.VR == "SQ":
            continue
        want = elem.value
        if want in (None, "", []):
            continue
        if elem.keyword == "ModalitiesInStudy":
            continue
        have = ds.get(elem.keyword)
        if isinstance(want, (list, tuple)) or (
            hasattr(want, "__iter__") and not isinstance(want, str)
        ):
            if str(have) not in [str(w) for w in want]:
                return False
        elif str(have) != str(want):
            return False
    return True


def _single(q: Dataset, level: str) -> bool:
    """True when the upper-level unique keys hold one value each (hierarchical query)."""
    keys = ["StudyInstanceUID"] + (["SeriesInstanceUID"] if level == "IMAGE" else [])
    for kw in keys:
        value = q.get(kw)
        if value in (None, "") or (not isinstance(value, str) and len(value) != 1):
            return False
    return True


@dataclass
class MiniScp:
    instances: list[Dataset]
    timing_at_image: bool = True
    allow_get: bool = True
    move_dest: tuple[str, int] | None = None
    #: statuses answered (and consumed) before serving normally, e.g. [0xC336, 0xC336]
    faults: list[int] = field(default_factory=list)
    abort_next: int = 0
    #: set: C-FIND requests wait for it to be cleared before answering (a frozen PACS)
    frozen: threading.Event = field(default_factory=threading.Event)
    #: strictly hierarchical: below STUDY level, one study (and at IMAGE level one series)
    #: must be named (else 0xA900)
    strict_image: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    port: int = 0
    #: leave Nagle on, like Orthanc's DCMTK by default (two writes per message)
    nagle: bool = False
    #: accept Deflated Explicit VR Little Endian for C-FIND (pynetdicom's default does)
    deflate: bool = True
    #: values C-FIND answers in place of the files' (a database that disagrees with its files)
    index: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.ae = AE("MINISCP")
        self.ae.add_supported_context(Verification)
        self.ae.add_supported_context(
            StudyRootQueryRetrieveInformationModelFind,
            None if self.deflate else [ImplicitVRLittleEndian, ExplicitVRLittleEndian],
        )
        self.ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        if self.allow_get:
            self.ae.add_supported_context(StudyRootQueryRetrieveInformationModelGet)
            for uid in STORAGE:
                self.ae.add_supported_context(uid, scu_role=True, scp_role=True)
        for uid in STORAGE:
            self.ae.add_requested_context(uid)
        handlers = [
            (evt.EVT_C_FIND, self._find),
            (evt.EVT_C_GET, self._get),
            (evt.EVT_C_MOVE, self._move),
            (evt.EVT_C_ECHO, lambda e: self._bump("echo") or 0x0000),
            (evt.EVT_CONN_OPEN, self._opened),
        ]
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=handlers
        )
        self.port = self.server.server_address[1]

    def _opened(self, event: Any) -> None:
        self._bump("associations")
        if not self.nagle:
            nodelay(event.assoc)

    def _bump(self, key: str) -> None:
        with self._lock:
            self.counts[key] = self.counts.get(key, 0) + 1

    def _fault(self, event: Any) -> int | None:
        with self._lock:
            if self.abort_next:
                self.abort_next -= 1
                event.assoc.abort()
                return -1
            if self.faults:
                return self.faults.pop(0)
        return None

    def _select(self, query: Dataset) -> list[Dataset]:
        return [ds for ds in self.instances if _matches(ds, query)]

    def _find(self, event: Any) -> Iterator[tuple[int, Dataset | None]]:
        self._bump("find")
        while self.frozen.is_set():  # answers nothing until thawed
            time.sleep(0.01)
        fault = self._fault(event)
        if fault == -1:
            return
        if fault is not None:
            yield fault, None
            return
        q = event.identifier
        level = q.QueryRetrieveLevel
        if self.strict_image and level in ("SERIES", "IMAGE") and not _single(q, level):
            yield 0xA900, None
            return
        key = {
            "STUDY": "StudyInstanceUID",
            "SERIES": "SeriesInstanceUID",
            "IMAGE": "SOPInstanceUID",
        }[level]
        seen = set()
        for ds in self._select(q):
            if ds.get(key) in seen:
                continue
            seen.add(ds.get(key))
            out = Dataset()
            out.QueryRetrieveLevel = level
            for elem in q:
                if elem.keyword == "QueryRetrieveLevel":
                    continue
                kw = elem.keyword
                if kw == "NumberOfSeriesRelatedInstances":
                    out.NumberOfSeriesRelatedInstances = sum(
                        1 for x in self.instances if x.SeriesInstanceUID == ds.SeriesInstanceUID
                    )
                elif kw == "ModalitiesInStudy":
                    out.ModalitiesInStudy = sorted(
                        {
                            x.Modality
                            for x in self.instances
                            if x.StudyInstanceUID == ds.StudyInstanceUID
                        }
                    )
                elif (
                    level == "IMAGE"
                    and not self.timing_at_image
                    and kw
                    not in (
                        "SOPInstanceUID",
                        "InstanceNumber",
                        "SOPClassUID",
                        "StudyInstanceUID",
                        "SeriesInstanceUID",
                    )
                ):
                    setattr(out, kw, elem.value)
                elif kw in self.index:
                    setattr(out, kw, self.index[kw])
                elif kw in ds:
                    out[elem.tag] = ds[elem.tag]
                else:
                    out[elem.tag] = elem
            yield 0xFF00, out

    def _get(self, event: Any) -> Iterator[Any]:
        self._bump("get")
        fault = self._fault(event)
        if fault == -1:
            return
        if fault is not None:
            yield 1
            yield fault, None
            return
        found = self._select(event.identifier)
        yield len(found)
        for ds in found:
            self._bump("store_sent")
            yield 0xFF00, ds

    def _move(self, event: Any) -> Iterator[Any]:
        self._bump("move")
        if self.move_dest is None or event.move_destination.strip() != "PYSCHEDVISU":
            yield None, None
            return
        yield self.move_dest
        fault = self._fault(event)
        if fault == -1:
            return
        if fault is not None:
            yield 1
            yield fault, None
            return
        found = self._select(event.identifier)
        yield len(found)
        for ds in found:
            self._bump("store_sent")
            yield 0xFF00, ds

    def stop(self) -> None:
        self.server.shutdown()
