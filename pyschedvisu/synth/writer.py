"""Writes the DICOM files of a planned day (``<root>/<study_uid>/<series_uid>/<n>.dcm``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from pyschedvisu.synth.dicomfile import EXPLICIT_LE, SeriesTemplate, tag_vr, value_bytes
from pyschedvisu.synth.plan import DayPlan, Series, Study, uid

_PIXELS = bytes(range(32))  # one 4x4 uint16 frame


def tm(t: dt.datetime, style: str, *, exact: bool = False) -> str:
    """A DICOM TM value in one of the shapes real consoles write.

    ``exact`` refuses a shape that would lose part of ``t`` (the truth relies on it).
    """
    if style == "frac":
        return t.strftime("%H%M%S.%f")
    lost = {
        "full": t.microsecond,
        "min": t.second or t.microsecond,
        "hour": t.minute or t.second or t.microsecond,
    }[style]
    if exact and lost:
        raise ValueError(f"{t.time()} cannot be written as a {style!r} TM value without loss")
    return t.strftime({"full": "%H%M%S", "min": "%H%M", "hour": "%H"}[style])


def _static(study: Study, s: Series, seed: int) -> dict[str, Any]:
    day = study.day.strftime("%Y%m%d")
    first = study.series[0]
    attrs: dict[str, Any] = {
        "SpecificCharacterSet": "ISO_IR 100",
        "ImageType": list(s.image_type),
        "SOPClassUID": s.sop_class,
        "StudyDate": day,
        "SeriesDate": day if s.series_date else None,
        "AcquisitionDate": day,
        "ContentDate": day,
        "StudyTime": tm(
            min(x.times[0] for x in study.series),
            first.tm_style if first.tm_style != "hour" else "min",
        ),
        "SeriesTime": tm(s.times[0], s.tm_style),
        "AccessionNumber": study.accession,
        "Modality": s.modality,
        "Manufacturer": s.manufacturer,
        "InstitutionName": s.institution,
        "ReferringPhysicianName": "",
        "StudyDescription": study.description,
        "SeriesDescription": s.description,
        "ManufacturerModelName": s.model,
        "StationName": s.station,
        "DeviceSerialNumber": s.serial,
        "PatientName": study.patient_name,
        "PatientID": study.patient_id,
        "PatientBirthDate": study.birth_date,
        "PatientSex": study.sex,
        "ProtocolName": s.protocol,
        "StudyInstanceUID": study.uid,
        "SeriesInstanceUID": s.uid,
        "StudyID": study.accession[-4:],
        "SeriesNumber": str(s.number),
        "FrameOfReferenceUID": uid(seed, study.uid, "for"),
        "SamplesPerPixel": 1,
        "PhotometricInterpretation": "MONOCHROME2",
        "Rows": 4,
        "Columns": 4,
        "BitsAllocated": 16,
        "BitsStored": 16,
        "HighBit": 15,
        "PixelRepresentation": 0,
    }
    if s.sop_class.endswith(".7"):  # Secondary Capture
        attrs["ConversionType"] = "WSD"
        attrs["PixelData"] = _PIXELS
        return attrs
    if s.radiopharm is not None:  # PET / NM Isotope Module
        attrs.update(s.radiopharm.attrs())
    if s.modality in ("CT", "PT"):
        attrs.update(
            ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
            PixelSpacing=["150", "150"],
            SliceThickness="3",
        )
        attrs["PixelData"] = _PIXELS
        if s.modality == "CT":
            attrs.update(KVP="120", RescaleIntercept="-1024", RescaleSlope="1")
        else:
            attrs.update(
                Units="BQML",
                DecayCorrection="START",
                CorrectedImage=["ATTN", "DECY"],
                SeriesType=["WHOLE BODY", "IMAGE"],
                NumberOfSlices=s.n_instances,
                RescaleIntercept="0",
                RescaleSlope="1",
            )
        return attrs
    # NM: one multi-frame instance whose timing holds the duration
    frames = s.frames
    attrs.update(
        NumberOfFrames=str(frames), FrameIncrementPointer=0x00540010, PixelData=_PIXELS * frames
    )
    if s.nm_timing == "plain":
        ((ms, _),) = s.nm_parts
        attrs["ActualFrameDuration"] = str(ms)
    elif s.nm_timing == "phase":
        attrs["FrameIncrementPointer"] = [0x00540010, 0x00540030]
        attrs["PhaseInformationSequence"] = [
            {"ActualFrameDuration": str(ms), "NumberOfFramesInPhase": n, "PhaseDelay": "0"}
            for ms, n in s.nm_parts
        ]
    elif s.nm_timing in ("rotation", "radial"):
        attrs["FrameIncrementPointer"] = [0x00540010, 0x00540050]
        items = []
        for ms, n in s.nm_parts:
            item: dict[str, Any] = {
                "ActualFrameDuration": str(ms),
                "StartAngle": "0",
                "AngularStep": f"{360 / n:.4g}",
                "RotationDirection": "CW",
                "ScanArc": "360",
                "RadialPosition": [f"{200 + (i % 7) * 5}" for i in range(n)],
            }
            if s.nm_timing == "rotation":
                item["NumberOfFramesInRotation"] = n
            items.append(item)
        attrs["RotationInformationSequence"] = items
    return attrs


def _acq_time(s: Series, i: int, t: dt.datetime) -> str | None:
    broken = s.broken.get(i)
    if broken == "missing":
        return None
    if broken is not None:
        return broken
    # first and last instances are what the rules read: they must be exact
    return tm(t, s.tm_style, exact=i in (0, s.n_instances - 1))


#: The per-instance attributes the demo PACS indexes (the others of ``DYNAMIC`` it does not).
_INDEXED_DYNAMIC = ("SOPInstanceUID", "AcquisitionTime", "ContentTime", "InstanceNumber")


def write_day(
    plan: DayPlan, root: Path, index: list[dict[str, Any]] | None = None, rel_root: str = ""
) -> int:
    """Write every instance of ``plan`` under ``root``; returns the number of files.

    ``index``: gets the demo PACS's index row of every file (path ``rel_root/...``), as
    reading the file would give it (``demo_pacs.indexing.read_row``), from the very values
    encoded (``demo_pacs.indexing.encoded_value``).
    """
    count = 0
    for study in plan.studies:
        for s in study.series:
            folder = root / study.uid / s.uid
            folder.mkdir(parents=True)
            static = _static(study, s, plan.seed)
            template = SeriesTemplate(static, s.sop_class)
            content = tm(s.content_time or s.times[0], "frac" if s.tm_style == "frac" else "full")
            written: list[tuple[str, dict[str, Any]]] = []
            for i, t in enumerate(s.times):
                values: dict[str, Any] = {
                    "SOPInstanceUID": uid(plan.seed, s.uid, i),
                    "AcquisitionTime": _acq_time(s, i, t)
                    if not s.sop_class.endswith(".7")
                    else None,
                    "ContentTime": content,
                    "InstanceNumber": str(i + 1),
                }
                if s.modality in ("CT", "PT") and not s.sop_class.endswith(".7"):
                    z = -3.0 * i
                    values["ImagePositionPatient"] = f"-300\\-300\\{z:g}"
                    values["SliceLocation"] = f"{z:g}"
                    if s.modality == "PT":
                        values["ImageIndex"] = i + 1
                (folder / f"{i + 1}.dcm").write_bytes(template.instance(values))
                written.append((f"{i + 1}.dcm", values))
                count += 1
            if index is not None:
                rel = "/".join(p for p in (rel_root, study.uid, s.uid) if p)
                index += _series_rows(static, folder, rel, written)
    return count


def _series_rows(
    static: dict[str, Any], folder: Path, rel: str, written: list[tuple[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    from pyschedvisu.demo_pacs.indexing import INDEXED, encoded_value, sequences_value

    base: dict[str, Any] = dict.fromkeys(INDEXED)
    for keyword in INDEXED:
        value = static.get(keyword)
        if value is not None:
            base[keyword] = encoded_value(keyword, value_bytes(tag_vr(keyword)[1], value))
    base["TransferSyntaxUID"] = EXPLICIT_LE
    base["Sequences"] = sequences_value(k for k, v in static.items() if v is not None)
    rows = []
    for name, values in written:
        st = (folder / name).stat()
        row = dict(base, path=f"{rel}/{name}", size=st.st_size, mtime_ns=st.st_mtime_ns)
        for keyword in _INDEXED_DYNAMIC:
            value = values.get(keyword)
            row[keyword] = (
                None if value is None else encoded_value(keyword, str(value).encode("latin-1"))
            )
        if row["SOPInstanceUID"] and row["StudyInstanceUID"] and row["SeriesInstanceUID"]:
            rows.append(row)  # the demo PACS leaves a file without them out, as here
    return rows
