"""The root of the one settings model: :class:`Settings`, its whole-config checks, and its
values as plain values for the core."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pyschedvisu import reference as ref
from pyschedvisu.config.report_sections import (
    DrawSettings,
    EmailSettings,
    NetworkSettings,
    ReportSettings,
    UptakeSettings,
)
from pyschedvisu.config.sections import (
    CalendarSettings,
    ExtractSettings,
    LoggingSettings,
    MachineEntry,
    PacsSettings,
    PathsSettings,
    PrivacySettings,
    RetrieveSettings,
    TakesSettings,
    WorklistSettings,
    _check_regex,
)
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.schema import DEFAULT_SITE

#: What a site id may be: it names a work pool (``pyschedvisu-<site>``) and artifact keys.
SITE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")


def display_machine(group: str) -> str:
    """Display machine of a machine group: the group without its ``_NoCT`` suffix."""
    return group.removesuffix("_NoCT")


class Settings(BaseSettings):
    """Every setting of pySchedVisu. See ``pyschedvisu config init`` for a commented file."""

    model_config = SettingsConfigDict(extra="forbid", validate_assignment=True)

    pacs: PacsSettings = Field(default_factory=PacsSettings)
    worklist: WorklistSettings = Field(default_factory=WorklistSettings)
    paths: PathsSettings = Field(default_factory=PathsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    takes: TakesSettings = Field(default_factory=TakesSettings)
    machines: dict[str, list[str] | MachineEntry] = Field(
        default_factory=lambda: {k: list(v) for k, v in ref.MACHINES.items()},
        description='Machine group -> minified model names that must ALL appear in one study. \'<name>_NoCT\' = same scanner without CT. Two scanners of one model: name each one\'s StationName and / or DeviceSerialNumber, e.g. "Intevo 1" = { models = ["encore2", "symbiaintevo16"], station_names = ["NMINTEVO1"] } (see `pyschedvisu discover`).',
    )
    descriptions: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: {
            k: {lk: list(lv) for lk, lv in v.items()} for k, v in ref.DESCRIPTIONS.items()
        },
        description="Per display machine (minified name): label -> regexes that must match the minified StudyDescription fully (lower case; no spaces, accents or _ - ^ ( ) + : . '); first label wins, else OTHER.",
    )
    draw: DrawSettings = Field(default_factory=DrawSettings)
    uptake: dict[str, UptakeSettings] = Field(
        default_factory=lambda: {
            k: UptakeSettings.model_validate(v) for k, v in ref.UPTAKE.items()
        },
        description='Injection to scan, per label: the uptake window (min) and the activity reference (MBq) of the report\'s "Injection → scan" panel. A study gets the first table naming its description, else the first whose tracers find its radiopharmaceutical; none: shown without a target. FDG: EANM FDG PET/CT guideline v2.0 (Boellaard 2015), 60 min, 55-75 acceptable. uptake = {} : no targets at all.',
    )
    report: ReportSettings = Field(default_factory=ReportSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    sites: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Several departments on one Prefect server: one table per site ([sites.<id>]; ids of lower-case letters, digits and dashes) holding any section of this file ([sites.<id>.pacs], [sites.<id>.retrieve], [sites.<id>.machines], [sites.<id>.descriptions], [sites.<id>.draw], [sites.<id>.paths], [sites.<id>.email], ...). A site shares every top-level value it does not set: a section merges key by key, a table of named entries ([machines], [descriptions], [draw.machine], ...) replaces the top level's; its data_dir, output_dir and log_dir default to a folder named after it under the top-level ones. Commands then need --site ID (or PYSCHEDVISU_SITE). Empty: one department, site 'default'.",
    )
    site: str = Field(
        DEFAULT_SITE,
        description="The site these settings are for (set by the loader from --site, never by the file).",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only the values given: load_settings() merges the file and the environment itself
        # (a table set by env replaces the file's; every problem named by its source).
        return (init_settings,)

    @field_validator("sites")
    @classmethod
    def _site_ids(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        bad = [k for k in value if not SITE_ID.fullmatch(k)]
        if bad:
            raise ValueError(
                f"site id(s) {', '.join(repr(b) for b in bad)}: use lower-case letters, digits "
                "and dashes (they name work pools pyschedvisu-<site>), at most 40 characters"
            )
        return value

    @field_validator("descriptions")
    @classmethod
    def _description_regexes(
        cls, value: dict[str, dict[str, list[str]]]
    ) -> dict[str, dict[str, list[str]]]:
        for table in value.values():
            for patterns in table.values():
                for p in patterns:
                    _check_regex(p)
        return value

    @field_validator("machines")
    @classmethod
    def _machines_distinct(
        cls, value: dict[str, list[str] | MachineEntry]
    ) -> dict[str, list[str] | MachineEntry]:
        """Entries naming the same models and the same identifiers cannot be told apart."""
        from pyschedvisu_core.machines import machine_specs

        by_key: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[str]] = {}
        for group, entry in value.items():
            for spec in machine_specs(plain_machines({group: entry})):
                if spec.specificity:
                    key = (spec.models, spec.stations, spec.serials)
                    by_key.setdefault(key, []).append(group)
        clashes = [groups for groups in by_key.values() if len(groups) > 1]
        if clashes:
            raise ValueError(
                "; ".join(
                    f"{', '.join(repr(g) for g in groups)} name the same models, station names "
                    "and serial numbers: they cannot be told apart"
                    for groups in clashes
                )
            )
        return value

    @model_validator(mode="after")
    def _machines_complete(self) -> Settings:
        problems = []
        names = self.machine_names()
        for key in self.display_machines():
            if key not in self.descriptions:
                problems.append(
                    f"descriptions.{key}: machine {names[key]!r} has no label table: add [descriptions.{key}] with label = [patterns]"
                )
            if key not in self.draw.machine:
                problems.append(
                    f"draw.machine.{key}: machine {names[key]!r} has no drawing settings: add [draw.machine.{key}] with slots_per_weekday, gap_minutes, prep_minutes"
                )
        if "machine" not in self.worklist.model_fields_set:
            # the default stations are the reference department's: they apply to its
            # machines only, and a department that replaced [machines] is not told about them
            self.worklist.machine = {k: v for k, v in self.worklist.machine.items() if k in names}
        for key in self.worklist.machine:
            if key not in names:
                problems.append(
                    f"worklist.machine.{key}: no machine {key!r} in [machines] (keys are minified display names: {', '.join(names)})"
                )
        if problems:
            raise ValueError(" ;; ".join(problems))
        return self

    # -- plain values for the core -------------------------------------------------
    def display_machines(self) -> list[str]:
        """Minified display machine keys, in config order, without duplicates."""
        seen: dict[str, None] = {}
        for group in self.machines:
            seen.setdefault(minify_machine(display_machine(group)), None)
        return list(seen)

    def machine_names(self) -> dict[str, str]:
        """Minified display key -> display name (``petge`` -> ``PET GE``)."""
        out: dict[str, str] = {}
        for group in self.machines:
            name = display_machine(group)
            out.setdefault(minify_machine(name), name)
        return out

    def extra_closed(self) -> tuple[tuple[int, int], ...]:
        from pyschedvisu_core.calendar import parse_month_day

        return tuple(parse_month_day(d) for d in self.calendar.extra_closed_days)

    def business_days(self, start: Any, end: Any) -> list[Any]:
        from pyschedvisu_core.calendar import business_days

        return business_days(
            start, end, self.calendar.country, self.calendar.subdiv or None, self.extra_closed()
        )

    def fingerprint(self, *sections: str) -> str:
        """Stable hash of the given sections (all when none): cache keys and manifests."""
        import hashlib

        data = self.model_dump(mode="json", include=set(sections) if sections else None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def uptake_windows(settings: Settings) -> tuple[Any, ...]:
    """``[uptake.<label>]`` as plain values for the core (``uptake.UptakeWindow``, seconds)."""
    from pyschedvisu_core.uptake import UptakeWindow

    def s(minutes: float | None) -> float | None:
        return None if minutes is None else minutes * 60

    return tuple(
        UptakeWindow(
            name=name,
            descriptions=tuple(u.descriptions),
            tracers=tuple(u.tracers),
            min_s=s(u.min_minutes),
            target_s=s(u.target_minutes),
            max_s=s(u.max_minutes),
            activity_ref_mbq=u.activity_ref_mbq,
            source=u.source,
        )
        for name, u in settings.uptake.items()
    )


def plain_machines(
    machines: dict[str, list[str] | MachineEntry],
) -> dict[str, list[str] | dict[str, list[str]]]:
    """``[machines]`` as plain values for the core: a list of models, or an entry's table."""
    return {
        group: entry.model_dump() if isinstance(entry, MachineEntry) else list(entry)
        for group, entry in machines.items()
    }
