"""``prefect.yaml`` and the flows' parameters as the Prefect UI sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
    assert "&process_pool" in text and text.count("*process_pool") == 2
    pools = [d["work_pool"] for d in prefect_yaml["deployments"]]
    assert pools[0] == pools[1] == prefect_yaml["definitions"]["work_pools"]["process_pool"]
    (step,) = prefect_yaml["pull"]
    assert "prefect.deployments.steps.set_working_directory" in step


@pytest.mark.parametrize("name", ["weekly-report", "backfill"])
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
