"""The unit of work of a day's retrieval: one kept series to time, and what became of it."""

from __future__ import annotations

import contextvars
import datetime as dt
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pydicom.dataset import Dataset

from pyschedvisu_core.errors import PacsError

#: ``progress(done, total)`` of the series of a day.
ProgressFn = Callable[[int, int], None]

T = TypeVar("T")


@dataclass(frozen=True)
class SeriesJob:
    """One kept series to time."""

    study_uid: str
    series_uid: str
    modality: str
    n_instances: int | None
    description: str | None
    series_date: dt.date | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> SeriesJob:
        """The job of a SERIES row (``pyschedvisu_core.dayframes.SERIES_ROWS_SCHEMA``)."""
        return cls(
            study_uid=row["study_uid"],
            series_uid=row["series_uid"],
            modality=row["modality"] or "",
            n_instances=row["n_instances"],
            description=row["series_description"],
            series_date=row["series_date"],
        )


@dataclass
class Outcome:
    """The headers read for a job, or the error that stopped it."""

    job: SeriesJob
    headers: list[Dataset] | None = None
    error: PacsError | None = None


class Pool(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context.

    The DIMSE client counts each day's operations in a context variable (exact per-day
    figures with days in flight together); plain pools would lose it in their threads.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)
