"""One day of PACS metadata into the series store (DOMAIN §2), the lightest way the PACS allows.

``retrieve_day`` asks the studies of the day (STUDY C-FIND per modality), their series
(SERIES C-FIND per study), applies the study / series / institution rules of
:mod:`pyschedvisu_core.series`, times every kept series from instance headers (IMAGE-level
C-FIND when the PACS returns the timing tags, else C-GET, else C-MOVE of only the needed
instances), retries what failed, pseudonymises patient ids and writes the day atomically.
A day that cannot be completed raises :class:`RetrievalError` and writes nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu.config import Settings
from pyschedvisu.privacy import load_key, pseudonymise
from pyschedvisu.store import SeriesStore, atomic_write_bytes
from pyschedvisu_core import pacs as core
from pyschedvisu_core import schema
from pyschedvisu_core.dicomtime import parse_da, parse_tm
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsAnswerError,
    PacsError,
    PacsOperationError,
    PacsUnreachableError,
    RetrievalError,
    StoreError,
)
from pyschedvisu_core.schema import Reason
from pyschedvisu_core.series import (
    filter_institutions,
    filter_series,
    filter_studies,
    instances_needed,
    needs_file_headers,
    series_timing,
)

log = logging.getLogger("pyschedvisu.retrieval")

#: Bump when what is stored for a day changes meaning: stored days are then fetched again.
STORE_VERSION = 1
CAPABILITIES_FILE = "pacs_capabilities.json"
#: SOPInstanceUIDs per UID-list query (a UI value is at most 64 KiB in explicit VR).
UID_LIST_MAX = 100
#: Runaway guard of a day-wide SERIES query: answers allowed per study asked beyond the count
#: the PACS announced (a PACS ignoring the study list answers the whole archive).
SERIES_PER_STUDY_MAX = 50
#: Expected IMAGE-level answers per day-wide query (series are batched up to this).
IMAGE_ANSWERS_BATCH = 5000
#: What one more C-FIND costs, in answers: a group of series sharing a count N is asked for
#: instances N and N + 1 directly only when listing it would cost more than those two.
PICK_OP_COST = 4

ProgressFn = Callable[[int, int], None]


# --------------------------------------------------------------------------- config helpers


def retrieval_fingerprint(settings: Settings) -> str:
    """Hash of what changes a stored day: the rules and which PACS (not timeouts, not pacing)."""
    data = {
        "version": STORE_VERSION,
        "retrieve": settings.retrieve.model_dump(
            mode="json", exclude={"retries_per_day", "final_after_hours"}
        ),
        "pacs": {k: getattr(settings.pacs, k) for k in ("host", "port", "called_ae")},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def is_final(day: dt.date, final_after_hours: float, now: dt.datetime | None = None) -> bool:
    """True once ``day`` ended more than ``final_after_hours`` ago (local time)."""
    now = now or dt.datetime.now()
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    return now >= day_end + dt.timedelta(hours=final_after_hours)


def pacs_key(settings: Settings) -> str:
    """Key of a PACS in the capabilities cache: what it accepts depends on all of these."""
    p = settings.pacs
    return (
        f"{p.host}:{p.port}/{p.called_ae}/{p.calling_ae}/{p.move_ae or p.calling_ae}:{p.move_port}"
    )


# --------------------------------------------------------------------------- clients

_clients: dict[Any, Any] = {}
_clients_lock = threading.Lock()


def make_client(settings: Settings) -> Any:
    """A new pynetdicom client for ``settings.pacs`` (caller closes it)."""
    from pyschedvisu.adapters.dimse import DimseClient, DimseConfig

    return DimseClient(DimseConfig.from_settings(settings.pacs))


def shared_client(settings: Settings) -> Any:
    """One client per PACS config per process (associations reused across days and tasks)."""
    from pyschedvisu.adapters.dimse import DimseConfig

    key = DimseConfig.from_settings(settings.pacs)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = make_client(settings)
            _clients[key] = client
        return client


@atexit.register
def close_clients() -> None:
    """Close every shared client (associations released, Storage SCP stopped)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


# --------------------------------------------------------------------------- capabilities

_caps_memo: dict[str, core.Capabilities] = {}
_caps_lock = threading.Lock()
#: held around every read-modify-write of a PACS's capabilities (probe vs relational)
_caps_update_lock = threading.RLock()


def _caps_path(settings: Settings) -> Path:
    return Path(settings.paths.data_dir) / CAPABILITIES_FILE


