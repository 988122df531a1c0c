"""The pynetdicom adapter against a tiny in-test SCP: operations, retries, pool, pacing, errors."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from pydicom.dataset import Dataset

from pyschedvisu.adapters.dimse import DimseClient, DimseConfig
from pyschedvisu.adapters.pacing import Pacer
from pyschedvisu_core import queries as core
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsAnswerError,
    PacsCircuitOpenError,
    PacsOperationError,
    PacsThrottledError,
    PacsUnreachableError,
)
from tests._mini_scp import NM_RETIRED, MiniScp, tiny_day
from tests.conftest import free_port

DAY = dt.date(2024, 3, 4)


@pytest.fixture
def instances() -> list[Dataset]:
    return tiny_day(DAY)


@pytest.fixture
def scp(instances: list[Dataset]) -> Iterator[MiniScp]:
    server = MiniScp(instances, move_dest=None)
    yield server
    server.stop()


def config(port: int, **kw: Any) -> DimseConfig:
    base: dict[str, Any] = {
        "port": port,
        "called_ae": "MINISCP",
        "max_ops_per_s": 1000.0,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "backoff_jitter_s": 0.01,
        "op_retries": 3,
        "move_bind": "127.0.0.1",
    }
    base.update(kw)
    return DimseConfig(**base)


def day_settings(
    port: int, tmp_path: Path, *, retrieve: dict[str, Any] | None = None, **pacs: Any
) -> Any:
    """Settings of a whole-day retrieval from the mini SCP on ``port`` (CHUV accepted)."""
    from pyschedvisu.config import Settings

    return Settings(
        pacs={
            "port": port,
            "called_ae": "MINISCP",
            "move_port": 0,
            "move_bind": "127.0.0.1",
            "max_ops_per_s": 500.0,
            **pacs,
        },
        paths={"data_dir": str(tmp_path / "data")},
        retrieve={"accepted_institutions": ["chuv"], **(retrieve or {})},
    )


@pytest.fixture
def client(scp: MiniScp) -> Iterator[DimseClient]:
    c = DimseClient(config(scp.port))
    yield c
    c.close()


def ct_series(instances: list[Dataset]) -> tuple[str, str, list[str]]:
    cts = [ds for ds in instances if ds.Modality == "CT"]
    return cts[0].StudyInstanceUID, cts[0].SeriesInstanceUID, [ds.SOPInstanceUID for ds in cts]


def test_find_at_each_level(client: DimseClient, instances: list[Dataset]) -> None:
    studies = client.find("STUDY", core.study_query(DAY, "PT"))
    assert {s.StudyInstanceUID for s in studies} == {ds.StudyInstanceUID for ds in instances}
    study_uid, series_uid, sops = ct_series(instances)
    series = client.find("SERIES", core.series_query(DAY, study_uid, "1001"))
    assert sorted(s.Modality for s in series) == ["CT", "PT"]
    assert {int(s.NumberOfSeriesRelatedInstances) for s in series} == {3, 4}
    images = client.find("IMAGE", core.image_query(study_uid, series_uid, timing=True))
    assert sorted(str(i.AcquisitionTime) for i in images) == ["080500", "080530", "080600"]
    assert {i.SOPInstanceUID for i in images} == set(sops)
    assert client.counters.find == 3
    assert client.counters.associations == 1  # one association reused for every query


def test_c_get_returns_only_the_asked_headers_without_pixels(
    client: DimseClient, instances: list[Dataset], tmp_path: Path
) -> None:
    study_uid, series_uid, sops = ct_series(instances)
    cwd_before = set(os.listdir("."))
    headers = client.fetch_headers(study_uid, series_uid, [sops[0], sops[-1]], "c-get")
    assert sorted(h.SOPInstanceUID for h in headers) == sorted([sops[0], sops[-1]])
    assert all("PixelData" not in h for h in headers)
    assert sorted(str(h.AcquisitionTime) for h in headers) == ["080500", "080600"]
    assert client.counters.instances_received == 2
    assert client.counters.bytes_received > 2 * 2048  # the pixel data did travel
    assert set(os.listdir(".")) == cwd_before  # no DICOM file left behind


def test_c_move_to_our_storage_scp(instances: list[Dataset]) -> None:
    move_port = free_port()
    server = MiniScp(instances, move_dest=("127.0.0.1", move_port))
    c = DimseClient(config(server.port, move_port=move_port))
    try:
        study_uid, series_uid, sops = ct_series(instances)
        headers = c.fetch_headers(study_uid, series_uid, None, "c-move")  # whole series
        assert sorted(h.SOPInstanceUID for h in headers) == sorted(sops)
        assert all("PixelData" not in h for h in headers)
        assert c.counters.move == 1 and c.counters.inbound_associations == 1
    finally:
        c.close()
        server.stop()


@pytest.mark.parametrize("method", ["c-get", "c-move"])
def test_nm_image_of_the_retired_storage_class_is_received(
    instances: list[Dataset], method: str
) -> None:
    nm = next(ds for ds in instances if ds.Modality == "NM")
    nm.SOPClassUID = NM_RETIRED  # a gamma camera of the 1990s, still in the archive
    move_port = free_port()
    server = MiniScp(instances, move_dest=("127.0.0.1", move_port))
    c = DimseClient(config(server.port, move_port=move_port))
    try:
        headers = c.fetch_headers(nm.StudyInstanceUID, nm.SeriesInstanceUID, None, method)
        assert [h.SOPInstanceUID for h in headers] == [nm.SOPInstanceUID]
        assert str(headers[0].AcquisitionTime) == "090000"
    finally:
        c.close()
        server.stop()


def test_c_move_to_unknown_destination_is_an_operation_error(
    client: DimseClient, instances: list[Dataset]
) -> None:
    study_uid, series_uid, sops = ct_series(instances)
    with pytest.raises(PacsOperationError):
        client.fetch_headers(study_uid, series_uid, sops[:1], "c-move")
    assert client.counters.retries == 0  # not a thing retrying fixes


def test_busy_status_is_retried_with_backoff(client: DimseClient, scp: MiniScp) -> None:
    scp.faults = [0xC336, 0xA700]
    t0 = time.monotonic()
    studies = client.find("STUDY", core.study_query(DAY, "PT"))
    assert len(studies) == 2
    assert client.counters.retries == 2 and client.counters.throttled == 2
    assert scp.counts["find"] == 3
    assert time.monotonic() - t0 >= 0.01 + 0.02  # base, then doubled


def test_busy_after_every_retry_raises_throttled(client: DimseClient, scp: MiniScp) -> None:
    scp.faults = [0xC336] * 10
    with pytest.raises(PacsThrottledError) as info:
        client.find("STUDY", core.study_query(DAY, "PT"))
    assert info.value.status == 0xC336
    assert scp.counts["find"] == 4  # 1 + op_retries


def test_busy_c_get_is_retried(client: DimseClient, scp: MiniScp, instances: list[Dataset]) -> None:
    study_uid, series_uid, sops = ct_series(instances)
    scp.faults = [0xC336]
    headers = client.fetch_headers(study_uid, series_uid, sops[:1], "c-get")
    assert len(headers) == 1 and client.counters.retries == 1


def test_aborted_association_is_replaced(client: DimseClient, scp: MiniScp) -> None:
    client.find("STUDY", core.study_query(DAY, "PT"))
    scp.abort_next = 1
    studies = client.find("STUDY", core.study_query(DAY, "PT"))
    assert len(studies) == 2
    assert client.counters.associations == 2
    assert client.counters.retries == 1


def test_unreachable_pacs_fails_fast_with_a_clear_error() -> None:
    c = DimseClient(config(free_port(), op_retries=1, connect_timeout_s=2))
    try:
        with pytest.raises(
            PacsUnreachableError,
            match=r"unreachable since \d\d:\d\d:\d\d \(2 attempts\): no association .* "
            r"Check pacs.host, pacs.port and the firewall",
        ):
            c.find("STUDY", core.study_query(DAY, "PT"))
    finally:
        c.close()


def test_rejected_association(instances: list[Dataset]) -> None:
    server = MiniScp(instances)
    server.ae.require_calling_aet = ["SOMEONE"]
    c = DimseClient(config(server.port))
    try:
        with pytest.raises(
            AssociationRejectedError, match="calling AE title not recognised"
        ) as err:
            c.echo()
        # the A-ASSOCIATE-RJ fields, and what to ask the PACS team
        assert (err.value.result, err.value.source, err.value.reason) == (1, 1, 3)
        assert "ask the PACS team to register" in str(err.value)
    finally:
        c.close()
        server.stop()


def test_pool_never_opens_more_than_max_concurrent(instances: list[Dataset]) -> None:
    server = MiniScp(instances)
    c = DimseClient(config(server.port, max_concurrent=2))
    open_now = 0
    peak = 0
    lock = threading.Lock()
    original = c._pool._associate

    def counting() -> Any:
        nonlocal open_now, peak
        assoc = original()
        with lock:
            open_now += 1
            peak = max(peak, open_now)
        return assoc

    c._pool._associate = counting  # type: ignore[method-assign]
    try:
        threads = [
            threading.Thread(
                target=lambda: [c.find("STUDY", core.study_query(DAY, "PT")) for _ in range(3)]
            )
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert c.counters.find == 18
        assert c.counters.associations <= 2
        assert server.counts["associations"] <= 2
    finally:
        c.close()
        server.stop()


def test_pacer_spaces_requests_across_threads() -> None:
    pacer = Pacer(4, 50.0)
    stop = threading.Event()
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            ticket = pacer.acquire(stop)
            assert ticket is not None
            with lock:
                stamps.append(time.monotonic())
            pacer.release(ticket, "other")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    stamps.sort()
    assert len(stamps) == 20
    # 20 requests at 50/s: at least 19 intervals of 20 ms
    assert stamps[-1] - stamps[0] >= 19 * 0.02 * 0.95


def test_probe_finds_what_the_pacs_allows(instances: list[Dataset]) -> None:
    move_port = free_port()
    server = MiniScp(
        instances, timing_at_image=False, allow_get=False, move_dest=("127.0.0.1", move_port)
    )
    c = DimseClient(config(server.port, move_port=move_port))
    try:
        study_uid, series_uid, _ = ct_series(instances)
        caps = c.probe((study_uid, series_uid))
        assert (caps.image_find_timing, caps.c_get, caps.c_move) == (False, False, True)
        assert caps.methods() == ["c-move"]
    finally:
        c.close()
        server.stop()


def test_probe_moves_no_file_when_image_level_has_timing(
    client: DimseClient, scp: MiniScp, instances: list[Dataset]
) -> None:
    study_uid, series_uid, _ = ct_series(instances)
    caps = client.probe((study_uid, series_uid))
    assert caps.methods()[0] == "image-find"
    assert scp.counts.get("get", 0) == 0 and scp.counts.get("move", 0) == 0
    full = client.probe((study_uid, series_uid), thorough=True)
    assert full.c_get is True


def test_strictly_hierarchical_pacs_is_queried_series_by_series(
    instances: list[Dataset], tmp_path: Path
) -> None:
    from pyschedvisu.retrieval import forget_capabilities, make_client, record_for, retrieve_day

    forget_capabilities()
    server = MiniScp(instances, strict_image=True)
    settings = day_settings(server.port, tmp_path)
    client = make_client(settings)
    try:
        result = retrieve_day(DAY, settings, client=client)
        assert result.series.height == 3 and result.failed.height == 0
        record = record_for(settings)
        assert record.allows("per_study_image_find") is False  # remembered for the next days
        assert record.relational is False  # and so are day-wide queries
        finds = client.counters.find
        retrieve_day(DAY, settings, client=client, force=True)
        # 2 STUDY + 2 SERIES + 3 IMAGE (one per series, no refused per-study attempt)
        assert client.counters.find - finds == 7
    finally:
        client.close()
        server.stop()


@pytest.mark.parametrize(("institution_from", "pet_kept"), [("instances", False), ("series", True)])
def test_study_whose_files_name_another_hospital_is_rejected_though_the_index_names_ours(
    instances: list[Dataset], tmp_path: Path, institution_from: str, pet_kept: bool
) -> None:
    from pyschedvisu.retrieval import forget_capabilities, make_client, retrieve_day
    from pyschedvisu_core.schema import Reason

    forget_capabilities()
    pet_study = next(ds.StudyInstanceUID for ds in instances if ds.Modality == "PT")
    for ds in instances:
        if ds.StudyInstanceUID == pet_study:
            ds.InstitutionName = "Clinique du Lac"
    # the PACS database answers our name for every entity; only the files tell the truth
    server = MiniScp(instances, index={"InstitutionName": "CHUV"})
    settings = day_settings(
        server.port,
        tmp_path,
        retrieval="image-find",
        probe_cache=False,
        retrieve={"institution_from": institution_from},
    )
    client = make_client(settings)
    try:
        result = retrieve_day(DAY, settings, client=client)
    finally:
        client.close()
        server.stop()
    kept_studies = set(result.series.get_column("study_uid").to_list())
    assert (pet_study in kept_studies) is pet_kept
    assert len(kept_studies - {pet_study}) == 1  # the NM study, CHUV in its file too
    rejected = result.excluded.filter(pl.col("study_uid") == pet_study)
    if pet_kept:
        assert rejected.height == 0
    else:
        # the names its files carry, as the rule compares them
        assert rejected.get_column("reason").to_list() == [f"{Reason.INSTITUTION}: cliniquedulac"]
        assert rejected.get_column("level").to_list() == ["study"]
        assert result.failed.height == 0


def test_find_beyond_its_limit_is_cancelled_and_the_association_reused(
    tiny_pacs_dir: Path, demo_pacs: Any
) -> None:
    """A runaway answer (a PACS ignoring a filter) stops the query: C-CANCEL, not 10k answers."""
    from tests.fixtures.pacs import uid

    pacs = demo_pacs(tiny_pacs_dir)
    with DimseClient(config(pacs.port, called_ae=pacs.ae_title)) as client:
        everything = Dataset()
        everything.QueryRetrieveLevel = "IMAGE"
        everything.SOPInstanceUID = ""
        total = len(client.find("IMAGE", everything))
        assert total > 3
        with pytest.raises(PacsOperationError, match="more than 2 answers"):
            client.find("IMAGE", everything, limit=2)
        assert client.counters.responses == total + 3
        # the association survived the cancel and answers the next query
        q = core.series_query(dt.date(2024, 3, 4), uid("st1"), None)
        assert len(client.find("SERIES", q)) == 2
        assert client.counters.associations == 1


def test_idle_associations_are_released_and_reopened_when_needed(
    tiny_pacs_dir: Path, demo_pacs: Any
) -> None:
    """Open associations cost CPU (pynetdicom polls them): released once idle."""
    from tests.fixtures.pacs import uid

    pacs = demo_pacs(tiny_pacs_dir)
    q = core.series_query(dt.date(2024, 3, 4), uid("st1"), None)
    with DimseClient(config(pacs.port, called_ae=pacs.ae_title, idle_release_s=0.2)) as client:
        assert len(client.find("SERIES", q)) == 2
        deadline = time.monotonic() + 10
        while client._pool._open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client._pool._open == 0 and not client._pool._idle
        assert len(client.find("SERIES", q)) == 2
        assert client.counters.associations == 2
    with DimseClient(config(pacs.port, called_ae=pacs.ae_title, idle_release_s=0)) as client:
        client.find("SERIES", q)
        assert client._pool._reaper is None and client._pool._open == 1


def test_c_get_from_a_peer_with_nagle_does_not_wait_for_delayed_acks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Orthanc (DCMTK) leaves Nagle on: without quick ACKs each C-STORE sub-operation
    waited ~40 ms for our delayed ACK (5 s for 100 instances).

    Checked on the mechanism, not the clock (a loaded machine makes any time bound lie):
    every PDU received on the association is ACKed at once, and the option really is set
    on the socket (Linux)."""
    import socket

    from pyschedvisu.adapters import dicomnet, receiving
    from tests._mini_scp import make_instance

    acked: list[int] = []

    def counting(assoc: Any) -> None:
        sock = assoc.dul.socket.socket
        dicomnet.quickack(assoc)
        quick = getattr(socket, "TCP_QUICKACK", None)
        if quick is not None:
            acked.append(sock.getsockopt(socket.IPPROTO_TCP, quick))
        else:
            acked.append(1)

    monkeypatch.setattr(receiving, "quickack", counting)
    study = {"StudyInstanceUID": "1.2.3", "PatientID": "1", "StudyDate": "20240304"}
    series = {"SeriesInstanceUID": "1.2.3.4", "Modality": "CT", "SeriesDate": "20240304"}
    instances = [make_instance(study, series, i) for i in range(1, 41)]
    server = MiniScp(instances, nagle=True)
    try:
        with DimseClient(config(server.port)) as client:
            client.fetch_headers("1.2.3", "1.2.3.4", None, "c-get")  # association set up
            acked.clear()
            got = client.fetch_headers("1.2.3", "1.2.3.4", None, "c-get")
        assert len(got) == 40
        # each C-STORE arrives as at least a command and a dataset PDU
        assert len(acked) >= 2 * 40, f"{len(acked)} PDUs ACKed at once for 40 instances"
        assert all(acked), "TCP_QUICKACK not set on the socket"
    finally:
        server.stop()


