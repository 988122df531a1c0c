"""Loading: the config file, the environment's overrides, the sites of a config, and every
problem as one ``source: section.key: what is wrong`` line."""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pyschedvisu import reference as ref
from pyschedvisu.config.environment import (
    CONFIG_ENV,
    SITE_ENV,
    EnvOverride,
    _env_names_allowed,
    _kind,
    _unwrap,
    apply_overrides,
    scan_environment,
    unknown_variable_problem,
)
from pyschedvisu.config.sections import PacsSettings, PathsSettings, WorklistSettings
from pyschedvisu.config.settings import SITE_ID, Settings
from pyschedvisu_core.errors import ConfigError
from pyschedvisu_core.schema import DEFAULT_SITE

#: Where the values come from when no config file is given.
DEFAULTS_LABEL = "built-in defaults"
#: Paths a site gets a folder of its own under (named after it), unless its table sets them.
SITE_PATHS = ("data_dir", "output_dir", "log_dir")


def config_path(explicit: str | Path | None = None) -> Path | None:
    """The config file in use: ``--config``, else ``$PYSCHEDVISU_CONFIG``, else none (defaults)."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None


def read_config_file(file: Path) -> dict[str, Any]:
    """The TOML table of ``file``; :class:`ConfigError` (one line) when it cannot be had."""
    label = str(file)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        problem = f"file not found (set --config or {CONFIG_ENV}, or run `pyschedvisu config init`)"
    except IsADirectoryError:
        problem = "is a directory, not a config file: give the TOML file itself"
    except PermissionError:
        problem = "cannot be read: permission denied"
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    else:
        try:
            text = raw.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            problem = (
                f"not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}): "
                "save the file as UTF-8"
            )
        else:
            try:
                return tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                problem = f"not valid TOML: {exc}"
    raise ConfigError([f"{label}: {problem}"])


@dataclass
class LoadedConfig:
    """Settings and where they came from (``config validate`` says it)."""

    settings: Settings
    file: Path | None
    file_data: dict[str, Any]
    overrides: list[EnvOverride]

    @property
    def label(self) -> str:
        return str(self.file) if self.file else DEFAULTS_LABEL

    def source_of(self, path: tuple[str, ...]) -> str:
        """Who set ``path``: the environment variable, the file, or the built-in defaults."""
        env = _env_for(path, self.overrides)
        if env:
            return env
        node: Any = self.file_data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return DEFAULTS_LABEL
            node = node[part]
        return self.label


def _loc(loc: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _env_for(loc: tuple[str, ...], overrides: list[EnvOverride]) -> str | None:
    """``"NAME (environment)"`` for the variable(s) that set ``loc``, or what it holds."""
    low = tuple(p.lower() for p in loc)
    covering = [o for o in overrides if low[: len(o.path)] == o.path]
    if covering:
        best = max(covering, key=lambda o: len(o.path))
        return f"{best.variable} (environment)"
    inside = [o.variable for o in overrides if low and o.path[: len(low)] == low]
    if inside:
        return ", ".join(inside) + " (environment)"
    return None


def load_config(
    path: str | Path | None = None, site: str | None = None, **values: Any
) -> LoadedConfig:
    """Settings from ``path`` (or ``$PYSCHEDVISU_CONFIG``) plus the environment, with sources.

    ``site``: the site of a config with ``[sites.<id>]`` tables (default ``$PYSCHEDVISU_SITE``;
    required there); a one-department config is site ``default``. Raises
    :class:`ConfigError` with one ``source: section.key: what is wrong`` line per problem, the
    source being the file, or the environment variable that set the value.
    """
    chosen = site if site is not None else (os.environ.get(SITE_ENV) or None)
    return _load(path, chosen, top=False, values=values)


def _load(
    path: str | Path | None, site: str | None, *, top: bool, values: Mapping[str, Any]
) -> LoadedConfig:
    """:func:`load_config` of ``site``, or of the top level alone when ``top`` (the shared
    values of a config with sites: its network report)."""
    file = config_path(path)
    label = str(file) if file else DEFAULTS_LABEL
    problems: list[str] = []
    data: dict[str, Any] = {}
    unreadable = False
    if file is not None:
        try:
            data = read_config_file(file)
        except ConfigError as err:
            problems.extend(err.problems)
            unreadable = True
    data.update(values)
    scan = scan_environment()
    problems.extend(scan.problems)
    # sites.<id>... variables change a site's table, the others the settings in effect
    to_sites = [o for o in scan.overrides if o.path[0] == "sites"]
    others = [o for o in scan.overrides if o.path[0] != "sites"]
    data = apply_overrides(data, to_sites)
    if unreadable:
        names = _env_names_allowed(apply_overrides(data, others))
        problems.extend(unknown_variable_problem(n) for n in scan.unknown if n.upper() not in names)
        raise ConfigError(problems)  # nothing to validate: the file's line, the environment's
    raw_sites = data.get("sites")
    try:
        data, chosen = select_site(data, None if top else site, label, top=top)
    except ConfigError as err:
        raise ConfigError([*problems, *err.problems]) from None
    merged = apply_overrides(data, others)
    allowed = _env_names_allowed(merged)
    problems.extend(unknown_variable_problem(n) for n in scan.unknown if n.upper() not in allowed)
    attributed = list(others)
    table = None
    if chosen is not None and isinstance(raw_sites, dict):
        table = (chosen, raw_sites[chosen])
        attributed += [
            EnvOverride(o.variable, o.path[2:], o.value)
            for o in to_sites
            if o.path[:2] == ("sites", chosen) and len(o.path) > 2
        ]
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, label, attributed, table))
    if problems:
        raise ConfigError(problems)
    return LoadedConfig(settings, file, data, attributed)


def site_ids(data: Mapping[str, Any]) -> list[str]:
    """The site ids of a config's tables, in file order (``[default]`` without sites)."""
    sites = data.get("sites")
    return list(sites) if isinstance(sites, dict) and sites else [DEFAULT_SITE]


