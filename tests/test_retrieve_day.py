"""retrieve_day against the demo PACS (tiny department): every method, the store, re-runs, faults."""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pyschedvisu.config import Settings
from pyschedvisu.demo_pacs import Behaviour
from pyschedvisu.privacy import pseudonymise
from pyschedvisu.retrieval import (
    forget_capabilities,
    make_client,
    record_for,
    retrieval_fingerprint,
    retrieve_day,
)
from pyschedvisu.store import SeriesStore
from pyschedvisu_core.errors import AssociationRejectedError, PseudonymKeyError, RetrievalError
from pyschedvisu_core.schema import Reason
from tests.conftest import TEST_KEY, free_port
from tests.fixtures.pacs import uid

DAY = dt.date(2024, 3, 4)
KEY = TEST_KEY.encode()


def settings_for(pacs: Any, data_dir: Path, move_port: int, **pacs_overrides: Any) -> Settings:
    conf = {
        "port": pacs.port,
        "called_ae": pacs.ae_title,
        "move_port": move_port,
        "move_bind": "127.0.0.1",
        "max_ops_per_s": 500.0,
        "backoff_base_s": 0.02,
        "backoff_max_s": 0.2,
        "backoff_jitter_s": 0.02,
        "op_retries": 3,
        **pacs_overrides,
    }
    return Settings(pacs=conf, paths={"data_dir": str(data_dir)})


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


@pytest.fixture
def served(demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path) -> Any:
    """(pacs, settings factory) with our Storage SCP registered as C-MOVE destination."""
    move_port = free_port()
    pacs = demo_pacs(tiny_pacs_dir, move_destinations={"PYSCHEDVISU": ("127.0.0.1", move_port)})

    def make(**overrides: Any) -> Settings:
        return settings_for(pacs, tmp_path / "data", move_port, **overrides)

    return pacs, make


def expected_series() -> pl.DataFrame:
    """The tiny department's 2024-03-04, worked out by hand from tests/fixtures/pacs.py."""
    p1, p2 = pseudonymise("1001", KEY), pseudonymise("1002", KEY)
    rows = [
        (
            p1,
            "st1",
            "se1",
            "PET-CT FDG TRONC",
            "Topogramme",
            "CT",
            1,
            "Biograph64",
            "08:16:00",
            "08:16:00",
        ),
        (
            p1,
            "st1",
            "se2",
            "PET-CT FDG TRONC",
            "PET WB",
            "PT",
            3,
            "Biograph64_Vision 600",
            "08:20:00",
            "08:30:00",
        ),
        (
            p2,
            "st2",
            "se3",
            "OS 3 PHASES",
            "Dynamic",
            "NM",
            1,
            "Tandem_Discovery_670",
            "14:01:00",
            "14:03:00",
        ),
    ]
    return pl.DataFrame(
        [
            {
                "date": DAY,
                "patient_key": pk,
                "study_uid": uid(st),
                "series_uid": uid(se),
                "study_description": sd,
                "series_description": desc,
                "protocol_name": desc,
                "institution": "chuv",
                "accession_number": "A" + st[-1],  # the study's, from the STUDY level
                "modality": mod,
                "n_instances": n,
                "machine": model,
                "start": dt.datetime.combine(DAY, dt.time.fromisoformat(a)),
                "end": dt.datetime.combine(DAY, dt.time.fromisoformat(b)),
            }
            for pk, st, se, sd, desc, mod, n, model, a, b in rows
        ],
        schema=SeriesStore.__init__.__globals__["schema"].SERIES_SCHEMA,
    )


def stored(settings: Settings, day: dt.date = DAY) -> pl.DataFrame:
    return SeriesStore(settings.paths.data_dir).load("series", [day]).sort("series_uid")


