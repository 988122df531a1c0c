"""The Prefect server on PostgreSQL, its production database (as in docker/compose.yaml).

The ``prefect_server_pg`` fixture starts ``prefect server start`` with
``PREFECT_API_DATABASE_CONNECTION_URL`` on a throw-away cluster of Debian's ``postgresql``:
the server migrates the empty database, and what a flow run records lands in PostgreSQL's
tables, not in a SQLite file. The multi-site test (tests/test_sites_scale.py) runs its
deployments, workers and retries on this server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect import flow, task
from prefect.settings import PREFECT_API_URL, temporary_settings

from tests.fixtures.prefect_server import PrefectServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@task
def double(x: int) -> int:
    return 2 * x


@flow(name="postgres-smoke")
def smoke(n: int) -> int:
    return sum(double.map(range(n)).result())


@pytest.fixture
def on_pg(prefect_server_pg: PrefectServer) -> Iterator[PrefectServer]:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server_pg.url}):
        yield prefect_server_pg
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=30)
        EventsWorker.drain_all(timeout=30)


def test_flow_runs_are_recorded_in_postgresql(on_pg: PrefectServer) -> None:
    pg = on_pg.postgres
    assert pg is not None
    assert not list(on_pg.home.glob("*.db")), "the server made a SQLite database"
    state = smoke(4, return_state=True)
    assert state.is_completed()
    assert state.result() == 12
    runs = on_pg.post("/flow_runs/filter", {"flows": {"name": {"any_": ["postgres-smoke"]}}})
    assert any(r["id"] == str(state.state_details.flow_run_id) for r in runs)
    # the same run, read from PostgreSQL's own tables
    names = pg.sql(
        "SELECT f.name FROM flow_run r JOIN flow f ON f.id = r.flow_id "
        f"WHERE r.id = '{state.state_details.flow_run_id}'"
    )
    assert names == "postgres-smoke"
    run_id = state.state_details.flow_run_id
    tasks = int(pg.sql(f"SELECT count(*) FROM task_run WHERE flow_run_id = '{run_id}'"))
    assert tasks == 4
    assert pg.database_size() > 1_000_000  # the migrated schema at least
