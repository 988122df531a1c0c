"""The one settings model of pySchedVisu (TOML file + environment overrides).

Precedence, highest first: environment variables ``PYSCHEDVISU_<SECTION>__<KEY>``
(values of list / table keys as JSON), the TOML file (``--config`` or
``PYSCHEDVISU_CONFIG``), then the defaults below, which describe the reference
department and its demo PACS. Secrets (SMTP password, pseudonymisation key) are
never read from the file: only the *names* of the environment variables or Prefect
Secret blocks that hold them.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pyschedvisu import reference as ref
from pyschedvisu_core.errors import ConfigError
from pyschedvisu_core.labels import minify_machine

ENV_PREFIX = "PYSCHEDVISU_"
CONFIG_ENV = "PYSCHEDVISU_CONFIG"


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


class PathsSettings(Section):
    """Where data and reports live."""

    data_dir: Path = Field(
        Path("var/data"), description="Series store (one Parquet per day), study table, manifests."
    )
    output_dir: Path = Field(
        Path("var/reports"),
        description="Reports: <output_dir>/<YYYY>/pyschedvisu_report_<end>_<generated>.pdf/.html.",
    )
    log_dir: Path = Field(Path("var/logs"), description="Log files, one dated folder per run.")


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level. Patient data never appear at INFO or above."
    )


class PrivacySettings(Section):
    """Pseudonymisation of patient ids (HMAC-SHA256) before anything is stored or logged."""

    key_env: str = Field(
        "PYSCHEDVISU_PSEUDONYM_KEY", description="Environment variable holding the HMAC key."
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


class ExtractSettings(Section):
    retake_split_s: int = Field(
        3540,
        ge=0,
        description="A pause longer than this between two series of one study starts a new take.",
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


class DrawSettings(Section):
    colors: list[str] = Field(
        list(ref.COLORS),
        min_length=2,
        description="Colours of the labels, in each machine's label order; OTHER takes the last.",
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
        description="Per display machine (minified name): slots, gap threshold, preparation minutes.",
    )


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


class Settings(BaseSettings):
    """Every setting of pySchedVisu. See ``pyschedvisu config init`` for a commented file."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        nested_model_default_partial_update=True,
    )

    pacs: PacsSettings = Field(default_factory=PacsSettings)
    paths: PathsSettings = Field(default_factory=PathsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    machines: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in ref.MACHINES.items()},
        description="Machine group -> minified model names that must ALL appear in one study. '<name>_NoCT' = same scanner without CT.",
    )
    descriptions: dict[str, dict[str, list[str]]] = Field(
        default_factory=lambda: {
            k: {lk: list(lv) for lk, lv in v.items()} for k, v in ref.DESCRIPTIONS.items()
        },
        description="Per display machine (minified name): label -> regexes that must match the minified StudyDescription fully (lower case; no spaces, accents or _ - ^ ( ) + : . '); first label wins, else OTHER.",
    )
    draw: DrawSettings = Field(default_factory=DrawSettings)
    report: ReportSettings = Field(default_factory=ReportSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (given as init kwargs); no .env or secrets dir.
        return (env_settings, init_settings)

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


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _env_source(loc: tuple[Any, ...]) -> str | None:
    """The environment variable that set ``loc`` (or its section), if one did."""
    names = {k.upper() for k in os.environ if k.upper().startswith(ENV_PREFIX)}
    parts = [str(p).upper() for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    for n in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:n])
        if name in names:
            return name
    return None


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ``$PYSCHEDVISU_CONFIG``) plus env overrides.

    Raises :class:`ConfigError` with one ``file: section.key: what is wrong`` line per problem.
    """
    file = config_path(path)
    label = str(file) if file else "<defaults>"
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(
                [
                    f"{label}: file not found (set --config or {CONFIG_ENV}, or run `pyschedvisu config init`)"
                ]
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{label}: not valid TOML: {exc}"]) from exc
    for key, value in overrides.items():
        data[key] = value
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _format_loc(err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key: remove it or check its spelling (see `pyschedvisu config init`)"
            elif err["type"] == "missing":
                msg = "required key is missing"
            else:
                got = err.get("input")
                if not isinstance(got, dict | list) and got is not None:
                    msg = f"{msg} (got {got!r})"
            if loc == "(top level)" and " ;; " in msg:
                problems.extend(f"{label}: {part}" for part in msg.split(" ;; "))
                continue
            env = _env_source(tuple(err["loc"]))
            source = f"{env} (environment)" if env else label
            problems.append(f"{source}: {loc}: {msg}")
        raise ConfigError(problems) from exc


# -- writing a commented default ----------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        return json.dumps(str(value))
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
        if value and all(isinstance(v, BaseModel) for v in value.values()):
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
        "# (e.g. PYSCHEDVISU_PACS__HOST=pacs.example.org; lists and tables as JSON).",
        "# Secrets (SMTP password, pseudonymisation key) never go here: only the names of the",
        "# environment variables or Prefect Secret blocks that hold them.",
    ]
    _emit_model(settings, "", lines)
    return "\n".join(lines).strip() + "\n"
