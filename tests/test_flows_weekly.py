"""The weekly_report flow on the demo PACS: PDF, HTML, artifacts and the e-mail (aiosmtpd).

Runs in this process against the session's real Prefect server, the tiny demo department
(week of 2024-03-04) and a real SMTP server. One day fails at the PACS: the report is still
produced and mailed with a note naming it, and the run ends Failed; once the PACS answers,
running again fetches only that day.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from pypdf import PdfReader

from pyschedvisu import render
from pyschedvisu.demo_pacs import Behaviour, DemoPacs
from pyschedvisu.store import SeriesStore
from tests.fixtures.prefect_server import PrefectServer
from tests.fixtures.smtp import SmtpSink

pytestmark = [pytest.mark.integration, pytest.mark.slow]

END = dt.date(2024, 3, 8)
BAD_DAY = dt.date(2024, 3, 5)


@pytest.fixture
def on_server(prefect_server: PrefectServer) -> Iterator[PrefectServer]:
    with temporary_settings(updates={PREFECT_API_URL: prefect_server.url}):
        yield prefect_server
        # Ship this process's pending logs and events while the server still runs (at exit
        # Prefect would retry them against a stopped server for a minute).
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=30)
        EventsWorker.drain_all(timeout=30)


@pytest.fixture
def quick_retrieve(monkeypatch: pytest.MonkeyPatch) -> None:
    """No task-level retry delays in this test (the deploy test keeps the real ones)."""
    import tasks.retrieve

    monkeypatch.setattr(
        tasks.retrieve, "retrieve_day", tasks.retrieve.retrieve_day.with_options(retries=0)
    )


def write_config(path: Path, pacs: DemoPacs, smtp: SmtpSink, data: Path) -> Path:
    path.write_text(
        f"""
[pacs]
host = "127.0.0.1"
port = {pacs.port}
called_ae = "{pacs.ae_title}"
move_port = 0
op_retries = 0
[paths]
data_dir = "{data.as_posix()}"
output_dir = "{(data / "reports").as_posix()}"
[report]
year_start = 2024
periods = ["hebdomadaire"]
[email]
enabled = true
smtp_host = "{smtp.host}"
smtp_port = {smtp.port}
recipients = "chef@hospital.test, planning@hospital.test"
sender_address = "pyschedvisu@hospital.test"
"""
    )
    return path


def artifacts(srv: PrefectServer, run_id: str) -> dict[str, dict[str, Any]]:
    found = srv.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})
    return {a["key"]: a for a in found}


def test_weekly_report_with_a_missing_day_then_complete(
    on_server: PrefectServer,
    quick_retrieve: None,
    demo_pacs: Callable[..., DemoPacs],
    tiny_pacs_dir: Path,
    smtp_server: SmtpSink,
    tmp_path: Path,
) -> None:
    from flows.weekly import weekly_report

    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(fail_dates={BAD_DAY}))
    data = tmp_path / "data"
    config = write_config(tmp_path / "pyschedvisu.toml", pacs, smtp_server, data)

    state = weekly_report(end=END, config_path=str(config), return_state=True)

    # The run is Failed and says which day is missing, but the report exists.
    assert state.is_failed(), state
    assert BAD_DAY.isoformat() in (state.message or "")
    pdfs = sorted((data / "reports").rglob("*.pdf"))
    htmls = sorted((data / "reports").rglob("*.html"))
    assert len(pdfs) == 1 and len(htmls) == 1
    reader = PdfReader(pdfs[0])
    assert len(reader.pages) >= 1
    assert "<html" in htmls[0].read_text(errors="replace").lower()
    # the workbook beside them; the day the PACS could not serve is "no data", not counted
    (workbook,) = sorted((data / "reports").rglob("*.xlsx"))
    assert workbook.with_suffix(".pdf") == pdfs[0]
    counts = pl.read_excel(workbook, sheet_name="counts").filter(pl.col("period") == "hebdomadaire")
    bad = counts.filter(pl.col("first_day").cast(pl.Date) == BAD_DAY)
    assert bad.height >= 1 and bad["slots"].to_list() == [0] * bad.height
    # "no data" where the day lies in the machine's service window (first..last day with
    # studies), else out of service: neither counts
    windows = render.service_windows(data / "studies.parquet")
    for machine, no_data in bad.select("machine", "no_data_days").iter_rows():
        first, last = windows[machine]
        assert no_data == int(first <= BAD_DAY <= last), machine

    (mail,) = smtp_server.wait_for(1)
    assert sorted(mail.rcpt_tos) == ["chef@hospital.test", "planning@hospital.test"]
    msg = mail.message
    assert msg["Subject"] == "Rapport pySchedVisu du 08/03/2024"
    (attachment,) = msg.iter_attachments()
    assert attachment.get_content() == pdfs[0].read_bytes()
    body = msg.get_body(preferencelist=("html",))
    assert body is not None and "05/03/2024" in body.get_content()

    run_id = str(state.state_details.flow_run_id)
    arts = artifacts(on_server, run_id)
    assert {
        "weekly-week-summary",
        "weekly-data-quality",
        "weekly-report-pdf",
        "weekly-report-html",
    } <= set(arts)
    summary = arts["weekly-week-summary"]["data"]
    assert "PET Siemens" in summary and "Missing days" in summary and BAD_DAY.isoformat() in summary
    rows = arts["weekly-data-quality"]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    by_day = {r["day"]: r for r in rows}
    assert by_day[BAD_DAY.isoformat()]["status"] == "FAILED"
    assert by_day["2024-03-04"]["status"] == "ok" and by_day["2024-03-04"]["studies"] >= 1
    assert pdfs[0].name in arts["weekly-report-pdf"]["data"]
    # No patient data in artifacts: the tiny department's patient ids never appear.
    for art in arts.values():
        text = json.dumps(art["data"])
        # a whole value, not a piece of a duration or count that happens to hold it
        assert not re.search(r"(?<![\d.])1001(?![\d.])", text) and "Patient" not in text

    # The PACS answers again: a new run fetches only the missing day and completes.
    store = SeriesStore(data)
    before = {d: store.manifest(d) for d in store.days()}
    assert BAD_DAY not in before
    pacs.behaviour.fail_dates.clear()
    pacs.reset_stats()
    again = weekly_report(end=END, config_path=str(config), send_email=False, return_state=True)
    assert again.is_completed(), again
    result = again.result()
    assert result["missing"] == [] and result["fetched"] == 1
    for day, manifest in before.items():
        assert store.manifest(day) == manifest
    study_finds = [op for op in pacs.stats.ops if op.kind == "find" and op.level == "STUDY"]
    assert len(study_finds) == 2  # PT and NM for the one missing day (DOMAIN §2.1)
    assert len(smtp_server.messages) == 1  # send_email=False
