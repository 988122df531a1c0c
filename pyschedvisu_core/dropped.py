"""What the rules left out of the report and why, with the values that did not match.

Never silent (issue 16): a config written for another department drops everything quietly
otherwise. Four things are told, each with its top values and counts (no patient data: names
of institutions, scanner models and study descriptions only):

- studies excluded by the institution rule (the institution names; from the retrieval);
- business days where the filters removed every study, or that found none at all;
- studies whose scanner matches no ``[machines]`` entry ("mixed cases": the combinations);
- studies whose description matches no label of their machine (``OTHER``: the minified
  descriptions, per machine).

Frames and plain values in, a :class:`Dropped` out; the shell reads the store and the tables.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core.labels import OTHER, minify_description
from pyschedvisu_core.schema import Reason

#: Day statuses that are warnings (a business day is expected to hold studies).
NO_STUDIES_FOUND = "no studies found"
NO_STUDIES_KEPT = "no studies kept"
NO_STUDY_REPORTED = "no study on a configured machine"
WARNINGS = (NO_STUDIES_FOUND, NO_STUDIES_KEPT, NO_STUDY_REPORTED)


def institution_names(reasons: Iterable[str | None]) -> Counter[str]:
    """Studies per institution name, from excluded reasons ``institution_not_accepted: a, b``."""
    out: Counter[str] = Counter()
    for reason in reasons:
        if not reason:
            continue
        code, _, detail = reason.partition(":")
        if code.strip() != Reason.INSTITUTION:
            continue
        for name in detail.split(", "):
            if name.strip():
                out[name.strip()] += 1
    return out


def day_status(summary: Mapping[str, Any]) -> str:
    """``ok``, or the warning of a retrieved day (a summary of ``DayResult.summary()``)."""
    found = summary.get("studies_found")
    kept = summary.get("studies")
    if found == 0 and not kept:
        return NO_STUDIES_FOUND
    if found and not kept:
        return NO_STUDIES_KEPT
    return "ok"


def combination_text(models: str | None, stations: str | None, serials: str | None) -> str:
    """A scanner combination as shown: the models, and the identifiers when they count."""
    text = models or "(no model)"
    if stations:
        text += f" @ station {stations}"
    if serials:
        text += f" # serial {serials}"
    return text


def mixed_combinations(mixed: pl.DataFrame) -> Counter[str]:
    """Studies per scanner combination of the ``mixed cases`` table."""
    out: Counter[str] = Counter()
    names = ("models", "stations", "serials")
    if mixed.is_empty() or "models" not in mixed.columns:
        return out
    frame = (
        mixed.select(
            *(
                pl.col(c) if c in mixed.columns else pl.lit(None, dtype=pl.String).alias(c)
                for c in names
            )
        )
        .group_by(*names)
        .len()
    )
    for models, stations, serials, n in frame.iter_rows():
        out[combination_text(models, stations, serials)] += int(n)
    return out


def other_descriptions(studies: pl.DataFrame) -> dict[str, Counter[str]]:
    """Per display machine, studies labelled ``OTHER`` per minified StudyDescription."""
    rows = studies.filter(pl.col("description") == OTHER)
    if rows.is_empty():
        return {}
    frame = (
        rows.select(
            "machine",
            pl.col("study_descriptions").fill_null("").str.split(",").alias("_d"),
        )
        .with_columns(
            pl.col("_d").list.eval(minify_description(pl.element())).list.unique().alias("_d")
        )
        .explode("_d")
        .with_columns(pl.col("_d").fill_null("").replace("", "(none)"))
        .group_by("machine", "_d")
        .len()
    )
    out: dict[str, Counter[str]] = {}
    for machine, desc, n in frame.iter_rows():
        out.setdefault(machine, Counter())[desc] += int(n)
    return out


def unreported_days(
    studies: pl.DataFrame, mixed: pl.DataFrame, days: Iterable[dt.date]
) -> dict[dt.date, str]:
    """Days with studies, none of them on a configured machine (all mixed cases)."""
    wanted = set(days)
    reported = set(studies["date"].to_list()) if "date" in studies.columns else set()
    have = set(mixed["date"].to_list()) if "date" in mixed.columns else set()
    return {d: NO_STUDY_REPORTED for d in sorted((have - reported) & wanted)}


@dataclass
class Dropped:
    """What the rules left out over some days (see the module docstring)."""

    institutions: Counter[str] = field(default_factory=Counter)
    combinations: Counter[str] = field(default_factory=Counter)
    other: dict[str, Counter[str]] = field(default_factory=dict)
    days: dict[dt.date, str] = field(default_factory=dict)  # day -> warning status
    why: dict[dt.date, str] = field(default_factory=dict)  # day -> its exclusion reasons

    @property
    def n_institutions(self) -> int:
        """Studies excluded by the institution rule (a study may name several)."""
        return sum(self.institutions.values())

    @property
    def n_mixed(self) -> int:
        return sum(self.combinations.values())

    @property
    def n_other(self) -> int:
        return sum(sum(c.values()) for c in self.other.values())

    def __bool__(self) -> bool:
        return bool(self.institutions or self.combinations or self.other or self.days)

    def merge(self, other: Dropped) -> Dropped:
        days = {**self.days, **other.days}
        machines = {**self.other}
        for m, c in other.other.items():
            machines[m] = machines.get(m, Counter()) + c
        return Dropped(
            self.institutions + other.institutions,
            self.combinations + other.combinations,
            machines,
            dict(sorted(days.items())),
            {**self.why, **other.why},
        )

    def other_total(self) -> Counter[str]:
        """Studies labelled OTHER per ``machine: description``."""
        out: Counter[str] = Counter()
        for machine, counts in self.other.items():
            for desc, n in counts.items():
                out[f"{machine}: {desc}"] += n
        return out

    def lines(self, top: int = 5) -> list[str]:
        """One line per kind of loss, with its ``top`` values (CLI, logs)."""
        out = []
        if self.institutions:
            out.append(
                f"{self.n_institutions} studies excluded by institution (retrieve."
                f"accepted_institutions): {_top(self.institutions, top)}"
            )
        if self.days:
            by_status: dict[str, list[dt.date]] = {}
            for day, status in self.days.items():
                by_status.setdefault(status, []).append(day)
            for status, days in by_status.items():
                listed = _days(days, top, self.why)
                out.append(f"{len(days)} business day(s) with {status}: {listed}")
        if self.combinations:
            out.append(
                f"{self.n_mixed} studies left out as mixed cases, no [machines] entry for "
                f"their scanner: {_top(self.combinations, top)}"
            )
        if self.other:
            out.append(
                f"{self.n_other} studies labelled OTHER, no label of their machine matches "
                f"(minified descriptions): {_top(self.other_total(), top)}"
            )
        return out

    def markdown(self, top: int = 10) -> str:
        """The artifact of a run (counts and names only)."""
        if not self:
            return "# What the rules left out\n\nNothing: every study found was reported.\n"
        parts = ["# What the rules left out", ""]
        sections = [
            ("Studies excluded by institution", "institution", self.institutions),
            ("Mixed cases: no [machines] entry for the scanner", "combination", self.combinations),
            ("Labelled OTHER: no label matches", "machine: description", self.other_total()),
        ]
        for title, what, counts in sections:
            if not counts:
                continue
            parts += [f"## {title} ({sum(counts.values())})", "", f"| {what} | studies |"]
            parts.append("|---|---:|")
            parts += [f"| {_md(k)} | {v} |" for k, v in _ranked(counts)[:top]]
            if len(counts) > top:
                parts.append(f"| … {len(counts) - top} more | |")
            parts.append("")
        if self.days:
            days = list(self.days.items())
            parts += [f"## Business days with no study reported ({len(days)})", ""]
            parts += ["| day | status | main reasons |", "|---|---|---|"]
            parts += [f"| {d.isoformat()} | {s} | {self.why.get(d, '')} |" for d, s in days[-top:]]
            if len(days) > top:
                parts.append(f"| … {len(days) - top} earlier | | |")
            parts.append("")
        return "\n".join(parts)

    def notes(self, lang: str = "fr", top: int = 1) -> list[str]:
        """The report's data-quality notes: at most two short lines (printed on every page,
        under the page's own notes); the full lists are in the artifact and the CLI.

        One line for what the retrieval left out (institutions, days with no study kept), one
        for what the config does not name (scanners, descriptions), ``top`` values each.
        """
        out = []
        left: list[str] = []
        if self.institutions:
            values = _short(self.institutions, top)
            left.append(
                i18n.text("dropped_institutions", lang, n=self.n_institutions, values=values)
            )
        kept = [d for d, s in self.days.items() if s != NO_STUDIES_FOUND]
        if kept:
            left.append(i18n.text("dropped_days", lang, n=len(kept), days=_days(kept, top)))
        if left:
            out.append(i18n.text("dropped_left_out", lang, parts=" ; ".join(left)))
        unknown: list[str] = []
        if self.combinations:
            values = _short(self.combinations, top)
            unknown.append(i18n.text("dropped_mixed", lang, n=self.n_mixed, values=values))
        if self.other:
            descriptions: Counter[str] = Counter()
            for counts in self.other.values():
                descriptions.update(counts)
            values = _short(descriptions, top)
            unknown.append(i18n.text("dropped_other", lang, n=self.n_other, values=values))
        if unknown:
            out.append(i18n.text("dropped_unknown", lang, parts=" ; ".join(unknown)))
        return out


def _short(counts: Counter[str], n: int) -> str:
    """``name 12, …``: the ``n`` first values, for a note that must stay on one line."""
    ranked = _ranked(counts)
    text = ", ".join(f"{k} {v}" for k, v in ranked[:n])
    return text + (", …" if len(ranked) > n else "")


def _ranked(counts: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _top(counts: Counter[str], n: int) -> str:
    ranked = _ranked(counts)
    text = ", ".join(f"{k} ({v})" for k, v in ranked[:n])
    return text + (f", … {len(ranked) - n} more" if len(ranked) > n else "")


def _days(days: list[dt.date], n: int, why: Mapping[dt.date, str] | None = None) -> str:
    def one(d: dt.date) -> str:
        reason = (why or {}).get(d)
        return f"{d.isoformat()} ({reason})" if reason else d.isoformat()

    text = ", ".join(one(d) for d in days[:n])
    return text + (f", … {len(days) - n} more" if len(days) > n else "")


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def from_manifests(manifests: Mapping[dt.date, Mapping[str, Any]]) -> Dropped:
    """Institutions excluded and day warnings, from the day manifests of the series store."""
    names: Counter[str] = Counter()
    days: dict[dt.date, str] = {}
    why: dict[dt.date, str] = {}
    for day, man in sorted(manifests.items()):
        dropped = man.get("dropped") or {}
        names.update({str(k): int(v) for k, v in (dropped.get("institutions") or {}).items()})
        status = day_status(man)
        if status != "ok":
            days[day] = status
            reasons = Counter({str(k): int(v) for k, v in (man.get("reasons") or {}).items()})
            if reasons:  # the main reasons (study and series codes), most first
                why[day] = ", ".join(f"{k} {v}" for k, v in _ranked(reasons)[:3])
    return Dropped(institutions=names, days=days, why=why)


def from_summaries(summaries: Iterable[Mapping[str, Any]]) -> Dropped:
    """The same from the per-day summaries of a run (``DayResult.summary()``)."""
    manifests = {
        dt.date.fromisoformat(str(s["day"])): s for s in summaries if s.get("day") is not None
    }
    return from_manifests(manifests)


def from_tables(
    studies: pl.DataFrame, mixed: pl.DataFrame, days: Iterable[dt.date] | None = None
) -> Dropped:
    """Mixed cases, OTHER labels and days with no study on a configured machine (``days``:
    only those; None: every day of the tables)."""
    if days is not None:
        wanted = sorted(set(days))
        studies = studies.filter(pl.col("date").is_in(wanted))
        mixed = mixed.filter(pl.col("date").is_in(wanted))
    scope = wanted if days is not None else sorted(set(mixed["date"].to_list()))
    return Dropped(
        combinations=mixed_combinations(mixed),
        other=other_descriptions(studies),
        days=unreported_days(studies, mixed, scope),
    )


__all__ = [
    "NO_STUDIES_FOUND",
    "NO_STUDIES_KEPT",
    "NO_STUDY_REPORTED",
    "WARNINGS",
    "Dropped",
    "combination_text",
    "day_status",
    "from_manifests",
    "from_summaries",
    "from_tables",
    "institution_names",
    "mixed_combinations",
    "other_descriptions",
    "unreported_days",
]