def cached_capabilities(settings: Settings) -> core.Capabilities | None:
    """Probe result remembered for this PACS (memory, then ``<data_dir>/pacs_capabilities.json``)."""
    key = pacs_key(settings)
    with _caps_lock:
        if key in _caps_memo:
            return _caps_memo[key]
    if not settings.pacs.probe_cache:
        return None
    try:
        data = json.loads(_caps_path(settings).read_text(encoding="utf-8"))
        entry = data[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    caps = core.Capabilities.from_json(entry)
    with _caps_lock:  # what another thread remembered meanwhile wins over the file
        return _caps_memo.setdefault(key, caps)


def remember_capabilities(settings: Settings, caps: core.Capabilities) -> None:
    """Keep a probe result in memory and (if ``pacs.probe_cache``) in the data dir."""
    key = pacs_key(settings)
    with _caps_lock:
        _caps_memo[key] = caps
        if not settings.pacs.probe_cache:
            return
        path = _caps_path(settings)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        entry = caps.to_json()
        entry["probed_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        data[key] = entry
        atomic_write_bytes(path, json.dumps(data, indent=2, sort_keys=True).encode())


def cached_relational(settings: Settings) -> bool | None:
    """Whether this PACS answers day-wide (relational-style) queries; None: not tried yet."""
    caps = cached_capabilities(settings)
    return None if caps is None else caps.relational


def remember_relational(settings: Settings, ok: bool) -> None:
    """Remember, with the probe results, whether day-wide queries can be used."""
    with _caps_update_lock:  # read-modify-write: a probe finishing meanwhile is not undone
        caps = cached_capabilities(settings) or core.Capabilities(probed=False)
        if caps.relational != ok:
            remember_capabilities(settings, dataclasses.replace(caps, relational=ok))


_probe_locks: dict[str, threading.Lock] = {}


def _probe_lock(key: str) -> threading.Lock:
    with _caps_lock:
        return _probe_locks.setdefault(key, threading.Lock())


def forget_capabilities() -> None:
    """Drop the in-memory probe results (tests, ``pacs check``)."""
    with _caps_lock:
        _caps_memo.clear()


def resolve_method(
    settings: Settings, client: Any, sample: tuple[str, str] | None
) -> tuple[core.Method, list[core.Method], core.Capabilities | None]:
    """(primary method, fallback file methods, capabilities) for this PACS.

    The configured method wins; ``auto`` probes once per PACS (remembered) and takes the
    lightest allowed: IMAGE-level C-FIND > C-GET > C-MOVE.
    """
    configured = settings.pacs.retrieval
    caps = cached_capabilities(settings)
    if configured != "auto":
        return configured, core.fallback_methods(configured, caps), caps
    with _probe_lock(pacs_key(settings)):  # days starting together: one probe, not one each
        caps = cached_capabilities(settings)
        if caps is None or not caps.probed:
            probed = client.probe(sample)
            with _caps_update_lock:  # what other days learnt meanwhile (relational) is kept
                current = cached_capabilities(settings)
                relational = current.relational if current is not None else None
                caps = dataclasses.replace(probed, relational=relational, probed=True)
                if sample is not None:
                    remember_capabilities(settings, caps)
            log.info("PACS %s probed: %s", pacs_key(settings), "; ".join(caps.notes))
    methods = caps.methods()
    if not methods:
        if sample is None:
            # Nothing to test with: the heaviest, most widely allowed method is the safe bet.
            return "c-move", [], None
        raise RetrievalError(
            f"PACS {pacs_key(settings)} allows no way to read instance timing "
            f"({'; '.join(caps.notes)}). Set pacs.retrieval and check pacs.move_ae / move_port."
        )
    return methods[0], core.fallback_methods(methods[0], caps), caps


# --------------------------------------------------------------------------- results


@dataclass
class DayResult:
    """What one day's retrieval produced (also what the store holds for it)."""

    day: dt.date
    series: pl.DataFrame
    failed: pl.DataFrame
    excluded: pl.DataFrame
    method: str
    final: bool
    seconds: float
    from_cache: bool = False
    studies_found: int = 0
    ops: dict[str, int] = field(default_factory=dict)
    passes: int = 0

    @property
    def studies(self) -> int:
        """Studies with at least one kept or failed series."""
        uids = set(self.series.get_column("study_uid").to_list())
        uids |= set(self.failed.get_column("study_uid").to_list())
        return len(uids)

    def reasons(self) -> dict[str, int]:
        """Count per reason code (excluded and failed; details after ':' dropped)."""
        codes = [
            str(r).split(":", 1)[0]
            for r in [
                *self.excluded.get_column("reason").to_list(),
                *self.failed.get_column("reason").to_list(),
            ]
            if r
        ]
        return dict(sorted(Counter(codes).items()))

    def summary(self) -> dict[str, Any]:
        """Plain summary (the Prefect task result, the CLI table row)."""
        return {
            "day": self.day.isoformat(),
            "studies": self.studies,
            "series": self.series.height,
            "excluded": self.excluded.height,
            "failed": self.failed.height,
            "seconds": round(self.seconds, 3),
            "method": self.method,
            "final": self.final,
            "reasons": self.reasons(),
            "from_cache": self.from_cache,
            "dimse_ops": int(self.ops.get("dimse_ops", 0)),
        }


def _from_store(store: SeriesStore, day: dt.date, manifest: dict[str, Any]) -> DayResult:
    return DayResult(
        day=day,
        series=store.load("series", [day]),
        failed=store.load("failed", [day]),
        excluded=store.load("excluded", [day]),
        method=str(manifest.get("method", "")),
        final=bool(manifest.get("final", True)),
        seconds=0.0,
        from_cache=True,
        studies_found=int(manifest.get("studies_found", 0)),
        ops={"dimse_ops": 0},
    )


# --------------------------------------------------------------------------- parsing answers


def _text(ds: Dataset, keyword: str) -> str | None:
    return core.text_value(ds, keyword)


def _int(ds: Dataset, keyword: str) -> int | None:
    text = _text(ds, keyword)
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _count(n: int | None) -> int | None:
    """An instance count; a PACS answering 0 (or garbage) did not count: None."""
    return n if n is not None and 0 < n <= core.MAX_INSTANCE_NUMBER else None


@dataclass(frozen=True)
class SeriesJob:
    """One kept series to time."""

    study_uid: str
    series_uid: str
    modality: str
    n_instances: int | None
    description: str | None
    series_date: dt.date | None


@dataclass
class Outcome:
    job: SeriesJob
    headers: list[Dataset] | None = None
    error: PacsError | None = None
    method: str = ""


# --------------------------------------------------------------------------- the day


T = TypeVar("T")


class _Pool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context.

    The DIMSE client counts each day's operations in a context variable (exact per-day
    figures with days in flight together); plain pools would lose it in their threads.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


class _Day:
    """State of one day's retrieval (keeps ``retrieve_day`` readable)."""

    def __init__(
        self, day: dt.date, settings: Settings, client: Any, progress: ProgressFn | None
    ) -> None:
        self.day = day
        self.settings = settings
        self.client = client
        self.progress = progress
        self.method: core.Method = "image-find"
        self.fallbacks: list[core.Method] = []
        self.methods_used: Counter[str] = Counter()
        self.disabled: set[str] = set()
        self._images: dict[str, dict[str, list[Dataset]] | None] = {}
        self._series_answers: dict[str, list[Dataset]] = {}
        self._timing: dict[str, dict[str, Dataset]] = {}
        self._image_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.per_study = getattr(client, "per_study_image_find", True)
        self.uid_lists = getattr(client, "uid_list_image_find", True)
        #: kept series per study (set before timing: one UID-list query covers them all)
        self.jobs_by_study: dict[str, list[SeriesJob]] = {}
        #: day-wide (relational-style) queries: True / False / None = not tried on this PACS
        self.relational: bool | None = cached_relational(settings)
        #: NumberOfStudyRelatedSeries answered at STUDY level (None: not answered)
        self.study_series: dict[str, int | None] = {}
        #: minimal IMAGE-level answers of whole series, from day-wide queries
        self._day_images: dict[str, list[Dataset]] = {}
        self._day_timing: dict[str, Dataset] | None = None
        #: instance headers moved for many series at once (day-wide C-GET / C-MOVE)
        self._day_headers: dict[str, list[Dataset]] = {}
        self._day_timing_lock = threading.Lock()
        self._day_timing_off = False  # refused or answered nothing: per study this day
        #: timing answers of every instance of series that need them all (no listing first)
        self.whole_timing: dict[str, list[Dataset]] = {}
        #: first (and last) instance of series found by InstanceNumber 1 and N, day-wide
        self.direct_picks: dict[str, list[Dataset]] = {}
        self.direct_timed: set[str] = set()  # series whose answers above carry the timing
        #: instance 1 of series whose institution is read from a file
        self.first_picks: dict[str, Dataset] = {}

    # -- instances -----------------------------------------------------------------------
    def series_instances(self, study_uid: str, series_uid: str) -> list[Dataset]:
        """Minimal IMAGE-level answers (SOPInstanceUID, InstanceNumber) of every instance.

        One query per study (cached, shared by its series); a PACS refusing study-wide IMAGE
        queries is asked series by series.
        """
        day_wide = self._day_images.get(series_uid)
        if day_wide is not None:
            return day_wide
        if self.per_study:
            grouped = self._study_instances(study_uid)
            if grouped is not None:
                return grouped.get(series_uid, [])
        with self._lock:
            cached = self._series_answers.get(series_uid)
        if cached is not None:
            return cached
        answers: list[Dataset] = self.client.find(
            "IMAGE", core.image_query(study_uid, series_uid, timing=False)
        )
        with self._lock:
            self._series_answers[series_uid] = answers
        return answers

    def instance_count(self, study_uid: str, series_uid: str) -> int:
        """Instances of a series counted from the IMAGE-level answers."""
        answers = self.series_instances(study_uid, series_uid)
        return core.instance_counts(answers).get(series_uid, len(answers))

    def _study_instances(self, study_uid: str) -> dict[str, list[Dataset]] | None:
        with self._lock:
            lock = self._image_locks.setdefault(study_uid, threading.Lock())
        with lock:  # the series of one study share one query
            if study_uid not in self._images:
                self._images[study_uid] = self._query_study(study_uid)
            return self._images[study_uid]

    def _query_study(self, study_uid: str) -> dict[str, list[Dataset]] | None:
        if not self.per_study:
            return None
        try:
            answers = self.client.find(
                "IMAGE", core.study_image_query(study_uid, timing=False, instance=None)
            )
        except PacsAnswerError as exc:
            log.warning("%s: unreadable answer (%s): this study series by series", self.day, exc)
            return None
        except PacsOperationError as exc:
            # a strictly hierarchical PACS: series by series from now on (this client)
            log.info("IMAGE-level query per study refused (%s): querying per series", exc)
            self.per_study = False
            with contextlib.suppress(AttributeError):  # clients without the switch
                self.client.per_study_image_find = False
            return None
        return core.group_by_series(answers) or None

    def needed_count(self, job: SeriesJob) -> int:
        """How many instances timing needs: 2 (first, last) for CT/PT, else 1."""
        return len(instances_needed(job.modality, job.n_instances or 1))

    def picks(self, job: SeriesJob) -> list[Dataset]:
        """Minimal answers of the first (and last) instance of a series."""
        direct = self.direct_picks.get(job.series_uid)
        if direct is not None:
            return direct
        answers = self.series_instances(job.study_uid, job.series_uid)
        return core.pick_instances(answers, self.needed_count(job))

    def timing_answers(self, job: SeriesJob, picks: Sequence[Dataset]) -> list[Dataset]:
        """IMAGE-level answers with the timing keys of ``picks`` (one series).

        The picks of every series of the study travel in one UID-list query; what it does
        not answer is asked series by series (all instances, first / last picked here).
        """
        uids = [u for u in (core.sop_uid(p) for p in picks) if u]
        if self.uid_lists and len(uids) == len(picks):
            found = self._day_timing_answers()
            if found is None:
                found = self._study_timing(job.study_uid)
            got = [found[u] for u in uids if u in found]
            if len(got) == len(uids):
                return got
        answers = self.client.find(
            "IMAGE", core.image_query(job.study_uid, job.series_uid, timing=True)
        )
        by_sop = {core.sop_uid(a): a for a in answers}
        got = [by_sop[u] for u in uids if u in by_sop]
        return got if got and len(got) == len(uids) else core.pick_instances(answers, len(picks))

    # -- day-wide (relational-style) queries ----------------------------------------------
    def _relational_failed(self, why: str, *, refused: bool = True) -> None:
        """A day-wide query was refused or its answer is not trusted: per study from now on.

        A PACS never seen answering them is remembered as hierarchical; one that did before
        (this day or another one running alongside) is only asked per study for the rest
        of this day: one doubtful day must not turn day-wide queries off for good. Neither
        is an answer that could not be decoded (``refused=False``): per study, this day only.
        """
        with _caps_update_lock:
            if refused and self.relational is None and cached_relational(self.settings) is None:
                log.info("PACS answers no day-wide query (%s): querying study by study", why)
                remember_relational(self.settings, False)
            else:
                log.warning("%s: day-wide query not trusted (%s): study by study", self.day, why)
        self.relational = False

    def _relational_ok(self) -> None:
        if self.relational is None:
            log.info("PACS answers day-wide queries: one query per day instead of per study")
            remember_relational(self.settings, True)
            self.relational = True

    def series_day_wide(
        self, studies: Sequence[tuple[str, str | None, str | None]]
    ) -> list[dict[str, Any]] | None:
        """Series rows of every listed (study, patient id, description) in a few queries.

        None when the PACS refused or answered something inconsistent: the caller then asks
        study by study, as a strictly hierarchical PACS requires. The outcome is remembered.
        """
        try:
            out, why = self.day_wide_series_rows(studies)
        except PacsAnswerError as exc:
            self._relational_failed(str(exc), refused=False)
            return None
        if out is None:
            self._relational_failed(why)
            return None
        self._relational_ok()
        return out

    def day_wide_series_rows(
        self, studies: Sequence[tuple[str, str | None, str | None]]
    ) -> tuple[list[dict[str, Any]] | None, str]:
        """:meth:`series_day_wide` without remembering anything: (rows, "") or (None, why)."""
        out: list[dict[str, Any]] = []
        for i in range(0, len(studies), UID_LIST_MAX):
            chunk = studies[i : i + UID_LIST_MAX]
            expected = {uid: self.study_series.get(uid) for uid, _, _ in chunk}
            limit = SERIES_PER_STUDY_MAX * len(chunk) + sum(c or 0 for c in expected.values())
            query = core.day_series_query(self.day, list(expected))
            try:
                answers = self.client.find("SERIES", query, limit=limit)
            except PacsAnswerError:
                raise
            except PacsOperationError as exc:
                return None, str(exc)
            why = core.check_day_series(answers, expected)
            if why is not None:
                return None, why
            patients = {uid: pid for uid, pid, _ in chunk}
            descriptions = {uid: desc for uid, _, desc in chunk}
            for ds in answers:
                study = str(_text(ds, "StudyInstanceUID"))
                pid, answered = patients[study], _text(ds, "PatientID")
                if pid and answered is not None and answered != pid:
                    continue  # the per-study query filters on PatientID
                row = self._series_row(study, ds, descriptions[study])
                if row is not None:
                    out.append(row)
        return out, ""

    def prefetch_instances(self, jobs: Sequence[SeriesJob]) -> None:
        """Minimal IMAGE-level answers of ``jobs`` in day-wide queries (batched).

        Only series answered completely (count = NumberOfSeriesRelatedInstances) are kept;
        the others are asked per study later, as before.
        """
        batch: list[SeriesJob] = []
        size = 0
        batches: list[list[SeriesJob]] = []
        for job in jobs:
            n = job.n_instances or 1
            if batch and (len(batch) >= UID_LIST_MAX or size + n > IMAGE_ANSWERS_BATCH):
                batches.append(batch)
                batch, size = [], 0
            batch.append(job)
            size += n
        if batch:
            batches.append(batch)
        for chunk in batches:
            if not self.relational:
                return
            expected = {j.series_uid: j.n_instances for j in chunk}
            limit = 2 * sum(j.n_instances or 1000 for j in chunk) + 100
            query = core.day_image_query(list(expected))
            try:
                answers = self.client.find("IMAGE", query, limit=limit)
            except PacsOperationError as exc:
                self._relational_failed(str(exc), refused=not isinstance(exc, PacsAnswerError))
                return
            grouped, why = core.check_day_images(answers, expected)
            if why is not None:
                self._relational_failed(why)
                return
            with self._lock:
                self._day_images.update(grouped)
        log.debug(
            "%s: instances of %d/%d series in %d day-wide queries",
            self.day,
            len(self._day_images),
            len(jobs),
            len(batches),
        )

    def needs_every_instance(self, job: SeriesJob) -> bool:
        """True when timing needs every instance (a known count of 1, or 2 for CT/PT)."""
        return job.n_instances is not None and 0 < job.n_instances <= self.needed_count(job)

    def prefetch_whole_timing(self, jobs: Sequence[SeriesJob]) -> None:
        """Timing answers of ``jobs`` (see :meth:`needs_every_instance`) in day-wide queries.

        Listing their instances first would cost one more answer per instance for nothing.
        Series not answered completely (all of them, when the PACS refused or answered
        something inconsistent) are left out of ``whole_timing``, to the usual way.
        """
        if not self.relational:
            return
        for i in range(0, len(jobs), UID_LIST_MAX):
            chunk = jobs[i : i + UID_LIST_MAX]
            expected = {j.series_uid: j.n_instances for j in chunk}
            query = core.day_series_timing_query(list(expected))
            limit = 2 * sum(j.n_instances or 1 for j in chunk) + 10
            try:
                answers = self.client.find("IMAGE", query, limit=limit)
            except PacsOperationError as exc:
                log.info("%s: day-wide timing query refused (%s): listing first", self.day, exc)
                break
            grouped, why = core.check_day_images(answers, expected)
            if why is not None:
                log.info("%s: day-wide timing answer not trusted (%s)", self.day, why)
                break
            with self._lock:
                self.whole_timing.update(grouped)

    def _timed_directly(self, job: SeriesJob) -> bool:
        return job.series_uid in self.direct_timed

    def prefetch_direct(self, jobs: Sequence[SeriesJob], *, timing: bool) -> list[SeriesJob]:
        """First (and last) instances of ``jobs`` asked by InstanceNumber 1 and N, day-wide.

        As DOMAIN §2.3 reads them: instance 1 and instance N, two answers a series whatever
        its size, with the timing keys when ``timing`` (IMAGE-level timing). Series sharing
        one N are asked together; a group whose listing costs fewer answers than an
        operation is left to the listing, and so is every series where instance 1 or N is
        missing or numbered twice (numbering from 0, restarted): those are picked by lowest
        and highest number; and so is one holding an instance numbered N + 1 (deleted
        instances, a stale count: N is not its last), or already listed (while counting).
        Returns the jobs left to the listing.
        """
        if not (self.relational and getattr(self.client, "direct_picks", True)):
            return list(jobs)
        done = self.direct_timed if timing else self.direct_picks
        jobs = [j for j in jobs if j.series_uid not in done]
        rest: list[SeriesJob] = []
        direct: list[SeriesJob] = []
        by_last: dict[int, list[SeriesJob]] = {}
        for job in jobs:
            n = job.n_instances
            if n is None or n < 1 or self._listed(job):
                rest.append(job)  # a listing in hand picks lowest and highest for free
                continue
            numbers = instances_needed(job.modality, n)
            if len(numbers) > 1:
                by_last.setdefault(numbers[-1], []).append(job)
            else:
                direct.append(job)
        lasts_wanted: dict[int, list[SeriesJob]] = {}
        for n, group in by_last.items():
            if len(group) * (n - 2) > 2 * PICK_OP_COST:  # two queries: N and N + 1
                lasts_wanted[n] = group
                direct.extend(group)
            else:
                rest.extend(group)
        if not direct:
            return rest
        firsts = self._picks_numbered([j.series_uid for j in direct], 1, timing=timing)
        lasts: dict[str, Dataset] = {}
        for n, group in lasts_wanted.items():
            if firsts is None:
                break
            uids = [j.series_uid for j in group]
            got = self._picks_numbered(uids, n, timing=timing)
            beyond = self._numbered_beyond(uids, n + 1) if got is not None else None
            if got is None or beyond is None:
                firsts = None
                break
            # an instance numbered N + 1: N is not the last (deleted instances, stale count)
            lasts.update({uid: ds for uid, ds in got.items() if uid not in beyond})
        if firsts is None:
            return list(jobs)
        need_last = {j.series_uid for group in lasts_wanted.values() for j in group}
        found: dict[str, list[Dataset]] = {}
        for job in direct:
            first = firsts.get(job.series_uid)
            last = lasts.get(job.series_uid)
            if first is None or (job.series_uid in need_last and last is None):
                rest.append(job)
                continue
            found[job.series_uid] = [first] if last is None else [first, last]
        with self._lock:
            self.direct_picks.update(found)
            if timing:
                self.direct_timed.update(found)
        log.debug(
            "%s: %d/%d series timed by instance 1 and N (%d queries)",
            self.day,
            len(found),
            len(jobs),
            -(-len(direct) // UID_LIST_MAX)
            + sum(-(-len(g) // UID_LIST_MAX) for g in lasts_wanted.values()),
        )
        return rest

    def prefetch_firsts(self, jobs: Sequence[SeriesJob]) -> None:
        """Instance 1 of each of ``jobs``, day-wide (any instance would do: a file to read)."""
        if jobs and self.relational and getattr(self.client, "direct_picks", True):
            got = self._picks_numbered([j.series_uid for j in jobs], 1, timing=False)
            self.first_picks.update(got or {})

    def _picks_numbered(
        self, series_uids: Sequence[str], number: int, *, timing: bool
    ) -> dict[str, Dataset] | None:
        """Instance ``number`` of each listed series; None when the PACS cannot be trusted."""
        answers = self._ask_numbered(series_uids, number, timing=timing)
        if answers is None:
            return None
        return core.check_day_picks(answers, series_uids, number)[0]

    def _numbered_beyond(self, series_uids: Sequence[str], number: int) -> set[str] | None:
        """The listed series holding an instance numbered ``number``; None: not trusted."""
        answers = self._ask_numbered(series_uids, number, timing=False)
        if answers is None:
            return None
        return {uid for ds in answers if (uid := core.text_value(ds, "SeriesInstanceUID"))}

    def _ask_numbered(
        self, series_uids: Sequence[str], number: int, *, timing: bool
    ) -> list[Dataset] | None:
        """Answers to :func:`core.day_pick_query`, checked; None (direct queries off) if not."""
        out: list[Dataset] = []
        for i in range(0, len(series_uids), UID_LIST_MAX):
            chunk = series_uids[i : i + UID_LIST_MAX]
            query = core.day_pick_query(chunk, number, timing=timing)
            try:
                answers = self.client.find("IMAGE", query, limit=4 * len(chunk) + 20)
            except PacsAnswerError as exc:
                log.warning("%s: unreadable answer (%s): instances listed instead", self.day, exc)
                return None
            except PacsOperationError as exc:
                self._no_direct(str(exc))
                return None
            why = core.check_day_picks(answers, chunk, number)[1]
            if why is not None:
                self._no_direct(why)
                return None
            out += answers
        return out

    def _listed(self, job: SeriesJob) -> bool:
        """True when every instance of ``job``'s series was already listed (counting)."""
        with self._lock:
            if job.series_uid in self._series_answers:
                return True
            grouped = self._images.get(job.study_uid)
        return grouped is not None and job.series_uid in grouped

    def _no_direct(self, why: str) -> None:
        log.info("IMAGE-level query by InstanceNumber not usable (%s): listing instances", why)
        with contextlib.suppress(AttributeError):  # remembered for the next days
            self.client.direct_picks = False

    def _day_timing_answers(self) -> dict[str, Dataset] | None:
        """Timing answers of the picks of every kept series, by SOPInstanceUID lists.

        None when not usable (hierarchical PACS, refused, nothing answered): per study then.
        """
        with self._day_timing_lock:
            if self._day_timing is not None or not self.relational or self._day_timing_off:
                return self._day_timing
            picks: list[tuple[str, str, str]] = []
            for jobs in self.jobs_by_study.values():
                for job in jobs:
                    if job.series_uid in self.whole_timing or self._timed_directly(job):
                        continue
                    for p in self.picks(job):
                        uid = core.sop_uid(p)
                        if uid:
                            picks.append((job.study_uid, job.series_uid, uid))
            picks = list({p[2]: p for p in picks}.values())
            found: dict[str, Dataset] = {}
            for i in range(0, len(picks), UID_LIST_MAX):
                chunk = picks[i : i + UID_LIST_MAX]
                sops = {p[2] for p in chunk}
                query = core.day_timing_query([p[2] for p in chunk])
                try:
                    answers = self.client.find("IMAGE", query, limit=2 * len(chunk) + 10)
                except PacsOperationError as exc:
                    log.info("%s: day-wide timing query refused (%s): per study", self.day, exc)
                    self._day_timing_off = True
                    return None
                got = {u: ds for ds in answers if (u := core.sop_uid(ds)) in sops}
                if not got:
                    log.info("%s: day-wide timing query answered nothing: per study", self.day)
                    self._day_timing_off = True
                    return None
                found.update(got)
            self._day_timing = found
            return found

    def _study_timing(self, study_uid: str) -> dict[str, Dataset]:
        key = "timing:" + study_uid
        with self._lock:
            lock = self._image_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._timing:
                self._timing[key] = self._query_timing(study_uid)
            return self._timing[key]

    def _query_timing(self, study_uid: str) -> dict[str, Dataset]:
        uids: list[str] = []
        for job in self.jobs_by_study.get(study_uid, []):
            if job.series_uid in self.whole_timing or self._timed_directly(job):
                continue
            uids += [u for u in (core.sop_uid(p) for p in self.picks(job)) if u]
        uids = list(dict.fromkeys(uids))
        found: dict[str, Dataset] = {}
        for i in range(0, len(uids), UID_LIST_MAX):
            chunk = uids[i : i + UID_LIST_MAX]
            if not self.uid_lists:
                break
            try:
                answers = self.client.find("IMAGE", core.listed_image_query(study_uid, chunk))
            except PacsAnswerError as exc:
                log.warning("%s: unreadable answer (%s): per series", self.day, exc)
                break
            except PacsOperationError as exc:
                log.info("IMAGE-level query by UID list refused (%s): per series", exc)
                self._no_uid_lists()
                break
            for ds in answers:
                uid = core.sop_uid(ds)
                if uid in chunk:
                    found[uid] = ds
            if len(chunk) > 1 and not any(u in found for u in chunk):
                log.info("IMAGE-level query by UID list answered nothing: per series")
                self._no_uid_lists()
        return found

    def _no_uid_lists(self) -> None:
        self.uid_lists = False
        with contextlib.suppress(AttributeError):  # remembered for the next days
            self.client.uid_list_image_find = False

    def studies(self) -> pl.DataFrame:
        rows: dict[str, dict[str, Any]] = {}
        for modality in self.settings.retrieve.study_modalities:
            for ds in self.client.find("STUDY", core.study_query(self.day, modality)):
                uid = _text(ds, "StudyInstanceUID")
                if uid is None or uid in rows:
                    continue
                self.study_series[uid] = _count(_int(ds, "NumberOfStudyRelatedSeries"))
                rows[uid] = {
                    "date": self.day,
                    "study_uid": uid,
                    "patient_id": _text(ds, "PatientID"),
                    "study_description": _text(ds, "StudyDescription"),
                    "study_time": _text(ds, "StudyTime"),
                }
        return pl.DataFrame(
            list(rows.values()),
            schema={
                "date": pl.Date(),
                "study_uid": pl.String(),
                "patient_id": pl.String(),
                "study_description": pl.String(),
                "study_time": pl.String(),
            },
        )

    def series_of(
        self, study_uid: str, patient_id: str | None, study_description: str | None
    ) -> list[dict[str, Any]]:
        out = []
        for ds in self.client.find("SERIES", core.series_query(self.day, study_uid, patient_id)):
            row = self._series_row(study_uid, ds, study_description)
            if row is not None:
                out.append(row)
        return out

    def _series_row(
        self, study_uid: str, ds: Dataset, study_description: str | None
    ) -> dict[str, Any] | None:
        uid = _text(ds, "SeriesInstanceUID")
        if uid is None:
            return None
        return {
            "date": self.day,
            "study_uid": study_uid,
            "series_uid": uid,
            "modality": (_text(ds, "Modality") or "").upper() or None,
            "series_description": _text(ds, "SeriesDescription"),
            "protocol_name": _text(ds, "ProtocolName"),
            "institution": _text(ds, "InstitutionName"),
            "n_instances": _count(_int(ds, "NumberOfSeriesRelatedInstances")),
            "series_date": parse_da(_text(ds, "SeriesDate")),
            "series_time": parse_tm(_text(ds, "SeriesTime")),
            # several descriptions in one study reach the extraction's vote
            "study_description": _text(ds, "StudyDescription") or study_description,
        }

    # -- timing ------------------------------------------------------------------------
    def fetch(
        self, job: SeriesJob, sop_uids: Sequence[str] | None, methods: Sequence[core.Method]
    ) -> list[Dataset]:
        """Headers by the first file method that the PACS accepts."""
        last: PacsOperationError | None = None
        for method in methods:
            if method in self.disabled and len(methods) > 1:
                continue
            try:
                headers = _as_files(
                    self.client.fetch_headers(job.study_uid, job.series_uid, sop_uids, method)
                )
                self.methods_used[method] += 1
                return list(headers)
            except PacsOperationError as exc:
                last = exc
                log.debug("series %s: %s failed (%s)", job.series_uid, method, exc)
                if not self.methods_used.get(method) and exc.status in (None, 0xA801):
                    # never worked this day (refused context, unknown destination): stop trying it
                    self.disabled.add(method)
        if last is not None:
            raise last
        raise PacsOperationError(
            f"series {job.series_uid}: no method to fetch instance headers with"
        )

    def headers(self, job: SeriesJob) -> list[Dataset]:
        """The instance headers ``series_timing`` needs, the lightest way allowed."""
        count = self.needed_count(job)
        if self.method == "image-find":
            whole = self.whole_timing.get(job.series_uid)
            if whole is not None:
                answers = core.pick_instances(whole, count)
            elif self._timed_directly(job):
                answers = self.direct_picks[job.series_uid]
            elif self.per_study and self.uid_lists:
                picks = self.picks(job)
                answers = self.timing_answers(job, picks) if picks else []
            else:
                # series by series anyway: one query with the timing keys, picked here
                every = self.client.find(
                    "IMAGE", core.image_query(job.study_uid, job.series_uid, timing=True)
                )
                answers = core.pick_instances(every, count)
            if not answers:
                return []
            if (
                answers
                and self.fallbacks
                and any(needs_file_headers(job.modality, a) for a in answers)
            ):
                uids = [u for u in (core.sop_uid(a) for a in answers) if u]
                if uids:
                    got = self.fetch(job, uids, self.fallbacks)
                    if got:
                        return core.pick_instances(got, count)
            self.methods_used["image-find"] += 1
            return answers
        batched = self._day_headers.get(job.series_uid)
        if batched:
            self.methods_used[self.method] += 1
            return core.pick_instances(batched, count)
        methods = [self.method, *self.fallbacks]
        if self.needs_every_instance(job):
            # every instance is needed anyway: no IMAGE-level query at all
            got = self.fetch(job, None, methods)
        else:
            uids = [u for u in (core.sop_uid(p) for p in self.picks(job)) if u]
            if not uids:
                return []
            got = self.fetch(job, uids, methods)
        return core.pick_instances(got, count)

    def batch_files(self) -> bool:
        """True when instance headers are moved for many series per C-GET / C-MOVE."""
        return (
            self.method in ("c-get", "c-move")
            and bool(self.relational)
            and getattr(self.client, "batch_retrieve", True)
            and hasattr(self.client, "fetch_headers_many")
        )

    def prefetch_headers(self, jobs: Sequence[SeriesJob]) -> None:
        """The picked instances of ``jobs`` by C-GET / C-MOVE of up to UID_LIST_MAX at once.

        Series whose picks did not all arrive are fetched one by one later, as before; a
        PACS refusing such a retrieve is asked series by series from then on (this client).
        """
        wanted: list[tuple[str, str, list[str]]] = []
        for job in jobs:
            if job.series_uid not in self._day_images and job.series_uid not in self.direct_picks:
                continue
            uids = [u for u in (core.sop_uid(p) for p in self.picks(job)) if u]
            if uids:
                wanted.append((job.study_uid, job.series_uid, uids))
        chunks: list[list[tuple[str, str, list[str]]]] = [[]]
        for item in wanted:
            if chunks[-1] and sum(len(w[2]) for w in chunks[-1]) + len(item[2]) > UID_LIST_MAX:
                chunks.append([])
            chunks[-1].append(item)
        for chunk in chunks:
            if not chunk:
                continue
            try:
                got = {
                    k: _as_files(v)
                    for k, v in self.client.fetch_headers_many(chunk, self.method).items()
                }
            except PacsOperationError as exc:
                log.info(
                    "%s: %s of many series refused (%s): one by one", self.day, self.method, exc
                )
                with contextlib.suppress(AttributeError):
                    self.client.batch_retrieve = False
                return
            for _, series_uid, uids in chunk:
                heads = got.get(series_uid, [])
                if set(uids) <= {core.sop_uid(h) for h in heads}:
                    self._day_headers[series_uid] = heads
        log.debug(
            "%s: headers of %d/%d series moved in batches",
            self.day,
            len(self._day_headers),
            len(jobs),
        )

    def prefetch_whole_series(self, jobs: Sequence[SeriesJob]) -> None:
        """Files of the series needing every instance, one C-GET / C-MOVE per study.

        For a PACS that takes no relational retrieve (hierarchical): a SERIES-level UID
        list within one study is standard there, where it would otherwise cost one request
        per series (one, or two for CT/PT, instances each). A series whose files did not all
        arrive is fetched alone later; a PACS refusing the list is asked series by series
        from then on (this client).
        """
        if self.method not in ("c-get", "c-move") or not hasattr(self.client, "fetch_whole_series"):
            return
        by_study: dict[str, list[SeriesJob]] = {}
        for job in jobs:
            if self.needs_every_instance(job) and job.series_uid not in self._day_headers:
                by_study.setdefault(job.study_uid, []).append(job)
        groups = [
            group[i : i + UID_LIST_MAX]
            for group in by_study.values()
            if len(group) > 1
            for i in range(0, len(group), UID_LIST_MAX)
        ]

        def one(group: list[SeriesJob]) -> int:
            if not getattr(self.client, "series_list_retrieve", True):
                return 0
            study_uid = group[0].study_uid
            try:
                got = {
                    k: _as_files(v)
                    for k, v in self.client.fetch_whole_series(
                        study_uid, [j.series_uid for j in group], self.method
                    ).items()
                }
            except PacsError as exc:
                if isinstance(exc, PacsOperationError) and _refuses_identifier(exc):
                    log.info(
                        "%s: %s of several series refused (%s): series by series",
                        self.day,
                        self.method,
                        exc,
                    )
                    with contextlib.suppress(AttributeError):
                        self.client.series_list_retrieve = False
                else:  # busy, timeout, out of resources: these series alone, with retries
                    log.debug(
                        "%s: %s of study %s failed (%s)", self.day, self.method, study_uid, exc
                    )
                return 0
            complete = {
                j.series_uid: got[j.series_uid]
                for j in group
                if len(got.get(j.series_uid, ())) == j.n_instances
            }
            with self._lock:
                self._day_headers.update(complete)
            return len(complete)

        workers = max(1, self.settings.pacs.max_concurrent)
        with _Pool(max_workers=workers, thread_name_prefix="series-files") as pool:
            moved = sum(pool.map(one, groups))
        log.debug("%s: files of %d series moved %d studies at a time", self.day, moved, len(groups))

    def needs_picks(self, job: SeriesJob) -> bool:
        """True when timing ``job`` reads the minimal IMAGE-level answers of its series."""
        if self.method == "image-find":
            return self.per_study and self.uid_lists
        return not self.needs_every_instance(job)

    def file_methods(self) -> list[core.Method]:
        """The methods that move instance headers, in the order to try them."""
        first: list[core.Method] = [] if self.method == "image-find" else [self.method]
        return [*first, *self.fallbacks]

    def file_headers(self, job: SeriesJob) -> list[Dataset]:
        """The first instance's file header (whatever the primary method)."""
        methods = self.file_methods()
        if job.n_instances == 1:
            return self.fetch(job, None, methods)
        if job.series_uid in self.first_picks:
            picked = [self.first_picks[job.series_uid]]
        else:
            picked = core.pick_instances(self.series_instances(job.study_uid, job.series_uid), 1)
        uids = [u for u in (core.sop_uid(p) for p in picked) if u]
        return self.fetch(job, uids, methods) if uids else []

    def run_one(self, job: SeriesJob) -> Outcome:
        try:
            return Outcome(job, headers=self.headers(job))
        except PacsError as exc:
            return Outcome(job, error=exc)


def _refuses_identifier(exc: PacsOperationError) -> bool:
    """True when a retrieve failed on its identifier (0xA900, 0xCxxx) or was not accepted."""
    return exc.status is None or exc.status == 0xA900 or 0xC000 <= exc.status <= 0xCFFF


def _job(row: dict[str, Any]) -> SeriesJob:
    return SeriesJob(
        study_uid=row["study_uid"],
        series_uid=row["series_uid"],
        modality=row["modality"] or "",
        n_instances=row["n_instances"],
        description=row["series_description"],
        series_date=row["series_date"],
    )


def _fill_counts(state: _Day, series: pl.DataFrame, workers: int) -> pl.DataFrame:
    """``series`` with the missing NumberOfSeriesRelatedInstances counted at IMAGE level.

    The NM "more than one instance" rule and the CT/PT first/last choice depend on it: a
    PACS that does not answer the count must not make every series a one-instance one.
    """
    missing = series.filter(pl.col("n_instances").is_null()).select("study_uid", "series_uid")
    if not missing.height:
        return series
    pairs = list(missing.iter_rows())
    with _Pool(max_workers=workers, thread_name_prefix="series-count") as pool:
        counts = list(pool.map(lambda p: state.instance_count(*p), pairs))
    log.debug("%s: %d series counted at IMAGE level", state.day, len(pairs))
    found = pl.DataFrame(
        {"series_uid": [p[1] for p in pairs], "_n": [c or None for c in counts]},
        schema={"series_uid": pl.String(), "_n": pl.Int32()},
    )
    return (
        series.join(found, on="series_uid", how="left", maintain_order="left")
        .with_columns(pl.col("n_instances").fill_null(pl.col("_n")))
        .drop("_n")
    )


def _institution(headers: Sequence[Dataset]) -> str | None:
    """The first InstitutionName the headers carry (None: none does)."""
    return next((n for n in (core.text_value(h, "InstitutionName") for h in headers) if n), None)


def _verify_institutions(
    state: _Day,
    series: pl.DataFrame,
    rejected: pl.DataFrame,
    jobs: dict[str, SeriesJob],
    workers: int,
) -> pl.DataFrame:
    """``series`` with InstitutionName read from the files for the studies the rule rejected.

    Some PACS (Orthanc) index InstitutionName per *study*: every series then answers with
    the name of the first instance received, so a study mixing CHUV and another hospital
    looks foreign. The instance headers carry the real per-series names. Rejections are
    rare (a few studies a day), so checking them costs little.
    """
    studies = set(rejected.get_column("study_uid").to_list())
    todo = [j for j in jobs.values() if j.study_uid in studies]
    names: dict[str, str | None] = {}
    # their instances numbered 1, day-wide, instead of listing each study
    state.prefetch_firsts([j for j in todo if j.n_instances != 1])

    def one(job: SeriesJob) -> None:
        try:
            headers = state.file_headers(job)
        except PacsError as exc:
            log.debug("series %s: institution not checked (%s)", job.series_uid, exc)
            return
        names[job.series_uid] = _institution(headers)

    with _Pool(max_workers=workers, thread_name_prefix="institution") as pool:
        list(pool.map(one, todo))
    if not names:
        return series
    fixed = pl.DataFrame(
        {"series_uid": list(names), "_inst": list(names.values())},
        schema={"series_uid": pl.String(), "_inst": pl.String()},
    )
    log.debug(
        "%s: InstitutionName read from %d file(s) of %d rejected studies",
        state.day,
        len(names),
        len(studies),
    )
    return (
        series.join(fixed, on="series_uid", how="left")
        .with_columns(
            pl.when(pl.col("series_uid").is_in(list(names)))
            .then(pl.col("_inst"))
            .otherwise(pl.col("institution"))
            .alias("institution")
        )
        .drop("_inst")
    )


#: Set on the instance headers moved by C-GET / C-MOVE (C-FIND answers look alike otherwise).
_FILE_MARK = "_pyschedvisu_file"


def _as_files(headers: Iterable[Dataset]) -> list[Dataset]:
    out = list(headers)
    for ds in out:
        setattr(ds, _FILE_MARK, True)
    return out


def _is_file(ds: Dataset) -> bool:
    """True for an instance header moved by C-GET / C-MOVE (what its file says)."""
    return bool(getattr(ds, _FILE_MARK, False))


def _institutions_from_files(
    state: _Day, jobs: Sequence[SeriesJob], outcomes: dict[str, Outcome], workers: int
) -> dict[str, str | None]:
    """Each series' InstitutionName as its instance headers carry it (None: they carry none).

    Some PACS (Orthanc) answer a study's name for every one of its series, so a series that
    has none of its own (left out of its study, DOMAIN §3.1) looks like the others. Headers
    moved for timing say it for free; a series timed on IMAGE-level answers gets one
    instance moved (many series per C-GET / C-MOVE where the PACS allows). A series whose
    header cannot be had keeps its SERIES-level name.
    """
    names: dict[str, str | None] = {}
    todo: list[tuple[SeriesJob, str]] = []
    for job in jobs:
        out = outcomes.get(job.series_uid)
        heads = (out.headers or []) if out is not None else []
        files = [h for h in heads if _is_file(h)]
        if files:
            names[job.series_uid] = _institution(files)
        elif sop := next((u for u in (core.sop_uid(h) for h in heads) if u), None):
            todo.append((job, sop))
    methods = state.file_methods()
    if not todo or not methods:
        return names
    client = state.client
    if (
        state.relational
        and hasattr(client, "fetch_headers_many")
        and getattr(client, "batch_retrieve", True)
    ):
        for i in range(0, len(todo), UID_LIST_MAX):
            chunk = todo[i : i + UID_LIST_MAX]
            try:
                got = client.fetch_headers_many(
                    [(j.study_uid, j.series_uid, [sop]) for j, sop in chunk], methods[0]
                )
            except PacsError as exc:
                log.info(
                    "%s: %s of many series failed (%s): one by one", state.day, methods[0], exc
                )
                break
            for job, _ in chunk:
                if got.get(job.series_uid):
                    names[job.series_uid] = _institution(got[job.series_uid])

    def one(item: tuple[SeriesJob, str]) -> None:
        job, sop = item
        try:
            names[job.series_uid] = _institution(state.fetch(job, [sop], methods))
        except PacsError as exc:
            log.info("series %s: InstitutionName of its files not read (%s)", job.series_uid, exc)

    rest = [item for item in todo if item[0].series_uid not in names]
    with _Pool(max_workers=workers, thread_name_prefix="institution") as pool:
        list(pool.map(one, rest))
    log.debug("%s: InstitutionName of %d series read from their files", state.day, len(names))
    return names


def retrieve_day(
    day: dt.date,
    settings: Settings,
    client: Any = None,
    store: SeriesStore | None = None,
    *,
    force: bool = False,
    progress: ProgressFn | None = None,
    now: dt.datetime | None = None,
) -> DayResult:
    """Retrieve ``day`` into the store (or read it back when already final there).

    Raises :class:`RetrievalError` when the day cannot be completed (nothing written),
    :class:`PseudonymKeyError` without a pseudonymisation key, and lets
    :class:`PacsUnreachableError` / :class:`AssociationRejectedError` through so callers
    can stop instead of failing every following day the same way.
    """
    store = store or SeriesStore(settings.paths.data_dir)
    fingerprint = retrieval_fingerprint(settings)
    if not force:
        try:
            manifest = store.manifest(day)
        except StoreError as exc:
            log.warning("%s: %s; retrieving it again", day, exc)
            manifest = None
        if manifest is not None and store.has_day(day, fingerprint, final_only=True):
            log.debug("%s: final in the store, no network", day)
            return _from_store(store, day, manifest)

    key = load_key(settings.privacy)  # before any patient id is seen
    own = client is None
    client = client or make_client(settings)
    t0 = time.monotonic()
    before = client.counters.snapshot()
    # this day's operations only, though other days share the client (else a difference)
    tally = getattr(client, "tally", None)
    final = is_final(day, settings.retrieve.final_after_hours, now)
    try:
        with tally() if tally is not None else contextlib.nullcontext() as counted:
            result = _retrieve(day, settings, client, key, progress)
        if getattr(client, "closed", False):
            # closed under this day (Ctrl-C): its last answers may be cut short, not final
            raise RetrievalError(f"{day}: interrupted (client closed); nothing written")
    except (PacsUnreachableError, AssociationRejectedError):
        raise
    except PacsError as exc:
        raise RetrievalError(f"{day}: {exc}") from exc
    finally:
        if own:
            client.close()
    series, failed, excluded, method, studies_found, passes = result
    ops = (counted if counted is not None else client.counters.minus(before)).as_dict()
    seconds = time.monotonic() - t0
    res = DayResult(
        day, series, failed, excluded, method, final, seconds, False, studies_found, ops, passes
    )
    manifest = {
        "fingerprint": fingerprint,
        "store_version": STORE_VERSION,
        "method": method,
        "final": final,
        "pacs": pacs_key(settings),
        "studies_found": studies_found,
        "studies": res.studies,
        "reasons": res.reasons(),
        "seconds": round(seconds, 3),
        "passes": passes,
        "ops": ops,
    }
    store.write_day(day, series, failed, excluded, manifest)
    log.info(
        "%s: %d studies, %d series kept, %d excluded, %d failed in %.1f s (%s, %d DIMSE ops)",
        day,
        res.studies,
        series.height,
        excluded.height,
        failed.height,
        seconds,
        method,
        ops["dimse_ops"],
    )
    return res


def _retrieve(
    day: dt.date, settings: Settings, client: Any, key: bytes, progress: ProgressFn | None
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, str, int, int]:
    r = settings.retrieve
    state = _Day(day, settings, client, progress)
    workers = max(1, settings.pacs.max_concurrent)

    # 1. studies
    studies = state.studies()
    studies_found = studies.height
    kept_st, excl_st = filter_studies(
        studies,
        patient_id_pattern=r.patient_id_pattern,
        description_exclude=r.study_description_exclude,
    )
    patient_ids = dict(
        zip(
            kept_st.get_column("study_uid").to_list(),
            kept_st.get_column("patient_id").to_list(),
            strict=True,
        )
    )
    patient_keys = {uid: pseudonymise(pid, key) for uid, pid in patient_ids.items()}

    # 2. series: day-wide where the PACS answers that (checked), else one query per study
    wanted = [
        (uid, patient_ids[uid], desc)
        for uid, desc in zip(
            kept_st.get_column("study_uid").to_list(),
            kept_st.get_column("study_description").to_list(),
            strict=True,
        )
    ]
    day_rows = state.series_day_wide(wanted) if wanted and state.relational is not False else None
    rows: list[dict[str, Any]] = list(day_rows or [])
    if day_rows is None:
        with _Pool(max_workers=workers, thread_name_prefix="series-find") as pool:
            futures = [pool.submit(state.series_of, *w) for w in wanted]
            for fut in futures:
                rows.extend(fut.result())
    del patient_ids
    series = pl.DataFrame(
        rows,
        schema={
            "date": pl.Date(),
            "study_uid": pl.String(),
            "series_uid": pl.String(),
            "modality": pl.String(),
            "series_description": pl.String(),
            "protocol_name": pl.String(),
            "institution": pl.String(),
            "n_instances": pl.Int32(),
            "series_date": pl.Date(),
            "series_time": pl.Time(),
            "study_description": pl.String(),
        },
    ).unique("series_uid", keep="first", maintain_order=True)
    # SeriesDate missing: the AcquisitionDate of the headers decides (series_timing); a series
    # dated another day belongs to that day.
    other_day = series.filter(pl.col("series_date").is_not_null() & (pl.col("series_date") != day))
    if other_day.height:
        log.debug("%s: %d series dated another day left out", day, other_day.height)
    series = series.filter(pl.col("series_date").is_null() | (pl.col("series_date") == day))
    series = _fill_counts(state, series, workers)
    kept_se, excl_se = filter_series(
        series,
        description_exclude=r.series_description_exclude,
        protocol_exclude=r.series_protocol_exclude,
        modalities=r.series_modalities,
    )
    all_jobs = {job.series_uid: job for job in (_job(row) for row in kept_se.iter_rows(named=True))}

    # 3. method (probed once per PACS, on a real series of the day)
    method = "none"
    if all_jobs:
        sample_job = next(
            (j for j in all_jobs.values() if j.modality in ("CT", "PT")),
            next(iter(all_jobs.values())),
        )
        state.method, state.fallbacks, _ = resolve_method(
            settings, client, (sample_job.study_uid, sample_job.series_uid)
        )
        method = state.method

    # institution rule; a study it rejects is checked on the files first (see _verify_institutions)
    kept, excl_inst = filter_institutions(kept_se, accepted=r.accepted_institutions)
    if excl_inst.height and state.file_methods():
        kept_se = _verify_institutions(state, kept_se, excl_inst, all_jobs, workers)
        kept, excl_inst = filter_institutions(kept_se, accepted=r.accepted_institutions)
    # the names as found (SERIES level, or files for rejected studies), for the rule's second
    # pass once the instance headers have told each series' own name
    raw_names = dict(kept_se.select("series_uid", "institution").iter_rows())
    kept_se = kept
    jobs = [all_jobs[uid] for uid in kept_se.get_column("series_uid").to_list()]
    by_uid = {row["series_uid"]: row for row in kept_se.iter_rows(named=True)}
    for job in jobs:
        state.jobs_by_study.setdefault(job.study_uid, []).append(job)
    if state.relational:
        batch_files = state.batch_files()
        listed = [j for j in jobs if batch_files or state.needs_picks(j)]
        if state.method == "image-find" and state.per_study and state.uid_lists:
            state.prefetch_whole_timing([j for j in listed if state.needs_every_instance(j)])
            listed = [j for j in listed if j.series_uid not in state.whole_timing]
        listed = state.prefetch_direct(listed, timing=state.method == "image-find")
        state.prefetch_instances(listed)
        if batch_files:
            state.prefetch_headers(jobs)
    if not state.batch_files():
        state.prefetch_whole_series(jobs)

    # 4. timing headers, in batches, bounded concurrency, retried passes
    outcomes: dict[str, Outcome] = {}
    pending = jobs
    passes = 0
    done = 0
    total = len(jobs)
    if progress:
        progress(0, total)
    batch = max(1, settings.pacs.series_per_batch)
    for attempt in range(1 + r.retries_per_day):
        if not pending:
            break
        passes += 1
        errors: list[SeriesJob] = []
        with _Pool(max_workers=workers, thread_name_prefix="series-time") as pool:
            for i in range(0, len(pending), batch):
                for out in pool.map(state.run_one, pending[i : i + batch]):
                    outcomes[out.job.series_uid] = out
                    if out.error is not None:
                        errors.append(out.job)
                    elif progress:
                        done += 1
                        progress(done, total)
        if errors:
            log.info(
                "%s: pass %d: %d series to retry (%s)",
                day,
                attempt + 1,
                len(errors),
                outcomes[errors[0].series_uid].error,
            )
        pending = errors

    transient = [
        o
        for o in outcomes.values()
        if o.error is not None and not isinstance(o.error, PacsOperationError)
    ]
    if transient:
        raise RetrievalError(
            f"{day}: {len(transient)} series could not be retrieved after {passes} passes "
            f"(first: {transient[0].error})"
        )

    # 5. each series' own InstitutionName, from its instance headers
    file_names: dict[str, str | None] = {}
    if r.institution_from == "instances":
        file_names = _institutions_from_files(state, jobs, outcomes, workers)

    # 6. frames
    kept_rows: list[dict[str, Any]] = []
    failed_rows: list[dict[str, Any]] = []
    secondary: list[dict[str, Any]] = []
    other_days = 0
    for job in jobs:
        out = outcomes[job.series_uid]
        row = by_uid[job.series_uid]
        base = {
            "date": day,
            "patient_key": patient_keys.get(job.study_uid),
            "study_uid": job.study_uid,
            "series_uid": job.series_uid,
            "study_description": row["study_description"],
            "series_description": row["series_description"],
            "protocol_name": row["protocol_name"],
            "institution": file_names.get(job.series_uid, raw_names.get(job.series_uid)),
            "modality": job.modality,
            "n_instances": job.n_instances,
        }
        if out.error is not None:
            failed_rows.append(
                {
                    **base,
                    "machine": None,
                    "start": None,
                    "end": None,
                    "reason": f"{Reason.NOT_RETRIEVED}: {out.error}",
                }
            )
            continue
        headers = out.headers or []
        timing = series_timing(job.modality, day, headers, job.description, job.series_date)
        if job.series_date is None and timing.start is not None and timing.start.date() != day:
            # no SeriesDate and acquired another day: that day's series, not this one's
            other_days += 1
            continue
        header_desc = next(
            (d for d in (core.text_value(h, "StudyDescription") for h in headers) if d), None
        )
        if header_desc:
            base["study_description"] = header_desc
        if timing.excluded:
            secondary.append(
                {
                    "date": day,
                    "level": "series",
                    "study_uid": job.study_uid,
                    "series_uid": job.series_uid,
                    "reason": timing.excluded,
                }
            )
            continue
        rec = {**base, "machine": timing.machine, "start": timing.start, "end": timing.end}
        if timing.failed:
            failed_rows.append({**rec, "reason": timing.failed})
        else:
            kept_rows.append(rec)

    if other_days:
        log.debug("%s: %d series without SeriesDate acquired another day left out", day, other_days)
    # the institution rule again, on the names the headers told (the same series as its
    # first pass, less those of another day)
    names = {
        **{x["series_uid"]: (x["study_uid"], x["institution"]) for x in kept_rows + failed_rows},
        **{
            x["series_uid"]: (
                x["study_uid"],
                file_names.get(x["series_uid"], raw_names.get(x["series_uid"])),
            )
            for x in secondary
        },
    }
    again, excl_again = filter_institutions(
        pl.DataFrame(
            [
                {"date": day, "study_uid": st, "series_uid": uid, "institution": name}
                for uid, (st, name) in names.items()
            ],
            schema={
                "date": pl.Date(),
                "study_uid": pl.String(),
                "series_uid": pl.String(),
                "institution": pl.String(),
            },
        ),
        accepted=r.accepted_institutions,
    )
    resolved = dict(again.select("series_uid", "institution").iter_rows())
    if excl_again.height:
        log.debug(
            "%s: %d studies rejected on their instances' InstitutionName", day, excl_again.height
        )
    kept_rows = [
        {**x, "institution": resolved[x["series_uid"]]}
        for x in kept_rows
        if x["series_uid"] in resolved
    ]
    failed_rows = [
        {**x, "institution": resolved[x["series_uid"]]}
        for x in failed_rows
        if x["series_uid"] in resolved
    ]
    gone = set(excl_again.get_column("study_uid").to_list())
    secondary = [x for x in secondary if x["study_uid"] not in gone]
    excl_inst = pl.concat([excl_inst, excl_again.cast(excl_inst.schema)])  # type: ignore[arg-type]
    kept = pl.DataFrame(kept_rows, schema=schema.SERIES_SCHEMA)
    failed = pl.DataFrame(failed_rows, schema=schema.FAILED_SCHEMA)
    excluded = pl.concat(
        [
            excl_st.cast(schema.EXCLUDED_SCHEMA),  # type: ignore[arg-type]
            excl_se.cast(schema.EXCLUDED_SCHEMA),  # type: ignore[arg-type]
            excl_inst.cast(schema.EXCLUDED_SCHEMA),  # type: ignore[arg-type]
            pl.DataFrame(secondary, schema=schema.EXCLUDED_SCHEMA),
        ]
    )
    if state.methods_used:
        method = "+".join(m for m in core.METHODS if state.methods_used.get(m))
    return kept, failed, excluded, method, studies_found, passes


def find_sample(
    client: Any, start: dt.date, end: dt.date, modalities: Sequence[str] = ("PT", "NM")
) -> tuple[str, str, dt.date] | None:
    """A (study, series, day) of ``start``..``end`` to probe the PACS with, CT/PT preferred."""
    span = core.da(start) if start == end else f"{core.da(start)}-{core.da(end)}"
    for modality in modalities:
        query = core.study_query(start, modality)
        query.StudyDate = span
        for study in client.find("STUDY", query):
            study_uid = _text(study, "StudyInstanceUID")
            day = parse_da(core.text_value(study, "StudyDate")) or start
            if not study_uid:
                continue
            series_q = core.series_query(start, study_uid, None)
            series_q.StudyDate = ""
            series = client.find("SERIES", series_q)
            ranked = sorted(
                (s for s in series if _text(s, "SeriesInstanceUID")),
                key=lambda s: (
                    _text(s, "Modality") not in ("CT", "PT"),
                    -(_int(s, "NumberOfSeriesRelatedInstances") or 0),
                ),
            )
            if ranked:
                return study_uid, str(_text(ranked[0], "SeriesInstanceUID")), day
    return None


def check_day_wide(settings: Settings, client: Any, day: dt.date) -> tuple[bool | None, str]:
    """Whether the PACS answers day-wide (relational) SERIES queries right on ``day``.

    For ``pacs check``: the same query and checks as a retrieval, whatever was remembered;
    (None, why) when the day has no study to ask about. The caller remembers the answer.
    """
    state = _Day(day, settings, client, None)
    try:
        studies = state.studies()
        if studies.height == 0:
            return None, f"no study on {day}"
        wanted = [(uid, None, None) for uid in studies.get_column("study_uid").to_list()]
        rows, why = state.day_wide_series_rows(wanted)
    except PacsError as exc:  # a timeout says nothing of the query style: the next run tries
        return None, f"not tested: {exc}"
    if rows is None:
        return False, f"{why}: one SERIES query per study"
    return True, f"{len(wanted)} studies answered in one SERIES query"
