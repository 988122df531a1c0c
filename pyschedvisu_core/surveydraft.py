"""A department's config drafted from what ``discover`` surveyed: frames in, plain values out.

From the frames of :mod:`pyschedvisu_core.survey` (the STUDY answers and the series of the
surveyed days, each with the reason a filter left it out): institutions by their share of the
studies, machine groups named from the models (identical scanners told apart by StationName
or DeviceSerialNumber, ``_NoCT`` variants recognised), slots from what was seen, descriptions
as suggestions for labels. The shell (:mod:`pyschedvisu.config_draft`) writes it as TOML.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import polars as pl

from pyschedvisu_core.labels import minify_machine, minify_machine_expr
from pyschedvisu_core.machines import MODELS_KEY, SERIALS_KEY, STATIONS_KEY, MachineValue
from pyschedvisu_core.series import normalise_institution
from pyschedvisu_core.survey import (
    NO_CT,
    accepted_studies,
    descriptions_table,
    institutions,
    kept,
    study_groups,
    study_scanners,
)

#: A machine unit must hold this share of the studies to be drafted as a scanner.
MIN_MACHINE_SHARE = 0.02
#: An institution name must be on this share of the studies to be drafted as ours.
MIN_INSTITUTION_SHARE = 0.03
#: Two StationNames (serials) seen together in this share of their studies are one scanner.
LINK_SHARE = 0.5
MIXED = "mixed"


@dataclass(frozen=True)
class Suggestion:
    """A label suggested for one minified study description (commented in the draft)."""

    label: str
    pattern: str
    studies: int
    description: str
    first: Any
    last: Any


@dataclass(frozen=True)
class DraftMachine:
    """One drafted ``[machines]`` entry and what it was drafted from."""

    group: str
    value: MachineValue
    names: str  # raw model names
    identifiers: str  # the StationName / serial numbers it names, as written ("" none)
    studies: int
    first: Any
    last: Any


@dataclass
class Draft:
    """A config draft for the surveyed department (plain values; the shell writes TOML)."""

    accepted: list[str]  # normalised names, "mixed" last
    institutions: list[tuple[str, str, int, float, bool]]  # raw, normalised, studies, share, ours
    machines: list[DraftMachine] = field(default_factory=list)
    left_out: list[tuple[str, str, int, str]] = field(default_factory=list)  # models, names, n, why
    slots: dict[str, list[int]] = field(default_factory=dict)  # display key -> Mon..Fri
    gap_minutes: dict[str, int] = field(default_factory=dict)
    suggestions: dict[str, list[Suggestion]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # display key -> display name

    def machines_table(self) -> dict[str, MachineValue]:
        return {m.group: m.value for m in self.machines}


def _draft_institutions(
    series: pl.DataFrame, min_share: float
) -> tuple[list[str], list[tuple[str, str, int, float, bool]]]:
    """(accepted names, rows ``raw, normalised, studies, share, ours``).

    The share is the normalised name's (every spelling of it): "Médecine Nucléaire" and
    "Medecine Nucleaire" are one name for the rule, and so for the draft.
    """
    rows = kept(series).select("study_uid", "institution")
    total = rows["study_uid"].n_unique()
    raw = rows["institution"].drop_nulls().unique().to_list()
    norm = {r: normalise_institution(r) for r in raw}
    per_name = (
        rows.with_columns(
            pl.col("institution").replace_strict(norm, default=None, return_dtype=pl.String)
        )
        .drop_nulls("institution")
        .group_by("institution")
        .agg(pl.col("study_uid").n_unique().alias("n"))
    )
    studies_of = dict(per_name.iter_rows())
    out: list[tuple[str, str, int, float, bool]] = []
    ours: list[str] = []
    for r in institutions(series, accepted=[]).iter_rows(named=True):
        name = r["normalised"]
        if name is None:
            continue
        share = studies_of.get(name, 0) / total if total else 0.0
        mine = share >= min_share
        out.append((r["institution"], name, r["studies"], share, mine))
        if mine and name not in ours:
            ours.append(name)
    return [*ours, MIXED], out


@dataclass
class _Unit:
    models: str
    kind: str | None  # "stations" / "serials": the identifier that splits its model set
    ids: frozenset[str]  # the cluster of identifiers (as compared)
    rows: list[dict[str, Any]]
    parent: _Unit | None = None
    ambiguous: bool = False  # studies carrying the identifiers of several clusters

    @property
    def n(self) -> int:
        return len(self.rows)


def _clusters(ids_per_study: Sequence[frozenset[str]]) -> list[frozenset[str]]:
    """Identifiers seen together in a good share of their studies are one scanner's."""
    counts = Counter(v for ids in ids_per_study for v in ids)
    pairs = Counter((a, b) for ids in ids_per_study for a, b in combinations(sorted(ids), 2))
    parent = {v: v for v in counts}

    def root(v: str) -> str:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for (a, b), n in pairs.items():
        if n >= max(2, LINK_SHARE * min(counts[a], counts[b])):
            parent[root(a)] = root(b)
    groups: dict[str, set[str]] = defaultdict(set)
    for v in counts:
        groups[root(v)].add(v)
    return sorted(
        (frozenset(g) for g in groups.values()),
        key=lambda g: (-sum(counts[v] for v in g), sorted(g)),
    )


