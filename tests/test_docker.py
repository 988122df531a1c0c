"""The container set-up (no Docker engine here): files parse and agree with each other."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from pyschedvisu.config import load_settings

DOCKER = Path(__file__).resolve().parents[1] / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_names_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "prefect-server", "worker", "orthanc"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["prefect-server"]["image"].startswith("prefecthq/prefect:3")
    assert "orthanc" in services["orthanc"]["image"]


def test_prefect_server_uses_postgres(compose: dict[str, Any]) -> None:
    server = compose["services"]["prefect-server"]
    url = server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_worker_runs_the_pool_of_prefect_yaml(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert worker["command"][:3] == ["prefect", "worker", "start"]
    pool = worker["command"][worker["command"].index("--pool") + 1]
    prefect_yaml = yaml.safe_load((DOCKER.parent / "prefect.yaml").read_text())
    assert {d["work_pool"]["name"] for d in prefect_yaml["deployments"]} == {pool}
    env = worker["environment"]
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["PYSCHEDVISU_CONFIG"] == "/config/pyschedvisu.toml"
    assert worker["build"]["dockerfile"] == "docker/Dockerfile"
    assert "prefect-server" in worker["depends_on"]


def test_published_ports_are_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), (
                f"{name} publishes {mapping} on every interface"
            )


def test_no_secret_values_in_compose(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        env = service.get("environment") or {}
        for key, value in env.items():
            if (
                any(word in key for word in ("PASSWORD", "KEY"))
                and key != "PREFECT_API_DATABASE_CONNECTION_URL"
            ):
                assert str(value).startswith("${"), f"{key} must come from the host environment"


def test_orthanc_sends_moves_to_the_worker_scp() -> None:
    orthanc = json.loads((DOCKER / "orthanc.json").read_text())
    settings = load_settings(DOCKER / "pyschedvisu.toml")
    (modality,) = orthanc["DicomModalities"].values()
    assert modality["AET"] == settings.pacs.calling_ae
    assert modality["Port"] == settings.pacs.move_port
    assert modality["Host"] == "worker"
    assert orthanc["DicomAet"] == settings.pacs.called_ae
    assert orthanc["DicomPort"] == settings.pacs.port
    assert settings.pacs.host == "orthanc"


def test_dockerfile_has_python_slim_chromium_and_the_package() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim", text, re.M)
    assert re.search(r"apt-get install[^\n]*chromium", text)
    for folder in ("pyschedvisu", "pyschedvisu_core", "flows", "tasks"):
        assert f"COPY {folder} ./{folder}" in text
    assert re.search(r"pip install \.$", text, re.M)
    assert "BROWSER_PATH=/usr/bin/chromium" in text
    # Every file the image copies exists in the repository.
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        assert (DOCKER.parent / src).exists(), src


@pytest.fixture(scope="module")
def sites_compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.sites.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_sites_compose_has_postgres_server_and_a_worker_per_site(
    sites_compose: dict[str, Any],
) -> None:
    """compose.sites.yaml: PostgreSQL + server + `pyschedvisu deploy` + one worker per site
    of sites.toml (on its pool, on its site's network next to its own PACS) + the network
    report's worker; the published ports loopback only."""
    from pyschedvisu import deploy
    from pyschedvisu.config import load_network

    services = sites_compose["services"]
    url = services["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert url.startswith("postgresql+asyncpg://") and "@postgres:5432/" in url
    assert services["deploy"]["command"][:2] == ["pyschedvisu", "deploy"]
    network = load_network(DOCKER / "sites.toml")
    assert network.has_sites
    document = deploy.site_deployments(network, deploy.read_template())
    pools = set(deploy.pools_of(document))
    served = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:3] == ["prefect", "worker", "start"]:
            served[command[command.index("--pool") + 1]] = name
            assert service["environment"]["PYSCHEDVISU_CONFIG"] == "/config/sites.toml"
    assert set(served) == pools
    for site, loaded in network.sites.items():
        worker = services[served[deploy.site_pool(site)]]
        assert "worker" in worker["networks"][site]["aliases"]
        assert "core" in worker["networks"]
        pacs = services[f"orthanc-{site}"]
        assert pacs["networks"] == {site: {"aliases": [loaded.settings.pacs.host]}}
        assert worker["environment"]["PYSCHEDVISU_PSEUDONYM_KEY"].startswith("${")
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert str(mapping).startswith("127.0.0.1:"), name
