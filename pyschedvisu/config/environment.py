"""Environment variables -> overrides of the settings, and the check that every
``PYSCHEDVISU_`` variable names a setting (or is one of :data:`NON_SETTING_ENV`)."""

from __future__ import annotations

import copy
import difflib
import json
import os
import types
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from pyschedvisu.config.settings import Settings

ENV_PREFIX = "PYSCHEDVISU_"
CONFIG_ENV = "PYSCHEDVISU_CONFIG"
#: Environment variables that start with ``PYSCHEDVISU_`` but are not settings (every other
#: one must name a setting). The variables named by ``privacy.key_env``,
#: ``email.username_env`` and ``email.password_env`` are accepted too, whatever their name.
NON_SETTING_ENV: dict[str, str] = {
    CONFIG_ENV: "the config file, like --config",
    "PYSCHEDVISU_PSEUDONYM_KEY": "the pseudonymisation key, default name of privacy.key_env",
    "PYSCHEDVISU_SMTP_USERNAME": "the SMTP user, default name of email.username_env",
    "PYSCHEDVISU_SMTP_PASSWORD": "the SMTP password, default name of email.password_env",
    "PYSCHEDVISU_HOME": "the checkout a Prefect worker runs the flows from, see prefect.yaml",
    "PYSCHEDVISU_TEST_ORTHANC": "the Orthanc binary of the integration tests",
    "PYSCHEDVISU_SITE": "the site of a config with [sites.<id>] tables, like --site",
}
#: The site (department) chosen in a config with ``[sites.<id>]`` tables, like ``--site``.
SITE_ENV = "PYSCHEDVISU_SITE"
#: Settings whose value is the name of an environment variable (allowed whatever its name).
ENV_NAME_SETTINGS = (("privacy", "key_env"), ("email", "username_env"), ("email", "password_env"))


@dataclass(frozen=True)
class EnvOverride:
    """One setting set by an environment variable."""

    variable: str  # as it is spelt in the environment
    path: tuple[str, ...]  # field names and table keys, lower case
    value: Any  # parsed: a list, a dict (a table) or the plain string


@dataclass
class EnvScan:
    """The ``PYSCHEDVISU_`` variables of an environment, sorted out."""

    overrides: list[EnvOverride] = dataclass_field(default_factory=list)
    problems: list[str] = dataclass_field(default_factory=list)  # values that cannot be read
    unknown: list[str] = dataclass_field(default_factory=list)  # names that are no setting


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _kind(annotation: Any) -> Literal["model", "dict", "list", "scalar"]:
    ann = _unwrap(annotation)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return "model"
    origin = get_origin(ann)
    if origin is dict:
        return "dict"
    if origin is list:
        return "list"
    return "scalar"


def _annotation_at(path: tuple[str, ...]) -> Any | None:
    """Type of the setting at ``path`` (field names, table keys); None when there is none.

    ``sites.<id>.<rest>`` is the setting at ``<rest>`` (a site's table holds any section).
    """
    if len(path) > 2 and path[0] == "sites" and path[1] and path[2] not in ("sites", "site"):
        return _annotation_at(path[2:])
    ann: Any = Settings
    for part in path:
        kind = _kind(ann)
        if kind == "model":
            found = _unwrap(ann).model_fields.get(part)
            if found is None:
                return None
            ann = found.annotation
        elif kind == "dict" and part:
            ann = get_args(_unwrap(ann))[1]
        else:
            return None
    return ann


def _table_example(annotation: Any) -> str:
    ann = _unwrap(annotation)
    if _kind(ann) == "model":
        name, info = next(iter(ann.model_fields.items()))
        default = info.get_default(call_default_factory=True)
        try:
            shown = json.dumps(default, default=str)
        except (TypeError, ValueError):
            shown = '"..."'
        return json.dumps({name: None}).replace("null", shown)
    return '{"<key>": ...}'


def _parse_env_value(raw: str, annotation: Any) -> tuple[Any, str | None]:
    """(value, None), or (None, what is wrong) for a variable setting a key of ``annotation``."""
    kind = _kind(annotation)
    text = raw.strip()
    if kind == "list":
        if not text.startswith("["):
            return [item.strip() for item in text.split(",") if item.strip()], None
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, (
                f"not valid JSON ({exc.msg}, character {exc.pos + 1}): give a JSON list, "
                'e.g. ["a", "b"], or comma-separated values, e.g. a,b'
            )
        if not isinstance(value, list):
            return None, 'a JSON list is expected, e.g. ["a", "b"] (or a,b)'
        return value, None
    if kind in ("model", "dict"):
        how = f"a table is set as a JSON object, e.g. '{_table_example(annotation)}'"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg}, character {exc.pos + 1}): {how}"
        if not isinstance(value, dict):
            return None, f"{how}, not {type(value).__name__}"
        return value, None
    return raw, None


