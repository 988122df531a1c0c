"""The one settings model of pySchedVisu (TOML file + environment overrides).

Precedence, highest first: environment variables ``PYSCHEDVISU_<SECTION>__<KEY>``, the
TOML file (``--config`` or ``PYSCHEDVISU_CONFIG``), then the defaults below, which
describe the reference department and its demo PACS. :func:`load_settings` applies
them; ``Settings(**values)`` alone is the defaults plus ``values`` (no environment).

From the environment, a list is a JSON list or a comma-separated string, a table is a
JSON object that *replaces* the file's table, anything else is the plain value. A
variable starting with ``PYSCHEDVISU_`` that is not a setting is an error, unless it
is one of :data:`NON_SETTING_ENV` (or named by ``privacy.key_env`` / ``email.*_env``).

Secrets (SMTP password, pseudonymisation key) are never read from the file: only the
*names* of the environment variables or Prefect Secret blocks that hold them.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pyschedvisu import reference as ref
from pyschedvisu_core.errors import ConfigError
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.schema import DEFAULT_SITE

ENV_PREFIX = "PYSCHEDVISU_"
CONFIG_ENV = "PYSCHEDVISU_CONFIG"
#: Where the values come from when no config file is given.
DEFAULTS_LABEL = "built-in defaults"

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
#: What a site id may be: it names a work pool (``pyschedvisu-<site>``) and artifact keys.
SITE_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
#: Paths a site gets a folder of its own under (named after it), unless its table sets them.
SITE_PATHS = ("data_dir", "output_dir", "log_dir")
#: Settings whose value is the name of an environment variable (allowed whatever its name).
ENV_NAME_SETTINGS = (("privacy", "key_env"), ("email", "username_env"), ("email", "password_env"))


def display_machine(group: str) -> str:
    """Display machine of a machine group: the group without its ``_NoCT`` suffix."""
    return group.removesuffix("_NoCT")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class PacsSettings(Section):
    """How to reach the PACS. Defaults point at the demo PACS (`pyschedvisu pacs serve`)."""

    host: str = Field("127.0.0.1", description="Host name or IP address of the PACS.")
    port: int = Field(11112, ge=1, le=65535, description="DICOM port of the PACS.")
    called_ae: str = Field(
        "DEMOPACS", max_length=16, description="AE title of the PACS (called AE)."
    )
    calling_ae: str = Field(
        "PYSCHEDVISU",
        max_length=16,
        description="Our AE title (calling AE); must be registered at the PACS.",
    )
    move_ae: str = Field(
        "",
        max_length=16,
        description="AE title the PACS sends C-MOVE results to; empty = calling_ae.",
    )
    move_port: int = Field(
        11113,
        ge=0,
        le=65535,
        description="Port of our own Storage SCP that receives C-MOVE results (must be registered at the PACS and open in the firewall). 0 = any free port (demo/tests only).",
    )
    move_bind: str = Field("0.0.0.0", description="Address our Storage SCP listens on for C-MOVE.")
    retrieval: Literal["auto", "image-find", "c-get", "c-move"] = Field(
        "auto",
        description="How instance timing is obtained: 'auto' probes the PACS once and picks the lightest it allows; 'image-find' = IMAGE-level C-FIND (no file moves); 'c-get'; 'c-move' to our Storage SCP.",
    )
    connect_timeout_s: float = Field(
        10.0, gt=0, description="TCP connect / association request timeout (s)."
    )
    acse_timeout_s: float = Field(30.0, gt=0, description="Association negotiation timeout (s).")
    dimse_timeout_s: float = Field(
        120.0, gt=0, description="Timeout waiting for one DIMSE response (s)."
    )
    network_timeout_s: float = Field(
        60.0, gt=0, description="Idle network timeout of an association (s)."
    )
    move_timeout_s: float = Field(
        600.0, gt=0, description="Longest wait for one C-MOVE / C-GET to finish (s)."
    )
    idle_release_s: float = Field(
        5.0,
        ge=0,
        description="Release the open associations once the client has been idle this long (s); 0 = keep them until the run ends.",
    )
    deflate_answers: bool = Field(
        True,
        description="Ask for C-FIND answers in Deflated Explicit VR Little Endian (PS3.5 A.5) where the PACS accepts it: about 16 % fewer bytes. A PACS that refuses it answers uncompressed; one whose deflated answers cannot be read is asked uncompressed for the rest of the run. false = never ask.",
    )
    max_concurrent: int = Field(
        2, ge=1, le=64, description="Associations open at the same time towards the PACS."
    )
    max_ops_per_s: float = Field(
        20.0,
        gt=0,
        description="Ceiling of DIMSE requests per second sent to the PACS (all workers together).",
    )
    op_retries: int = Field(
        4,
        ge=0,
        le=20,
        description="Retries of one DIMSE operation on timeouts or aborts (and on 'busy' answers outside a day's retrieval; within a day they are asked again until retrieve.day_deadline_s).",
    )
    backoff_base_s: float = Field(
        0.5, ge=0, description="First retry delay (s); doubles each retry."
    )
    backoff_max_s: float = Field(30.0, ge=0, description="Longest retry delay (s).")
    backoff_jitter_s: float = Field(
        0.5,
        ge=0,
        description="Random extra delay added to each retry (s), so workers do not retry in step.",
    )
    breaker_failures: int = Field(
        5,
        ge=1,
        le=100,
        description="Connection refusals or timeouts in a row (any request, any day) after which the PACS is taken as down: every day in flight stops at once ('PACS unreachable since HH:MM:SS').",
    )
    breaker_cooldown_s: float = Field(
        10.0,
        ge=0,
        description="Seconds after the PACS was taken as down before a C-ECHO checks it again (a retried task then resumes if it answers).",
    )
    series_per_batch: int = Field(
        50, ge=1, description="Series whose instance headers are requested per batch."
    )
    probe_cache: bool = Field(
        True,
        description="Remember the probed retrieval method per PACS in data_dir (re-probed when host/port/AE change).",
    )


class WorklistMachineSettings(Section):
    """Which Modality Worklist entries are one machine's."""

    station_aes: list[str] = Field(
        default_factory=list,
        description="Scheduled Station AE Titles of the machine's worklist entries (one C-FIND each); ask the RIS team which ones.",
    )
    modalities: list[str] = Field(
        default_factory=list,
        description="Modalities of its entries, used when station_aes is empty (one C-FIND per modality; an entry goes to the first such machine, in [machines] order).",
    )

    @field_validator("station_aes")
    @classmethod
    def _ae_titles(cls, value: list[str]) -> list[str]:
        for item in value:
            if not item.strip() or len(item.strip()) > 16:
                raise ValueError(f"{item!r} is not an AE title (1 to 16 characters)")
        return value