def _units(rows: list[dict[str, Any]]) -> list[_Unit]:
    """The scanners of one model set: one, or one per StationName (serial) cluster."""
    for kind in ("stations", "serials"):
        with_ids = [frozenset(r[kind]) for r in rows if r[kind]]
        if len(with_ids) * 2 < len(rows):
            continue  # most studies do not carry it
        clusters = _clusters(with_ids)
        if len(clusters) < 2:
            continue
        units = []
        for cluster in clusters:
            mine = [r for r in rows if set(r[kind]) and set(r[kind]) <= cluster]
            if mine:
                units.append(_Unit(rows[0]["models"], kind, cluster, mine))
        if len(units) < 2:
            continue  # only studies carrying several of them: nothing to tell apart
        placed = {id(r) for u in units for r in u.rows}
        rest = [r for r in rows if id(r) not in placed]
        if rest:  # identifiers of two scanners (or none) in one study: no scanner of its own
            units.append(_Unit(rows[0]["models"], kind, frozenset(), rest, ambiguous=True))
        return units
    return [_Unit(rows[0]["models"], None, frozenset(), rows)]


def _most_common(values: Sequence[str]) -> str:
    counts = Counter(values)
    return sorted(counts, key=lambda v: (-counts[v], v))[0] if counts else ""


