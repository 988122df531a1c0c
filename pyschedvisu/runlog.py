"""Log files of runs, and how a known failure is logged: once, in one line, no traceback.

Each CLI command run and each flow run writes its log to
``<paths.log_dir>/<YYYY-MM-DD>/<name>_<HHMMSS>.log``: INFO and above (patient data never
appear at INFO or above), or the configured level when it is higher. Dated folders older
than ``paths.log_retention_days`` days are removed when a run opens its log. A flow run
inside a CLI command (``pyschedvisu run weekly``) logs into the command's file.

A *known* failure is one of our own errors (:class:`PySchedVisuError`: the PACS, the store,
the config...) or a Failed state a flow returned on purpose (missing days). Prefect logs
both with a traceback that says nothing the message does not; :class:`KnownFailureFilter`
takes those tracebacks out. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from pyschedvisu_core.errors import PySchedVisuError

log = logging.getLogger("pyschedvisu.runlog")

_DAY_FOLDER = re.compile(r"\d{4}-\d{2}-\d{2}")
#: The one run log open in this process's CLI command, if any (flows then log into it).
_command_log: RunLog | None = None


def log_file_path(log_dir: Path, name: str, now: dt.datetime) -> Path:
    """``<log_dir>/<YYYY-MM-DD>/<name>_<HHMMSS>.log`` (``-2``, ``-3``… for the same second)."""
    folder = Path(log_dir) / now.strftime("%Y-%m-%d")
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-') or 'run'}_{now:%H%M%S}"
    path, n = folder / f"{stem}.log", 2
    while path.exists():
        path, n = folder / f"{stem}-{n}.log", n + 1
    return path


def prune_log_folders(log_dir: Path, retention_days: int, today: dt.date) -> list[Path]:
    """Remove the dated folders of ``log_dir`` older than ``retention_days`` (0: none)."""
    if retention_days <= 0 or not Path(log_dir).is_dir():
        return []
    cutoff = today - dt.timedelta(days=retention_days)
    removed = []
    for child in sorted(Path(log_dir).iterdir()):
        if not (child.is_dir() and _DAY_FOLDER.fullmatch(child.name)):
            continue  # not ours: left alone
        try:
            day = dt.date.fromisoformat(child.name)
        except ValueError:
            continue
        if day < cutoff:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child)
    return removed


class RunLogFormatter(logging.Formatter):
    """``time LEVEL logger [task or flow run]: message`` (+ traceback of the unexpected)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        run = getattr(record, "task_run_name", None) or getattr(record, "flow_run_name", None)
        if not run:
            return super().format(record)
        named = logging.makeLogRecord(record.__dict__)
        named.name = f"{record.name} [{run}]"
        return super().format(named)


def _context_flow_run_id() -> str | None:
    """The flow run the calling thread works for, if any."""
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return None
    task = TaskRunContext.get()
    if task is not None and task.task_run.flow_run_id is not None:
        return str(task.task_run.flow_run_id)
    flow = FlowRunContext.get()
    if flow is not None and flow.flow_run is not None:
        return str(flow.flow_run.id)
    return None


class _OneFlowRun(logging.Filter):
    """Records of one flow run only, where a record says (or its thread knows) which."""

    def __init__(self, flow_run_id: str) -> None:
        super().__init__()
        self.flow_run_id = flow_run_id

    def filter(self, record: logging.LogRecord) -> bool:
        found = getattr(record, "flow_run_id", None) or _context_flow_run_id()
        return found is None or str(found) == self.flow_run_id


