"""Writing a complete, commented TOML file of the settings (``pyschedvisu config init``)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from pyschedvisu.config.sections import MachineEntry
from pyschedvisu.config.settings import Settings


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
    if isinstance(value, dt.date):
        return value.isoformat()  # a TOML local date
    if isinstance(value, BaseModel):  # an inline table of the values that differ from defaults
        items = value.model_dump(mode="json", exclude_defaults=True).items()
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in items) + " }"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        inner = ", ".join(_toml_value(v) for v in value)
        if len(inner) > 90:
            return "[\n" + "".join(f"  {_toml_value(v)},\n" for v in value) + "]"
        return f"[{inner}]"
    if value is None:
        raise TypeError("None has no TOML form")
    raise TypeError(f"no TOML form for {type(value)}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def _comment(text: str | None) -> list[str]:
    return [f"# {line}" for line in (text or "").splitlines() if line]


def _emit_model(model: BaseModel, header: str, lines: list[str]) -> None:
    scalar: list[str] = []
    nested: list[tuple[str, Any, str | None]] = []
    for name, field in type(model).model_fields.items():
        if model is not None and isinstance(model, Settings) and name == "site":
            continue  # chosen with --site, never a key of the file
        value = getattr(model, name)
        if isinstance(value, BaseModel) or (
            isinstance(value, dict)
            and value
            and isinstance(next(iter(value.values())), BaseModel | dict)
        ):
            nested.append((name, value, field.description))
            continue
        if value is None:
            scalar.extend(_comment(field.description))
            scalar.append(f"# {name} =  (unset)")
            continue
        if isinstance(value, dict):
            nested.append((name, value, field.description))
            continue
        scalar.extend(_comment(field.description))
        scalar.append(f"{_toml_key(name)} = {_toml_value(value)}")
    if header:
        doc = (type(model).__doc__ or "").strip().splitlines()
        lines.append("")
        lines.extend(_comment(doc[0] if doc else None))
        lines.append(f"[{header}]")
    lines.extend(scalar)
    for name, value, desc in nested:
        sub = f"{header}.{_toml_key(name)}" if header else _toml_key(name)
        if isinstance(value, BaseModel):
            _emit_model(value, sub, lines)
            continue
        lines.append("")
        lines.extend(_comment(desc))
        if value and all(
            isinstance(v, BaseModel) and not isinstance(v, MachineEntry) for v in value.values()
        ):
            for key, item in value.items():
                _emit_model(item, f"{sub}.{_toml_key(key)}", lines)
        elif value and all(isinstance(v, dict) for v in value.values()):
            for key, item in value.items():
                lines.append(f"[{sub}.{_toml_key(key)}]")
                for k, v in item.items():
                    lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
                lines.append("")
        else:
            lines.append(f"[{sub}]")
            for k, v in value.items():
                lines.append(f"{_toml_key(k)} = {_toml_value(v)}")


def default_toml(settings: Settings | None = None) -> str:
    """A complete, commented TOML file of ``settings`` (defaults when none)."""
    settings = settings or Settings()
    lines = [
        "# pySchedVisu configuration.",
        "# Every key can be overridden by an environment variable PYSCHEDVISU_<SECTION>__<KEY>",
        "# (two underscores; e.g. PYSCHEDVISU_PACS__HOST=pacs.example.org). A list is given as",
        "# JSON or comma-separated (PYSCHEDVISU_EMAIL__RECIPIENTS=a@example.org,b@example.org), a",
        "# table as a JSON object, which replaces the file's table (PYSCHEDVISU_MACHINES='{...}').",
        "# A PYSCHEDVISU_ variable that names no setting is an error, except PYSCHEDVISU_CONFIG",
        "# (this file), PYSCHEDVISU_HOME and the secrets named below (privacy.key_env, email.*_env).",
        "# Secrets (SMTP password, pseudonymisation key) never go here: only the names of the",
        "# environment variables or Prefect Secret blocks that hold them.",
    ]
    _emit_model(settings, "", lines)
    return "\n".join(lines).strip() + "\n"