class WorklistSettings(Section):
    """The Modality Worklist (RIS) whose snapshots give the plan: planned against performed.

    Timeouts, pacing and retries are those of [pacs]. Off by default: without it the report
    shows no plan.
    """

    enabled: bool = Field(
        False,
        description="Take worklist snapshots (`pyschedvisu worklist snapshot`, the worklist-snapshot deployment) and report planned against performed.",
    )
    host: str = Field("127.0.0.1", description="Host name or IP address of the worklist (RIS).")
    port: int = Field(11112, ge=1, le=65535, description="DICOM port of the worklist.")
    called_ae: str = Field(
        "DEMOPACS", max_length=16, description="AE title of the worklist (called AE)."
    )
    calling_ae: str = Field(
        "PYSCHEDVISU",
        max_length=16,
        description="Our AE title towards the worklist; the RIS must allow it to query the Modality Worklist.",
    )
    match_window_minutes: int = Field(
        180,
        ge=1,
        le=24 * 60,
        description="A step without Study Instance UID or accession number of the study matches a study of the same patient on the same machine and day only if it started within this many minutes of the scheduled start (the nearest wins).",
    )
    machine: dict[str, WorklistMachineSettings] = Field(
        default_factory=lambda: {
            k: WorklistMachineSettings.model_validate(v) for k, v in ref.WORKLIST_MACHINES.items()
        },
        description="Per display machine (minified name): the station AE titles and/or modalities of its worklist entries. A machine not listed has no plan.",
    )


