"""What ``pacs check`` asks beyond a retrieval: a sample to probe with, day-wide queries, and
why a PACS does not let us in (:mod:`pyschedvisu_core.diagnosis`)."""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Sequence

from pyschedvisu.config import Settings
from pyschedvisu.retrieval.capabilities import record_for
from pyschedvisu.retrieval.planner import DayPlanner
from pyschedvisu_core import diagnosis
from pyschedvisu_core import queries as q
from pyschedvisu_core.dayframes import int_value
from pyschedvisu_core.dicomtime import parse_da
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsError,
    PacsTimeoutError,
    PacsUnreachableError,
)
from pyschedvisu_core.transport import OpCounters, PacsClient


def find_sample(
    client: PacsClient, start: dt.date, end: dt.date, modalities: Sequence[str] = ("PT", "NM")
) -> tuple[str, str, dt.date] | None:
    """A (study, series, day) of ``start``..``end`` to probe the PACS with, CT/PT preferred."""
    span = q.da(start) if start == end else f"{q.da(start)}-{q.da(end)}"
    for modality in modalities:
        query = q.study_query(start, modality)
        query.StudyDate = span
        for study in client.find("STUDY", query):
            study_uid = text_value(study, "StudyInstanceUID")
            day = parse_da(text_value(study, "StudyDate")) or start
            if not study_uid:
                continue
            series_q = q.series_query(start, study_uid, None)
            series_q.StudyDate = ""
            series = client.find("SERIES", series_q)
            ranked = sorted(
                (s for s in series if text_value(s, "SeriesInstanceUID")),
                key=lambda s: (
                    text_value(s, "Modality") not in ("CT", "PT"),
                    -(int_value(s, "NumberOfSeriesRelatedInstances") or 0),
                ),
            )
            if ranked:
                return study_uid, str(text_value(ranked[0], "SeriesInstanceUID")), day
    return None


def check_day_wide(settings: Settings, client: PacsClient, day: dt.date) -> tuple[bool | None, str]:
    """Whether the PACS answers day-wide (relational) SERIES queries right on ``day``.

    For ``pacs check``: the same query and checks as a retrieval, whatever was remembered;
    (None, why) when the day has no study to ask about. The caller remembers the answer.
    """
    plan = DayPlanner(day, settings, client, record_for(settings))
    try:
        studies = plan.studies()
        if studies.height == 0:
            return None, f"no study on {day}"
        wanted = [(uid, None, None) for uid in studies.get_column("study_uid").to_list()]
        rows, why = plan.day_wide_series_rows(wanted)
    except PacsError as exc:  # a timeout says nothing of the query style: the next run tries
        return None, f"not tested: {exc}"
    if rows is None:
        return False, f"{why}: one SERIES query per study"
    return True, f"{len(wanted)} studies answered in one SERIES query"


def tcp_probe(host: str, port: int, timeout_s: float) -> str:
    """What a plain TCP connection to the PACS gets: ok, refused, timeout, unresolved, or why."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return "ok"
    except socket.gaierror:
        return "unresolved"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except OSError as exc:
        return exc.strerror or str(exc)


def diagnose(
    settings: Settings, exc: PacsError, counters: OpCounters, request: str
) -> diagnosis.Diagnosis | None:
    """Why ``exc`` (the first failure talking to the PACS) happened, when it is one of the
    three ways a PACS keeps us out; None for anything else (throttling, a refused query...).

    ``counters``: what the client did so far (an answer ever received rules "dropped" out);
    ``request``: what failed (C-ECHO, C-FIND...).
    """
    p = settings.pacs
    move_port = p.move_port
    if isinstance(exc, AssociationRejectedError):
        return diagnosis.rejected(
            exc.result,
            exc.source,
            exc.reason,
            called_ae=p.called_ae,
            calling_ae=p.calling_ae,
            move_port=move_port,
        )
    if isinstance(exc, PacsUnreachableError):
        return diagnosis.unreachable(p.host, p.port, tcp_probe(p.host, p.port, p.connect_timeout_s))
    if isinstance(exc, PacsTimeoutError) and counters.responses == 0:
        return diagnosis.dropped(
            request, calling_ae=p.calling_ae, move_port=move_port, echo_ok=counters.echo > 0
        )
    return None


def failure_hint(
    settings: Settings, counters: OpCounters, failures: Sequence[str]
) -> diagnosis.Diagnosis | None:
    """The diagnosis of a run that failed without the exception at hand (``retrieve``).

    From what the client did: queries sent, none ever answered, timeouts: accepted then
    dropped; no request sent at all: the association itself failed (a rejection's message
    carries its own hint; otherwise a TCP probe tells a closed port from a dropped request).
    """
    if not failures:
        return None
    p = settings.pacs
    if counters.find and not counters.responses and counters.timeouts:
        return diagnosis.dropped(
            "C-FIND", calling_ae=p.calling_ae, move_port=p.move_port, echo_ok=counters.echo > 0
        )
    if counters.dimse_ops == 0 and not any("Hint:" in f for f in failures):
        return diagnosis.unreachable(p.host, p.port, tcp_probe(p.host, p.port, p.connect_timeout_s))
    return None
