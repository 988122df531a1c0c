"""``pyschedvisu deploy``: prefect.yaml's deployments for every site, and the network report's."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.flows import Flow, load_flow_from_entrypoint
from typer.testing import CliRunner

from pyschedvisu import deploy
from pyschedvisu.cli import app
from pyschedvisu.config import load_network

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

SITES = """
[calendar]
timezone = "Europe/Zurich"
[network]
work_pool = "central"
cron = "30 6 * * 6"
[sites.lausanne.pacs]
host = "pacs.lausanne.test"
[sites.montreal.pacs]
host = "pacs.montreal.test"
[sites.montreal.calendar]
timezone = "America/Montreal"
country = "CA"
subdiv = "QC"
[sites.montreal.email]
enabled = true
[sites.montreal.worklist]
enabled = true
"""


@pytest.fixture
def sites_toml(tmp_path: Path) -> Path:
    path = tmp_path / "sites.toml"
    path.write_text(SITES)
    return path


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in document["deployments"]}


def test_every_site_gets_prefect_yaml_deployments_on_its_own_pool(sites_toml: Path) -> None:
    template = deploy.read_template()
    document = deploy.site_deployments(load_network(sites_toml), template)
    deps = by_name(document)
    names = [t["name"] for t in template["deployments"]]
    always = [n for n in names if n != "worklist-snapshot"]  # the worklist: where it is on
    assert list(deps) == [
        *(f"{n}-lausanne" for n in always),
        *(f"{n}-montreal" for n in names),
        "network-report",
    ]
    worklist = deps["worklist-snapshot-montreal"]
    assert worklist["work_pool"]["name"] == "pyschedvisu-montreal"
    assert worklist["work_pool"]["job_variables"]["env"] == {"PYSCHEDVISU_SITE": "montreal"}
    assert {(s["timezone"], s["active"]) for s in worklist["schedules"]} == {
        ("America/Montreal", True)
    }
    for site, tz in (("lausanne", "Europe/Zurich"), ("montreal", "America/Montreal")):
        weekly = deps[f"weekly-report-{site}"]
        assert weekly["entrypoint"] == "flows/weekly.py:weekly_report"
        assert weekly["work_pool"]["name"] == f"pyschedvisu-{site}"
        assert weekly["work_pool"]["job_variables"]["env"] == {"PYSCHEDVISU_SITE": site}
        assert [(s["cron"], s["timezone"]) for s in weekly["schedules"]] == [("0 1 * * 6", tz)]
        assert f"site-{site}" in weekly["tags"] and weekly["concurrency_limit"] == 1
        assert deps[f"backfill-{site}"]["work_pool"]["name"] == f"pyschedvisu-{site}"
    network = deps["network-report"]
    assert network["entrypoint"] == deploy.NETWORK_ENTRYPOINT
    assert network["work_pool"]["name"] == "central"
    assert network["schedules"] == [
        {"cron": "30 6 * * 6", "timezone": "Europe/Zurich", "active": True}
    ]
    # the pull step is prefect.yaml's: the worker's own checkout
    assert document["pull"] == template["pull"]
    assert deploy.pools_of(document) == ["pyschedvisu-lausanne", "pyschedvisu-montreal", "central"]


def test_the_one_department_config_deploys_prefect_yaml_as_it_is(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[calendar]\ntimezone = "Europe/Berlin"\n')
    template = deploy.read_template()
    document = deploy.site_deployments(load_network(cfg), template)
    expected = copy.deepcopy(template["deployments"])
    for dep in expected:
        dep["work_pool"]["job_variables"] = dep["work_pool"].get("job_variables") or {}
        for schedule in dep.get("schedules") or []:
            schedule["timezone"] = "Europe/Berlin"
    assert document["deployments"] == expected


def test_a_deployment_of_a_switched_section_goes_where_it_is_on(sites_toml: Path) -> None:
    """``<section>-...`` deployments (the worklist's) only for the sites enabling ``[section]``."""
    template = deploy.read_template()
    template["deployments"].append(
        {
            "name": "email-digest",
            "entrypoint": "flows/weekly.py:weekly_report",
            "schedules": [{"cron": "0 8 * * 1", "timezone": "UTC", "active": False}],
            "work_pool": {"name": "pyschedvisu"},
        }
    )
    deps = by_name(deploy.site_deployments(load_network(sites_toml), template))
    assert "email-digest-lausanne" not in deps  # [email] enabled = false there
    digest = deps["email-digest-montreal"]
    assert digest["schedules"] == [
        {"cron": "0 8 * * 1", "timezone": "America/Montreal", "active": True}
    ]


def test_the_generated_file_is_a_prefect_yaml_whose_entrypoints_load(
    sites_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "prefect.sites.yaml"
    result = runner.invoke(
        app, ["--config", str(sites_toml), "deploy", "--no-apply", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "weekly-report-montreal: pool pyschedvisu-montreal; 0 1 * * 6 America/Montreal" in (
        result.output
    )
    assert "prefect worker start --pool central" in result.output
    data = yaml.safe_load(out.read_text())
    monkeypatch.chdir(ROOT)
    for entrypoint in {d["entrypoint"] for d in data["deployments"]}:
        assert isinstance(load_flow_from_entrypoint(entrypoint), Flow)


def test_one_site_only(sites_toml: Path, tmp_path: Path) -> None:
    out = tmp_path / "one.yaml"
    args = ["--config", str(sites_toml), "--site", "lausanne", "deploy", "--no-apply"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    names = [d["name"] for d in yaml.safe_load(out.read_text())["deployments"]]
    assert names == ["weekly-report-lausanne", "backfill-lausanne"]


def test_apply_without_a_server_is_one_line(
    sites_toml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: None}):
        result = runner.invoke(
            app, ["--config", str(sites_toml), "deploy", "--out", str(tmp_path / "p.yaml")]
        )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"{tmp_path / 'p.yaml'}: PREFECT_API_URL is not set: point it at the Prefect server "
        "(e.g. http://prefect-host:4200/api) to deploy there"
    ]