# -- deflated answers (PS3.5 A.5) -----------------------------------------------------------


def _find_contexts(assoc: Any) -> list[str]:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    return [
        str(cx.transfer_syntax[0])
        for cx in assoc.accepted_contexts
        if cx.abstract_syntax == StudyRootQueryRetrieveInformationModelFind
    ]


def _series_answers(client: DimseClient, instances: list[Dataset]) -> list[Dataset]:
    study_uid = ct_series(instances)[0]
    return client.find("SERIES", core.series_query(DAY, study_uid, "1001"))


def test_answers_come_deflated_and_lighter_when_the_pacs_accepts(
    instances: list[Dataset],
) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    answers: dict[bool, list[Dataset]] = {}
    received: dict[bool, int] = {}
    for deflate in (True, False):
        server = MiniScp(instances)
        c = DimseClient(config(server.port, deflate_answers=deflate))
        try:
            answers[deflate] = _series_answers(c, instances)
            received[deflate] = c.counters.bytes_received
            (assoc, _), *_ = c._pool._idle
            used = _find_contexts(assoc)[0]
            assert (used == DeflatedExplicitVRLittleEndian) is deflate
        finally:
            c.close()
            server.stop()
    key = [(str(a.SeriesInstanceUID), str(a.Modality)) for a in answers[False]]
    assert sorted(key) == sorted((str(a.SeriesInstanceUID), str(a.Modality)) for a in answers[True])
    assert len(key) == 2
    assert received[True] < received[False]


