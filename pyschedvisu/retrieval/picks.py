"""Instance 1 and N of series asked directly by InstanceNumber, day-wide (DOMAIN §2.3).

:class:`DirectPicks` is the part of :class:`~pyschedvisu.retrieval.planner.DayPlanner` that
finds the first (and last) instance of many series in a few IMAGE-level queries, without
listing their instances; what cannot be trusted is left to the listing, and a PACS that does
not answer such queries is written in its :class:`PacsRecord`, once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Sequence

from pydicom.dataset import Dataset

from pyschedvisu.retrieval.capabilities import PacsRecord
from pyschedvisu.retrieval.jobs import SeriesJob
from pyschedvisu_core import queries as q
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import PacsAnswerError, PacsOperationError
from pyschedvisu_core.series import instances_needed
from pyschedvisu_core.transport import PacsClient

log = logging.getLogger("pyschedvisu.retrieval")


#: SOPInstanceUIDs per UID-list query (a UI value is at most 64 KiB in explicit VR).
UID_LIST_MAX = 100
#: What one more C-FIND costs, in answers: a group of series sharing a count N is asked for
#: instances N and N + 1 directly only when listing it would cost more than those two.
PICK_OP_COST = 4


class DirectPicks:
    """Direct picks of the day's series (a base of :class:`DayPlanner`, which holds the state
    declared here)."""

    day: dt.date
    client: PacsClient
    record: PacsRecord
    lock: threading.Lock
    relational: bool | None
    radiopharm: bool
    direct_picks: dict[str, list[Dataset]]
    direct_timed: set[str]
    first_picks: dict[str, Dataset]
    _images: dict[str, dict[str, list[Dataset]] | None]
    _series_answers: dict[str, list[Dataset]]

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
        if not (self.relational and self.record.allows("direct_picks")):
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
        with self.lock:
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
        if jobs and self.relational and self.record.allows("direct_picks"):
            got = self._picks_numbered([j.series_uid for j in jobs], 1, timing=False)
            self.first_picks.update(got or {})

    def _picks_numbered(
        self, series_uids: Sequence[str], number: int, *, timing: bool
    ) -> dict[str, Dataset] | None:
        """Instance ``number`` of each listed series; None when the PACS cannot be trusted."""
        answers = self._ask_numbered(series_uids, number, timing=timing)
        if answers is None:
            return None
        return q.check_day_picks(answers, series_uids, number)[0]

    def _numbered_beyond(self, series_uids: Sequence[str], number: int) -> set[str] | None:
        """The listed series holding an instance numbered ``number``; None: not trusted."""
        answers = self._ask_numbered(series_uids, number, timing=False)
        if answers is None:
            return None
        return {uid for ds in answers if (uid := text_value(ds, "SeriesInstanceUID"))}

    def _ask_numbered(
        self, series_uids: Sequence[str], number: int, *, timing: bool
    ) -> list[Dataset] | None:
        """Answers to :func:`q.day_pick_query`, checked; None (direct queries off) if not."""
        out: list[Dataset] = []
        for i in range(0, len(series_uids), UID_LIST_MAX):
            chunk = series_uids[i : i + UID_LIST_MAX]
            query = q.day_pick_query(chunk, number, timing=timing, radiopharm=self.radiopharm)
            try:
                answers = self.client.find("IMAGE", query, limit=4 * len(chunk) + 20)
            except PacsAnswerError as exc:
                log.warning("%s: unreadable answer (%s): instances listed instead", self.day, exc)
                return None
            except PacsOperationError as exc:
                self._no_direct(str(exc))
                return None
            why = q.check_day_picks(answers, chunk, number)[1]
            if why is not None:
                self._no_direct(why)
                return None
            out += answers
        return out

    def _listed(self, job: SeriesJob) -> bool:
        """True when every instance of ``job``'s series was already listed (counting)."""
        with self.lock:
            if job.series_uid in self._series_answers:
                return True
            grouped = self._images.get(job.study_uid)
        return grouped is not None and job.series_uid in grouped

    def _no_direct(self, why: str) -> None:
        log.info("IMAGE-level query by InstanceNumber not usable (%s): listing instances", why)
        self.record.refuse("direct_picks")
