"""The weekly flow, its artifacts and the report's note name what the config does not match.

The Seeland department (``tests/seeland.py``) with a config that matches only part of it: one
of its institution names not accepted, one scanner missing from ``[machines]``, labels for one
machine only. The run completes (nothing is missing from the PACS); the data-quality artifact
marks the business days with no study, a ``weekly-dropped`` artifact lists the institutions,
scanner combinations and descriptions that did not match with their counts, and the report
carries the same in its data-quality note. No patient data anywhere. With the reference
config, the backfill flow marks every day "no studies kept" and names the institutions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import default_toml, load_settings
from pyschedvisu.demo_pacs import DemoPacs
from pyschedvisu.retrieval import forget_capabilities
from tests import seeland
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


def partly_matching_config(tmp_path: Path, pacs: DemoPacs) -> Path:
    """The drafted config, labelled for the Vereos only, less the name ``ksseeland`` and
    less the Discovery MI."""
    forget_capabilities()
    start = tmp_path / "start.toml"
    data = tmp_path / "data"
    start.write_text(
        f'[pacs]\nport = {pacs.port}\ncalled_ae = "{pacs.ae_title}"\nmove_port = 0\n'
        f'[paths]\ndata_dir = "{data.as_posix()}"\noutput_dir = "{(data / "reports").as_posix()}"\n'
        '[report]\nyear_start = 2024\nperiods = ["hebdomadaire"]\n'
    )
    days = [seeland.DAYS[0].isoformat(), seeland.DAYS[-1].isoformat()]
    draft = tmp_path / "draft.toml"
    res = CliRunner().invoke(
        app,
        ["--config", str(start), "discover", "--start", days[0], "--end", days[1],
         "--write-config", str(draft)],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    others = [k for k in tomllib.loads(draft.read_text())["descriptions"] if k != "vereospet"]
    labelled = seeland.label_draft(draft, tmp_path / "labelled.toml", skip=tuple(others))
    settings = load_settings(labelled)
    settings.retrieve.accepted_institutions = [
        n for n in settings.retrieve.accepted_institutions if n != "ksseeland"
    ]
    settings.machines = {g: v for g, v in settings.machines.items() if "Discovery MI" not in g}
    settings.descriptions = {k: v for k, v in settings.descriptions.items() if k != "discoverymi"}
    settings.draw.machine = {k: v for k, v in settings.draw.machine.items() if k != "discoverymi"}
    out = tmp_path / "partly.toml"
    out.write_text(default_toml(settings))
    load_settings(out)
    return out


def test_weekly_flow_names_what_did_not_match(
    on_server: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    seeland_dir: Path,
    tmp_path: Path,
) -> None:
    from flows.weekly import weekly_report

    pacs = demo_pacs(seeland_dir)
    cfg = partly_matching_config(tmp_path, pacs)
    state = weekly_report(end=END, config_path=str(cfg), send_email=False, return_state=True)
    assert state.is_completed(), state
    result = state.result()
    assert result["missing"] == []
    told = "\n".join(result["dropped"])
    assert "studies excluded by institution" in told and "ksseeland (" in told
    assert "mixed cases" in told and "discoverymi (" in told
    assert "labelled OTHER" in told and "NM/CT 870 DR NUK-SPECT1: " in told

    srv = on_server
    found = srv.post(
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}},
    )
    arts = {a["key"]: a for a in found}
    assert {"weekly-dropped", "weekly-data-quality"} <= set(arts)
    md = arts["weekly-dropped"]["data"]
    assert "## Studies excluded by institution" in md and "| ksseeland |" in md
    assert "## Mixed cases: no [machines] entry for the scanner" in md
    assert re.search(r"\| discoverymi \| \d+ \|", md)
    assert "## Labelled OTHER: no label matches" in md and "| NM/CT 870 DR NUK-SPECT" in md
    rows = arts["weekly-data-quality"]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    by_day = {r["day"]: r for r in rows}
    # the PACS holds nothing on Thursday and Friday: business days with no study found
    assert by_day["2024-03-07"]["status"] == "no studies found"
    assert by_day["2024-03-08"]["status"] == "no studies found"
    assert by_day["2024-03-04"]["status"] == "ok"
    assert "ksseeland (" in by_day["2024-03-05"]["institutions not accepted"]

    # the report's data-quality note says it too (fr: the report's language)
    html = Path(result["html"]).read_text(errors="replace")
    assert "Exclus : " in html and "examen(s) d'autres institutions (ksseeland " in html
    assert "Non configur" in html and "hors rapport (discoverymi " in html
    assert re.search(r"\d+ class\S+\(s\) AUTRE \(", html)  # "é" is JSON-escaped there

    # no patient id or name in what the run tells
    texts = [json.dumps(a["data"]) for a in arts.values()] + [told]
    for value in seeland.patient_values():
        for text in texts:
            assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", text), value


def test_backfill_with_the_reference_config_names_the_institutions_it_excluded(
    on_server: PrefectServer,
    demo_pacs: Callable[..., DemoPacs],
    seeland_dir: Path,
    tmp_path: Path,
) -> None:
    """The reference config against another department: every day retrieved (the run
    completes), every study excluded by institution, each day marked, the names listed."""
    from flows.backfill import backfill

    forget_capabilities()
    pacs = demo_pacs(seeland_dir)
    cfg = tmp_path / "reference.toml"
    cfg.write_text(
        f'[pacs]\nport = {pacs.port}\ncalled_ae = "{pacs.ae_title}"\nmove_port = 0\n'
        f'[paths]\ndata_dir = "{(tmp_path / "data").as_posix()}"\n'
    )
    state = backfill(
        start=seeland.DAYS[0], end=seeland.DAYS[-1], config_path=str(cfg), return_state=True
    )
    assert state.is_completed(), state
    told = "\n".join(state.result()["dropped"])
    assert "3 business day(s) with no studies kept" in told
    assert "kantonsspitalseeland (" in told and "ksseelandpet-ct (" in told
    found = on_server.post(
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [str(state.state_details.flow_run_id)]}}},
    )
    arts = {a["key"]: a for a in found}
    md = arts["backfill-dropped"]["data"]
    assert "## Studies excluded by institution" in md and "| kantonsspitalseeland |" in md
    rows = arts["backfill-data-quality"]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert {r["status"] for r in rows} == {"no studies kept"}
    assert all("kantonsspitalseeland (" in r["institutions not accepted"] for r in rows)
