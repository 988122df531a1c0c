"""The demo PACS over real associations (pynetdicom SCU on loopback)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from pyschedvisu_core.status import BUSY as STATUS_THROTTLED
from tests.fixtures.pacs import GET, MOVE, TINY, StoreScp, c_find, query, scu_ae, uid

Factory = Callable[..., DemoPacs]
HOST = "127.0.0.1"


def uids(answers: list[Any], key: str) -> set[str]:
    return {str(getattr(ds, key)) for ds in answers}


def test_echo_and_stats(tiny_pacs_dir: Path, demo_pacs: Factory) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    assoc = scu_ae().associate(HOST, pacs.port, ae_title="DEMOPACS")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert (pacs.stats.associations, pacs.stats.echo) == (1, 1)
    assert pacs.stats.ops[0].calling_ae == "PYSCHEDVISU"
    pacs.reset_stats()
    assert (pacs.stats.associations, pacs.stats.echo, pacs.stats.ops) == (0, 0, [])


def test_context_manager_binds_a_free_port_and_stops(tiny_pacs_dir: Path) -> None:
    with DemoPacs(tiny_pacs_dir) as pacs:
        assert pacs.port > 0 and pacs.running
        assert scu_ae().associate(HOST, pacs.port).send_c_echo().Status == 0
    assert not pacs.running
    assert not scu_ae().associate(HOST, pacs.port).is_established


@pytest.mark.parametrize("model", ["study", "patient"])
def test_find_study_level_by_date_range_and_modalities_in_study(
    tiny_pacs_dir: Path, demo_pacs: Factory, model: str
) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    q = query(
        "STUDY",
        StudyDate="20240304-20240306",
        ModalitiesInStudy="PT\\NM",
        StudyInstanceUID="",
        PatientID="",
        StudyTime="",
    )
    if model == "patient":
        q.PatientID = "1002"
    status, answers = c_find(HOST, pacs.port, q, model)
    assert status == 0x0000
    expected = {uid("st1"), uid("st2"), uid("st4")} if model == "study" else {uid("st2")}
    assert uids(answers, "StudyInstanceUID") == expected
    st2 = next(a for a in answers if a.StudyInstanceUID == uid("st2"))
    assert (st2.StudyTime, st2.PatientID, st2.QueryRetrieveLevel) == ("140000", "1002", "STUDY")
    # only the requested keys + level, charset and the retrieve AE title
    assert {e.keyword for e in st2} == {
        "SpecificCharacterSet", "QueryRetrieveLevel", "RetrieveAETitle", "StudyDate",
        "ModalitiesInStudy", "StudyInstanceUID", "PatientID", "StudyTime",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"StudyDate": "20240304"}, {"st1", "st2"}),  # single value
        ({"StudyDate": "20240305-"}, {"st3", "st4"}),  # open range
        ({"StudyDate": "-20240304"}, {"st1", "st2"}),
        ({"StudyDescription": "PET*"}, {"st1"}),  # wildcard
        ({"StudyDescription": "?S 3 PHASES"}, {"st2"}),
        ({"PatientName": "test^patient100*"}, {"st1", "st2", "st3"}),  # PN, case-insensitive
        ({"StudyInstanceUID": f"{uid('st1')}\\{uid('st3')}"}, {"st1", "st3"}),  # UID list
        ({"StudyTime": "0900-1200"}, {"st3", "st4"}),  # TM range
        ({"ModalitiesInStudy": "CT"}, {"st1", "st3", "st4"}),  # any modality of the study
        ({"AccessionNumber": ""}, {"st1", "st2", "st3", "st4"}),  # universal
    ],
)
def test_find_matching_kinds(
    tiny_pacs_dir: Path, demo_pacs: Factory, keys: dict[str, str], expected: set[str]
) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    status, answers = c_find(
        HOST,
        pacs.port,
        query("STUDY", StudyInstanceUID="", **keys)
        if "StudyInstanceUID" not in keys
        else query("STUDY", **keys),
    )
    assert status == 0
    assert uids(answers, "StudyInstanceUID") == {uid(s) for s in expected}


def test_find_series_level_with_upper_level_filters(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    """The retrieval's series query (DOMAIN §2.2): StudyDate, PatientID, StudyUID as filters."""
    pacs = demo_pacs(tiny_pacs_dir)
    q = query(
        "SERIES", StudyDate="20240304", PatientID="1001", StudyInstanceUID=uid("st1"), SeriesDate="20240304",
        Modality="NM\\PT\\CT", SeriesInstanceUID="", SeriesTime="", SeriesDescription="", ProtocolName="",
        InstitutionName="", NumberOfSeriesRelatedInstances="", StudyDescription="",
    )  # fmt: skip
    status, answers = c_find(HOST, pacs.port, q)
    assert status == 0
    by_uid = {a.SeriesInstanceUID: a for a in answers}
    assert set(by_uid) == {uid("se1"), uid("se2")}
    pt = by_uid[uid("se2")]
    assert (pt.NumberOfSeriesRelatedInstances, pt.SeriesDescription, pt.InstitutionName) == (
        3,
        "PET WB",
        "CHUV",
    )
    assert pt.StudyDescription == "PET-CT FDG TRONC"
    # patient root, same query without the study UID
    del q.StudyInstanceUID
    status, answers = c_find(HOST, pacs.port, q, "patient")
    assert uids(answers, "SeriesInstanceUID") == {uid("se1"), uid("se2")}