def draft(
    studies: pl.DataFrame,
    series: pl.DataFrame,
    *,
    min_machine_share: float = MIN_MACHINE_SHARE,
    min_institution_share: float = MIN_INSTITUTION_SHARE,
) -> Draft:
    """A config draft for the surveyed department (see the module docstring).

    Institutions carried by at least ``min_institution_share`` of the studies are drafted as
    ours (the others are images from elsewhere, listed in comments). Over the studies they
    keep, each model set is a scanner, or one per StationName (else DeviceSerialNumber)
    cluster when it holds several; a set that is another one less its CT-only models is that
    scanner without CT (``_NoCT``, same identifiers); sets below ``min_machine_share`` of the
    studies, or made of the models of two scanners, are left out (in comments).
    """
    accepted, inst_rows = _draft_institutions(series, min_institution_share)
    result = Draft(accepted=accepted, institutions=inst_rows)
    ok = accepted_studies(series, accepted)
    scanners = study_scanners(series).join(ok, on="study_uid", how="semi")
    rows_by_models: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in scanners.iter_rows(named=True):
        rows_by_models[r["models"]].append(r)
    total = scanners.height
    # which models are only ever CT (a study without them is the scanner without its CT)
    modalities: dict[str, set[str]] = defaultdict(set)
    for model, modality in (
        kept(series)
        .filter(pl.col("model").is_not_null())
        .select(minify_machine_expr(pl.col("model")), "modality")
        .unique()
        .iter_rows()
    ):
        modalities[model].add(modality or "")
    ct_only = {m for m, mods in modalities.items() if mods == {"CT"}}

    units = [u for key in sorted(rows_by_models) for u in _units(rows_by_models[key])]
    threshold = max(2, min_machine_share * total)
    frequent = [u for u in units if u.n >= threshold and not u.ambiguous]

    def parent_of(u: _Unit) -> _Unit | None:
        mine = set(u.models.split(","))
        best: _Unit | None = None
        for p in frequent:
            theirs = set(p.models.split(","))
            if p is u or not mine < theirs or not (theirs - mine) <= ct_only:
                continue
            if p.kind is not None:
                ids = {i for r in u.rows for i in r[p.kind]}
                if not ids or not ids <= p.ids:
                    continue
            if best is None or p.n > best.n:
                best = p
        return best

    parents = {id(u): parent_of(u) for u in units}
    for u in units:
        p = parents[id(u)] if not u.ambiguous else None
        # a parent is a scanner of its own, not another one's _NoCT variant
        u.parent = p if p is not None and parents[id(p)] is None else None
    full = [u for u in frequent if u.parent is None]
    covered = {m for u in full for m in u.models.split(",")}

    raw_names: dict[str, list[str]] = defaultdict(list)
    raw_ids: dict[str, list[str]] = defaultdict(list)
    for r in scanners.iter_rows(named=True):
        for name in r["names"]:
            raw_names[minify_machine(name)].append(name)
        for raw in [*r["station_names"], *r["serial_numbers"]]:
            raw_ids["".join(raw.split()).lower()].append(raw)

    def name_of(u: _Unit) -> str:
        models = u.models.split(",")
        emission = [m for m in models if m not in ct_only] or models
        base = " + ".join(_most_common(raw_names[m]) for m in emission)
        if u.kind is not None:
            counts = Counter(i for r in u.rows for i in r[u.kind] if i in u.ids)
            top = sorted(counts, key=lambda i: (-counts[i], i))[0]
            base = f"{base} {_most_common(raw_ids[top])}".strip()
        return base

    names: dict[int, str] = {}
    taken: set[str] = set()
    for u in sorted(full, key=lambda u: (-u.n, u.models)):
        base = name_of(u)
        name, k = base, 2
        while minify_machine(name) in taken:
            name, k = f"{base} {k}", k + 1
        taken.add(minify_machine(name))
        names[id(u)] = name

    def entry(u: _Unit, ids_from: _Unit) -> MachineValue:
        models = u.models.split(",")
        if ids_from.kind is None:
            return models
        key = STATIONS_KEY if ids_from.kind == "stations" else SERIALS_KEY
        written = sorted({_most_common(raw_ids[i]) for i in ids_from.ids})
        return {MODELS_KEY: models, key: written}

    def span(rows: list[dict[str, Any]]) -> tuple[Any, Any]:
        dates = [r["date"] for r in rows]
        return min(dates), max(dates)

    drafted: list[tuple[_Unit, str]] = []
    for u in sorted(full, key=lambda u: (-u.n, u.models)):
        drafted.append((u, names[id(u)]))
    for u in sorted(units, key=lambda u: (-u.n, u.models)):
        if u.parent is not None and id(u.parent) in names:
            drafted.append((u, names[id(u.parent)] + NO_CT))
    for u, group in drafted:
        source = u.parent if u.parent is not None and u.parent.kind is not None else u
        first, last = span(u.rows)
        ids = sorted({_most_common(raw_ids[i]) for i in source.ids})
        result.machines.append(
            DraftMachine(
                group=group,
                value=entry(u, source),
                names=" + ".join(_most_common(raw_names[m]) for m in u.models.split(",")),
                identifiers=", ".join(ids),
                studies=u.n,
                first=first,
                last=last,
            )
        )
        key = minify_machine(group.removesuffix(NO_CT))
        result.names.setdefault(key, group.removesuffix(NO_CT))
    # a scanner with CT models is the same scanner in a study without its CT (a CT series
    # failed, a PET-only protocol): its _NoCT entry, seen or not, unless it could be taken
    # for another drafted entry
    # what each drafted entry names (a _NoCT variant names its scanner's identifiers)
    seen_keys = {
        (u.models, s.kind, s.ids)
        for u, _ in drafted
        for s in [u.parent if u.parent is not None and u.parent.kind is not None else u]
    }
    full_models = {u.models for u in full}
    unseen: dict[tuple[str, str | None, frozenset[str]], list[_Unit]] = defaultdict(list)
    for u in full:
        rest = [m for m in u.models.split(",") if m not in ct_only]
        if not rest or len(rest) == len(u.models.split(",")):
            continue
        no_ct = (",".join(rest), u.kind, u.ids)
        if no_ct[0] in full_models or no_ct in seen_keys:
            continue
        unseen[no_ct].append(u)
    for (no_ct_models, kind, no_ct_ids), owners in sorted(unseen.items(), key=lambda kv: kv[0][0]):
        if len(owners) > 1 or any(k[0] == no_ct_models and k[1] is None for k in seen_keys):
            continue  # two scanners would share it: a study without CT cannot be told
        owner = owners[0]
        shadow = _Unit(no_ct_models, kind, no_ct_ids, [])
        result.machines.append(
            DraftMachine(
                group=names[id(owner)] + NO_CT,
                value=entry(shadow, owner),
                names=" + ".join(_most_common(raw_names[m]) for m in no_ct_models.split(",")),
                identifiers=", ".join(sorted({_most_common(raw_ids[i]) for i in no_ct_ids})),
                studies=0,
                first=None,
                last=None,
            )
        )
    placed = {id(u) for u, _ in drafted}
    for u in sorted(units, key=lambda u: (-u.n, u.models)):
        if id(u) in placed:
            continue
        models = set(u.models.split(","))
        inside = [f for f in full if models <= set(f.models.split(","))]
        why = (
            "StationNames / serial numbers of several scanners (or none) in one study"
            if u.ambiguous
            else "models of several scanners in one study"
            if models <= covered and not inside
            else "too few studies to be a scanner of its own"
        )
        names_text = " + ".join(_most_common(raw_names[m]) for m in sorted(models))
        result.left_out.append((u.models, names_text, u.n, why))

    # slots and gaps per display machine, from what was seen
    table = {m.group: m.value for m in result.machines}
    groups = study_groups(scanners, table).filter(pl.col("machine_group").is_not_null())
    per_day = (
        scanners.join(groups, on="study_uid")
        .with_columns(
            minify_machine_expr(pl.col("machine_group").str.strip_suffix(NO_CT)).alias("key")
        )
        .group_by("key", "date")
        .len()
    )
    days = sorted(set(studies["date"].drop_nulls().to_list()))
    has_pt = {
        minify_machine(m.group.removesuffix(NO_CT))
        for m in result.machines
        if any(
            "PT" in modalities.get(x, set())
            for x in (m.value[MODELS_KEY] if isinstance(m.value, Mapping) else m.value)
        )
    }
    for key in result.names:
        counts = {d: n for k, d, n in per_day.iter_rows() if k == key}
        slots = []
        for weekday in range(5):
            seen = [counts.get(d, 0) for d in days if d.weekday() == weekday]
            every = [counts.get(d, 0) for d in days]
            values = seen or every or [1]
            slots.append(max(1, math.ceil(sum(values) / len(values))))
        result.slots[key] = slots
        result.gap_minutes[key] = 30 if key in has_pt else 60

    # descriptions: suggestions for labels, per display machine
    desc = descriptions_table(studies, series, table, {}, accepted)
    for r in desc.iter_rows(named=True):
        if not r["minified"]:
            continue
        label = (r["description"] or r["minified"]).strip()
        result.suggestions.setdefault(r["machine_key"], []).append(
            Suggestion(
                label=label,
                pattern=re.escape(r["minified"]),
                studies=r["studies"],
                description=r["description"] or "",
                first=r["first"],
                last=r["last"],
            )
        )
    return result


__all__ = [
    "MIN_INSTITUTION_SHARE",
    "MIN_MACHINE_SHARE",
    "Draft",
    "DraftMachine",
    "Suggestion",
    "draft",
]
