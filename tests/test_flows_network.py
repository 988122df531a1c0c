"""The network report flow after two sites' weekly runs, in this process, on a real server.

Sites ``a`` (the tiny department) and ``b`` (a synthetic week), each with its own demo PACS
and data dir, run their weekly reports; ``c`` never ran. The network report's numbers are
then read back from its workbook and compared with each site's own report workbook: each
machine's row is that site's summary row, each total the sum of them. The site without
numbers is named and the run ends Failed, the report written anyway.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from pypdf import PdfReader

from pyschedvisu import network
from pyschedvisu.config import load_settings
from pyschedvisu.demo_pacs import DemoPacs
from pyschedvisu_core import network as core
from tests.fixtures.prefect_server import PrefectServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

END = dt.date(2024, 3, 8)


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=30)
        EventsWorker.drain_all(timeout=30)


def write_network(path: Path, ports: dict[str, int], root: Path) -> Path:
    tables = "".join(
        f"""
[sites.{site}.pacs]
port = {port}
"""
        for site, port in ports.items()
    )
    path.write_text(
        f"""
[pacs]
host = "127.0.0.1"
called_ae = "DEMOPACS"
move_port = 0
op_retries = 0
connect_timeout_s = 3
breaker_failures = 1
[paths]
data_dir = "{(root / "data").as_posix()}"
output_dir = "{(root / "reports").as_posix()}"
[report]
year_start = 2024
periods = ["hebdomadaire", "mensuel"]
language = "en"
[network]
title = "Test network"
output_dir = "{(root / "network").as_posix()}"
{tables}"""
    )
    return path


def summary_sheet(settings_dir: Path) -> pl.DataFrame:
    (workbook,) = sorted(settings_dir.rglob("*.xlsx"))
    return pl.read_excel(workbook, sheet_name="summary")


def test_network_numbers_are_the_sum_of_the_sites_own_reports(
    on_server: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    synth_week: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.network import network_report
    from flows.weekly import weekly_report

    pacs = {"a": demo_pacs(tiny_pacs_dir), "b": demo_pacs(synth_week)}
    ports = {"a": pacs["a"].port, "b": pacs["b"].port, "c": 9}  # c: never ran
    config = write_network(tmp_path / "network.toml", ports, tmp_path)

    own: dict[str, pl.DataFrame] = {}
    for site in ("a", "b"):
        monkeypatch.setenv("PYSCHEDVISU_SITE", site)
        state = weekly_report(end=END, send_email=False, config_path=str(config), return_state=True)
        assert state.is_completed(), state.message
        settings = load_settings(config)
        assert settings.site == site
        own[site] = summary_sheet(settings.paths.output_dir)
        stored = pl.read_parquet(settings.paths.data_dir / "studies.parquet")
        assert set(stored["site"].to_list()) == {site}
        # what the site published: numbers only, none of its patient keys or study UIDs
        artifact = on_server.post(
            "/artifacts/filter",
            {"artifacts": {"key": {"any_": [network.artifact_key(site, END)]}}},
        )
        (published,) = artifact
        rows = json.loads(published["data"])
        assert {k for r in rows for k in r} == set(core.AGGREGATE_SCHEMA)
        text = published["data"]
        for value in (*stored["patient_key"].to_list(), *stored["study_uid"].to_list()):
            assert value not in text
    monkeypatch.delenv("PYSCHEDVISU_SITE")

    state = network_report(end=END, send_email=False, config_path=str(config), return_state=True)

    assert state.is_failed(), state
    message = state.message or ""
    assert "1 site(s) without numbers" in message and "(c)" in message
    (pdf,) = sorted((tmp_path / "network").rglob("*.pdf"))
    (workbook,) = sorted((tmp_path / "network").rglob("*.xlsx"))
    (html,) = sorted((tmp_path / "network").rglob("*.html"))
    reader = PdfReader(pdf)
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert "Sites without numbers for this week" in text and ": c." in text
    assert "Network" in html.read_text()

    table = pl.read_excel(workbook, sheet_name="network")
    machines = table.filter(pl.col("row") == "machine")
    totals = table.filter(pl.col("row") == "network")
    assert set(machines["site"].to_list()) == {"a", "b"}
    assert totals.height >= 2  # PET/CT and SPECT/CT at least
    weekly = {"a": 0, "b": 0}
    for r in machines.iter_rows(named=True):
        mine = own[r["site"]].filter(
            (pl.col("period") == r["period"]) & (pl.col("machine") == r["machine"])
        )
        (expected,) = mine.iter_rows(named=True)
        for column in ("exams", "slots", "gaps", "retakes"):
            assert r[column] == expected[column], (r, expected)
        for column in ("utilisation_pct", "median_duration_s"):
            if expected[column] is None:
                assert r[column] is None
            else:
                assert r[column] == pytest.approx(expected[column], abs=0.051), (r, expected)
        if r["period"] == "hebdomadaire":
            weekly[r["site"]] += r["exams"]
    for t in totals.iter_rows(named=True):
        part = machines.filter(
            (pl.col("period") == t["period"]) & (pl.col("machine_type") == t["machine_type"])
        )
        for column in ("exams", "slots", "gaps", "retakes"):
            assert t[column] == part[column].sum()
        assert t["utilisation_pct"] == pytest.approx(100 * t["exams"] / t["slots"], abs=0.051)
    # every study of each site's week is in the network's week, once
    for site in ("a", "b"):
        week = own[site].filter(pl.col("period") == "hebdomadaire")
        assert weekly[site] == week["exams"].sum() > 0
    week_total = totals.filter(pl.col("period") == "hebdomadaire")["exams"].sum()
    assert week_total == weekly["a"] + weekly["b"]