class RunLog:
    """A run's log file, open while the run lasts: a handler on the root logger.

    Use as a context manager; :func:`open_run_log` makes one.
    """

    def __init__(self, path: Path, level: int, flow_run_id: str | None = None) -> None:
        self.path = path
        self.handler = logging.FileHandler(path, encoding="utf-8")
        self.handler.setLevel(level)
        self.handler.setFormatter(RunLogFormatter())
        if flow_run_id is not None:
            self.handler.addFilter(_OneFlowRun(flow_run_id))
        logging.getLogger().addHandler(self.handler)

    def note(
        self,
        message: str,
        level: int = logging.INFO,
        name: str = "pyschedvisu",
        exc_info: Any = None,
    ) -> None:
        """Write a record to this file only (the terminal has it already, or needs it not)."""
        self.handler.handle(logging.LogRecord(name, level, __file__, 0, message, None, exc_info))

    def reattach(self) -> None:
        """Put the handler back on the root logger, if a logging set-up took it off."""
        root = logging.getLogger()
        if self.handler not in root.handlers:
            root.addHandler(self.handler)

    def close(self) -> None:
        global _command_log
        logging.getLogger().removeHandler(self.handler)
        self.handler.close()
        if _command_log is self:
            _command_log = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_run_log(
    log_dir: Path,
    name: str,
    retention_days: int,
    level: str | int = logging.INFO,
    *,
    flow_run_id: str | None = None,
    now: dt.datetime | None = None,
) -> RunLog | None:
    """Open ``<log_dir>/<date>/<name>_<time>.log`` after removing the folders past retention.

    INFO and above, or ``level`` when higher (DEBUG is never written: it may hold patient
    data). None, with a warning, when the file cannot be written: a run does not fail
    for its log. ``flow_run_id``: a flow run's log, records of other flow runs left out.
    """
    now = now or dt.datetime.now()
    numeric = logging.getLevelName(level) if isinstance(level, str) else level
    numeric = max(logging.INFO, numeric if isinstance(numeric, int) else logging.INFO)
    try:
        removed = prune_log_folders(Path(log_dir), retention_days, now.date())
        for attempt in range(5):  # another run may take the same name in the same second
            path = log_file_path(Path(log_dir), name, now)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                path.open("x", encoding="utf-8").close()
                break
            except FileExistsError:
                if attempt == 4:
                    raise
        run_log = RunLog(path, numeric, flow_run_id)
    except OSError as exc:
        log.warning("no log file for this run: %s: %s", log_dir, exc.strerror or exc)
        return None
    if removed:
        log.info(
            "removed %d log folder(s) older than %d day(s) from %s",
            len(removed),
            retention_days,
            log_dir,
        )
    return run_log


def open_command_log(settings: Any, name: str) -> RunLog | None:
    """The log file of this process's CLI command (flows run by it log into it too)."""
    global _command_log
    if _command_log is not None:
        return _command_log
    _command_log = open_run_log(
        settings.paths.log_dir,
        name,
        settings.paths.log_retention_days,
        settings.logging.level,
    )
    return _command_log


def command_log() -> RunLog | None:
    """The CLI command's log file, when one is open in this process."""
    return _command_log


# -- known failures ----------------------------------------------------------------------

#: Prefect's loggers that report how runs end (the flow, its tasks, the engine process).
PREFECT_RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs", "prefect.engine")


def is_known_failure(exc: BaseException | None) -> bool:
    """One of our errors, or Prefect re-raising a Failed state a flow returned on purpose."""
    if isinstance(exc, PySchedVisuError):
        return True
    try:
        from prefect.exceptions import FailedRun
    except ImportError:  # pragma: no cover - Prefect is a dependency
        return False
    return isinstance(exc, FailedRun)


class KnownFailureFilter(logging.Filter):
    """On Prefect's run loggers: a known failure is one line without traceback.

    - ``FailedRun`` (the engine raising the Failed state a flow *returned*, the way Prefect
      ends a flow run that failed on purpose): dropped, the flow logged why at ERROR;
    - one of our errors: the traceback is taken out; in a task it is a WARNING, and so is
      that task's "Finished in state Failed" (the flow goes on, then says at ERROR what the
      failure means for the run);
    - anything else: untouched, traceback included.
    """

    #: Task runs seen failing with one of our errors (bounded: oldest forgotten first).
    MAX_REMEMBERED = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._known_task_runs: dict[str, None] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        task_run = str(getattr(record, "task_run_id", "") or "")
        if exc is None:
            if task_run in self._known_task_runs and record.levelno > logging.WARNING:
                _as_warning(record)  # its "Finished in state Failed(...)"
            return True
        if not is_known_failure(exc):
            return True
        if not isinstance(exc, PySchedVisuError):
            return False  # FailedRun: the reason is logged once already
        record.exc_info = None
        record.exc_text = None
        if record.name.startswith("prefect.task_runs"):
            if task_run:
                with self._lock:
                    self._known_task_runs[task_run] = None
                    while len(self._known_task_runs) > self.MAX_REMEMBERED:
                        del self._known_task_runs[next(iter(self._known_task_runs))]
            if record.levelno > logging.WARNING:
                _as_warning(record)
        return True


def _as_warning(record: logging.LogRecord) -> None:
    record.levelno = logging.WARNING
    record.levelname = logging.getLevelName(logging.WARNING)


def quiet_known_failures() -> None:
    """Install :class:`KnownFailureFilter` on Prefect's run loggers (once per process)."""
    for name in PREFECT_RUN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, KnownFailureFilter) for f in logger.filters):
            logger.addFilter(KnownFailureFilter())