def test_pacs_without_deflate_answers_uncompressed(instances: list[Dataset]) -> None:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    server = MiniScp(instances, deflate=False)
    c = DimseClient(config(server.port))
    try:
        assert len(_series_answers(c, instances)) == 2
        (assoc, _), *_ = c._pool._idle
        assert DeflatedExplicitVRLittleEndian not in _find_contexts(assoc)
        assert c.deflate  # refused, not broken: still offered to the next association
    finally:
        c.close()
        server.stop()


def test_unreadable_deflated_answers_are_asked_again_uncompressed(
    instances: list[Dataset], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import pynetdicom.service_class as service_class

    real = service_class.encode

    def broken(ds: Dataset, implicit: bool, little: bool, deflated: bool = False) -> Any:
        out = real(ds, implicit, little, deflated)
        return out[: len(out) // 2] if deflated and out else out

    monkeypatch.setattr(service_class, "encode", broken)  # the PACS's side only
    server = MiniScp(instances)
    c = DimseClient(config(server.port))
    try:
        with caplog.at_level("WARNING", logger="pyschedvisu.pacs"):
            got = _series_answers(c, instances)
        assert sorted(str(a.Modality) for a in got) == ["CT", "PT"]
        assert not c.deflate
        assert "deflated C-FIND answers could not be read" in caplog.text
        assert c.counters.associations == 2  # the deflated one aborted, one new
        assert len(_series_answers(c, instances)) == 2
        assert c.counters.associations == 2
    finally:
        c.close()
        server.stop()


def test_undecodable_answer_is_an_error_not_a_missing_series(
    instances: list[Dataset], monkeypatch: pytest.MonkeyPatch
) -> None:
    import pynetdicom.service_class as service_class

    real = service_class.encode
    garbage = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\x10\x00\x00\x00abc"

    def broken(ds: Dataset, implicit: bool, little: bool, deflated: bool = False) -> Any:
        if getattr(ds, "Modality", None) == "PT":
            return garbage  # a header pydicom cannot read
        return real(ds, implicit, little, deflated)

    monkeypatch.setattr(service_class, "encode", broken)
    server = MiniScp(instances)
    c = DimseClient(config(server.port, deflate_answers=False))
    try:
        with pytest.raises(PacsAnswerError, match="could not be decoded"):
            _series_answers(c, instances)
        assert not c._pool._idle  # its remaining answers must not reach the next operation
        studies = c.find("STUDY", core.study_query(DAY, "PT"))
        assert {s.StudyInstanceUID for s in studies} == {ds.StudyInstanceUID for ds in instances}
    finally:
        c.close()
        server.stop()


def test_unreadable_day_wide_answer_does_not_mark_the_pacs_hierarchical(
    instances: list[Dataset], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pynetdicom.service_class as service_class

    from pyschedvisu.retrieval import forget_capabilities, make_client, record_for, retrieve_day

    real = service_class.encode
    garbage = b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff\xfe\xff\x00\xe0\x10\x00\x00\x00abc"
    broken_once: list[str] = []

    def broken(ds: Dataset, implicit: bool, little: bool, deflated: bool = False) -> Any:
        if ds.get("QueryRetrieveLevel") == "SERIES" and not broken_once:
            broken_once.append(ds.SeriesInstanceUID)
            return garbage  # the first SERIES answer, in the day-wide query
        return real(ds, implicit, little, deflated)

    monkeypatch.setattr(service_class, "encode", broken)
    forget_capabilities()
    server = MiniScp(instances)
    settings = day_settings(
        server.port, tmp_path, deflate_answers=False, retrieval="image-find", probe_cache=False
    )
    client = make_client(settings)
    try:
        result = retrieve_day(DAY, settings, client=client)
    finally:
        client.close()
        server.stop()
    assert broken_once  # the day-wide query met the broken answer
    # asked study by study for this day, whole; the PACS's style is left to find out
    assert result.series.height == 3 and result.failed.height == 0
    assert record_for(settings).relational is None


def test_dead_pacs_opens_the_circuit_and_a_c_echo_resumes_once_it_answers(
    instances: list[Dataset],
) -> None:
    """Regression (issue 15): every request of every series retried on its own against a
    dead PACS (1,598 association attempts); now the circuit opens and nothing is asked until
    a C-ECHO, after the cooldown, finds it back (a retried task then resumes)."""
    server = MiniScp(instances)
    port = server.port
    q = core.study_query(DAY, "PT")
    c = DimseClient(config(port, breaker_failures=2, breaker_cooldown_s=0.3, op_retries=5))
    try:
        assert len(c.find("STUDY", q)) == 2
        for assoc in list(server.server.active_associations):  # as a killed process: all gone
            assoc.abort()
        server.stop()
        with pytest.raises(PacsCircuitOpenError) as info:
            c.find("STUDY", q)
        assert info.value.attempts == 2  # the breaker's count, not op_retries (5)
        tried = c.counters.associations
        with pytest.raises(PacsCircuitOpenError, match=r"unreachable since \d\d:\d\d:\d\d"):
            c.find("STUDY", q)
        assert c.counters.associations == tried  # failed at once: no association tried
        server = MiniScp(instances, port=port)
        time.sleep(0.35)  # the cooldown (0.3 s, monotonic) is over: the next request probes
        assert len(c.find("STUDY", q)) == 2
        assert server.counts.get("echo") == 1
    finally:
        c.close()
        if server.server.socket.fileno() != -1:
            server.stop()


def test_opening_the_circuit_ends_a_request_waiting_on_a_frozen_pacs(
    instances: list[Dataset],
) -> None:
    """Regression: aborting an association in pynetdicom does not wake the thread waiting
    for its answer: a C-GET on a frozen PACS waited ``move_timeout_s`` (600 s) after the
    circuit had opened, and the command with it."""
    server = MiniScp(instances)
    c = DimseClient(config(server.port, dimse_timeout_s=60.0, op_retries=0))
    done: list[BaseException | None] = []
    try:
        c.echo()
        server.frozen.set()

        def ask() -> None:
            try:
                c.find("STUDY", core.study_query(DAY, "PT"))
                done.append(None)
            except BaseException as exc:
                done.append(exc)

        asking = threading.Thread(target=ask)
        asking.start()
        deadline = time.monotonic() + 10
        while not server.counts.get("find") and time.monotonic() < deadline:
            time.sleep(0.01)  # until the request reached the PACS (bounded)
        assert server.counts.get("find") == 1
        opened_at = time.monotonic()
        assert c._breaker.failure("elsewhere: refused", give_up=True)
        c._trip()
        asking.join(30)
        assert not asking.is_alive()
        assert time.monotonic() - opened_at < 15  # not the 60 s DIMSE timeout
        assert isinstance(done[0], PacsCircuitOpenError)
    finally:
        server.frozen.clear()
        c.close()
        server.stop()


def test_association_rejected_for_load_slows_the_client_down_and_is_asked_again(
    instances: list[Dataset],
) -> None:
    """A PACS at its association limit rejects "transient" (result 0x02): busy, not an error.

    The client takes it as a busy answer: one request at a time from then on, the request
    asked again on the association it has, and nothing fails.
    """
    server = MiniScp(instances)
    server.ae.maximum_associations = 1
    c = DimseClient(config(server.port, max_concurrent=2, backoff_base_s=0.05))
    results: list[Any] = []
    try:
        server.frozen.set()  # the first request holds the only association the PACS allows
        first = threading.Thread(
            target=lambda: results.append(c.find("STUDY", core.study_query(DAY, "PT")))
        )
        first.start()
        deadline = time.monotonic() + 10
        while not server.counts.get("find") and time.monotonic() < deadline:
            time.sleep(0.01)  # until it reached the PACS (bounded)
        second = threading.Thread(
            target=lambda: results.append(c.find("STUDY", core.study_query(DAY, "NM")))
        )
        second.start()
        deadline = time.monotonic() + 10
        while not c.counters.throttled and time.monotonic() < deadline:
            time.sleep(0.01)  # until the second association was rejected (bounded)
        server.frozen.clear()
        first.join(30)
        second.join(30)
        assert [len(r) for r in results] == [2, 2]  # (the mini SCP ignores the modality)
        assert c.counters.throttled >= 1
        assert c.pace.concurrency == 1
    finally:
        server.frozen.clear()
        c.close()
        server.stop()


def test_an_answer_is_never_taken_by_the_reactor_while_a_request_waits(
    client: DimseClient, instances: list[Dataset]
) -> None:
    """Regression: pynetdicom's reactor thread polls the DIMSE queue between requests and can
    pass its pause handshake; a PACS answering within a millisecond then had its answer taken
    by the reactor ("Received unexpected C-FIND service message") and the request waited for
    the DIMSE timeout (15 s a time in the demo, 3 times in 20 days under load).

    Checked on the mechanism: while an association is leased, the reactor's non-blocking read
    finds nothing though a message is queued, and the request's blocking read gets it."""
    assert len(_series_answers(client, instances)) == 2  # one association, now idle
    with client._pool.lease() as assoc:
        queued = (1, object())
        assoc.dimse.msg_queue.put(queued)
        assert assoc.dimse.get_msg(block=False) == (None, None)
        assert assoc.dimse.get_msg(block=True) is queued
    assert len(_series_answers(client, instances)) == 2  # the association still serves
