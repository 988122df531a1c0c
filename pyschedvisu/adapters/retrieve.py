"""C-GET / C-MOVE of instance headers, over a :class:`~pyschedvisu.adapters.dimse.DimseClient`.

The identifiers are :mod:`pyschedvisu_core.queries`'s; the datasets C-STORE'd back are
collected by :mod:`.receiving` (our Storage SCP for C-MOVE, started once per client by
``DimseClient._ensure_scp``). Each retrieve is one operation through the client's ``_call``:
its pacing, circuit breaker, retries and association pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydicom.dataset import Dataset
from pynetdicom.association import Association

from pyschedvisu.adapters.receiving import Collector
from pyschedvisu_core import queries
from pyschedvisu_core.transport import Method

if TYPE_CHECKING:
    from pyschedvisu.adapters.dimse import DimseClient


def fetch_headers(
    client: DimseClient,
    study_uid: str,
    series_uid: str,
    sop_instance_uids: Sequence[str] | None,
    method: Method,
) -> list[Dataset]:
    """Headers of the listed instances (None = whole series) by C-GET or C-MOVE."""
    if method == "c-get":
        return _retrieve(client, "get", study_uid, series_uid, sop_instance_uids)
    if method == "c-move":
        client._ensure_scp()
        return _retrieve(client, "move", study_uid, series_uid, sop_instance_uids)
    raise ValueError(f"fetch_headers cannot use {method!r}")


def fetch_headers_many(
    client: DimseClient, wanted: Sequence[tuple[str, str, Sequence[str]]], method: Method
) -> dict[str, list[Dataset]]:
    """Headers of listed instances of several series in one C-GET / C-MOVE.

    ``wanted`` holds (study, series, SOP Instance UIDs). Relational-style (UID lists
    above the IMAGE level): a strictly hierarchical PACS refuses it
    (``PacsOperationError``). Returns what arrived, by series; the caller checks it.
    """
    kind = _retrieve_kind(client, method)
    ident = queries.retrieve_many_identifier(wanted)
    cols = [Collector(series, set(sops)) for _, series, sops in wanted]
    got = _retrieve_into(client, kind, ident, cols, strict=False, what=f"{len(cols)} series")
    return {c.series_uid: list(c.got.values()) for c in got if c.got}


def fetch_whole_series(
    client: DimseClient, study_uid: str, series_uids: Sequence[str], method: Method
) -> dict[str, list[Dataset]]:
    """Every instance of several series of one study in one C-GET / C-MOVE.

    A SERIES-level retrieve with a UID list, which hierarchical PACS accept too
    (PS3.4 C.4.2.2.1). Returns what arrived, by series; the caller checks the counts.
    """
    kind = _retrieve_kind(client, method)
    ident = queries.series_retrieve_identifier(study_uid, series_uids)
    cols = [Collector(series, None) for series in dict.fromkeys(series_uids)]
    what = f"{len(cols)} series of study {study_uid}"
    got = _retrieve_into(client, kind, ident, cols, strict=False, what=what)
    return {c.series_uid: list(c.got.values()) for c in got if c.got}


def _retrieve_kind(client: DimseClient, method: Method) -> str:
    """ "get" or "move" for ``method`` (our Storage SCP started for C-MOVE)."""
    if method not in ("c-get", "c-move"):
        raise ValueError(f"cannot retrieve files with {method!r}")
    if method == "c-move":
        client._ensure_scp()
        return "move"
    return "get"


def _retrieve(
    client: DimseClient, kind: str, study_uid: str, series_uid: str, sop_uids: Sequence[str] | None
) -> list[Dataset]:
    ident = queries.retrieve_identifier(study_uid, series_uid, sop_uids)
    col = Collector(series_uid, set(sop_uids) if sop_uids else None)
    (done,) = _retrieve_into(client, kind, ident, [col], strict=True, what=series_uid)
    return list(done.got.values())


def _retrieve_into(
    client: DimseClient,
    kind: str,
    ident: Dataset,
    template: list[Collector],
    *,
    strict: bool,
    what: str,
) -> list[Collector]:
    name = f"C-{kind.upper()}"

    c = client.config

    def op(assoc: Association) -> list[Collector]:
        with client._receiver.expecting(template) as cols:
            return client._receiver.retrieve(
                assoc,
                kind,
                ident,
                cols,
                label=c.label,
                move_ae=c.move_ae or c.calling_ae,
                move_port=client.move_port_bound or c.move_port,
                wait_s=max(c.dimse_timeout_s, c.move_timeout_s),
                strict=strict,
                what=what,
            )

    return client._call(f"{name} {what}", op)


__all__ = ["fetch_headers", "fetch_headers_many", "fetch_whole_series"]
