"""Prefect task: e-mail the report (thin wrapper over :mod:`pyschedvisu.mail`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task

from pyschedvisu import mail, render
from pyschedvisu.config import Settings
from pyschedvisu.store import SeriesStore
from pyschedvisu_core.dropped import Dropped


def _load_secret(name: str) -> str:
    """Value of the Prefect Secret block ``name`` (the SMTP password when not in the env)."""
    from prefect.blocks.system import Secret

    value = Secret.load(name).get()
    return str(value)


@task(name="send-report", retries=2, retry_delay_seconds=[10, 60], tags=["smtp"], cache_policy=None)
def send_report(
    settings: Settings,
    report: dict[str, Any],
    end: dt.date,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Send the rendered ``report`` (``render_report``'s dict) as configured in ``settings.email``.

    Returns the delivery summary; ``{"sent": False, "reason": ...}`` when e-mail is off.
    Raises :class:`DeliveryError` (after the task retries) when the SMTP server refuses it.
    """
    logger = get_run_logger()
    if not settings.email.enabled:
        logger.info("e-mail disabled in the configuration (email.enabled = false)")
        return {"sent": False, "dry_run": False, "reason": "email.enabled is false"}
    delivery = mail.send_report(
        settings.email,
        report["pdf"],
        report.get("html"),
        end,
        notes=notes,
        secret_loader=_load_secret,
    )
    verb = "built (dry run)" if delivery.dry_run else "sent"
    logger.info(
        "report e-mail %s to %d recipient(s): %s", verb, len(delivery.recipients), delivery.subject
    )
    return delivery.as_dict()


@task(name="publish-artifacts", cache_policy=None)
def publish_artifacts(
    settings: Settings,
    end: dt.date,
    week_days: list[dt.date],
    quality: list[dict[str, Any]],
    missing: list[dt.date],
    studies_path: str | None = None,
    report: dict[str, Any] | None = None,
    kind: str = "weekly",
    dropped: Dropped | None = None,
) -> dict[str, Any]:
    """Artifacts of a run (no patient data): per-machine week summary, data quality, what the
    rules left out (institutions, mixed cases, OTHER labels, with their values), report links."""
    import polars as pl
    from prefect.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        create_table_artifact,
    )

    from pyschedvisu_core import runs, schema

    out: dict[str, Any] = {}
    if studies_path is not None:
        studies = (
            pl.read_parquet(studies_path)
            if Path(studies_path).exists()
            else schema.empty(schema.STUDY_SCHEMA)
        )
        names = settings.machine_names()
        windows = render.service_windows(studies)
        machines = {
            key: runs.MachinePlan(
                names[key],
                list(settings.draw.machine[key].slots_per_weekday),
                settings.draw.machine[key].gap_minutes,
                render.service_window(settings, key, windows),
            )
            for key in settings.display_machines()
        }
        retrieved = (
            SeriesStore(settings.paths.data_dir).final_days(week_days[0], week_days[-1])
            if week_days
            else []
        )
        summary = runs.week_summary(studies, week_days, machines, retrieved)
        out["week"] = summary
        create_markdown_artifact(
            runs.week_markdown(end, summary, missing),
            key=f"{kind}-week-summary",
            description=f"Studies, utilisation and gaps per machine, week ending {end.isoformat()}",
        )
    create_table_artifact(
        quality or [{"day": "", "status": "no day to retrieve"}],
        key=f"{kind}-data-quality",
        description=f"Retrieval per day ({len(missing)} missing)",
    )
    out["quality_rows"] = len(quality)
    if dropped is not None:
        create_markdown_artifact(
            dropped.markdown(),
            key=f"{kind}-dropped",
            description="What the rules left out and why, with the values that did not match",
        )
        out["dropped"] = {
            "institutions": dropped.n_institutions,
            "mixed": dropped.n_mixed,
            "other": dropped.n_other,
            "days": len(dropped.days),
        }
    if report:
        for fmt in ("pdf", "html"):
            if report.get(fmt):
                path = Path(report[fmt]).resolve()
                create_link_artifact(
                    path.as_uri(),
                    link_text=path.name,
                    key=f"{kind}-report-{fmt}",
                    description=f"Report ({fmt.upper()})",
                )
                out[fmt] = str(path)
    return out