def scan_environment(environ: Mapping[str, str] | None = None) -> EnvScan:
    """Every ``PYSCHEDVISU_`` variable of ``environ`` (default: ``os.environ``), parsed."""
    environ = os.environ if environ is None else environ
    scan = EnvScan()
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NON_SETTING_ENV:
            continue
        path = tuple(upper[len(ENV_PREFIX) :].lower().split("__"))
        annotation = _annotation_at(path)
        if annotation is None:
            scan.unknown.append(name)
            continue
        value, problem = _parse_env_value(environ[name], annotation)
        if problem is not None:
            scan.problems.append(f"{name} (environment): {'.'.join(path)}: {problem}")
        else:
            scan.overrides.append(EnvOverride(name, path, value))
    return scan


def _env_candidates() -> dict[str, str]:
    """Every variable name that means something -> what it sets (``pacs.port``)."""
    out: dict[str, str] = {}

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            path = (*prefix, name)
            out[ENV_PREFIX + "__".join(path).upper()] = ".".join(path)
            if _kind(info.annotation) == "model":
                walk(_unwrap(info.annotation), path)

    walk(Settings, ())
    out.update(NON_SETTING_ENV)
    return out


def unknown_variable_problem(name: str) -> str:
    """The line for a ``PYSCHEDVISU_`` variable that sets nothing, naming the closest one."""
    candidates = _env_candidates()
    rest = name.upper()[len(ENV_PREFIX) :]
    by_rest = {c[len(ENV_PREFIX) :]: c for c in candidates}
    (best,) = difflib.get_close_matches(rest, list(by_rest), n=1, cutoff=0.0) or (None,)
    key = rest.lower().replace("__", ".") or "(empty)"
    hint = ""
    if best is not None:
        var = by_rest[best]
        hint = f"; closest: {var} ({candidates[var]})"
    return (
        f"{name} (environment): {key}: no such setting{hint}; settings are "
        f"{ENV_PREFIX}<SECTION>__<KEY>, two underscores"
    )


def _match_key(table: dict[str, Any], key: str) -> str:
    """The key of ``table`` spelt like ``key`` in any case (env names are upper case)."""
    for existing in table:
        if str(existing).lower() == key:
            return str(existing)
    return key


def _default_value(info: Any) -> Any:
    value = info.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {k: v.model_dump() if isinstance(v, BaseModel) else v for k, v in value.items()}
    return copy.deepcopy(value)


def apply_overrides(data: dict[str, Any], overrides: list[EnvOverride]) -> dict[str, Any]:
    """``data`` (the file's tables) with the ``overrides`` set: a table replaces, a key merges.

    A key inside a table the file does not have starts from that table's default (setting
    ``draw.machine.petge.gap_minutes`` keeps the other machines).
    """
    out = copy.deepcopy(data)
    for ov in sorted(overrides, key=lambda o: len(o.path)):
        node: dict[str, Any] = out
        ann: Any = Settings
        for i, part in enumerate(ov.path):
            last = i == len(ov.path) - 1
            if _kind(ann) == "model":
                info = _unwrap(ann).model_fields[part]
                key, child = part, info.annotation
                if not last and not isinstance(node.get(key), dict):
                    node[key] = _default_value(info) if _kind(child) == "dict" else {}
            else:
                args = get_args(_unwrap(ann))
                # a site's table (sites.<id>) holds plain values: Any below it
                key, child = _match_key(node, part), args[1] if len(args) == 2 else Any
                if not last and not isinstance(node.get(key), dict):
                    node[key] = {}
            if last:
                node[key] = copy.deepcopy(ov.value)
            else:
                node = node[key]
                ann = child
    return out


def _env_names_allowed(data: Mapping[str, Any]) -> set[str]:
    """Upper-case names of the variables the settings point at (privacy.key_env, ...)."""
    names = set()
    for section, key in ENV_NAME_SETTINGS:
        value = data.get(section, {}).get(key) if isinstance(data.get(section), dict) else None
        if not isinstance(value, str):
            model = _unwrap(Settings.model_fields[section].annotation)
            value = model.model_fields[key].default
        names.add(str(value).upper())
    return names
