"""Shared pytest set-up. Fixture plugins live in ``tests/fixtures/`` (one module per real part)."""

from __future__ import annotations

import importlib.util
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Each plugin module is owned by the part it starts (synthetic department, demo PACS,
# Orthanc, SMTP, PostgreSQL, Prefect server); only modules that exist are loaded.
_PLUGINS = ["synth", "pacs", "orthanc", "smtp", "postgres", "prefect_server"]
pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in _PLUGINS
    if importlib.util.find_spec(f"tests.fixtures.{name}") is not None
]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (bound by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


#: The tests' pseudonymisation key: public, but as strong as a real one must be (64 hex
#: characters, 256 bits by privacy.key_entropy_bits; a short word is refused).
TEST_KEY = "96e42a54e3a1015561e9647282a03ab0f25610a35f820c2df03e3e0495f2d3e1"
#: Where the tests' commands and flows write their log files (never the checkout's var/logs).
LOG_DIR_ENV = "PYSCHEDVISU_PATHS__LOG_DIR"


@pytest.fixture(scope="session", autouse=True)
def _session_log_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Log files of the session's runs in a temporary folder, module fixtures included."""
    path = tmp_path_factory.mktemp("logs")
    previous = os.environ.get(LOG_DIR_ENV)
    os.environ[LOG_DIR_ENV] = str(path)
    yield path
    if previous is None:
        os.environ.pop(LOG_DIR_ENV, None)
    else:
        os.environ[LOG_DIR_ENV] = previous


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, _session_log_dir: Path) -> None:
    """No test reads the developer's config or secrets by accident."""
    for key in list(os.environ):
        if key.startswith("PYSCHEDVISU_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PYSCHEDVISU_PSEUDONYM_KEY", TEST_KEY)
    monkeypatch.setenv(LOG_DIR_ENV, str(_session_log_dir))


# Property tests check invariants, not speed: no per-example deadline, so a loaded CI machine
# cannot turn a slow example into a failure.
settings.register_profile(
    "pyschedvisu", deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("pyschedvisu")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Shut Prefect and the shared PACS clients down while pytest's streams are still open.

    Prefect stops its temporary API servers from ``atexit``, after pytest has closed the
    captured streams its console log handler writes to: a "Logging error" traceback at the
    end of every run. The shared PACS clients (closed at exit too, logging their counters)
    likewise. Order: clients, then the queued logs sent, then the servers stopped.
    """
    from pyschedvisu.retrieval import close_clients

    close_clients()
    try:
        from prefect.logging.handlers import APILogWorker
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:
        return
    servers = list(getattr(SubprocessASGIServer, "_instances", {}).values())
    if servers:
        APILogWorker.drain_all(timeout=10)
    for server in servers:
        server.stop()