@pytest.mark.parametrize(
    ("retrieval", "behaviour", "expected_method"),
    [
        ("auto", Behaviour(), "image-find"),
        ("image-find", Behaviour(), "image-find"),
        ("c-get", Behaviour(), "c-get"),
        ("c-move", Behaviour(), "c-move"),
        ("auto", Behaviour(refuse_get=True, image_level_minimal=True), "c-move"),
        ("auto", Behaviour(image_level_minimal=True), "c-get"),
    ],
)
def test_every_method_stores_the_exact_series(
    served: Any, retrieval: str, behaviour: Behaviour, expected_method: str
) -> None:
    pacs, make = served
    pacs.behaviour = behaviour
    settings = make(retrieval=retrieval)
    result = retrieve_day(DAY, settings)
    assert result.method == expected_method
    assert_frame_equal(stored(settings), expected_series().sort("series_uid"))
    assert result.failed.height == 0
    manifest = SeriesStore(settings.paths.data_dir).manifest(DAY)
    assert manifest is not None
    assert manifest["fingerprint"] == retrieval_fingerprint(settings)
    assert manifest["final"] is True
    assert manifest["counts"] == {"series": 3, "failed": 0, "excluded": 0}
    if expected_method == "image-find":
        # timing from IMAGE-level answers; one instance of each series moved, in one C-GET,
        # for the InstitutionName of its own (retrieve.institution_from = "instances")
        assert (pacs.stats.get, pacs.stats.move, pacs.stats.store_sent) == (1, 0, 3)


def test_image_find_moves_no_file_when_series_level_institutions_are_trusted(
    served: Any,
) -> None:
    pacs, make = served
    settings = make(retrieval="image-find")
    settings = settings.model_copy(
        update={"retrieve": settings.retrieve.model_copy(update={"institution_from": "series"})}
    )
    result = retrieve_day(DAY, settings)
    assert result.method == "image-find"
    assert_frame_equal(stored(settings), expected_series().sort("series_uid"))
    assert (pacs.stats.get, pacs.stats.move, pacs.stats.store_sent) == (0, 0, 0)


def test_second_run_does_no_network_work(served: Any) -> None:
    pacs, make = served
    settings = make()
    first = retrieve_day(DAY, settings)
    assert not first.from_cache
    before = pacs.stats.as_dict()
    assert before["find"] > 0
    again = retrieve_day(DAY, settings)
    after = pacs.stats.as_dict()
    assert again.from_cache
    for op in ("associations", "echo", "find", "get", "move"):
        assert after[op] == before[op], op
    assert_frame_equal(again.series.sort("series_uid"), first.series.sort("series_uid"))


def test_force_and_fingerprint_change_fetch_again(served: Any) -> None:
    pacs, make = served
    settings = make()
    retrieve_day(DAY, settings)
    n = pacs.stats.find
    retrieve_day(DAY, settings, force=True)
    assert pacs.stats.find > n
    n = pacs.stats.find
    changed = make()
    changed.retrieve.series_protocol_exclude = [*changed.retrieve.series_protocol_exclude, "PET WB"]
    res = retrieve_day(DAY, changed)
    assert pacs.stats.find > n
    assert res.series.height == 2
    assert res.excluded.filter(pl.col("series_uid") == uid("se2"))["reason"].to_list() == [
        Reason.PROTOCOL
    ]


def test_day_not_final_is_fetched_again(served: Any) -> None:
    pacs, make = served
    settings = make()
    just_after = dt.datetime.combine(DAY, dt.time(23, 0))
    res = retrieve_day(DAY, settings, now=just_after)
    assert res.final is False
    n = pacs.stats.find
    res2 = retrieve_day(DAY, settings, now=just_after + dt.timedelta(hours=2))
    assert not res2.from_cache and pacs.stats.find > n
    res3 = retrieve_day(
        DAY, settings, now=dt.datetime.combine(DAY, dt.time()) + dt.timedelta(days=2)
    )
    assert res3.final is True
    n = pacs.stats.find
    assert retrieve_day(DAY, settings).from_cache and pacs.stats.find == n


def test_study_rules_exclude_with_reasons(served: Any) -> None:
    _, make = served
    day = dt.date(2024, 3, 6)  # phantom patient "ABC" from another hospital
    res = retrieve_day(day, make())
    assert res.series.height == 0
    assert res.excluded.select("level", "study_uid", "reason").rows() == [
        ("study", uid("st4"), Reason.PATIENT_ID)
    ]


