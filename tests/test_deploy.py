"""``prefect.yaml`` and the flows' parameters as the Prefect UI sees them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prefect_yaml() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert isinstance(data, dict)
    return data


def deployment(data: dict[str, Any], name: str) -> dict[str, Any]:
    (dep,) = [d for d in data["deployments"] if d["name"] == name]
    return dep


def test_weekly_deployment_runs_saturday_1am_zurich(prefect_yaml: dict[str, Any]) -> None:
    dep = deployment(prefect_yaml, "weekly-report")
    (schedule,) = dep["schedules"]
    assert schedule["cron"] == "0 1 * * 6"
    assert schedule["timezone"] == "Europe/Zurich"
    assert dep["entrypoint"] == "flows/weekly.py:weekly_report"


def test_backfill_deployment_has_no_schedule(prefect_yaml: dict[str, Any]) -> None:
    dep = deployment(prefect_yaml, "backfill")
    assert not dep.get("schedules")
    assert dep["entrypoint"] == "flows/backfill.py:backfill"


def test_shared_values_come_from_definitions(prefect_yaml: dict[str, Any]) -> None:
    text = (ROOT / "prefect.yaml").read_text()
    assert "&process_pool" in text and text.count("*process_pool") == 3
    pools = [d["work_pool"] for d in prefect_yaml["deployments"]]
    assert all(p == prefect_yaml["definitions"]["work_pools"]["process_pool"] for p in pools)
    (step,) = prefect_yaml["pull"]
    assert "prefect.deployments.steps.set_working_directory" in step


def test_worklist_snapshots_every_30_min_6_to_18_on_weekdays_zurich(
    prefect_yaml: dict[str, Any],
) -> None:
    import asyncio

    from prefect.server.schemas.schedules import CronSchedule

    dep = deployment(prefect_yaml, "worklist-snapshot")
    assert dep["entrypoint"] == "flows/worklist.py:worklist_snapshot"
    assert dep["concurrency_limit"] == 1
    # inactive until [worklist] is enabled (a department without a RIS gets no empty runs)
    assert {s["active"] for s in dep["schedules"]} == {False}
    assert {s["timezone"] for s in dep["schedules"]} == {"Europe/Zurich"}
    monday = dt.datetime(2026, 3, 2, 0, 0, tzinfo=ZoneInfo("Europe/Zurich"))
    times: set[dt.datetime] = set()
    for s in dep["schedules"]:
        cron = CronSchedule(cron=s["cron"], timezone=s["timezone"])
        dates = asyncio.run(cron.get_dates(n=200, start=monday, end=monday + dt.timedelta(6)))
        times |= {
            dt.datetime.fromtimestamp(t.timestamp(), ZoneInfo("Europe/Zurich")).replace(tzinfo=None)
            for t in dates
        }
    day = [t for t in times if t.date() == monday.date()]
    assert min(day).time() == dt.time(6, 0) and max(day).time() == dt.time(18, 0)
    assert len(day) == 25  # 06:00, 06:30, ..., 18:00
    assert {t.weekday() for t in times} == {0, 1, 2, 3, 4}
    assert len(times) == 5 * 25


@pytest.mark.parametrize("name", ["weekly-report", "backfill", "worklist-snapshot"])
def test_entrypoints_load_as_flows(
    prefect_yaml: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    flow = load_flow_from_entrypoint(deployment(prefect_yaml, name)["entrypoint"])
    assert isinstance(flow, Flow)
    assert flow.name == name


def _types(prop: dict[str, Any]) -> set[str]:
    return {p.get("format", p["type"]) for p in prop.get("anyOf", [prop]) if "type" in p}


def test_weekly_parameters_are_plain_types_for_the_ui_form() -> None:
    from flows.weekly import weekly_report

    schema = parameter_schema(weekly_report).model_dump()
    props = schema["properties"]
    assert list(props) == ["end", "periods", "send_email", "config_path"]
    assert schema["required"] == []
    assert _types(props["end"]) == {"date", "null"}
    assert _types(props["periods"]) == {"array", "null"}
    assert _types(props["send_email"]) == {"boolean"}
    assert _types(props["config_path"]) == {"string", "null"}
    assert all(props[p].get("description") for p in props)


def test_backfill_parameters_are_plain_types_for_the_ui_form() -> None:
    from flows.backfill import backfill

    schema = parameter_schema(backfill).model_dump()
    props = schema["properties"]
    assert schema["required"] == ["start", "end"]
    assert _types(props["start"]) == _types(props["end"]) == {"date"}
    assert _types(props["force"]) == {"boolean"}


def test_worklist_parameters_are_plain_types_for_the_ui_form() -> None:
    from flows.worklist import worklist_snapshot

    schema = parameter_schema(worklist_snapshot).model_dump()
    props = schema["properties"]
    assert list(props) == ["day", "config_path"]
    assert schema["required"] == []
    assert _types(props["day"]) == {"date", "null"}
    assert all(props[p].get("description") for p in props)