def test_find_patient_level_only_in_patient_root(tiny_pacs_dir: Path, demo_pacs: Factory) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    q = query("PATIENT", PatientID="100*", PatientName="", NumberOfPatientRelatedStudies="")
    status, answers = c_find(HOST, pacs.port, q, "patient")
    assert status == 0
    assert {(a.PatientID, a.NumberOfPatientRelatedStudies) for a in answers} == {
        ("1001", 1),
        ("1002", 2),
    }
    status, answers = c_find(HOST, pacs.port, q, "study")
    assert (status, answers) == (0xA900, [])


def test_find_image_level_returns_header_timing_tags(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    q = query(
        "IMAGE", StudyInstanceUID=uid("st1"), SeriesInstanceUID=uid("se2"), SOPInstanceUID="", InstanceNumber="",
        AcquisitionTime="", ContentTime="", ManufacturerModelName="", ImageType="",
    )  # fmt: skip
    status, answers = c_find(HOST, pacs.port, q)
    assert status == 0
    got = sorted(
        (int(a.InstanceNumber), a.AcquisitionTime, a.ManufacturerModelName) for a in answers
    )
    expected = sorted((t.number, t.acq_time, t.model) for t in TINY if t.series == "se2")
    assert got == expected
    assert all(list(a.ImageType) == ["ORIGINAL", "PRIMARY"] for a in answers)
    q = query(
        "IMAGE",
        SeriesInstanceUID=uid("se3"),
        SOPInstanceUID="",
        PhaseInformationSequence=[],
        NumberOfFrames="",
    )
    status, (nm,) = c_find(HOST, pacs.port, q)
    assert nm.PhaseInformationSequence[0].ActualFrameDuration == 60000
    assert nm.NumberOfFrames == 2


def test_minimal_image_level_returns_no_timing_tags(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(image_level_minimal=True))
    q = query("IMAGE", SeriesInstanceUID=uid("se2"), StudyInstanceUID="", SOPInstanceUID="", SOPClassUID="",
              InstanceNumber="", AcquisitionTime="", ContentTime="", PhaseInformationSequence=[])  # fmt: skip
    status, answers = c_find(HOST, pacs.port, q)
    assert status == 0 and len(answers) == 3
    for a in answers:
        assert (
            "AcquisitionTime" not in a
            and "ContentTime" not in a
            and "PhaseInformationSequence" not in a
        )
        assert a.StudyInstanceUID == uid("st1") and a.InstanceNumber in (1, 2, 3)
    # STUDY level is unaffected, and the switch works at run time
    pacs.behaviour.image_level_minimal = False
    status, answers = c_find(HOST, pacs.port, q)
    assert {a.AcquisitionTime for a in answers} == {"082000", "082500", "083000"}


def _get(
    port: int, identifier: Any, model: str = "study", ae_title: str = "PYSCHEDVISU"
) -> tuple[int | None, list[str], Any]:
    """C-GET with a storage handler on the same association; (final status, received UIDs, assoc)."""
    from pynetdicom import evt
    from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation

    from tests.fixtures.pacs import CT, NM, PT

    received: list[str] = []

    def on_store(event: Any) -> int:
        received.append(str(event.dataset.SOPInstanceUID))
        return 0x0000

    roles = []
    for sop in (CT, PT, NM):
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = sop
        role.scu_role = False
        role.scp_role = True
        roles.append(role)
    ae = scu_ae(ae_title, get_storage=True)
    assoc = ae.associate(HOST, port, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    final = None
    try:
        for status, _ds in assoc.send_c_get(identifier, GET[model]):
            if status and status.Status not in (0xFF00, 0xFF01):
                final = int(status.Status)
    finally:
        if assoc.is_established:
            assoc.release()
    return final, sorted(received), assoc


def test_c_get_delivers_the_series_instances_on_the_same_association(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    final, received, _ = _get(
        pacs.port, query("SERIES", StudyInstanceUID=uid("st1"), SeriesInstanceUID=uid("se2"))
    )
    assert final == 0x0000
    assert received == sorted(uid(i) for i in ("i2", "i3", "i4"))
    assert pacs.stats.store_sent == 3 and pacs.stats.bytes_sent > 0
    # IMAGE level, patient root
    final, received, _ = _get(
        pacs.port,
        query(
            "IMAGE",
            PatientID="ABC",
            StudyInstanceUID=uid("st4"),
            SeriesInstanceUID=uid("se6"),
            SOPInstanceUID=uid("i9"),
        ),
        "patient",
    )
    assert (final, received) == (0, [uid("i9")])


def test_refuse_get_rejects_the_get_contexts_at_association(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(refuse_get=True))
    assoc = scu_ae().associate(HOST, pacs.port)
    accepted = {str(cx.abstract_syntax) for cx in assoc.accepted_contexts}
    rejected = {str(cx.abstract_syntax) for cx in assoc.rejected_contexts}
    assoc.release()
    assert {str(u) for u in GET.values()} <= rejected
    assert {str(u) for u in MOVE.values()} <= accepted
    pacs.behaviour.refuse_get = False  # read at every association
    assoc = scu_ae().associate(HOST, pacs.port)
    assert {str(u) for u in GET.values()} <= {
        str(cx.abstract_syntax) for cx in assoc.accepted_contexts
    }
    assoc.release()


def _move(port: int, identifier: Any, dest: str, model: str = "study") -> tuple[int | None, Any]:
    assoc = scu_ae().associate(HOST, port)
    assert assoc.is_established
    final, last = None, None
    try:
        for status, _ds in assoc.send_c_move(identifier, dest, MOVE[model]):
            if status and status.Status not in (0xFF00, 0xFF01):
                final, last = int(status.Status), status
    finally:
        if assoc.is_established:
            assoc.release()
    return final, last


def test_c_move_sends_the_study_to_a_registered_storage_scp(
    tiny_pacs_dir: Path, demo_pacs: Factory, store_scp: Callable[..., StoreScp]
) -> None:
    scp = store_scp("PYSCHEDVISU")
    pacs = demo_pacs(tiny_pacs_dir, move_destinations={"PYSCHEDVISU": (HOST, scp.port)})
    final, status = _move(pacs.port, query("STUDY", StudyInstanceUID=uid("st1")), "PYSCHEDVISU")
    assert final == 0x0000
    assert status.NumberOfCompletedSuboperations == 4
    assert scp.uids() == sorted(uid(i) for i in ("i1", "i2", "i3", "i4"))
    assert scp.received[0].file_meta.TransferSyntaxUID  # a full instance, not just a header
    assert scp.received[0].PixelData
    # patient root, series level
    scp.received.clear()
    final, _ = _move(
        pacs.port,
        query("SERIES", PatientID="ABC", StudyInstanceUID=uid("st4"), SeriesInstanceUID=uid("se6")),
        "PYSCHEDVISU",
        "patient",
    )
    assert (final, scp.uids()) == (0, sorted([uid("i8"), uid("i9")]))


def test_retrieve_without_its_unique_key_is_refused_not_everything(
    tiny_pacs_dir: Path, demo_pacs: Factory, store_scp: Callable[..., StoreScp]
) -> None:
    scp = store_scp()
    pacs = demo_pacs(tiny_pacs_dir, move_destinations={"PYSCHEDVISU": (HOST, scp.port)})
    final, _ = _move(pacs.port, query("STUDY", StudyDate="20240304"), "PYSCHEDVISU")
    assert final == 0xA900
    final, received, _ = _get(
        pacs.port, query("SERIES", StudyInstanceUID=uid("st1"), SeriesInstanceUID="")
    )
    assert (final, received) == (0xA900, [])
    assert scp.received == [] and pacs.stats.store_sent == 0


def test_c_move_to_unknown_destination_fails_a801(tiny_pacs_dir: Path, demo_pacs: Factory) -> None:
    pacs = demo_pacs(tiny_pacs_dir, move_destinations={"PYSCHEDVISU": (HOST, 1)})
    final, _ = _move(pacs.port, query("STUDY", StudyInstanceUID=uid("st1")), "STRANGER")
    assert final == 0xA801


def test_throttle_max_in_flight_answers_c336(tiny_pacs_dir: Path, demo_pacs: Factory) -> None:
    from pynetdicom import evt
    from pynetdicom.presentation import StoragePresentationContexts

    # Hold one C-MOVE in flight: its destination blocks in C-STORE until released.
    arrived, release = threading.Event(), threading.Event()

    def slow_store(event: Any) -> int:
        arrived.set()
        release.wait(timeout=30)
        return 0x0000

    dest = AE(ae_title="SLOWSCP")
    for cx in StoragePresentationContexts:
        dest.add_supported_context(cx.abstract_syntax)
    server = dest.start_server((HOST, 0), block=False, evt_handlers=[(evt.EVT_C_STORE, slow_store)])
    try:
        pacs = demo_pacs(
            tiny_pacs_dir,
            behaviour=Behaviour(max_in_flight=1),
            move_destinations={"SLOWSCP": (HOST, server.server_address[1])},
        )
        moved: list[int | None] = []
        mover = threading.Thread(
            target=lambda: moved.append(
                _move(pacs.port, query("STUDY", StudyInstanceUID=uid("st2")), "SLOWSCP")[0]
            )
        )
        mover.start()
        assert arrived.wait(timeout=20)
        q = query("STUDY", StudyInstanceUID="")
        assert c_find(HOST, pacs.port, q) == (STATUS_THROTTLED, [])
        assert pacs.stats.throttled == 1
        release.set()
        mover.join(timeout=30)
        assert moved == [0x0000]  # the operation in flight completed normally
        status, answers = c_find(HOST, pacs.port, q)
        assert status == 0 and len(answers) == 4
        assert pacs.stats.max_in_flight_seen == 1
    finally:
        release.set()
        server.shutdown()


def test_throttle_ops_per_second_answers_c336_for_find_get_and_move(
    tiny_pacs_dir: Path, demo_pacs: Factory, store_scp: Callable[..., StoreScp]
) -> None:
    scp = store_scp()
    pacs = demo_pacs(
        tiny_pacs_dir,
        behaviour=Behaviour(max_ops_per_s=0.2),
        move_destinations={"PYSCHEDVISU": (HOST, scp.port)},
    )
    q = query("STUDY", StudyInstanceUID=uid("st2"))
    assert c_find(HOST, pacs.port, q)[0] == 0  # uses the only slot of the 5 s window
    assert c_find(HOST, pacs.port, q)[0] == STATUS_THROTTLED
    final, _ = _move(pacs.port, q, "PYSCHEDVISU")
    assert final == STATUS_THROTTLED
    assert scp.received == []  # refused before any sub-operation or association
    final, received, _ = _get(pacs.port, q)
    assert (final, received) == (STATUS_THROTTLED, [])
    assert pacs.stats.throttled == 3
    pacs.behaviour.max_ops_per_s = None
    assert c_find(HOST, pacs.port, q)[0] == 0


def test_concurrent_associations_are_served_and_counted(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def worker() -> None:
        status, answers = c_find(
            HOST, pacs.port, query("SERIES", StudyDate="20240304", SeriesInstanceUID="")
        )
        with lock:
            results.append((status, len(answers)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert results == [(0, 3)] * 8
    assert pacs.stats.find == 8 and pacs.stats.associations == 8


def test_fail_dates_abort_queries_and_retrieves_about_that_day(
    tiny_pacs_dir: Path, demo_pacs: Factory, store_scp: Callable[..., StoreScp]
) -> None:
    scp = store_scp()
    pacs = demo_pacs(
        tiny_pacs_dir,
        behaviour=Behaviour(fail_dates={dt.date(2024, 3, 5)}),
        move_destinations={"PYSCHEDVISU": (HOST, scp.port)},
    )
    assert (
        c_find(HOST, pacs.port, query("STUDY", StudyDate="20240305", StudyInstanceUID=""))[0] == -2
    )
    assert (
        c_find(HOST, pacs.port, query("STUDY", StudyDate="20240301-20240310", StudyInstanceUID=""))[
            0
        ]
        == -2
    )
    # by UID (no date in the query): the answer is about that day too
    assert (
        c_find(HOST, pacs.port, query("SERIES", StudyInstanceUID=uid("st3"), SeriesInstanceUID=""))[
            0
        ]
        == -2
    )
    final, _ = _move(pacs.port, query("STUDY", StudyInstanceUID=uid("st3")), "PYSCHEDVISU")
    assert final is None and scp.received == []
    # other days still work
    status, answers = c_find(
        HOST, pacs.port, query("STUDY", StudyDate="20240304", StudyInstanceUID="")
    )
    assert status == 0 and len(answers) == 2
    assert pacs.stats.aborted >= 4


def test_calling_ae_rejection_and_allow_list(tiny_pacs_dir: Path, demo_pacs: Factory) -> None:
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(reject_calling_aes={"INTRUDER"}))
    assoc = scu_ae("INTRUDER").associate(HOST, pacs.port)
    assert assoc.is_rejected
    assert assoc.acceptor.primitive.diagnostic == 0x03  # calling AE title not recognised
    assert scu_ae("PYSCHEDVISU").associate(HOST, pacs.port).send_c_echo().Status == 0
    pacs.behaviour = Behaviour(allowed_calling_aes={"PYSCHEDVISU"})
    assert scu_ae("OTHER").associate(HOST, pacs.port).is_rejected
    ok = scu_ae("PYSCHEDVISU").associate(HOST, pacs.port)
    assert ok.is_established
    ok.release()
    assert pacs.stats.rejected == 2


def test_hospital_preset() -> None:
    b = Behaviour.hospital()
    assert b.refuse_get and b.image_level_minimal
    assert b.max_in_flight is not None and b.max_ops_per_s is not None
    assert Behaviour.hospital(max_in_flight=1, fail_dates={dt.date(2024, 1, 2)}).fail_dates == {
        dt.date(2024, 1, 2)
    }


def test_verification_only_scu_gets_echo(tiny_pacs_dir: Path, demo_pacs: Factory) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    ae = AE(ae_title="ECHOSCU")
    ae.add_requested_context(Verification)
    assoc = ae.associate(HOST, pacs.port)
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def _day_series_query() -> Any:
    from pyschedvisu_core import queries as core

    return core.day_series_query(dt.date(2024, 3, 4), [uid("st1"), uid("st2")])


def test_relational_pacs_answers_series_of_a_study_list(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir)
    status, answers = c_find(HOST, pacs.port, _day_series_query())
    assert status == 0
    assert uids(answers, "StudyInstanceUID") == {uid("st1"), uid("st2")}
    assert {uid("se1"), uid("se2")} <= uids(answers, "SeriesInstanceUID")


def test_hierarchical_pacs_refuses_a_study_list_below_study_level(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(relational=False))
    status, answers = c_find(HOST, pacs.port, _day_series_query())
    assert (status, answers) == (0xA900, [])
    # one study named: the hierarchical query is answered
    q = query("SERIES", StudyInstanceUID=uid("st1"), SeriesInstanceUID="")
    status, answers = c_find(HOST, pacs.port, q)
    assert status == 0 and uids(answers, "SeriesInstanceUID") == {uid("se1"), uid("se2")}
    assert not Behaviour.hospital().relational


def test_hierarchical_pacs_ignoring_keys_answers_the_whole_archive(
    tiny_pacs_dir: Path, demo_pacs: Factory
) -> None:
    pacs = demo_pacs(
        tiny_pacs_dir, behaviour=Behaviour(relational=False, hierarchical_ignores_keys=True)
    )
    status, answers = c_find(HOST, pacs.port, _day_series_query())
    assert status == 0
    everything = pacs.index.frame["SeriesInstanceUID"].unique().to_list()
    assert uids(answers, "SeriesInstanceUID") == set(everything)
    assert len(uids(answers, "StudyInstanceUID")) > 2
