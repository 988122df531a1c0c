"""What ``pacs check`` asks beyond a retrieval: a sample to probe with, and day-wide queries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyschedvisu.config import Settings
from pyschedvisu.retrieval.capabilities import record_for
from pyschedvisu.retrieval.planner import DayPlanner
from pyschedvisu_core import queries as q
from pyschedvisu_core.dayframes import int_value
from pyschedvisu_core.dicomtime import parse_da
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import PacsError
from pyschedvisu_core.transport import PacsClient


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
