"""The network report flow: the sites' own numbers of a week, compared per machine type.

Deployed (``pyschedvisu deploy``) on the work pool ``network.work_pool``, scheduled after the
sites' weekly runs (``network.cron``). It reads what each site's weekly run published (a table
artifact per site and week on the Prefect server: numbers only, see
:mod:`pyschedvisu.network`), writes one PDF + HTML + workbook and e-mails it as the top level's
``[email]`` says. A site without numbers for the week (its weekly run failed or has not run)
does not stop the others: the report names it, and the run ends Failed so the dashboard shows
it; retrying the run once that site's weekly run completed includes it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from prefect import flow, get_run_logger

from flows.outcome import failed, run_logged
from flows.weekly import resolve_end
from pyschedvisu.config import Network, Settings, load_network
from pyschedvisu_core.network import site_notes


def _run_name() -> str:
    from prefect.runtime import flow_run

    from flows.weekly import _scheduled_time

    end = flow_run.parameters.get("end")
    return f"network-report-{end or 'auto-' + _scheduled_time().strftime('%Y%m%d')}"


@flow(name="network-report", flow_run_name=_run_name, validate_parameters=True)
def network_report(
    end: dt.date | None = None, send_email: bool = True, config_path: str | None = None
) -> Any:
    """The network report: every site's numbers of the week ending ``end``, per machine type.

    Args:
        end: Last day of the week (a Friday). Empty: the Friday of the week before the run's
            scheduled time (in the top level's calendar.timezone).
        send_email: Send the report by e-mail (if the top level's [email] enables it).
        config_path: TOML configuration file with the [sites.<id>] tables. Empty:
            $PYSCHEDVISU_CONFIG.
    """
    loaded: dict[str, Network] = {}

    def load() -> Settings:
        loaded["network"] = load_network(config_path)
        return loaded["network"].top.settings

    return run_logged(
        "network report",
        load,
        lambda settings: _network_report(loaded["network"], end, send_email),
    )


def _network_report(net: Network, end: dt.date | None, send_email: bool) -> Any:
    """The body of :func:`network_report`, once the config is loaded."""
    from tasks.network import read_site_aggregates, render_network_report
    from tasks.notify import send_report

    logger = get_run_logger()
    settings = net.top.settings
    sites = list(net.sites)
    end = resolve_end(end, settings)
    logger.info("network report for the week ending %s: sites %s", end, ", ".join(sites))
    found = read_site_aggregates(sites, end)
    absent = [s for s in sites if s not in found]
    if not found:
        return failed(
            "network report",
            f"no site published its numbers for the week ending {end} ({', '.join(sites)}): "
            "retry this run once their weekly runs completed",
        )
    notes = site_notes(sites, found, settings.report.language)
    report = render_network_report(settings, found, sites, end, notes)
    delivery: dict[str, Any] = {"sent": False, "reason": "send_email is false"}
    if send_email:
        delivery = send_report(settings, report, end, notes)
    result = {
        "end": end.isoformat(),
        "sites": report["sites"],
        "absent": absent,
        "pdf": report["pdf"],
        "html": report["html"],
        "xlsx": report["xlsx"],
        "pages": report["pages"],
        "email": delivery,
    }
    if absent:
        return failed(
            "network report",
            f"{len(absent)} site(s) without numbers for the week ending {end} "
            f"({', '.join(absent)}); report written anyway: {report['pdf']} and "
            f"{report['html']}; retry this run once their weekly runs completed",
        )
    return result
