"""The instance headers that time each series, moved the lightest way the PACS allows.

:class:`HeaderReader` reads, for each kept series, the headers :func:`series_timing` needs:
IMAGE-level answers when they carry the timing tags, else the files themselves by C-GET, else
by C-MOVE to our Storage SCP, many series per request where the PACS takes it. Headers that
arrived as files are marked so (a C-FIND answer looks the same otherwise).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence

from pydicom.dataset import Dataset

from pyschedvisu.retrieval.jobs import Outcome, Pool, SeriesJob
from pyschedvisu.retrieval.picks import UID_LIST_MAX
from pyschedvisu.retrieval.planner import DayPlanner
from pyschedvisu_core import queries as q
from pyschedvisu_core import status
from pyschedvisu_core.errors import PacsCircuitOpenError, PacsError, PacsOperationError
from pyschedvisu_core.series import needs_file_headers
from pyschedvisu_core.transport import Method

log = logging.getLogger("pyschedvisu.retrieval")

#: Set on the instance headers moved by C-GET / C-MOVE (C-FIND answers look alike otherwise).
_FILE_MARK = "_pyschedvisu_file"


def as_files(headers: Iterable[Dataset]) -> list[Dataset]:
    """``headers`` marked as moved files."""
    out = list(headers)
    for ds in out:
        setattr(ds, _FILE_MARK, True)
    return out


def is_file(ds: Dataset) -> bool:
    """True for an instance header moved by C-GET / C-MOVE (what its file says)."""
    return bool(getattr(ds, _FILE_MARK, False))


class HeaderReader:
    """The timing headers of one day's series, by the method resolved for this PACS."""

    def __init__(self, plan: DayPlanner, method: Method, fallbacks: Sequence[Method]) -> None:
        self.plan = plan
        self.client = plan.client
        self.day = plan.day
        self.method: Method = method
        self.fallbacks: list[Method] = list(fallbacks)
        self.methods_used: Counter[str] = Counter()
        self.disabled: set[str] = set()
        #: instance headers moved for many series at once (day-wide C-GET / C-MOVE)
        self._day_headers: dict[str, list[Dataset]] = {}

    def fetch(
        self, job: SeriesJob, sop_uids: Sequence[str] | None, methods: Sequence[Method]
    ) -> list[Dataset]:
        """Headers by the first file method that the PACS accepts."""
        last: PacsOperationError | None = None
        for method in methods:
            if method in self.disabled and len(methods) > 1:
                continue
            try:
                headers = as_files(
                    self.client.fetch_headers(job.study_uid, job.series_uid, sop_uids, method)
                )
                self.methods_used[method] += 1
                return list(headers)
            except PacsOperationError as exc:
                last = exc
                log.debug("series %s: %s failed (%s)", job.series_uid, method, exc)
                if not self.methods_used.get(method) and exc.status in (
                    None,
                    status.MOVE_DESTINATION_UNKNOWN,
                ):
                    # never worked this day (refused context, unknown destination): stop trying it
                    self.disabled.add(method)
        if last is not None:
            raise last
        raise PacsOperationError(
            f"series {job.series_uid}: no method to fetch instance headers with"
        )

    def headers(self, job: SeriesJob) -> list[Dataset]:
        """The instance headers ``series_timing`` needs, the lightest way allowed."""
        count = self.plan.needed_count(job)
        if self.method == "image-find":
            whole = self.plan.whole_timing.get(job.series_uid)
            if whole is not None:
                answers = q.pick_instances(whole, count)
            elif self.plan._timed_directly(job):
                answers = self.plan.direct_picks[job.series_uid]
            elif self.plan.per_study and self.plan.uid_lists:
                picks = self.plan.picks(job)
                answers = self.plan.timing_answers(job, picks) if picks else []
            else:
                # series by series anyway: one query with the timing keys, picked here
                every = self.client.find(
                    "IMAGE",
                    q.image_query(
                        job.study_uid, job.series_uid, timing=True, radiopharm=self.plan.radiopharm
                    ),
                )
                answers = q.pick_instances(every, count)
            if not answers:
                return []
            if (
                answers
                and self.fallbacks
                and any(needs_file_headers(job.modality, a) for a in answers)
            ):
                uids = [u for u in (q.sop_uid(a) for a in answers) if u]
                if uids:
                    got = self.fetch(job, uids, self.fallbacks)
                    if got:
                        return q.pick_instances(got, count)
            self.methods_used["image-find"] += 1
            return answers
        batched = self._day_headers.get(job.series_uid)
        if batched:
            self.methods_used[self.method] += 1
            return q.pick_instances(batched, count)
        methods = [self.method, *self.fallbacks]
        if self.plan.needs_every_instance(job):
            # every instance is needed anyway: no IMAGE-level query at all
            got = self.fetch(job, None, methods)
        else:
            uids = [u for u in (q.sop_uid(p) for p in self.plan.picks(job)) if u]
            if not uids:
                return []
            got = self.fetch(job, uids, methods)
        return q.pick_instances(got, count)

    def batch_files(self) -> bool:
        """True when instance headers are moved for many series per C-GET / C-MOVE."""
        return (
            self.method in ("c-get", "c-move")
            and bool(self.plan.relational)
            and self.plan.record.allows("batch_retrieve")
        )

    def prefetch_headers(self, jobs: Sequence[SeriesJob]) -> None:
        """The picked instances of ``jobs`` by C-GET / C-MOVE of up to UID_LIST_MAX at once.

        Series whose picks did not all arrive are fetched one by one later, as before; a
        PACS refusing such a retrieve is asked series by series from then on (this client).
        """
        wanted: list[tuple[str, str, list[str]]] = []
        for job in jobs:
            if (
                job.series_uid not in self.plan._day_images
                and job.series_uid not in self.plan.direct_picks
            ):
                continue
            uids = [u for u in (q.sop_uid(p) for p in self.plan.picks(job)) if u]
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
                    k: as_files(v)
                    for k, v in self.client.fetch_headers_many(chunk, self.method).items()
                }
            except PacsOperationError as exc:
                log.info(
                    "%s: %s of many series refused (%s): one by one", self.day, self.method, exc
                )
                self.plan.record.refuse("batch_retrieve")
                return
            for _, series_uid, uids in chunk:
                heads = got.get(series_uid, [])
                if set(uids) <= {q.sop_uid(h) for h in heads}:
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
        if self.method not in ("c-get", "c-move"):
            return
        by_study: dict[str, list[SeriesJob]] = {}
        for job in jobs:
            if self.plan.needs_every_instance(job) and job.series_uid not in self._day_headers:
                by_study.setdefault(job.study_uid, []).append(job)
        groups = [
            group[i : i + UID_LIST_MAX]
            for group in by_study.values()
            if len(group) > 1
            for i in range(0, len(group), UID_LIST_MAX)
        ]

        def one(group: list[SeriesJob]) -> int:
            if not self.plan.record.allows("series_list_retrieve"):
                return 0
            study_uid = group[0].study_uid
            try:
                got = {
                    k: as_files(v)
                    for k, v in self.client.fetch_whole_series(
                        study_uid, [j.series_uid for j in group], self.method
                    ).items()
                }
            except PacsCircuitOpenError:
                raise
            except PacsError as exc:
                if isinstance(exc, PacsOperationError) and status.refuses_identifier(exc.status):
                    log.info(
                        "%s: %s of several series refused (%s): series by series",
                        self.day,
                        self.method,
                        exc,
                    )
                    self.plan.record.refuse("series_list_retrieve")
                elif not isinstance(exc, PacsOperationError):
                    # busy to the deadline, timeouts: its series fail with it this pass (each
                    # asking again would cost as much), and are asked again in the next one
                    log.info("%s: %s of a study failed (%s)", self.day, self.method, exc)
                    self.plan.study_failed(study_uid, exc)
                else:  # out of resources and the like: these series alone, with retries
                    log.debug(
                        "%s: %s of study %s failed (%s)", self.day, self.method, study_uid, exc
                    )
                return 0
            complete = {
                j.series_uid: got[j.series_uid]
                for j in group
                if len(got.get(j.series_uid, ())) == j.n_instances
            }
            with self.plan.lock:
                self._day_headers.update(complete)
            return len(complete)

        workers = max(1, self.plan.settings.pacs.max_concurrent)
        with Pool(max_workers=workers, thread_name_prefix="series-files") as pool:
            moved = sum(pool.map(one, groups))
        log.debug("%s: files of %d series moved %d studies at a time", self.day, moved, len(groups))

    def needs_picks(self, job: SeriesJob) -> bool:
        """True when timing ``job`` reads the minimal IMAGE-level answers of its series."""
        if self.method == "image-find":
            return self.plan.per_study and self.plan.uid_lists
        return not self.plan.needs_every_instance(job)

    def file_methods(self) -> list[Method]:
        """The methods that move instance headers, in the order to try them."""
        first: list[Method] = [] if self.method == "image-find" else [self.method]
        return [*first, *self.fallbacks]

    def file_headers(self, job: SeriesJob) -> list[Dataset]:
        """The first instance's file header (whatever the primary method)."""
        methods = self.file_methods()
        if job.n_instances == 1:
            return self.fetch(job, None, methods)
        if job.series_uid in self.plan.first_picks:
            picked = [self.plan.first_picks[job.series_uid]]
        else:
            picked = q.pick_instances(self.plan.series_instances(job.study_uid, job.series_uid), 1)
        uids = [u for u in (q.sop_uid(p) for p in picked) if u]
        return self.fetch(job, uids, methods) if uids else []

    def run_one(self, job: SeriesJob) -> Outcome:
        """The headers of ``job``, or the error that stopped them.

        A study-level request that failed this pass fails its series without asking again.
        Raises only :class:`PacsCircuitOpenError`: the PACS is down, the day stops now.
        """
        failed = self.plan.study_failure(job.study_uid)
        if failed is not None:
            return Outcome(job, error=failed)
        try:
            return Outcome(job, headers=self.headers(job))
        except PacsCircuitOpenError:
            raise
        except PacsError as exc:
            return Outcome(job, error=exc)