def select_site(
    data: dict[str, Any], site: str | None, label: str, *, top: bool = False
) -> tuple[dict[str, Any], str | None]:
    """(the tables in effect for ``site``, the site whose table was merged, if any).

    A config without ``[sites.<id>]`` is site ``default`` alone; with them, ``site`` must name
    one (``top``: the shared top level alone, for the network report). One line, exit 2
    through :class:`ConfigError`, naming the known sites otherwise.
    """
    if "site" in data:
        raise ConfigError(
            [
                f"{label}: site: not a key of the file: choose the site with --site ID (or "
                f"{SITE_ENV}) among the [sites.<id>] tables"
            ]
        )
    sites = data.get("sites")
    if sites is None or sites == {}:
        if site not in (None, DEFAULT_SITE):
            raise ConfigError(
                [
                    f"site {site!r}: no such site in {label}; known sites: {DEFAULT_SITE} "
                    "(the config has no [sites.<id>] table)"
                ]
            )
        return {k: v for k, v in data.items() if k != "sites"}, None
    if not isinstance(sites, dict) or not all(isinstance(v, dict) for v in sites.values()):
        raise ConfigError(
            [f"{label}: sites: one table per site is expected ([sites.<id>] with its sections)"]
        )
    bad = [k for k in sites if not SITE_ID.fullmatch(str(k))]
    if bad:
        raise ConfigError(
            [
                f"{label}: sites.{b}: not a site id: use lower-case letters, digits and dashes "
                "(it names the work pool pyschedvisu-<site>), at most 40 characters"
                for b in bad
            ]
        )
    if top:
        return {k: v for k, v in data.items() if k != "sites"}, None
    if site is None:
        raise ConfigError(
            [
                f"{label}: sites: the config holds {len(sites)} sites ({', '.join(sites)}): "
                f"choose one with --site ID (or {SITE_ENV})"
            ]
        )
    if site not in sites:
        raise ConfigError(
            [f"site {site!r}: no such site in {label}; known sites: {', '.join(sites)}"]
        )
    return site_data(data, site), site