class PathsSettings(Section):
    """Where data and reports live."""

    data_dir: Path = Field(
        Path("var/data"), description="Series store (one Parquet per day), study table, manifests."
    )
    output_dir: Path = Field(
        Path("var/reports"),
        description="Reports: <output_dir>/<YYYY>/pyschedvisu_report_<end>_<generated>.pdf/.html.",
    )
    log_dir: Path = Field(
        Path("var/logs"),
        description="Log files: <log_dir>/<YYYY-MM-DD>/<command>_<HHMMSS>.log, one per command or flow run (INFO and above, no patient data).",
    )
    log_retention_days: int = Field(
        90,
        ge=0,
        description="Dated log folders older than this many days are removed when a run starts; 0 = keep them all.",
    )


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level. Patient data never appear at INFO or above."
    )


class PrivacySettings(Section):
    """Pseudonymisation of patient ids (HMAC-SHA256) before anything is stored or logged."""

    key_env: str = Field(
        "PYSCHEDVISU_PSEUDONYM_KEY",
        description="Environment variable holding the HMAC key: at least 128 bits of entropy, e.g. `openssl rand -hex 32`.",
    )
    key_secret_block: str = Field(
        "",
        description="Prefect Secret block holding the key, used when the env variable is not set.",
    )
    allow_demo_key: bool = Field(
        False,
        description="Use a fixed, public key when no key is configured. Only for the demo department.",
    )


