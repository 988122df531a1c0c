"""The Prefect task ``retrieve_day``: summary, store short-cut, cache key rules, retries policy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyschedvisu.config import Settings
from pyschedvisu.retrieval import close_clients, forget_capabilities, retrieval_fingerprint
from pyschedvisu.retrieval import retrieve_day as plain_retrieve_day
from pyschedvisu_core.errors import AssociationRejectedError, PseudonymKeyError, RetrievalError
from tasks.retrieve import _should_retry, cache_key
from tests.conftest import free_port

DAY = dt.date(2024, 3, 4)


def make_settings(pacs: Any, data: Path) -> Settings:
    return Settings(
        pacs={
            "port": pacs.port,
            "called_ae": pacs.ae_title,
            "move_port": free_port(),
            "move_bind": "127.0.0.1",
            "max_ops_per_s": 500.0,
        },
        paths={"data_dir": str(data)},
    )


@pytest.fixture(autouse=True)
def _fresh() -> Iterator[None]:
    forget_capabilities()
    yield
    close_clients()


def test_cache_key_only_for_final_stored_days(
    demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(demo_pacs(tiny_pacs_dir), tmp_path / "data")
    params: dict[str, Any] = {"day": DAY, "settings": settings, "force": False}
    assert cache_key(None, params) is None  # nothing stored: no cache lookup at all
    plain_retrieve_day(DAY, settings, now=dt.datetime.combine(DAY, dt.time(22)))
    assert cache_key(None, params) is None  # stored but not final
    plain_retrieve_day(DAY, settings)
    key = cache_key(None, params)
    assert key is not None and DAY.isoformat() in key and retrieval_fingerprint(settings) in key
    assert cache_key(None, {**params, "force": True}) is None
    other = settings.model_copy(deep=True)
    other.retrieve.patient_id_pattern = r"^\w+$"
    assert (
        cache_key(None, {**params, "settings": other}) is None
    )  # other rules: stored day is stale


class _State:
    def __init__(self, exc: BaseException) -> None:
        self.data = exc


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (RetrievalError("busy"), True),
        (PseudonymKeyError("no key"), False),
        (AssociationRejectedError("who are you"), False),
    ],
)
def test_retry_policy(exc: BaseException, retry: bool) -> None:
    assert _should_retry(None, None, _State(exc)) is retry


@pytest.mark.integration
@pytest.mark.slow
def test_task_in_a_flow_second_run_touches_nothing(
    demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path, prefect_server: Any
) -> None:
    from prefect import flow
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from tasks.retrieve import retrieve_day

    pacs = demo_pacs(tiny_pacs_dir)
    settings = make_settings(pacs, tmp_path / "data")

    @flow
    def two_days(days: list[dt.date]) -> list[dict[str, Any]]:
        return [retrieve_day(d, settings) for d in days]

    with temporary_settings(
        updates={PREFECT_API_URL: prefect_server.url, PREFECT_HOME: prefect_server.home}
    ):
        first = two_days([DAY, dt.date(2024, 3, 6)])
        assert [s["series"] for s in first] == [3, 0]
        assert first[0]["studies"] == 2 and first[0]["final"] is True and not first[0]["from_cache"]
        assert first[1]["reasons"] == {"patient_id_rejected": 1}
        stats = pacs.stats.as_dict()
        second = two_days([DAY, dt.date(2024, 3, 6)])
        assert all(s["from_cache"] for s in second)
        assert [s["series"] for s in second] == [3, 0]
        after = pacs.stats.as_dict()
        for op in ("associations", "find", "get", "move"):
            assert after[op] == stats[op], op
