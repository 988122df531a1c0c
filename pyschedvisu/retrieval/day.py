"""One day of PACS metadata into the series store (DOMAIN §2), the lightest way the PACS allows.

``retrieve_day`` asks the studies of the day, their series, applies the study / series /
institution rules of :mod:`pyschedvisu_core.series`, times every kept series from instance
headers (:class:`HeaderReader`), retries what failed, pseudonymises patient ids and writes
the day atomically. A day that cannot be completed raises :class:`RetrievalError` and writes
nothing. A day already *final* in the store with today's rules is read back, never fetched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu.config import MachineEntry, Settings
from pyschedvisu.privacy import load_key, pseudonymise
from pyschedvisu.retrieval.capabilities import pacs_key, record_for
from pyschedvisu.retrieval.clients import make_client
from pyschedvisu.retrieval.headers import HeaderReader, is_file
from pyschedvisu.retrieval.institutions import institutions_from_files, verify_institutions
from pyschedvisu.retrieval.jobs import Outcome, Pool, ProgressFn, SeriesJob
from pyschedvisu.retrieval.planner import DayPlanner, fill_counts
from pyschedvisu.store import SeriesStore
from pyschedvisu_core.dayframes import DayFrames, TimedSeries, assemble_day, series_frame
from pyschedvisu_core.dropped import institution_names
from pyschedvisu_core.errors import (
    AssociationRejectedError,
    PacsError,
    PacsOperationError,
    PacsUnreachableError,
    RetrievalError,
    StoreError,
)
from pyschedvisu_core.plausibility import StudyLimits
from pyschedvisu_core.series import filter_institutions, filter_series, filter_studies
from pyschedvisu_core.transport import METHODS, PacsClient

log = logging.getLogger("pyschedvisu.retrieval")

#: Bump when what is stored for a day changes meaning: stored days are then fetched again.
#: 2: StationName and DeviceSerialNumber kept per series (identical scanners, DOMAIN §7);
#:    a study rejected by the institution rule names the institutions in its reason
#: 3: series dated another day stored as excluded; implausible times failed with a reason.
#: 4: the study's AccessionNumber in every series row (planned against performed)
#: 5: the injection of each PT / NM series (Radiopharmaceutical Information Sequence, DOMAIN §8)
STORE_VERSION = 5


def retrieval_fingerprint(settings: Settings) -> str:
    """Hash of what changes a stored day: the rules and which PACS (not timeouts, not pacing)."""
    data = {
        "version": STORE_VERSION,
        "retrieve": settings.retrieve.model_dump(
            mode="json",
            exclude={"retries_per_day", "final_after_hours", "day_deadline_s", "first_day"},
        ),
        "pacs": {k: getattr(settings.pacs, k) for k in ("host", "port", "called_ae")},
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def is_final(day: dt.date, final_after_hours: float, now: dt.datetime | None = None) -> bool:
    """True once ``day`` ended more than ``final_after_hours`` ago (local time)."""
    now = now or dt.datetime.now()
    day_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time())
    return now >= day_end + dt.timedelta(hours=final_after_hours)


def reason_counts(*reasons: pl.Series) -> dict[str, int]:
    """Count per reason code (details after ':' dropped), sorted by code."""
    codes = [str(r).split(":", 1)[0] for col in reasons for r in col.to_list() if r]
    return dict(sorted(Counter(codes).items()))


def stored_summary(day: dt.date, manifest: dict[str, Any]) -> dict[str, Any]:
    """The summary of a day read back from its manifest (no frame read, no PACS request)."""
    counts = manifest.get("counts", {})
    return {
        "day": day.isoformat(),
        "studies": manifest.get("studies"),
        "series": counts.get("series"),
        "excluded": counts.get("excluded"),
        "failed": counts.get("failed"),
        "seconds": 0.0,
        "method": str(manifest.get("method", "")),
        "final": bool(manifest.get("final", False)),
        "reasons": manifest.get("reasons", {}),
        "from_cache": True,
        "dimse_ops": 0,
        "studies_found": manifest.get("studies_found"),
        "dropped": manifest.get("dropped", {}),
    }


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
        return reason_counts(self.excluded.get_column("reason"), self.failed.get_column("reason"))

    def dropped(self) -> dict[str, dict[str, int]]:
        """What did not match the config, by value: ``{"institutions": {name: studies}}``."""
        names = institution_names(self.excluded.get_column("reason").to_list())
        return {"institutions": dict(sorted(names.items()))}

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
            "studies_found": self.studies_found,
            "dropped": self.dropped(),
        }

    @classmethod
    def from_store(cls, store: SeriesStore, day: dt.date, manifest: dict[str, Any]) -> DayResult:
        """The day as the store holds it."""
        return cls(
            day=day,
            series=store.load("series", [day]),
            failed=store.load("failed", [day]),
            excluded=store.load("excluded", [day]),
            method=str(manifest.get("method", "")),
            final=bool(manifest.get("final", False)),
            seconds=0.0,
            from_cache=True,
            studies_found=int(manifest.get("studies_found", 0)),
            ops={"dimse_ops": 0},
        )


@dataclass(frozen=True)
class Retrieved:
    """What :func:`_retrieve` brings back from the PACS for one day."""

    frames: DayFrames
    method: str
    studies_found: int
    passes: int


def retrieve_day(
    day: dt.date,
    settings: Settings,
    client: PacsClient | None = None,
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
        stored = _from_store(store, day, fingerprint)
        if stored is not None:
            return stored

    key = load_key(settings.privacy)  # before any patient id is seen
    own = client is None
    pacs = client if client is not None else make_client(settings)
    t0 = time.monotonic()
    final = is_final(day, settings.retrieve.final_after_hours, now)
    try:
        # this day's operations only, though other days share the client; a PACS answering
        # "busy" is asked again, slower, until the day's deadline
        with pacs.tally() as counted, pacs.deadline(t0 + settings.retrieve.day_deadline_s):
            got = _retrieve(day, settings, pacs, key, progress)
        if pacs.closed:
            # closed under this day (Ctrl-C): its last answers may be cut short, not final
            raise RetrievalError(f"{day}: interrupted (client closed); nothing written")
    except (PacsUnreachableError, AssociationRejectedError):
        raise
    except PacsError as exc:
        raise RetrievalError(f"{day}: {exc}") from exc
    finally:
        if own:
            pacs.close()
    frames = got.frames
    ops = counted.as_dict()
    seconds = time.monotonic() - t0
    res = DayResult(
        day,
        frames.series,
        frames.failed,
        frames.excluded,
        got.method,
        final,
        seconds,
        False,
        got.studies_found,
        ops,
        got.passes,
    )
    manifest = {
        "site": settings.site,
        "fingerprint": fingerprint,
        "store_version": STORE_VERSION,
        "method": got.method,
        "final": final,
        "pacs": pacs_key(settings),
        "studies_found": got.studies_found,
        "studies": res.studies,
        "reasons": res.reasons(),
        "dropped": res.dropped(),
        "seconds": round(seconds, 3),
        "passes": got.passes,
        "ops": ops,
    }
    store.write_day(day, frames.series, frames.failed, frames.excluded, manifest)
    try:
        record_for(settings).remember_pace(pacs.pace)
    except StoreError as exc:  # the day is written: only the next run's start is at stake
        log.warning("%s: pace not kept (%s)", day, exc)
    log.info(
        "%s: %d studies, %d series kept, %d excluded, %d failed in %.1f s (%s, %d DIMSE ops)",
        day,
        res.studies,
        frames.series.height,
        frames.excluded.height,
        frames.failed.height,
        seconds,
        got.method,
        ops["dimse_ops"],
    )
    return res


def _from_store(store: SeriesStore, day: dt.date, fingerprint: str) -> DayResult | None:
    """The day as stored when it is final there; None to fetch it.

    A stored day that cannot be read is moved aside (``<day>.corrupt-<time>/``, one line in
    the log) and fetched again: it heals without ``--force``.
    """
    try:
        manifest = store.final_manifest(day, fingerprint)
        if manifest is None:
            return None
        result = DayResult.from_store(store, day, manifest)
    except StoreError as exc:
        try:
            moved = store.quarantine(day)
        except OSError as err:
            raise StoreError(
                f"{day}: stored day unreadable ({exc}) and not moved aside ({err})"
            ) from err
        where = f"moved aside to {moved}" if moved is not None else "nothing to move aside"
        log.warning("%s: stored day unreadable (%s); %s, fetching it again", day, exc, where)
        return None
    log.debug("%s: final in the store, no network", day)
    return result


def study_limits(settings: Settings) -> StudyLimits:
    """The longest studies believed, per machine (``retrieve.max_study_minutes*``)."""
    r = settings.retrieve
    return StudyLimits(
        default=dt.timedelta(minutes=r.max_study_minutes),
        pause=dt.timedelta(seconds=settings.extract.retake_split_s),
        by_machine={k: dt.timedelta(minutes=v) for k, v in r.max_study_minutes_by_machine.items()},
        # by model set: identical scanners (entries naming a station) share their models' limit
        machines={
            k: list(v.models if isinstance(v, MachineEntry) else v)
            for k, v in settings.machines.items()
        },
    )


def _retrieve(
    day: dt.date, settings: Settings, client: PacsClient, key: bytes, progress: ProgressFn | None
) -> Retrieved:
    r = settings.retrieve
    plan = DayPlanner(day, settings, client, record_for(settings))
    workers = max(1, settings.pacs.max_concurrent)

    # 1. studies
    studies = plan.studies()
    kept_st, excl_st = filter_studies(
        studies,
        patient_id_pattern=r.patient_id_pattern,
        description_exclude=r.study_description_exclude,
    )
    patient_ids: dict[str, str | None] = dict(
        zip(
            kept_st.get_column("study_uid").to_list(),
            kept_st.get_column("patient_id").to_list(),
            strict=True,
        )
    )
    patient_keys = {uid: pseudonymise(pid, key) for uid, pid in patient_ids.items()}
    accessions: dict[str, str | None] = dict(
        zip(
            kept_st.get_column("study_uid").to_list(),
            kept_st.get_column("accession_number").to_list(),
            strict=True,
        )
    )

    # 2. series: day-wide where the PACS answers that (checked), else one query per study
    wanted = [
        (uid, patient_ids[uid], desc)
        for uid, desc in zip(
            kept_st.get_column("study_uid").to_list(),
            kept_st.get_column("study_description").to_list(),
            strict=True,
        )
    ]
    day_rows = plan.series_day_wide(wanted) if wanted and plan.relational is not False else None
    rows: list[dict[str, Any]] = list(day_rows or [])
    if day_rows is None:
        with Pool(max_workers=workers, thread_name_prefix="series-find") as pool:
            futures = [pool.submit(plan.series_of, *w) for w in wanted]
            for fut in futures:
                rows.extend(fut.result())
    del patient_ids
    series, excl_other = series_frame(rows, day)
    if excl_other.height:
        log.info("%s: %d series dated another day excluded", day, excl_other.height)
    series = fill_counts(plan, series, workers)
    kept_se, excl_se = filter_series(
        series,
        description_exclude=r.series_description_exclude,
        protocol_exclude=r.series_protocol_exclude,
        modalities=r.series_modalities,
    )
    all_jobs = {
        job.series_uid: job for job in (SeriesJob.of(row) for row in kept_se.iter_rows(named=True))
    }

    # 3. method (probed once per PACS, on a real series of the day)
    reader = HeaderReader(plan, "image-find", [])
    if all_jobs:
        sample = next(
            (j for j in all_jobs.values() if j.modality in ("CT", "PT")),
            next(iter(all_jobs.values())),
        )
        resolved = plan.record.resolve(
            settings.pacs.retrieval, client, (sample.study_uid, sample.series_uid)
        )
        reader = HeaderReader(plan, resolved.method, resolved.fallbacks)
        if reader.method == "image-find":
            # the injection travels with the timing keys where the PACS returns it (probed
            # once); files carry it anyway
            isotopes = sorted(
                (j for j in all_jobs.values() if j.modality in ("PT", "NM")),
                key=lambda j: j.modality != "PT",
            )
            samples = [(j.study_uid, j.series_uid) for j in isotopes[:2]]
            plan.radiopharm = plan.record.returns_radiopharm(client, samples)

    # institution rule; a study it rejects is checked on the files first (verify_institutions)
    kept, excl_inst = filter_institutions(kept_se, accepted=r.accepted_institutions)
    if excl_inst.height and reader.file_methods():
        kept_se = verify_institutions(reader, kept_se, excl_inst, all_jobs, workers)
        kept, excl_inst = filter_institutions(kept_se, accepted=r.accepted_institutions)
    # the names as found (SERIES level, or files for rejected studies), for the rule's second
    # pass once the instance headers have told each series' own name
    raw_names = dict(kept_se.select("series_uid", "institution").iter_rows())
    kept_se = kept
    jobs = [all_jobs[uid] for uid in kept_se.get_column("series_uid").to_list()]
    by_uid = {row["series_uid"]: row for row in kept_se.iter_rows(named=True)}
    for job in jobs:
        plan.jobs_by_study.setdefault(job.study_uid, []).append(job)
    if plan.relational:
        batch_files = reader.batch_files()
        listed = [j for j in jobs if batch_files or reader.needs_picks(j)]
        if reader.method == "image-find" and plan.per_study and plan.uid_lists:
            plan.prefetch_whole_timing([j for j in listed if plan.needs_every_instance(j)])
            listed = [j for j in listed if j.series_uid not in plan.whole_timing]
        listed = plan.prefetch_direct(listed, timing=reader.method == "image-find")
        plan.prefetch_instances(listed)
        if batch_files:
            reader.prefetch_headers(jobs)
    if not reader.batch_files():
        reader.prefetch_whole_series(jobs)

    # 4. timing headers, in batches, bounded concurrency, retried passes
    outcomes, passes = _time_series(day, reader, jobs, settings, progress)
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
    moved: dict[str, list[Dataset]] = {}  # instance headers moved for it, by series
    if r.institution_from == "instances":
        file_names = institutions_from_files(reader, jobs, outcomes, workers, moved)

    # 6. frames; the injection (DOMAIN §8) from the timing headers, else from a file moved
    # for the institution when the PACS does not return it at IMAGE level
    timed = []
    for job in jobs:
        outcome = outcomes[job.series_uid]
        headers = outcome.headers or []
        files = moved.get(job.series_uid) if not plan.radiopharm else None
        returned = plan.radiopharm or any(is_file(h) for h in headers)
        timed.append(
            TimedSeries(
                row=by_uid[job.series_uid],
                headers=headers,
                error=None if outcome.error is None else str(outcome.error),
                institution=file_names.get(job.series_uid, raw_names.get(job.series_uid)),
                radiopharm_returned=returned or bool(files),
                radiopharm_headers=files if files and not returned else None,
            )
        )
    frames = assemble_day(
        day,
        timed,
        patient_keys,
        r.accepted_institutions,
        [excl_st, excl_other, excl_se, excl_inst],
        max_series=dt.timedelta(minutes=r.max_series_minutes),
        study_limits=study_limits(settings),
        accessions=accessions,
    )
    if frames.other_days:
        log.info(
            "%s: %d series without SeriesDate acquired another day excluded",
            day,
            frames.other_days,
        )
    if frames.implausible_studies:
        log.info(
            "%s: %d series failed: their study runs longer than its machine's maximum",
            day,
            frames.implausible_studies,
        )
    if frames.rejected_on_files:
        log.debug(
            "%s: %d studies rejected on their instances' InstitutionName",
            day,
            frames.rejected_on_files,
        )
    method: str = reader.method if all_jobs else "none"
    if reader.methods_used:  # what really moved the headers, e.g. "image-find+c-get"
        method = "+".join(m for m in METHODS if reader.methods_used.get(m))
    return Retrieved(frames, method, studies.height, passes)


def _time_series(
    day: dt.date,
    reader: HeaderReader,
    jobs: list[SeriesJob],
    settings: Settings,
    progress: ProgressFn | None,
) -> tuple[dict[str, Outcome], int]:
    """Every job's headers, ``retrieve.retries_per_day`` more passes for those that failed."""
    outcomes: dict[str, Outcome] = {}
    pending = jobs
    passes = done = 0
    total = len(jobs)
    if progress:
        progress(0, total)
    batch = max(1, settings.pacs.series_per_batch)
    workers = max(1, settings.pacs.max_concurrent)
    for attempt in range(1 + settings.retrieve.retries_per_day):
        if not pending:
            break
        if attempt:
            reader.plan.forget_failures()  # a new pass asks every study again
        passes += 1
        errors: list[SeriesJob] = []
        with Pool(max_workers=workers, thread_name_prefix="series-time") as pool:
            for i in range(0, len(pending), batch):
                for out in pool.map(reader.run_one, pending[i : i + batch]):
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
    return outcomes, passes
