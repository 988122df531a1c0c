"""A config draft for a surveyed department (``pyschedvisu discover --write-config PATH``).

The draft is the current config (PACS, paths, report...) with the department's own values in
place of the reference department's: accepted institutions, ``[machines]`` named from the
models, drawing settings from what was seen, and one empty ``[descriptions.<machine>]`` table
per machine whose study descriptions are listed below it as commented suggestions (label =
pattern, with counts): naming the labels is the one edit left. The draft passes
``pyschedvisu config validate`` as written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pyschedvisu.config import (
    DrawSettings,
    MachineDraw,
    MachineEntry,
    RetrieveSettings,
    Settings,
    _toml_key,
    _toml_value,
    default_toml,
)
from pyschedvisu_core.surveydraft import Draft

PREP_MINUTES = 10


def draft_settings(settings: Settings, draft: Draft) -> Settings:
    """``settings`` with the drafted department's values (no environment read here)."""
    retrieve = RetrieveSettings.model_validate(
        {**settings.retrieve.model_dump(), "accepted_institutions": list(draft.accepted)}
    )
    machines: dict[str, list[str] | MachineEntry] = {
        group: list(value) if isinstance(value, list) else MachineEntry.model_validate(value)
        for group, value in draft.machines_table().items()
    }
    draw = DrawSettings.model_validate(
        {
            **settings.draw.model_dump(),
            "machine": {
                key: MachineDraw(
                    slots_per_weekday=draft.slots[key],
                    gap_minutes=draft.gap_minutes[key],
                    prep_minutes=PREP_MINUTES,
                )
                for key in draft.names
            },
        }
    )
    report = settings.report.model_copy(update={"machine_pictures": {}})
    # the worklist's stations are the current department's: none of them is a drafted machine
    worklist = settings.worklist.model_copy(
        update={"machine": {k: v for k, v in settings.worklist.machine.items() if k in draft.names}}
    )
    fields = {name: getattr(settings, name) for name in Settings.model_fields}
    fields.update(
        retrieve=retrieve,
        machines=machines,
        descriptions={key: {} for key in draft.names},
        draw=draw,
        report=report,
        worklist=worklist,
    )
    # model_construct: the sections are validated already, and the environment must not
    # overwrite what was discovered (the written file is validated as a whole afterwards)
    return Settings.model_construct(**fields)


def _date(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _span(first: Any, last: Any) -> str:
    if first is None:
        return "not seen"
    return _date(first) if first == last else f"{_date(first)}..{_date(last)}"


def _insert_after(lines: list[str], header: str, extra: list[str]) -> None:
    """``extra`` after the line ``header`` (left as is when the header is not there)."""
    try:
        at = lines.index(header)
    except ValueError:
        return
    lines[at + 1 : at + 1] = extra


def draft_toml(settings: Settings, draft: Draft, *, title: str) -> str:
    """The draft as a commented TOML file (``title``: where and over which days it was drawn)."""
    text = default_toml(draft_settings(settings, draft))
    lines = text.splitlines()
    head = [
        f"# Draft written by `pyschedvisu discover` {title}.",
        "# Check the institutions and machines below, name the labels of each",
        "# [descriptions.<machine>] table (its study descriptions are listed there, commented),",
        "# then run `pyschedvisu --config <this file> config validate`.",
    ]
    lines[0:0] = [*head, ""]

    # institutions: where each name comes from, before the accepted list
    at = next(
        (i for i, line in enumerate(lines) if line.startswith("accepted_institutions = ")), None
    )
    if at is not None:
        notes = ["# InstitutionNames seen (studies, share); drafted as ours: on >= 3 % of them."]
        for raw, norm, n, share, ours in draft.institutions:
            verdict = (
                "accepted" if ours else "not accepted (images from elsewhere? add it if it is ours)"
            )
            notes.append(f"#   {raw!r} -> {norm}: {n} ({share:.0%}) {verdict}")
        notes.append("# 'mixed': a study whose series carry several names, one of them accepted.")
        lines[at:at] = notes

    notes = ["# Drafted from the model combinations seen (studies, first..last):"]
    for m in draft.machines:
        where = f" at {m.identifiers}" if m.identifiers else ""
        notes.append(
            f"#   {m.group!r}: {m.names}{where}: "
            + (f"{m.studies} ({_span(m.first, m.last)})" if m.studies else "not seen (no CT)")
        )
    if draft.left_out:
        notes.append(
            "# Left out (their studies stay 'mixed cases'; add them if they are scanners):"
        )
        for models, names, n, why in draft.left_out:
            notes.append(f"#   {models} ({names}): {n} stud{'y' if n == 1 else 'ies'}: {why}")
    _insert_after(lines, "[machines]", notes)

    for key in draft.names:
        header = f"[descriptions.{_toml_key(key)}]"
        found = draft.suggestions.get(key, [])
        notes = [
            "# Name a label for the study descriptions of this machine: uncomment and rename,",
            "# several patterns per label (first label that matches wins, else OTHER).",
        ]
        if not found:
            notes.append("# (no study description seen)")
        for s in found:
            notes.append(
                f"# {_toml_key(s.label)} = {_toml_value([s.pattern])}  # {s.studies} "
                f"stud{'y' if s.studies == 1 else 'ies'}, {_span(s.first, s.last)}"
            )
        _insert_after(lines, header, notes)
        _insert_after(
            lines,
            f"[draw.machine.{_toml_key(key)}]",
            ["# Drafted: slots = studies seen per weekday (mean); set the planned slots."],
        )
    return "\n".join(lines) + "\n"


__all__ = ["draft_settings", "draft_toml"]
