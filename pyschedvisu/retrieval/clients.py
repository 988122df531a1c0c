"""The clients the retrieval talks through: one per PACS per process, closed at exit.

The configuration reaches the adapter through :func:`dimse_config`, field by field: a setting
renamed on one side is a type error here, never a value dropped silently.
"""

from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import replace

from pyschedvisu.adapters.dimse import DimseClient, DimseConfig
from pyschedvisu.config import PacsSettings, Settings
from pyschedvisu.retrieval.capabilities import pacs_key, record_for
from pyschedvisu_core.transport import PacsClient

log = logging.getLogger("pyschedvisu.retrieval")


def dimse_config(pacs: PacsSettings) -> DimseConfig:
    """The adapter's connection settings from the ``[pacs]`` section."""
    return DimseConfig(
        host=pacs.host,
        port=pacs.port,
        called_ae=pacs.called_ae,
        calling_ae=pacs.calling_ae,
        move_ae=pacs.move_ae,
        move_port=pacs.move_port,
        move_bind=pacs.move_bind,
        connect_timeout_s=pacs.connect_timeout_s,
        acse_timeout_s=pacs.acse_timeout_s,
        dimse_timeout_s=pacs.dimse_timeout_s,
        network_timeout_s=pacs.network_timeout_s,
        move_timeout_s=pacs.move_timeout_s,
        idle_release_s=pacs.idle_release_s,
        max_concurrent=pacs.max_concurrent,
        max_ops_per_s=pacs.max_ops_per_s,
        op_retries=pacs.op_retries,
        backoff_base_s=pacs.backoff_base_s,
        backoff_max_s=pacs.backoff_max_s,
        backoff_jitter_s=pacs.backoff_jitter_s,
        deflate_answers=pacs.deflate_answers,
        breaker_failures=pacs.breaker_failures,
        breaker_cooldown_s=pacs.breaker_cooldown_s,
    )


def _started(client: PacsClient, settings: Settings) -> PacsClient:
    """``client``, starting from the pace kept for its PACS (see ``PacsRecord.pace``)."""
    pace = record_for(settings).pace()
    if pace is not None:
        client.resume_pace(pace)
        log.info("PACS %s: starting at the pace kept last time: %s", pacs_key(settings), pace)
    return client


def worklist_config(settings: Settings) -> DimseConfig:
    """The worklist client's connection settings: ``[worklist]`` host, port and AE titles,
    timeouts, pacing and retries of ``[pacs]``; no C-MOVE (nothing is retrieved)."""
    wl = settings.worklist
    return replace(
        dimse_config(settings.pacs),
        host=wl.host,
        port=wl.port,
        called_ae=wl.called_ae,
        calling_ae=wl.calling_ae,
        move_ae="",
        move_port=0,
        section="worklist",
    )


def worklist_client(settings: Settings) -> PacsClient:
    """A new client for the Modality Worklist of ``settings.worklist`` (the caller closes it).

    A client of its own even when the worklist is the PACS: its snapshots run on their own
    schedule, in their own process.
    """
    return DimseClient(worklist_config(settings))


def make_client(settings: Settings) -> PacsClient:
    """A new client for ``settings.pacs`` (the caller closes it)."""
    return _started(DimseClient(dimse_config(settings.pacs)), settings)


_clients: dict[DimseConfig, PacsClient] = {}
_clients_lock = threading.Lock()


def shared_client(settings: Settings) -> PacsClient:
    """One client per PACS config per process (associations reused across days and tasks)."""
    key = dimse_config(settings.pacs)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _started(DimseClient(key), settings)
            _clients[key] = client
        return client


@atexit.register
def close_clients() -> None:
    """Close every shared client (associations released, Storage SCP stopped)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