def site_data(data: Mapping[str, Any], site: str) -> dict[str, Any]:
    """The tables of ``site``: the top level's, overridden by those of ``[sites.<site>]``.

    A section (``[pacs]``, ``[retrieve]``, ``[draw]`` ...) merges key by key, whatever the
    section (one added later included); a table of named entries (``[machines]``,
    ``[descriptions]``, ``[draw.machine]``, ``[report.period_defs]`` ...) is replaced whole, so
    a site lists exactly its own machines. ``paths.data_dir``, ``output_dir`` and ``log_dir``
    the site does not set are ``<the top level's>/<site>``: two sites never share a store.
    """
    base = {k: v for k, v in data.items() if k != "sites"}
    table = data["sites"][site]
    merged = _merge_tables(base, table, Settings)
    own = table.get("paths") if isinstance(table.get("paths"), dict) else {}
    paths = dict(merged.get("paths") or {}) if isinstance(merged.get("paths"), dict) else {}
    top = base.get("paths") if isinstance(base.get("paths"), dict) else {}
    for key in SITE_PATHS:
        if key not in own:
            value = top.get(key, PathsSettings.model_fields[key].default)
            paths[key] = str(Path(str(value)) / site)
    merged["paths"] = paths
    merged["site"] = site
    return merged


def _merge_tables(base: Mapping[str, Any], over: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """``base`` with ``over``'s values: sub-sections of ``model`` merge, anything else replaces."""
    out = copy.deepcopy(dict(base))
    fields = _unwrap(model).model_fields if _kind(model) == "model" else {}
    for key, value in over.items():
        info = fields.get(key)
        child = info.annotation if info is not None else None
        if (
            child is not None
            and _kind(child) == "model"
            and isinstance(value, dict)
            and isinstance(out.get(key), dict)
        ):
            out[key] = _merge_tables(out[key], value, child)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Network:
    """Every site of a config, and its top level alone (the network report's settings)."""

    top: LoadedConfig
    sites: dict[str, LoadedConfig]

    @property
    def has_sites(self) -> bool:
        """True for a config with ``[sites.<id>]`` tables (else the one site ``default``)."""
        return list(self.sites) != [DEFAULT_SITE] or self.top.settings.site != DEFAULT_SITE


def load_network(path: str | Path | None = None) -> Network:
    """Every site of the config at ``path`` (or ``$PYSCHEDVISU_CONFIG``), each with the
    environment's values, and the top level alone.

    Raises :class:`ConfigError` with every site's problems (each line once), and when two
    sites would share a data dir.
    """
    problems: list[str] = []

    def add(lines: list[str]) -> None:
        problems.extend(line for line in lines if line not in problems)

    top: LoadedConfig | None = None
    try:
        top = _load(path, None, top=True, values={})
    except ConfigError as err:
        add(err.problems)
    file = config_path(path)
    try:
        ids = site_ids(read_config_file(file)) if file is not None else [DEFAULT_SITE]
    except ConfigError as err:
        add(err.problems)
        raise ConfigError(problems) from None
    sites: dict[str, LoadedConfig] = {}
    for site in ids:
        try:
            sites[site] = _load(path, site, top=False, values={})
        except ConfigError as err:
            add(err.problems)
    by_dir: dict[str, list[str]] = {}
    for site, loaded in sites.items():
        by_dir.setdefault(str(Path(loaded.settings.paths.data_dir).resolve()), []).append(site)
    for folder, owners in by_dir.items():
        if len(owners) > 1:
            add(
                [
                    f"{top.label if top else DEFAULTS_LABEL}: sites.{owners[1]}.paths.data_dir: "
                    f"{folder} is the data dir of {', '.join(owners)}: each site needs its own"
                ]
            )
    if problems or top is None:
        raise ConfigError(problems)
    return Network(top, sites)


#: Host names of this machine: a PACS there on the default port is the demo PACS.
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def config_warnings(loaded: LoadedConfig) -> list[str]:
    """What a valid config still has of the demo and the reference department.

    One ``source: section.key: what`` line each: a new department must change them.
    """
    s = loaded.settings
    out = []
    demo = PacsSettings()
    pacs = s.pacs
    if pacs.called_ae == demo.called_ae or (pacs.host in _LOOPBACK and pacs.port == demo.port):
        key = "called_ae" if pacs.called_ae == demo.called_ae else "host"
        out.append(
            f"{loaded.source_of(('pacs', key))}: pacs.{key}: still the demo PACS "
            f"({pacs.called_ae} on {pacs.host}:{pacs.port}): set pacs.host, pacs.port and "
            "pacs.called_ae to your PACS"
        )
    wl = s.worklist
    if wl.enabled and (
        wl.called_ae == WorklistSettings().called_ae
        or (wl.host in _LOOPBACK and wl.port == demo.port)
    ):
        key = "called_ae" if wl.called_ae == WorklistSettings().called_ae else "host"
        out.append(
            f"{loaded.source_of(('worklist', key))}: worklist.{key}: still the demo PACS "
            f"({wl.called_ae} on {wl.host}:{wl.port}): set worklist.host, worklist.port and "
            "worklist.called_ae to your RIS's Modality Worklist"
        )
    reference = [
        name
        for name in s.retrieve.accepted_institutions
        if name in ref.ACCEPTED_INSTITUTIONS and name != "mixed"
    ]
    if reference:
        path = ("retrieve", "accepted_institutions")
        out.append(
            f"{loaded.source_of(path)}: retrieve.accepted_institutions: still the reference "
            f"department's institutions ({', '.join(reference)}): set the normalised "
            "InstitutionName(s) of your department's studies, or they are all excluded"
        )
    return out


def load_settings(
    path: str | Path | None = None, site: str | None = None, **values: Any
) -> Settings:
    """Settings from ``path`` (or ``$PYSCHEDVISU_CONFIG``) plus the environment, for ``site``
    (default ``$PYSCHEDVISU_SITE``; see :func:`load_config`).

    Raises :class:`ConfigError` with one ``source: section.key: what is wrong`` line per problem.
    """
    return load_config(path, site, **values).settings


def _validation_problems(
    exc: ValidationError,
    label: str,
    overrides: list[EnvOverride],
    site_table: tuple[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """One ``source: section.key: what`` line per error; a key a site's table set is named
    ``sites.<id>.section.key`` (``site_table``: the chosen site and its table)."""

    def where_of(loc: tuple[str, ...]) -> str:
        text = ".".join(loc)
        if site_table is not None and loc and _holds(site_table[1], loc):
            return f"sites.{site_table[0]}.{text}"
        return text

    problems = []
    for err in exc.errors():
        loc = _loc(tuple(err["loc"]))
        where = where_of(loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key: remove it or check its spelling (see `pyschedvisu config init`)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            got = err.get("input")
            if not isinstance(got, dict | list) and got is not None:
                msg = f"{msg} (got {got!r})"
        if not loc and " ;; " in msg:
            # whole-config checks: "section.key: what" each, blamed on what set that key
            # (they are about [machines]: a table that came from the environment is named)
            for part in msg.split(" ;; "):
                key = tuple(part.split(":", 1)[0].split("."))
                source = _env_for(key, overrides) or _env_for(("machines",), overrides)
                if site_table is not None and _holds(site_table[1], ("machines",)):
                    part = f"sites.{site_table[0]}.{part}"
                problems.append(f"{source or label}: {part}")
            continue
        problems.append(f"{_env_for(loc, overrides) or label}: {where}: {msg}")
    return problems


def _holds(table: Mapping[str, Any], loc: tuple[str, ...]) -> bool:
    """True when ``table`` (nested dicts) sets ``loc`` or a table above it."""
    node: Any = table
    for part in loc:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