def test_failing_day_raises_and_writes_nothing(served: Any) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour(fail_dates={DAY})
    settings = make()
    with pytest.raises(RetrievalError, match="2024-03-04"):
        retrieve_day(DAY, settings)
    assert SeriesStore(settings.paths.data_dir).manifest(DAY) is None
    assert not list(Path(settings.paths.data_dir).glob("series/**/*.parquet"))
    # the PACS answers again: the day is retrieved
    pacs.behaviour = Behaviour()
    assert retrieve_day(DAY, settings).series.height == 3


def test_throttled_pacs_still_gives_the_whole_day(served: Any) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour.hospital(max_in_flight=1, max_ops_per_s=30.0)
    settings = make(max_concurrent=2, max_ops_per_s=100.0, op_retries=8)
    res = retrieve_day(DAY, settings)
    assert pacs.stats.throttled > 0, "the test must really hit the throttle"
    assert res.method == "c-move"
    assert_frame_equal(stored(settings), expected_series().sort("series_uid"))


def test_paced_client_is_never_throttled(served: Any) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour.hospital(max_in_flight=1, max_ops_per_s=10.0)
    settings = make(max_concurrent=1, max_ops_per_s=8.0)
    retrieve_day(DAY, settings)
    assert pacs.stats.throttled == 0
    assert stored(settings).height == 3


def test_rejected_ae_is_not_a_day_failure(served: Any) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour(reject_calling_aes={"PYSCHEDVISU"})
    with pytest.raises(AssociationRejectedError, match="PYSCHEDVISU"):
        retrieve_day(DAY, make())