class CalendarSettings(Section):
    country: str = Field(
        "CH", description="Country of the public holidays (holidays package code)."
    )
    subdiv: str = Field(
        "VD",
        description="Subdivision (canton / state) of the public holidays; empty = national only.",
    )
    extra_closed_days: list[str] = Field(
        ["12-24", "12-26", "12-31"], description="Other closed days every year, as MM-DD."
    )
    report_cutoff_hour: int = Field(
        22,
        ge=0,
        le=23,
        description="Before this hour today is not complete: the automatic end date uses yesterday.",
    )
    timezone: str = Field(
        "Europe/Zurich",
        description="Time zone of the department (IANA name): its deployments' schedules and the automatic end date of a scheduled run.",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (e.g. Europe/Zurich)") from None
        return value

    @field_validator("extra_closed_days")
    @classmethod
    def _month_days(cls, value: list[str]) -> list[str]:
        from pyschedvisu_core.calendar import parse_month_day

        for item in value:
            try:
                parse_month_day(item)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not a MM-DD day") from exc
        return value


class RetrieveSettings(Section):
    """Which studies and series are kept (DOMAIN §2)."""

    study_modalities: list[str] = Field(
        ["PT", "NM"], description="ModalitiesInStudy asked at STUDY level."
    )
    series_modalities: list[str] = Field(
        ["NM", "PT", "CT"], description="Modalities of the series kept."
    )
    patient_id_pattern: str = Field(
        r"^\d+$",
        description="Studies whose PatientID does not match (full match) are dropped (test/phantom patients).",
    )
    study_description_exclude: list[str] = Field(
        list(ref.STUDY_DESCRIPTION_EXCLUDE),
        description="StudyDescriptions dropped (exact, case-insensitive): images imported from outside.",
    )
    series_description_exclude: list[str] = Field(
        list(ref.SERIES_DESCRIPTION_EXCLUDE),
        description="Regexes (case-insensitive, anchored at the start) of derived SeriesDescriptions to drop.",
    )
    series_protocol_exclude: list[str] = Field(
        list(ref.SERIES_PROTOCOL_EXCLUDE), description="ProtocolNames dropped (exact)."
    )
    accepted_institutions: list[str] = Field(
        list(ref.ACCEPTED_INSTITUTIONS),
        description="Normalised InstitutionNames accepted ('mixed' = several names, one of them accepted).",
    )
    institution_from: Literal["instances", "series"] = Field(
        "instances",
        description="Where each series' InstitutionName is read: 'instances' = from one of its instance headers (those moved for timing, else one more instance per series), because some PACS (Orthanc) answer the study's name for every series, hiding a series that has none; 'series' = the SERIES-level C-FIND answers, lighter, for a PACS that indexes it per series (files are then read only for the studies the rule rejects).",
    )
    retries_per_day: int = Field(
        3,
        ge=0,
        le=10,
        description="Passes over the failed series of a day before they are kept as failed.",
    )
    final_after_hours: float = Field(
        24.0,
        ge=0,
        description="A day is final (cached for good) only this long after it ends; before that it is fetched again.",
    )
    day_deadline_s: float = Field(
        1800.0,
        gt=0,
        description="Longest a day's retrieval may wait on a PACS that keeps answering 'busy' (0xC336, 0xA7xx): busy answers are asked again, slower, until then, and the day fails after it.",
    )
    max_series_minutes: int = Field(
        180,
        ge=1,
        description="A CT or PT series whose first and last instances are further apart than this is failed (implausible_duration): a wrong AcquisitionTime, not a scan.",
    )
    max_study_minutes: int = Field(
        360,
        ge=1,
        description="Longest study (series of one StudyInstanceUID with no pause over extract.retake_split_s) believed on any machine; its series are failed beyond it (implausible_study_duration).",
    )
    max_study_minutes_by_machine: dict[str, int] = Field(
        {},
        description="max_study_minutes for some machines, by display name (e.g. {'SPECT-CT' = 480}).",
    )

    @field_validator("patient_id_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        _check_regex(value)
        return value

    @field_validator("series_description_exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for item in value:
            _check_regex(item)
        return value


class MachineEntry(Section):
    """A ``[machines]`` entry naming its scanner (identical scanners, DOMAIN §7).

    ``"Intevo 1" = { models = ["encore2", "symbiaintevo16"], station_names = ["NMINTEVO1"] }``:
    the study's model set must be ``models`` and one of its series must carry one of the
    named StationName (and / or DeviceSerialNumber) values. A bare list of models is the same
    entry naming no identifier.
    """

    models: list[str] = Field(
        min_length=1, description="Minified model names that must ALL appear in one study."
    )
    station_names: list[str] = Field(
        default_factory=list,
        description="StationName (0008,1010) values of this scanner (any of them); empty = any.",
    )
    device_serial_numbers: list[str] = Field(
        default_factory=list,
        description="DeviceSerialNumber (0018,1000) values of this scanner (any of them); empty = any.",
    )

    @field_validator("station_names", "device_serial_numbers", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ExtractSettings(Section):
    retake_split_s: int = Field(
        3540,
        ge=0,
        description="A pause longer than this between two series of one study starts a new take.",
    )


class TakesSettings(Section):
    """How a study is cut into takes (DOMAIN §3.3)."""

    overlap_tolerance_s: int = Field(
        60,
        ge=0,
        description="Another patient's series cuts a study into takes only when it lies in an idle stretch between two of its series and overlaps neither by more than this (s); one that overlaps more (clock offset, wrong scanner) is a data-quality finding, not a cut.",
    )


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


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc


# -- loading ---------------------------------------------------------------------------


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


# -- environment overrides ----------------------------------------------------------------


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


# -- loading -----------------------------------------------------------------------------


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


# -- writing a commented default ----------------------------------------------------------


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
