"""Which queries a day needs (DOMAIN §2.1–2.3), the fewest the PACS allows.

:class:`DayPlanner` asks the day's studies and series, then lists what timing needs at the
IMAGE level: day-wide (relational) queries where the PACS answers them right (each answer
checked), one query per study otherwise, series by series on a strictly hierarchical PACS.
What the PACS turns out not to take is written in its :class:`PacsRecord`, once.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import threading
from collections.abc import Sequence
from typing import Any

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu.config import Settings
from pyschedvisu.retrieval.capabilities import PacsRecord
from pyschedvisu.retrieval.jobs import Pool, SeriesJob
from pyschedvisu.retrieval.picks import UID_LIST_MAX, DirectPicks
from pyschedvisu_core import queries as q
from pyschedvisu_core.dayframes import answered_count, series_row, studies_frame, study_row
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import PacsAnswerError, PacsError, PacsOperationError
from pyschedvisu_core.series import instances_needed
from pyschedvisu_core.transport import PacsClient

log = logging.getLogger("pyschedvisu.retrieval")

#: Runaway guard of a day-wide SERIES query: answers allowed per study asked beyond the count
#: the PACS announced (a PACS ignoring the study list answers the whole archive).
SERIES_PER_STUDY_MAX = 50
#: Expected IMAGE-level answers per day-wide query (series are batched up to this).
IMAGE_ANSWERS_BATCH = 5000


class DayPlanner(DirectPicks):
    """The queries of one day and what they answered (shared by the day's worker threads)."""

    def __init__(
        self, day: dt.date, settings: Settings, client: PacsClient, record: PacsRecord
    ) -> None:
        self.day = day
        self.settings = settings
        self.client = client
        self.record = record
        self._images: dict[str, dict[str, list[Dataset]] | None] = {}
        self._series_answers: dict[str, list[Dataset]] = {}
        self._timing: dict[str, dict[str, Dataset]] = {}
        self._image_locks: dict[str, threading.Lock] = {}
        self.lock = threading.Lock()
        #: kept series per study (set before timing: one UID-list query covers them all)
        self.jobs_by_study: dict[str, list[SeriesJob]] = {}
        #: day-wide (relational-style) queries: True / False / None = not tried on this PACS
        self.relational: bool | None = record.relational
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
        #: attributes asked at SERIES level beyond the retrieval's (``discover``: equipment),
        #: answered in each row under their keyword
        self.series_extra: tuple[str, ...] = ()
        #: the IMAGE-level timing queries ask the Radiopharmaceutical Information Sequence
        #: too (the PACS returns it: :meth:`PacsRecord.returns_radiopharm`)
        self.radiopharm = False

        #: study-level queries / retrieves that failed this pass (busy to the deadline,
        #: timeouts): the study's series fail with it instead of each asking again
        self._failed_studies: dict[str, PacsError] = {}

    # -- failures remembered for the pass ----------------------------------------------------
    def study_failed(self, study_uid: str, exc: PacsError) -> None:
        """Remember that a query or retrieve of ``study_uid`` as a whole failed (this pass)."""
        with self.lock:
            self._failed_studies.setdefault(study_uid, exc)

    def study_failure(self, study_uid: str) -> PacsError | None:
        """The failure of a study-level request of this pass (a copy: raised in many threads)."""
        with self.lock:
            exc = self._failed_studies.get(study_uid)
        return None if exc is None else copy.copy(exc)

    def forget_failures(self) -> None:
        """A new pass: every study is asked again."""
        with self.lock:
            self._failed_studies.clear()

    @property
    def per_study(self) -> bool:
        """IMAGE-level queries over a whole study are answered (else series by series)."""
        return self.record.allows("per_study_image_find")

    @property
    def uid_lists(self) -> bool:
        """IMAGE-level queries with a list of SOP Instance UIDs are answered."""
        return self.record.allows("uid_lists")

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
        with self.lock:
            cached = self._series_answers.get(series_uid)
        if cached is not None:
            return cached
        answers: list[Dataset] = self.client.find(
            "IMAGE", q.image_query(study_uid, series_uid, timing=False)
        )
        with self.lock:
            self._series_answers[series_uid] = answers
        return answers

    def instance_count(self, study_uid: str, series_uid: str) -> int:
        """Instances of a series counted from the IMAGE-level answers."""
        answers = self.series_instances(study_uid, series_uid)
        return q.instance_counts(answers).get(series_uid, len(answers))

    def _study_instances(self, study_uid: str) -> dict[str, list[Dataset]] | None:
        with self.lock:
            lock = self._image_locks.setdefault(study_uid, threading.Lock())
        with lock:  # the series of one study share one query, and its failure
            if study_uid not in self._images:
                failed = self.study_failure(study_uid)
                if failed is not None:
                    raise failed
                try:
                    self._images[study_uid] = self._query_study(study_uid)
                except PacsError as exc:
                    self.study_failed(study_uid, exc)
                    raise
            return self._images[study_uid]

    def _query_study(self, study_uid: str) -> dict[str, list[Dataset]] | None:
        if not self.per_study:
            return None
        try:
            answers = self.client.find(
                "IMAGE", q.study_image_query(study_uid, timing=False, instance=None)
            )
        except PacsAnswerError as exc:
            log.warning("%s: unreadable answer (%s): this study series by series", self.day, exc)
            return None
        except PacsOperationError as exc:
            # a strictly hierarchical PACS: series by series from now on (this client)
            log.info("IMAGE-level query per study refused (%s): querying per series", exc)
            self.record.refuse("per_study_image_find")
            return None
        return q.group_by_series(answers) or None

    def needed_count(self, job: SeriesJob) -> int:
        """How many instances timing needs: 2 (first, last) for CT/PT, else 1."""
        return len(instances_needed(job.modality, job.n_instances or 1))

    def picks(self, job: SeriesJob) -> list[Dataset]:
        """Minimal answers of the first (and last) instance of a series."""
        direct = self.direct_picks.get(job.series_uid)
        if direct is not None:
            return direct
        answers = self.series_instances(job.study_uid, job.series_uid)
        return q.pick_instances(answers, self.needed_count(job))

    def timing_answers(self, job: SeriesJob, picks: Sequence[Dataset]) -> list[Dataset]:
        """IMAGE-level answers with the timing keys of ``picks`` (one series).

        The picks of every series of the study travel in one UID-list query; what it does
        not answer is asked series by series (all instances, first / last picked here).
        """
        uids = [u for u in (q.sop_uid(p) for p in picks) if u]
        if self.uid_lists and len(uids) == len(picks):
            found = self._day_timing_answers()
            if found is None:
                found = self._study_timing(job.study_uid)
            got = [found[u] for u in uids if u in found]
            if len(got) == len(uids):
                return got
        answers = self.client.find(
            "IMAGE",
            q.image_query(job.study_uid, job.series_uid, timing=True, radiopharm=self.radiopharm),
        )
        by_sop = {q.sop_uid(a): a for a in answers}
        got = [by_sop[u] for u in uids if u in by_sop]
        return got if got and len(got) == len(uids) else q.pick_instances(answers, len(picks))

    # -- day-wide (relational-style) queries ----------------------------------------------
    def day_wide_failed(self, why: str, *, refused: bool = True) -> None:
        """A day-wide query was refused or its answer is not trusted: per study from now on.

        A PACS never seen answering them is remembered as hierarchical; one that did before
        (this day or another one running alongside) is only asked per study for the rest
        of this day: one doubtful day must not turn day-wide queries off for good. Neither
        is an answer that could not be decoded (``refused=False``): per study, this day only.
        """
        if refused and self.relational is None and self.record.hierarchical_unless_known():
            log.info("PACS answers no day-wide query (%s): querying study by study", why)
        else:
            log.warning("%s: day-wide query not trusted (%s): study by study", self.day, why)
        self.relational = False

    def day_wide_answered(self) -> None:
        if self.relational is None:
            log.info("PACS answers day-wide queries: one query per day instead of per study")
            self.record.set_relational(True)
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
            self.day_wide_failed(str(exc), refused=False)
            return None
        if out is None:
            self.day_wide_failed(why)
            return None
        self.day_wide_answered()
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
            query = q.day_series_query(self.day, list(expected), self.series_extra)
            try:
                answers = self.client.find("SERIES", query, limit=limit)
            except PacsAnswerError:
                raise
            except PacsOperationError as exc:
                return None, str(exc)
            why = q.check_day_series(answers, expected)
            if why is not None:
                return None, why
            patients = {uid: pid for uid, pid, _ in chunk}
            descriptions = {uid: desc for uid, _, desc in chunk}
            for ds in answers:
                study = str(text_value(ds, "StudyInstanceUID"))
                pid, answered = patients[study], text_value(ds, "PatientID")
                if pid and answered is not None and answered != pid:
                    continue  # the per-study query filters on PatientID
                row = self._series_row(study, ds, descriptions[study])
                if row is not None:
                    out.append(row)
        return out, ""

    def _series_row(
        self, study_uid: str, ds: Dataset, study_description: str | None
    ) -> dict[str, Any] | None:
        row = series_row(self.day, study_uid, ds, study_description)
        if row is not None:
            row.update({k: text_value(ds, k) for k in self.series_extra})
        return row

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
            query = q.day_image_query(list(expected))
            try:
                answers = self.client.find("IMAGE", query, limit=limit)
            except PacsOperationError as exc:
                self.day_wide_failed(str(exc), refused=not isinstance(exc, PacsAnswerError))
                return
            grouped, why = q.check_day_images(answers, expected)
            if why is not None:
                self.day_wide_failed(why)
                return
            with self.lock:
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
            query = q.day_series_timing_query(list(expected), radiopharm=self.radiopharm)
            limit = 2 * sum(j.n_instances or 1 for j in chunk) + 10
            try:
                answers = self.client.find("IMAGE", query, limit=limit)
            except PacsOperationError as exc:
                log.info("%s: day-wide timing query refused (%s): listing first", self.day, exc)
                break
            grouped, why = q.check_day_images(answers, expected)
            if why is not None:
                log.info("%s: day-wide timing answer not trusted (%s)", self.day, why)
                break
            with self.lock:
                self.whole_timing.update(grouped)

    def _timed_directly(self, job: SeriesJob) -> bool:
        return job.series_uid in self.direct_timed

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
                        uid = q.sop_uid(p)
                        if uid:
                            picks.append((job.study_uid, job.series_uid, uid))
            picks = list({p[2]: p for p in picks}.values())
            found: dict[str, Dataset] = {}
            for i in range(0, len(picks), UID_LIST_MAX):
                chunk = picks[i : i + UID_LIST_MAX]
                sops = {p[2] for p in chunk}
                query = q.day_timing_query([p[2] for p in chunk], radiopharm=self.radiopharm)
                try:
                    answers = self.client.find("IMAGE", query, limit=2 * len(chunk) + 10)
                except PacsOperationError as exc:
                    log.info("%s: day-wide timing query refused (%s): per study", self.day, exc)
                    self._day_timing_off = True
                    return None
                got = {u: ds for ds in answers if (u := q.sop_uid(ds)) in sops}
                if not got:
                    log.info("%s: day-wide timing query answered nothing: per study", self.day)
                    self._day_timing_off = True
                    return None
                found.update(got)
            self._day_timing = found
            return found

    def _study_timing(self, study_uid: str) -> dict[str, Dataset]:
        key = "timing:" + study_uid
        with self.lock:
            lock = self._image_locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._timing:
                failed = self.study_failure(study_uid)
                if failed is not None:
                    raise failed
                try:
                    self._timing[key] = self._query_timing(study_uid)
                except PacsError as exc:
                    self.study_failed(study_uid, exc)
                    raise
            return self._timing[key]

    def _query_timing(self, study_uid: str) -> dict[str, Dataset]:
        uids: list[str] = []
        for job in self.jobs_by_study.get(study_uid, []):
            if job.series_uid in self.whole_timing or self._timed_directly(job):
                continue
            uids += [u for u in (q.sop_uid(p) for p in self.picks(job)) if u]
        uids = list(dict.fromkeys(uids))
        found: dict[str, Dataset] = {}
        for i in range(0, len(uids), UID_LIST_MAX):
            chunk = uids[i : i + UID_LIST_MAX]
            if not self.uid_lists:
                break
            try:
                answers = self.client.find(
                    "IMAGE", q.listed_image_query(study_uid, chunk, radiopharm=self.radiopharm)
                )
            except PacsAnswerError as exc:
                log.warning("%s: unreadable answer (%s): per series", self.day, exc)
                break
            except PacsOperationError as exc:
                log.info("IMAGE-level query by UID list refused (%s): per series", exc)
                self._no_uid_lists()
                break
            for ds in answers:
                uid = q.sop_uid(ds)
                if uid in chunk:
                    found[uid] = ds
            if len(chunk) > 1 and not any(u in found for u in chunk):
                log.info("IMAGE-level query by UID list answered nothing: per series")
                self._no_uid_lists()
        return found

    def _no_uid_lists(self) -> None:
        self.record.refuse("uid_lists")

    def studies(self) -> pl.DataFrame:
        """The day's studies, once each (STUDY C-FIND per configured modality)."""
        rows: dict[str, dict[str, Any]] = {}
        for modality in self.settings.retrieve.study_modalities:
            for ds in self.client.find("STUDY", q.study_query(self.day, modality)):
                row = study_row(self.day, ds)
                if row is None or row["study_uid"] in rows:
                    continue
                self.study_series[row["study_uid"]] = answered_count(
                    ds, "NumberOfStudyRelatedSeries"
                )
                rows[row["study_uid"]] = row
        return studies_frame(list(rows.values()))

    def series_of(
        self, study_uid: str, patient_id: str | None, study_description: str | None
    ) -> list[dict[str, Any]]:
        """The SERIES rows of one study (one query, the hierarchical way)."""
        out = []
        query = q.series_query(self.day, study_uid, patient_id, self.series_extra)
        for ds in self.client.find("SERIES", query):
            row = self._series_row(study_uid, ds, study_description)
            if row is not None:
                out.append(row)
        return out


def fill_counts(plan: DayPlanner, series: pl.DataFrame, workers: int) -> pl.DataFrame:
    """``series`` with the missing NumberOfSeriesRelatedInstances counted at IMAGE level.

    The NM "more than one instance" rule and the CT/PT first/last choice depend on it: a
    PACS that does not answer the count must not make every series a one-instance one.
    """
    missing = series.filter(pl.col("n_instances").is_null()).select("study_uid", "series_uid")
    if not missing.height:
        return series
    pairs = list(missing.iter_rows())
    with Pool(max_workers=workers, thread_name_prefix="series-count") as pool:
        counts = list(pool.map(lambda p: plan.instance_count(*p), pairs))
    log.debug("%s: %d series counted at IMAGE level", plan.day, len(pairs))
    found = pl.DataFrame(
        {"series_uid": [p[1] for p in pairs], "_n": [c or None for c in counts]},
        schema={"series_uid": pl.String(), "_n": pl.Int32()},
    )
    return (
        series.join(found, on="series_uid", how="left", maintain_order="left")
        .with_columns(pl.col("n_instances").fill_null(pl.col("_n")))
        .drop("_n")
    )
