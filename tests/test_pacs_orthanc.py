"""The demo PACS answers like a real PACS: the same battery of queries against Orthanc 1.10.1
(Debian) loaded with the same files; plus what Orthanc does with IMAGE-level timing tags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from tests.fixtures.orthanc import Orthanc
from tests.fixtures.pacs import MOVE, StoreScp, c_find, query, scu_ae, uid

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
#: Added by either side on its own (location / encoding), not part of the comparison.
IGNORED = {"SpecificCharacterSet", "RetrieveAETitle", "QueryRetrieveLevel"}
UNIQUE = {
    "PATIENT": "PatientID",
    "STUDY": "StudyInstanceUID",
    "SERIES": "SeriesInstanceUID",
    "IMAGE": "SOPInstanceUID",
}


def _norm(ds: Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in ds:
        if elem.keyword in IGNORED:
            continue
        v = elem.value
        if elem.VR == "SQ":
            out[elem.keyword] = [_norm(item) for item in v]
        elif isinstance(v, list | tuple) or type(v).__name__ == "MultiValue":
            items = [str(x) for x in v]
            out[elem.keyword] = sorted(items) if elem.keyword == "ModalitiesInStudy" else items
        else:
            out[elem.keyword] = "" if v is None else str(v).strip()
    return out


def _answers(port: int, q: Dataset, model: str) -> tuple[int, dict[str, dict[str, Any]]]:
    status, answers = c_find(HOST, port, q, model)
    key = UNIQUE[q.QueryRetrieveLevel]
    return status, {str(getattr(a, key)): _norm(a) for a in answers}


def battery() -> list[tuple[str, Dataset]]:
    """(model, identifier) pairs about the tiny department that a PACS must answer alike."""
    return [
        # retrieval, DOMAIN §2.1: studies of a day with PT or NM
        ("study", query("STUDY", StudyDate="20240304", ModalitiesInStudy="PT\\NM", StudyTime="", StudyInstanceUID="",
                        PatientID="", StudyDescription="", InstitutionName="")),
        ("study", query("STUDY", StudyDate="20240304-20240306", StudyInstanceUID="", ModalitiesInStudy="",
                        NumberOfStudyRelatedSeries="", NumberOfStudyRelatedInstances="", AccessionNumber="")),
        ("study", query("STUDY", StudyDate="20240305-", StudyInstanceUID="", PatientName="")),
        ("study", query("STUDY", StudyDate="-20240304", StudyInstanceUID="", StudyDescription="PET*")),
        ("study", query("STUDY", StudyInstanceUID=f"{uid('st1')}\\{uid('st4')}", StudyDate="")),
        ("study", query("STUDY", StudyDescription="?S 3 PHASES", StudyInstanceUID="")),
        ("study", query("STUDY", StudyTime="0900-1200", StudyInstanceUID="")),
        # retrieval, DOMAIN §2.2: series of a study, upper-level keys as filters
        ("study", query("SERIES", StudyDate="20240304", PatientID="1001", StudyInstanceUID=uid("st1"),
                        SeriesDate="20240304", Modality="NM\\PT\\CT", SeriesInstanceUID="", SeriesTime="",
                        SeriesDescription="", ProtocolName="", InstitutionName="",
                        NumberOfSeriesRelatedInstances="", StudyDescription="")),
        ("patient", query("SERIES", PatientID="ABC", StudyInstanceUID=uid("st4"), SeriesInstanceUID="", Modality="")),
        # IMAGE level with timing tags (Orthanc "Always" reads them from the files)
        ("study", query("IMAGE", StudyInstanceUID=uid("st1"), SeriesInstanceUID=uid("se2"), SOPInstanceUID="",
                        SOPClassUID="", InstanceNumber="", AcquisitionTime="", ContentTime="",
                        ManufacturerModelName="", ImageType="")),
        ("study", query("IMAGE", StudyInstanceUID=uid("st2"), SeriesInstanceUID=uid("se3"), SOPInstanceUID="",
                        AcquisitionTime="", NumberOfFrames="", PhaseInformationSequence=[])),
        ("patient", query("PATIENT", PatientID="100*", PatientName="", NumberOfPatientRelatedStudies="")),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pair(tiny_pacs_dir: Path, orthanc_factory: Callable[..., Orthanc]) -> Any:
    orth = orthanc_factory(tiny_pacs_dir, "Always")
    pacs = DemoPacs(tiny_pacs_dir)
    pacs.start()
    yield pacs, orth
    pacs.stop()


@pytest.mark.parametrize("i", range(len(battery())))
def test_demo_pacs_answers_like_orthanc(pair: Any, i: int) -> None:
    pacs, orth = pair
    model, q = battery()[i]
    st_demo, demo = _answers(pacs.port, q, model)
    st_orth, orthanc = _answers(orth.dicom_port, q, model)
    assert (st_demo, st_orth) == (0, 0)
    assert demo, "the battery only holds queries that have answers"
    assert set(demo) == set(orthanc)
    assert demo == orthanc


def test_orthanc_1_10_image_level_timing_tags_by_storage_access_mode(
    tiny_pacs_dir: Path, orthanc_factory: Callable[..., Orthanc], demo_pacs: Callable[..., DemoPacs]
) -> None:
    """Always: AcquisitionTime and sequences come from the files. Never (database only, the
    closest to the hospital PACS): they come back empty / absent, main tags stay."""
    q = query("IMAGE", SeriesInstanceUID=uid("se3"), SOPInstanceUID="", InstanceNumber="", AcquisitionTime="",
              PhaseInformationSequence=[], NumberOfFrames="")  # fmt: skip
    always = orthanc_factory(tiny_pacs_dir, "Always")
    never = orthanc_factory(tiny_pacs_dir, "Never")
    _, (a,) = c_find(HOST, always.dicom_port, q)
    assert a.AcquisitionTime == "140100" and len(a.PhaseInformationSequence) == 1
    _, (n,) = c_find(HOST, never.dicom_port, q)
    assert n.AcquisitionTime in ("", None)
    assert "PhaseInformationSequence" not in n
    assert (n.SOPInstanceUID, n.InstanceNumber, n.NumberOfFrames) == (uid("i5"), 1, 2)
    # the demo PACS in hospital mode gives no usable timing either (it omits the keys)
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(image_level_minimal=True))
    _, (m,) = c_find(HOST, pacs.port, q)
    assert not m.get("AcquisitionTime") and "PhaseInformationSequence" not in m
    assert m.SOPInstanceUID == uid("i5")


def _move_to(port: int, q: Dataset, dest: str, model: str = "study") -> int | None:
    assoc = scu_ae().associate(HOST, port)
    final = None
    try:
        for status, _ in assoc.send_c_move(q, dest, MOVE[model]):
            if status and status.Status not in (0xFF00, 0xFF01):
                final = int(status.Status)
    finally:
        assoc.release()
    return final


def test_c_move_delivers_the_same_instances_as_orthanc(
    pair: Any, store_scp: Callable[..., StoreScp]
) -> None:
    pacs, orth = pair
    scp = store_scp("PYSCHEDVISU")
    orth.set_modality("PYSCHEDVISU", HOST, scp.port)
    pacs.move_destinations["PYSCHEDVISU"] = (HOST, scp.port)
    q = query("SERIES", StudyInstanceUID=uid("st4"), SeriesInstanceUID=uid("se6"))
    assert _move_to(orth.dicom_port, q, "PYSCHEDVISU") == 0
    from_orthanc = scp.uids()
    scp.received.clear()
    assert _move_to(pacs.port, q, "PYSCHEDVISU") == 0
    assert scp.uids() == from_orthanc == sorted([uid("i8"), uid("i9")])
    # An unknown destination fails on both, with nothing sent: the demo PACS answers the
    # standard 0xA801; Orthanc 1.10.1 answers 0xC000 ("unable to process").
    scp.received.clear()
    assert _move_to(pacs.port, q, "NOBODY") == 0xA801
    assert 0xA000 <= (_move_to(orth.dicom_port, q, "NOBODY") or 0) <= 0xCFFF
    assert scp.received == []


@pytest.mark.slow
def test_demo_pacs_answers_like_orthanc_on_the_synthetic_week(
    request: pytest.FixtureRequest, orthanc_factory: Callable[..., Orthanc]
) -> None:
    """The retrieval's own queries over a realistic week (needs the ``synth_week`` fixture)."""
    try:
        data: Path = request.getfixturevalue("synth_week")
    except pytest.FixtureLookupError:
        pytest.skip("synth_week fixture not available yet")
    import polars as pl

    orth = orthanc_factory(data, "Always")
    with DemoPacs(data) as pacs:
        frame = pacs.index.frame
        day = sorted(frame["StudyDate"].drop_nulls().unique().to_list())[0]
        q = query("STUDY", StudyDate=day, ModalitiesInStudy="PT\\NM", StudyTime="", StudyInstanceUID="",
                  PatientID="", StudyDescription="", InstitutionName="")  # fmt: skip
        st_demo, studies = _answers(pacs.port, q, "study")
        st_orth, studies_orth = _answers(orth.dicom_port, q, "study")
        assert (st_demo, st_orth) == (0, 0) and studies and set(studies) == set(studies_orth)
        # A study-level InstitutionName is ill-defined when its series disagree (the synthetic
        # 'mixed' cases): Orthanc keeps the first instance it received, the demo PACS its
        # first instance by series/instance number. Everything else must be equal.
        mixed = {
            u for u in studies
            if frame.filter(pl.col("StudyInstanceUID") == u)["InstitutionName"].n_unique() > 1
        }  # fmt: skip
        for u in studies:
            if u in mixed:
                studies[u].pop("InstitutionName"), studies_orth[u].pop("InstitutionName")
        assert studies == studies_orth
        for study_uid in sorted(studies)[:5]:
            q = query("SERIES", StudyDate=day, StudyInstanceUID=study_uid, SeriesDate="", Modality="NM\\PT\\CT",
                      SeriesInstanceUID="", SeriesTime="", SeriesDescription="", ProtocolName="",
                      InstitutionName="", NumberOfSeriesRelatedInstances="", StudyDescription="")  # fmt: skip
            assert _answers(pacs.port, q, "study") == _answers(orth.dicom_port, q, "study")
        series = frame.filter(pl.col("StudyDate") == day, pl.col("Modality").is_in(["PT", "NM"]))
        for series_uid in series["SeriesInstanceUID"].unique().sort().to_list()[:5]:
            q = query("IMAGE", SeriesInstanceUID=series_uid, SOPInstanceUID="", InstanceNumber="",
                      AcquisitionTime="", AcquisitionDate="", ManufacturerModelName="", ImageType="",
                      PhaseInformationSequence=[], RotationInformationSequence=[], NumberOfFrames="")  # fmt: skip
            demo, orthanc = _answers(pacs.port, q, "study"), _answers(orth.dicom_port, q, "study")
            assert demo == orthanc


def test_orthanc_refuses_deflated_answers_and_our_client_asks_plain(
    tiny_pacs_dir: Path, orthanc_factory: Callable[..., Orthanc]
) -> None:
    """Orthanc 1.10.1 rejects the deflated C-FIND context: the plain one carries the query."""
    import datetime as dt

    from pyschedvisu.adapters.dimse import DimseClient, DimseConfig
    from pyschedvisu_core import queries as core

    orth = orthanc_factory(tiny_pacs_dir, "Always")
    client = DimseClient(DimseConfig(host=HOST, port=orth.dicom_port, called_ae=orth.aet))
    try:
        studies = client.find("STUDY", core.study_query(dt.date(2024, 3, 4), "PT"))
        assert {str(s.StudyInstanceUID) for s in studies} == {uid("st1")}
        assert client.answers_deflated is False
        assert client.deflate  # refused, not broken
    finally:
        client.close()
