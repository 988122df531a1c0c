"""The sections of the settings that say what the report shows and where it goes: drawing,
uptake windows, periods, the report, e-mail and the network report."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pyschedvisu import reference as ref
from pyschedvisu.config.sections import Section, _check_regex


class MachineDraw(Section):
    slots_per_weekday: list[int] = Field(
        description="Planned studies per weekday, Mon..Fri.", min_length=5, max_length=5
    )
    gap_minutes: int = Field(
        60, ge=1, description="Idle time between two studies that counts as a gap."
    )
    prep_minutes: int = Field(
        10, ge=0, description="Preparation time padded before and after each study."
    )
    in_service_from: dt.date | None = Field(
        None,
        description="First day the machine was in service (YYYY-MM-DD): retrieved days from then on count their slots, with or without studies. Unset = its first day with studies in the study table.",
    )
    in_service_until: dt.date | None = Field(
        None,
        description="Last day the machine was in service (YYYY-MM-DD). Unset = its last day with studies in the study table.",
    )


class DrawSettings(Section):
    colors: list[str] = Field(
        list(ref.COLORS),
        min_length=2,
        description="Colours of the labels (#rrggbb, rgb(r, g, b) or CSS names), in each machine's label order; OTHER takes the last. Later takes [2] get a darker shade. Keep a contrast of at least 3:1 on white.",
    )
    day_start_hour: int = Field(
        8, ge=0, le=23, description="Top of the schedule (widened to the earliest start)."
    )
    day_end_hour: int = Field(
        18, ge=1, le=24, description="Bottom of the schedule (widened to the latest end)."
    )
    retake_descriptions: list[str] = Field(
        list(ref.RETAKE_DESCRIPTIONS),
        description="Labels whose first take [1] and later takes [2] are shown apart.",
    )
    distribution_sample: str = Field(
        "3m", description="Sampling step of the time-of-day distribution (polars duration)."
    )
    distribution_smooth: str = Field(
        "15m", description="Smoothing window of the time-of-day distribution."
    )
    machine: dict[str, MachineDraw] = Field(
        default_factory=lambda: {
            k: MachineDraw.model_validate(v) for k, v in ref.MACHINE_DRAW.items()
        },
        description="Per display machine (minified name): slots, gap threshold, preparation minutes, service window.",
    )

    @field_validator("colors")
    @classmethod
    def _colors(cls, value: list[str]) -> list[str]:
        from pyschedvisu_core.colors import to_rgb

        for item in value:
            to_rgb(item)  # ValueError names the colour
        return value


class UptakeSettings(Section):
    """An uptake window and an activity reference: injection to scan (DOMAIN §8)."""

    descriptions: list[str] = Field(
        default_factory=list,
        description='Description labels (as in [descriptions.<machine>]) whose studies this table applies to; empty = the table\'s own name as a label, e.g. [uptake."FDG STAND."].',
    )
    tracers: list[str] = Field(
        default_factory=list,
        description='Regexes searched (case-insensitive) in the radiopharmaceutical of a study that no table names by its description, e.g. ["fdg", "fludeoxyglucose"].',
    )
    min_minutes: float | None = Field(
        None,
        ge=0,
        description="Shortest acceptable uptake (min): the study's first PET / NM acquisition start minus the injection time of its Radiopharmaceutical Information Sequence.",
    )
    target_minutes: float | None = Field(
        None, ge=0, description="Target uptake (min), drawn as a line in the window."
    )
    max_minutes: float | None = Field(None, ge=0, description="Longest acceptable uptake (min).")
    activity_ref_mbq: float | None = Field(
        None,
        gt=0,
        description="Reference administered activity (MBq), e.g. the department's diagnostic reference level: the report sets the median and P90 of the activities against it.",
    )
    source: str = Field("", description="Where the numbers come from, printed in the report.")

    @field_validator("tracers")
    @classmethod
    def _tracer_regexes(cls, value: list[str]) -> list[str]:
        for item in value:
            _check_regex(item)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> UptakeSettings:
        values = [
            v for v in (self.min_minutes, self.target_minutes, self.max_minutes) if v is not None
        ]
        if values != sorted(values):
            raise ValueError("min_minutes <= target_minutes <= max_minutes")
        if (self.min_minutes is None) != (self.max_minutes is None):
            raise ValueError("set both min_minutes and max_minutes (the window), or neither")
        return self


class PeriodDef(Section):
    weeks: int | None = Field(
        None, ge=1, description="Length in weeks, ending on the report end date (a Friday)."
    )
    anchor: Literal["year", "first_year"] | None = Field(
        None,
        description="Start at Jan 1 of the end date's year ('year') or of report.year_start ('first_year').",
    )
    label_fr: str = ""
    label_en: str = ""

    @model_validator(mode="after")
    def _one_of(self) -> PeriodDef:
        if (self.weeks is None) == (self.anchor is None):
            raise ValueError("set exactly one of 'weeks' or 'anchor'")
        return self


class ReportSettings(Section):
    periods: list[str] = Field(
        list(ref.PERIODS),
        description="Periods included, in page order (names from report.period_defs).",
    )
    year_start: int = Field(
        2016,
        ge=1990,
        le=2100,
        description="First year of data (default range start, long-term period).",
    )
    language: Literal["fr", "en"] = Field("fr", description="Language of the report.")
    title: str = Field("pySchedVisu", description="Report title (PDF metadata).")
    logos: list[Path] = Field(
        default_factory=list,
        description="Optional logo images (PNG/JPEG) shown in each page header.",
    )
    machine_pictures: dict[str, Path] = Field(
        default_factory=dict, description="Optional picture per display machine (minified name)."
    )
    period_defs: dict[str, PeriodDef] = Field(
        default_factory=lambda: {
            k: PeriodDef.model_validate(v) for k, v in ref.PERIOD_DEFS.items()
        },
        description="Named periods: by length in weeks or from a calendar anchor.",
    )
    html: bool = Field(True, description="Also write the interactive HTML report.")

    @model_validator(mode="after")
    def _known_periods(self) -> ReportSettings:
        unknown = [p for p in self.periods if p not in self.period_defs]
        if unknown:
            raise ValueError(
                f"unknown period(s) {unknown}; define them in [report.period_defs] or use {sorted(self.period_defs)}"
            )
        return self


class EmailSettings(Section):
    """Delivery of the report (credentials from env or a Prefect Secret block, never from here)."""

    enabled: bool = Field(False, description="Send the report by e-mail.")
    dry_run: bool = Field(False, description="Build the message and log it, but do not send.")
    smtp_host: str = Field("127.0.0.1", description="SMTP server.")
    smtp_port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    security: Literal["none", "starttls", "ssl"] = Field("none", description="Transport security.")
    username_env: str = Field(
        "PYSCHEDVISU_SMTP_USERNAME",
        description="Env variable holding the SMTP user (empty/unset = no login).",
    )
    password_env: str = Field(
        "PYSCHEDVISU_SMTP_PASSWORD", description="Env variable holding the SMTP password."
    )
    password_secret_block: str = Field(
        "",
        description="Prefect Secret block holding the SMTP password (used when the env variable is unset).",
    )
    sender_name: str = Field("pySchedVisu", description="Sender display name.")
    sender_address: str = Field("pyschedvisu@localhost", description="Sender address.")
    recipients: list[str] = Field(
        default_factory=list, description="Recipients (a list, or one comma-separated string)."
    )
    subject: str = Field(
        "Rapport pySchedVisu du {end_date}",
        description="Subject; placeholders {end_date}, {report_name}.",
    )
    body_html: str = Field(
        "<p>Bonjour,</p><p>Le rapport pySchedVisu est en pièce jointe et enregistré ici : "
        '<a href="file:///{report_path}">{report_name}</a> (dossier {report_dir}).</p>'
        "<p>Version interactive : {html_path}</p>",
        description="HTML body; placeholders {report_path}, {report_dir}, {report_name}, {html_path}, {end_date}.",
    )
    attach_pdf: bool = Field(True, description="Attach the PDF.")

    @field_validator("recipients", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value


class NetworkSettings(Section):
    """The network report: the sites ([sites.<id>]) compared, per machine type."""

    title: str = Field("pySchedVisu", description="Title of the network report.")
    output_dir: Path = Field(
        Path("var/network"),
        description="Network reports: <output_dir>/<YYYY>/pyschedvisu_network_<end>_<generated>.pdf/.html/.xlsx.",
    )
    work_pool: str = Field(
        "pyschedvisu-network",
        description="Work pool of the network-report deployment (a worker on any host that reaches the Prefect server: it needs no PACS).",
    )
    cron: str = Field(
        "0 7 * * 6",
        description="Schedule of the network report (cron, in calendar.timezone): after the sites' weekly runs (theirs: Saturday 01:00).",
    )
    machine_types: dict[str, str] = Field(
        default_factory=dict,
        description="Machine type of a display machine (e.g. {'PET GE' = 'PET/CT'}); a machine not listed gets its type from its studies' modalities (PET/CT, PET, SPECT/CT, NM).",
    )
