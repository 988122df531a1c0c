"""How a flow run starts and ends: its log file, and a known failure said once.

A flow body runs inside :func:`run_logged`: the run's settings are loaded, its log file is
opened (``<log_dir>/<YYYY-MM-DD>/<flow>_<HHMMSS>.log``, or the CLI command's file when a
command runs the flow), and a failure we know (our :class:`PySchedVisuError`: a config,
store or PACS problem) ends the run Failed with its reason logged once at ERROR, without a
traceback. Missing days end it Failed the same way (:func:`failed_state`). Prefect's own
report of those Failed runs is made quiet by :func:`pyschedvisu.runlog.quiet_known_failures`;
any other exception is a bug, raised with its traceback as Prefect logs it.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.states import Failed, State

from pyschedvisu import runlog
from pyschedvisu.config import Settings
from pyschedvisu_core.errors import PySchedVisuError

R = TypeVar("R")


def failed(kind: str, reason: str) -> State[Any]:
    """The Failed state of a run that failed for a known ``reason``, logged once at ERROR."""
    runlog.quiet_known_failures()  # Prefect's re-raise of this state says nothing more
    message = f"{kind}: {reason}"
    get_run_logger().error("%s", message)
    return Failed(message=message)


def failed_state(kind: str, missing: list[dt.date], result: dict[str, Any]) -> State[Any]:
    """The final state of a run with missing days: Failed, naming them (and the report, if any)."""
    listed = ", ".join(d.isoformat() for d in missing)
    written = (
        f"; report written anyway: {result['pdf']} and {result['html']}"
        if result.get("pdf")
        else ""
    )
    return failed(
        kind,
        f"{len(missing)} day(s) could not be retrieved ({listed}){written}; "
        "retry this run once the PACS answers",
    )


def _flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    value = flow_run.id
    return str(value) if value else None


def run_logged(
    kind: str, load: Callable[[], Settings], body: Callable[[Settings], R]
) -> R | State[Any]:
    """``body(load())`` with the run's log file open; a known failure ends the run Failed.

    ``kind`` names the run in messages and its log file (``weekly-report``, ``backfill``).
    """
    runlog.quiet_known_failures()
    logger = get_run_logger()
    try:
        settings = load()
    except PySchedVisuError as exc:
        return failed(kind, str(exc).replace("\n", "; "))
    ours = logging.getLogger("pyschedvisu")
    if ours.level == logging.NOTSET:  # a worker's run: logging.level (a CLI command set it)
        ours.setLevel(settings.logging.level)
    command = runlog.command_log()
    if command is not None:
        command.reattach()  # importing Prefect reset the root logger's handlers
        own = None
    else:
        own = runlog.open_run_log(
            settings.paths.log_dir,
            kind,
            settings.paths.log_retention_days,
            settings.logging.level,
            flow_run_id=_flow_run_id(),
        )
    log_file = own.path if own is not None else (command.path if command is not None else None)
    if log_file is not None:
        logger.info("log file: %s", log_file)
    try:
        return body(settings)
    except PySchedVisuError as exc:
        return failed(kind, str(exc).replace("\n", "; "))
    except Exception:
        if own is not None:  # Prefect logs it with its traceback once this file is closed
            own.note(f"{kind} failed unexpectedly", logging.ERROR, "flows", sys.exc_info())
        raise
    finally:
        if own is not None:
            own.close()
