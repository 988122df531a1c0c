"""Plausibility of a day's times beyond one series: studies no machine runs for that long.

:func:`pyschedvisu_core.series.series_timing` refuses the times of one series that cannot be
believed. A series whose own times are fine may still make its study implausible: a wrong
clock placing it hours away from the rest with no pause long enough to start another take, an
NM acquisition of eight hours on a camera booked for six. :func:`implausible_studies` finds
them (docs/domain.md §2.3): the series of a study are chained as takes are (DOMAIN §3.3: a pause
longer than the retake split starts a new one; the cut by another patient's series is left to
the extraction, so a chain is never shorter than the takes it holds) and a chain longer than
its machine's maximum fails all its series, with :data:`Reason.IMPLAUSIBLE_STUDY`. The report's
time axis is then never stretched by one bad value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.schema import Reason
from pyschedvisu_core.studies import NO_CT_SUFFIX


def _key(models: Iterable[str]) -> str:
    return ",".join(sorted({minify_machine(m) for m in models}))


@dataclass(frozen=True)
class StudyLimits:
    """The longest study believed per machine (plain values from the configuration)."""

    #: for machines without their own maximum, and studies of no known machine
    default: dt.timedelta
    #: a pause longer than this between two series of one study starts another take
    pause: dt.timedelta
    #: display machine -> its maximum (the names are compared minified)
    by_machine: Mapping[str, dt.timedelta] = field(default_factory=dict)
    #: ``[machines]``: machine group -> model names (DOMAIN §3.2)
    machines: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def for_models(self, models: Iterable[str]) -> tuple[str | None, dt.timedelta]:
        """(display machine, its maximum) of a study made with ``models``."""
        key = _key(models)
        group = next((g for g, wanted in self.machines.items() if _key(wanted) == key), None)
        if group is None:
            return None, self.default
        display = group.removesuffix(NO_CT_SUFFIX)
        mine = {minify_machine(k): v for k, v in self.by_machine.items()}
        return display, mine.get(minify_machine(display), self.default)


def _hours(span: dt.timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def implausible_studies(rows: Sequence[Mapping[str, Any]], limits: StudyLimits) -> dict[str, str]:
    """``series_uid -> failed reason`` of the series whose study chain is too long.

    ``rows``: the day's timed series (``study_uid``, ``series_uid``, ``machine`` = model name,
    ``start``, ``end``), failed ones left out.
    """
    by_study: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row["start"] is not None and row["end"] is not None:
            by_study.setdefault(str(row["study_uid"]), []).append(row)
    out: dict[str, str] = {}
    for series in by_study.values():
        machine, limit = limits.for_models(str(r["machine"]) for r in series if r["machine"])
        chains: list[list[Mapping[str, Any]]] = []
        chain_end: dt.datetime | None = None
        for row in sorted(series, key=lambda r: (r["start"], r["end"])):
            start, end = min(row["start"], row["end"]), max(row["start"], row["end"])
            if chain_end is None or start - chain_end > limits.pause:
                chains.append([])
                chain_end = end
            chains[-1].append(row)
            chain_end = max(chain_end, end)
        for chain in chains:
            first = min(min(r["start"], r["end"]) for r in chain)
            last = max(max(r["start"], r["end"]) for r in chain)
            if last - first <= limit:
                continue
            why = (
                f"{Reason.IMPLAUSIBLE_STUDY}: its study runs {_hours(last - first)} "
                f"({first:%H:%M}-{last:%H:%M}, {len(chain)} series), more than "
                f"{_hours(limit)}{f' on {machine}' if machine else ''}"
            )
            out.update({str(r["series_uid"]): why for r in chain})
    return out


__all__ = ["StudyLimits", "implausible_studies"]
