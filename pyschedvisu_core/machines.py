"""Which ``[machines]`` entry a study's scanner is (DOMAIN §3.2 and §7, identical scanners).

An entry names the minified model names that must all appear in one study (the sorted set,
comma-joined, is the lookup key, as in 2019), and optionally the StationName and / or
DeviceSerialNumber values of the scanner: two scanners of one model are then two machines.

A study matches an entry when its model set is the entry's and, for each identifier kind the
entry names, one of the study's series carries one of the named values. Among the entries a
study matches, those naming more identifier kinds win (a bare entry is the catch-all for its
model set); when the winners are different groups (a study whose series carry the stations
of two scanners) the study matches none: it is a mixed case, never guessed. Entries with the
same model set and the same identifiers: the first in config order counts (as in 2019).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from pyschedvisu_core.labels import minify_machine

#: What a config entry may be: the model names, or a table with ``models`` and identifiers.
MachineValue = Sequence[str] | Mapping[str, Sequence[str]]

#: Keys of an entry table (see :class:`MachineSpec`).
MODELS_KEY = "models"
STATIONS_KEY = "station_names"
SERIALS_KEY = "device_serial_numbers"

_IDENTIFIER_NOISE = r"[\s\x00]+"


def identifier(value: str | None) -> str | None:
    """A StationName / DeviceSerialNumber as compared: no spaces (nor padding), lower case."""
    if value is None:
        return None
    out = "".join(value.split()).replace("\x00", "").lower()
    return out or None


def identifier_expr(expr: pl.Expr) -> pl.Expr:
    """:func:`identifier` of a string column ("" becomes null)."""
    out = expr.str.replace_all(_IDENTIFIER_NOISE, "").str.to_lowercase()
    return pl.when(out != "").then(out)


@dataclass(frozen=True)
class MachineSpec:
    """One ``[machines]`` entry, normalised: the lookup key and the identifiers it names."""

    group: str
    models: str  # minified model names, sorted, unique, comma-joined
    stations: tuple[str, ...] = ()  # normalised StationName values (any of them)
    serials: tuple[str, ...] = ()  # normalised DeviceSerialNumber values (any of them)

    @property
    def specificity(self) -> int:
        """How many identifier kinds the entry names (0, 1 or 2)."""
        return int(bool(self.stations)) + int(bool(self.serials))


def model_key(models: Sequence[str]) -> str:
    """The lookup key of a set of model names: minified, sorted, unique, comma-joined."""
    return ",".join(sorted({m for m in (minify_machine(x) for x in models) if m}))


def _values(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def machine_specs(machines: Mapping[str, MachineValue]) -> list[MachineSpec]:
    """The entries of a ``[machines]`` table, in config order, exact duplicates dropped."""
    out: list[MachineSpec] = []
    seen: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
    for group, value in machines.items():
        if isinstance(value, Mapping):
            models = _values(value.get(MODELS_KEY))
            stations = _values(value.get(STATIONS_KEY))
            serials = _values(value.get(SERIALS_KEY))
        else:
            models, stations, serials = _values(value), [], []
        spec = MachineSpec(
            group=group,
            models=model_key(models),
            stations=tuple(sorted({i for s in stations if (i := identifier(s))})),
            serials=tuple(sorted({i for s in serials if (i := identifier(s))})),
        )
        key = (spec.models, spec.stations, spec.serials)
        if key not in seen:  # the same scanner named twice: the first in config wins
            seen.add(key)
            out.append(spec)
    return out


def names_identifiers(machines: Mapping[str, MachineValue]) -> bool:
    """True when an entry names a StationName or DeviceSerialNumber."""
    return any(s.specificity for s in machine_specs(machines))


def identified_models(machines: Mapping[str, MachineValue]) -> set[str]:
    """Model keys of the entries that name identifiers (their studies show them when unmatched)."""
    return {s.models for s in machine_specs(machines) if s.specificity}


def specs_frame(machines: Mapping[str, MachineValue]) -> pl.DataFrame:
    """One row per entry: models, machine_group, _rank (config order), _spec, _st, _se."""
    specs = machine_specs(machines)
    return pl.DataFrame(
        {
            "models": [s.models for s in specs],
            "machine_group": [s.group for s in specs],
            "_rank": list(range(len(specs))),
            "_spec": [s.specificity for s in specs],
            "_st": [list(s.stations) for s in specs],
            "_se": [list(s.serials) for s in specs],
        },
        schema={
            "models": pl.String(),
            "machine_group": pl.String(),
            "_rank": pl.Int32(),
            "_spec": pl.Int32(),
            "_st": pl.List(pl.String()),
            "_se": pl.List(pl.String()),
        },
    )


def match_groups(
    studies: pl.LazyFrame, machines: Mapping[str, MachineValue], key: str = "_sid"
) -> pl.LazyFrame:
    """``key, machine_group`` (null: no entry, or entries of several groups) per study.

    ``studies``: one row per ``key`` with ``models`` (see :func:`model_key`) and, when an
    entry names identifiers, ``stations`` / ``serials`` (lists of :func:`identifier` values).
    """
    specs = specs_frame(machines).lazy()
    if not names_identifiers(machines):
        # one entry per model set: a plain lookup (first in config order already kept)
        first = specs.group_by("models").agg(pl.col("machine_group").sort_by("_rank").first())
        return studies.select(key, "models").join(first, on="models", how="left").drop("models")
    stations = pl.col("stations").list.set_intersection(pl.col("_st")).list.len() > 0
    serials = pl.col("serials").list.set_intersection(pl.col("_se")).list.len() > 0
    candidates = (
        studies.select(key, "models", "stations", "serials")
        .join(specs, on="models", how="inner")
        .filter(
            ((pl.col("_st").list.len() == 0) | stations)
            & ((pl.col("_se").list.len() == 0) | serials)
        )
        .filter(pl.col("_spec") == pl.col("_spec").max().over(key))
        .group_by(key)
        .agg(
            pl.col("machine_group").sort_by("_rank").first(),
            pl.col("machine_group").n_unique().alias("_groups"),
        )
        .select(key, pl.when(pl.col("_groups") == 1).then(pl.col("machine_group")))
    )
    return studies.select(key).join(candidates, on=key, how="left")


def match_group(
    machines: Mapping[str, MachineValue],
    models: Sequence[str],
    stations: Sequence[str] = (),
    serials: Sequence[str] = (),
) -> str | None:
    """The group of one study (raw model names and identifiers), as :func:`match_groups`."""
    frame = pl.DataFrame(
        {
            "_k": [0],
            "models": [model_key(models)],
            "stations": [sorted({i for s in stations if (i := identifier(s))})],
            "serials": [sorted({i for s in serials if (i := identifier(s))})],
        },
        schema={
            "_k": pl.Int32(),
            "models": pl.String(),
            "stations": pl.List(pl.String()),
            "serials": pl.List(pl.String()),
        },
    )
    out = match_groups(frame.lazy(), machines, key="_k").collect()
    value = out["machine_group"][0]
    return None if value is None else str(value)


__all__ = [
    "MODELS_KEY",
    "SERIALS_KEY",
    "STATIONS_KEY",
    "MachineSpec",
    "MachineValue",
    "identified_models",
    "identifier",
    "identifier_expr",
    "machine_specs",
    "match_group",
    "match_groups",
    "model_key",
    "names_identifiers",
    "specs_frame",
]