def test_missing_key_stops_before_any_request(served: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pacs, make = served
    monkeypatch.delenv("PYSCHEDVISU_PSEUDONYM_KEY")
    with pytest.raises(PseudonymKeyError, match="PYSCHEDVISU_PSEUDONYM_KEY"):
        retrieve_day(DAY, make())
    assert pacs.stats.associations == 0


def test_no_patient_id_in_store_or_logs(served: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, make = served
    settings = make()
    caplog.set_level(logging.DEBUG)
    retrieve_day(DAY, settings)
    blobs = b"".join(
        p.read_bytes() for p in Path(settings.paths.data_dir).rglob("*") if p.is_file()
    )
    # messages and arguments, not caplog.text: its "retrieval.py:1001" prefix is a line number
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for pid in ("1001", "1002"):
        assert not re.search(rb"(?<![\d.])" + pid.encode() + rb"(?![\d.])", blobs)
        # a whole value, not a piece of a port, UID or duration that happens to hold it
        found = re.findall(rf".{{0,40}}(?<![\d.]){pid}(?![\d.]).{{0,40}}", logged)
        assert not found, found
    assert "Test^Patient" not in logged


def test_shared_client_reuses_associations_across_days(served: Any) -> None:
    pacs, make = served
    settings = make(max_concurrent=2)
    client = make_client(settings)
    try:
        for day in (DAY, dt.date(2024, 3, 5), dt.date(2024, 3, 6)):
            retrieve_day(day, settings, client=client)
    finally:
        client.close()
    assert client.counters.associations <= 2
    assert pacs.stats.associations <= 2


@pytest.mark.parametrize(
    ("relational", "image_queries", "answers"), [(True, 3, 2 + 3 + 2), (False, 4, 5 + 4)]
)
def test_image_level_asks_timing_of_first_and_last_instances_only(
    served: Any, relational: bool, image_queries: int, answers: int
) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour(relational=relational)
    settings = make(retrieval="image-find")
    result = retrieve_day(DAY, settings)
    assert_frame_equal(
        result.series.select(expected_series().columns).sort("series_uid"),
        expected_series().sort("series_uid"),
    )
    image_finds = [
        op
        for op in pacs.stats.ops
        if op.kind == "find" and op.level == "IMAGE" and op.status is None
    ]
    # day-wide: the timing keys of the one-instance series (i1, i5) at once, then the
    # small se2 listed (i2, i3, i4) and the timing of its first and last (i2, i4) by UID
    # list; hierarchical: every instance listed, then the timing of i1, i2, i4, i5, per study
    assert len(image_finds) == image_queries
    assert sum(op.matches for op in image_finds) == answers


def test_day_wide_series_query_replaces_one_query_per_study(served: Any) -> None:
    pacs, make = served
    settings = make(retrieval="image-find")
    retrieve_day(DAY, settings)
    series_finds = [op for op in pacs.stats.ops if op.kind == "find" and op.level == "SERIES"]
    assert len(series_finds) == 1
    assert record_for(settings).relational is True


def test_hierarchical_pacs_refusing_day_wide_queries_is_asked_per_study_and_remembered(
    served: Any,
) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour(relational=False)
    settings = make(retrieval="image-find")
    first = retrieve_day(DAY, settings)
    refused = [op for op in pacs.stats.ops if op.kind == "find" and op.status == 0xA900]
    assert len(refused) == 1
    assert record_for(settings).relational is False
    forget_capabilities()  # the next run reads it back from the capabilities file
    pacs.reset_stats()
    again = retrieve_day(DAY, settings, force=True)
    assert not [op for op in pacs.stats.ops if op.status is not None]
    assert_frame_equal(first.series, again.series)
    assert_frame_equal(
        again.series.select(expected_series().columns).sort("series_uid"),
        expected_series().sort("series_uid"),
    )


def test_pacs_ignoring_the_study_list_is_not_trusted(served: Any) -> None:
    """A hierarchical PACS that ignores the study key answers the whole archive."""
    pacs, make = served
    pacs.behaviour = Behaviour(relational=False, hierarchical_ignores_keys=True)
    settings = make(retrieval="image-find")
    result = retrieve_day(DAY, settings)
    series_finds = [op for op in pacs.stats.ops if op.kind == "find" and op.level == "SERIES"]
    # the day-wide answer held series of other days' studies: not trusted, then per study
    assert series_finds[0].matches > sum(op.matches for op in series_finds[1:])
    assert len(series_finds) > 1
    assert record_for(settings).relational is False
    assert_frame_equal(
        result.series.select(expected_series().columns).sort("series_uid"),
        expected_series().sort("series_uid"),
    )


@pytest.mark.parametrize("method", ["c-get", "c-move"])
def test_files_of_many_series_move_in_one_retrieve_on_a_relational_pacs(
    served: Any, method: str
) -> None:
    pacs, make = served
    settings = make(retrieval=method)
    result = retrieve_day(DAY, settings)
    assert_frame_equal(
        result.series.select(expected_series().columns).sort("series_uid"),
        expected_series().sort("series_uid"),
    )
    retrieves = [op for op in pacs.stats.ops if op.kind in ("get", "move")]
    assert len(retrieves) == 1 and retrieves[0].status is None
    # hierarchical: one retrieve per series, same result
    pacs.behaviour = Behaviour(relational=False)
    forget_capabilities()
    pacs.reset_stats()
    again = retrieve_day(DAY, make(retrieval=method, probe_cache=False), force=True)
    assert_frame_equal(again.series, result.series)
    retrieves = [op for op in pacs.stats.ops if op.kind in ("get", "move")]
    assert len(retrieves) == result.series.height + result.failed.height
    assert all(op.status is None for op in retrieves)


def test_refused_many_series_retrieve_falls_back_to_one_per_series(served: Any) -> None:
    from pyschedvisu_core.errors import PacsOperationError

    _pacs, make = served
    settings = make(retrieval="c-get")
    client = make_client(settings)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PacsOperationError("C-GET: failed with status 0xA900", status=0xA900)

    client.fetch_headers_many = refuse
    try:
        result = retrieve_day(DAY, settings, client=client)
    finally:
        client.close()
    assert record_for(settings).allows("batch_retrieve") is False  # the next days too
    assert_frame_equal(
        result.series.select(expected_series().columns).sort("series_uid"),
        expected_series().sort("series_uid"),
    )


def test_refused_day_wide_timing_query_is_tried_once_then_per_study(served: Any) -> None:
    from pyschedvisu_core.errors import PacsOperationError

    _pacs, make = served
    settings = make(retrieval="image-find")
    client = make_client(settings)
    real_find = client.find
    refused: list[Any] = []

    def find(level: str, query: Any, *args: Any, **kwargs: Any) -> Any:
        timing = level == "IMAGE" and query.get("SOPInstanceUID") and "AcquisitionTime" in query
        if timing and "StudyInstanceUID" not in query:  # by SOP UIDs only: day-wide
            refused.append(query)
            raise PacsOperationError("C-FIND IMAGE: failed with status 0xA900", status=0xA900)
        return real_find(level, query, *args, **kwargs)

    client.find = find
    try:
        result = retrieve_day(DAY, settings, client=client)
    finally:
        client.close()
    assert len(refused) == 1
    assert_frame_equal(
        result.series.select(expected_series().columns).sort("series_uid"),
        expected_series().sort("series_uid"),
    )


def test_relational_queries_are_negotiated_before_day_wide_ones(served: Any) -> None:
    pacs, make = served
    retrieve_day(DAY, make(retrieval="image-find"))
    # both C-FIND models (study and patient root) offered with byte 1 = relational queries
    assert pacs.stats.relational_asked >= 2


def _phantom_study_settings(settings: Settings) -> Settings:
    """``settings`` that keep the tiny department's 2024-03-06 study (phantom, Hopital X):
    two small series (NM, 1 instance; CT, 2 instances) in one study."""
    return Settings(
        pacs=settings.pacs.model_dump(),
        paths=settings.paths.model_dump(),
        retrieve={"patient_id_pattern": r"\w+", "accepted_institutions": ["hopitalx"]},
    )


PHANTOM_DAY = dt.date(2024, 3, 6)
PHANTOM_SERIES = {
    uid("se5"): ("Encore2", "11:05:00", "11:07:00"),
    uid("se6"): ("Symbia Intevo 16", "11:10:00", "11:10:30"),
}


def _timed(result: Any) -> dict[str, tuple[str, str, str]]:
    return {
        row["series_uid"]: (row["machine"], f"{row['start']:%H:%M:%S}", f"{row['end']:%H:%M:%S}")
        for row in result.series.iter_rows(named=True)
    }


@pytest.mark.parametrize("method", ["c-get", "c-move"])
def test_small_series_of_a_study_move_in_one_retrieve_on_a_hierarchical_pacs(
    served: Any, method: str
) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour(relational=False)
    settings = _phantom_study_settings(make(retrieval=method))
    result = retrieve_day(PHANTOM_DAY, settings)
    assert _timed(result) == PHANTOM_SERIES
    retrieves = [op for op in pacs.stats.ops if op.kind in ("get", "move")]
    # one SERIES-level retrieve with both series UIDs (3 instances), no IMAGE-level query
    assert [(op.level, op.status, op.matches) for op in retrieves] == [("SERIES", None, 3)]
    assert not [op for op in pacs.stats.ops if op.kind == "find" and op.level == "IMAGE"]


def test_pacs_refusing_series_lists_in_retrieves_is_asked_series_by_series(served: Any) -> None:
    pacs, make = served
    pacs.behaviour = Behaviour(relational=False, single_uid_retrieve=True)
    settings = _phantom_study_settings(make(retrieval="c-move"))
    client = make_client(settings)
    try:
        result = retrieve_day(PHANTOM_DAY, settings, client=client)
    finally:
        client.close()
    assert _timed(result) == PHANTOM_SERIES
    assert result.failed.height == 0
    assert record_for(settings).allows("series_list_retrieve") is False
    # the list refused once, then one retrieve per series
    assert [op.status for op in pacs.stats.ops if op.kind == "move"] == [0xA900, None, None]


@pytest.mark.parametrize("method", ["image-find", "c-get", "c-move"])
def test_days_sharing_a_client_count_only_their_own_operations(served: Any, method: str) -> None:
    """Regression: with days in flight together, each day's manifest counted the others'."""
    from concurrent.futures import ThreadPoolExecutor

    _pacs, make = served
    settings = make(retrieval=method, max_concurrent=2)
    client = make_client(settings)
    days = [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    try:
        before = client.counters.snapshot()
        with ThreadPoolExecutor(len(days)) as pool:
            results = list(pool.map(lambda d: retrieve_day(d, settings, client=client), days))
        total = client.counters.minus(before).as_dict()
    finally:
        client.close()
    assert total["dimse_ops"] > 0 and total["bytes_received"] > 0
    if method != "image-find":
        assert total["instances_received"] > 0
    for key in (
        "dimse_ops",
        "find",
        "get",
        "move",
        "responses",
        "associations",
        "inbound_associations",
        "instances_received",
        "bytes_received",
    ):
        assert sum(r.ops[key] for r in results) == total[key], key
    manifests = [SeriesStore(settings.paths.data_dir).manifest(d) for d in days]
    assert [m["ops"]["dimse_ops"] for m in manifests if m] == [r.ops["dimse_ops"] for r in results]


def test_client_closed_during_the_probe_remembers_nothing(served: Any) -> None:
    """Regression: Ctrl-C during the first probe recorded C-GET and C-MOVE as refused for good."""
    pacs, make = served
    pacs.behaviour = Behaviour(refuse_get=True, image_level_minimal=True)
    settings = make(retrieval="auto")
    client = make_client(settings)
    real = client.fetch_headers

    def closing(*args: Any, **kwargs: Any) -> Any:
        client.close()  # as Ctrl-C does, while the probe tries C-GET / C-MOVE
        return real(*args, **kwargs)

    client.fetch_headers = closing
    with pytest.raises(RetrievalError):
        retrieve_day(DAY, settings, client=client)
    assert client.move_port_bound is None  # no Storage SCP started after close()
    forget_capabilities()
    caps = record_for(settings).capabilities()
    assert caps is None or not caps.probed  # the methods stay to be probed
    assert SeriesStore(settings.paths.data_dir).days() == []
    assert retrieve_day(DAY, settings).method == "c-move"  # a new client probes again


def test_day_whose_client_closed_under_it_is_not_written(served: Any) -> None:
    """Regression: a client closed after the last request still let the day be written."""
    _pacs, make = served
    settings = make(retrieval="c-get")
    client = make_client(settings)

    def progress(done: int, total: int) -> None:
        if total and done == total:
            client.close()  # every series timed: the day's requests are over

    with pytest.raises(RetrievalError, match="interrupted"):
        retrieve_day(DAY, settings, client=client, progress=progress)
    assert SeriesStore(settings.paths.data_dir).days() == []


def test_day_wide_check_reports_and_remembers_nothing(served: Any) -> None:
    """``pacs check``'s day-wide test: answered, refused, or cut by a timeout (not tested)."""
    from pyschedvisu.retrieval import check_day_wide
    from pyschedvisu_core.errors import PacsTimeoutError

    pacs, make = served
    settings = make()
    client = make_client(settings)
    try:
        assert check_day_wide(settings, client, DAY) == (
            True,
            "2 studies answered in one SERIES query",
        )
        pacs.behaviour = Behaviour(relational=False)
        answered, why = check_day_wide(settings, client, DAY)
        assert answered is False and "0xA900" in why
        real_find = client.find

        def slow(level: str, query: Any, *args: Any, **kwargs: Any) -> Any:
            if level == "SERIES":
                raise PacsTimeoutError("C-FIND SERIES: no response (timeout or abort)")
            return real_find(level, query, *args, **kwargs)

        client.find = slow
        answered, why = check_day_wide(settings, client, DAY)
        assert answered is None and why.startswith("not tested: ")
    finally:
        client.close()
    assert record_for(settings).relational is None  # the caller remembers, not the check


@pytest.mark.parametrize(("status", "lists_kept"), [(0xA702, True), (0xA900, False)])
def test_whole_series_list_is_switched_off_only_when_its_identifier_is_refused(
    served: Any, status: int, lists_kept: bool
) -> None:
    """Out of resources (0xA702) says nothing of UID lists: they stay on; 0xA900 turns them off."""
    from pyschedvisu_core.errors import PacsOperationError

    pacs, make = served
    pacs.behaviour = Behaviour(relational=False)
    settings = _phantom_study_settings(make(retrieval="c-move"))
    client = make_client(settings)

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise PacsOperationError(f"C-MOVE: failed with status 0x{status:04X}", status=status)

    client.fetch_whole_series = failing
    try:
        result = retrieve_day(PHANTOM_DAY, settings, client=client)
    finally:
        client.close()
    assert _timed(result) == PHANTOM_SERIES  # series by series instead
    assert record_for(settings).allows("series_list_retrieve") is lists_kept
