"""The sections of the settings that say where the data come from and how they are read:
the PACS, the worklist, paths, logging, privacy, the calendar, retrieval and extraction."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from pyschedvisu import reference as ref


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
    first_day: dt.date | None = Field(
        None,
        description="First day the PACS holds studies of these machines (a new department's opening, a PACS migration; YYYY-MM-DD). The weekly report does not ask the PACS for earlier days, nor says they came back empty; their pages show them as before the machines' service (DOMAIN §4). Empty: every day the report's periods reach back to is asked.",
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


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
