"""InstitutionName from the files where the PACS index cannot be trusted (DOMAIN §2.2).

Some PACS (Orthanc) index InstitutionName per *study*: every series then answers the study's
name. The instance headers carry each series' own name; these functions read it from the
headers already moved for timing, or move one instance where none was.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu.retrieval.headers import HeaderReader, as_files, is_file
from pyschedvisu.retrieval.jobs import Outcome, Pool, SeriesJob
from pyschedvisu.retrieval.picks import UID_LIST_MAX
from pyschedvisu_core import queries as q
from pyschedvisu_core.dicomvalues import text_value
from pyschedvisu_core.errors import PacsCircuitOpenError, PacsError

log = logging.getLogger("pyschedvisu.retrieval")


def institution_of(headers: Sequence[Dataset]) -> str | None:
    """The first InstitutionName the headers carry (None: none does)."""
    return next((n for n in (text_value(h, "InstitutionName") for h in headers) if n), None)


def verify_institutions(
    reader: HeaderReader,
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
    reader.plan.prefetch_firsts([j for j in todo if j.n_instances != 1])

    def one(job: SeriesJob) -> None:
        try:
            headers = reader.file_headers(job)
        except PacsCircuitOpenError:
            raise
        except PacsError as exc:
            log.debug("series %s: institution not checked (%s)", job.series_uid, exc)
            return
        names[job.series_uid] = institution_of(headers)

    with Pool(max_workers=workers, thread_name_prefix="institution") as pool:
        list(pool.map(one, todo))
    if not names:
        return series
    fixed = pl.DataFrame(
        {"series_uid": list(names), "_inst": list(names.values())},
        schema={"series_uid": pl.String(), "_inst": pl.String()},
    )
    log.debug(
        "%s: InstitutionName read from %d file(s) of %d rejected studies",
        reader.day,
        len(names),
        len(studies),
    )
    return (
        series.join(fixed, on="series_uid", how="left", maintain_order="left")
        .with_columns(
            pl.when(pl.col("series_uid").is_in(list(names)))
            .then(pl.col("_inst"))
            .otherwise(pl.col("institution"))
            .alias("institution")
        )
        .drop("_inst")
    )


def institutions_from_files(
    reader: HeaderReader,
    jobs: Sequence[SeriesJob],
    outcomes: dict[str, Outcome],
    workers: int,
    moved: dict[str, list[Dataset]] | None = None,
) -> dict[str, str | None]:
    """Each series' InstitutionName as its instance headers carry it (None: they carry none).

    Some PACS (Orthanc) answer a study's name for every one of its series, so a series that
    has none of its own (left out of its study, DOMAIN §3.1) looks like the others. Headers
    moved for timing say it for free; a series timed on IMAGE-level answers gets one
    instance moved (many series per C-GET / C-MOVE where the PACS allows). A series whose
    header cannot be had keeps its SERIES-level name. ``moved``: filled with the headers
    moved here, by series (they carry more than the name: the injection, DOMAIN §8).
    """
    names: dict[str, str | None] = {}
    todo: list[tuple[SeriesJob, str]] = []
    for job in jobs:
        out = outcomes.get(job.series_uid)
        heads = (out.headers or []) if out is not None else []
        files = [h for h in heads if is_file(h)]
        if files:
            names[job.series_uid] = institution_of(files)
        elif sop := next((u for u in (q.sop_uid(h) for h in heads) if u), None):
            todo.append((job, sop))
    methods = reader.file_methods()
    if not todo or not methods:
        return names
    client = reader.client
    if reader.plan.relational and reader.plan.record.allows("batch_retrieve"):
        for i in range(0, len(todo), UID_LIST_MAX):
            chunk = todo[i : i + UID_LIST_MAX]
            try:
                got = client.fetch_headers_many(
                    [(j.study_uid, j.series_uid, [sop]) for j, sop in chunk], methods[0]
                )
            except PacsCircuitOpenError:
                raise
            except PacsError as exc:
                log.info(
                    "%s: %s of many series failed (%s): one by one", reader.day, methods[0], exc
                )
                break
            for job, _ in chunk:
                if got.get(job.series_uid):
                    names[job.series_uid] = institution_of(got[job.series_uid])
                    if moved is not None:
                        moved[job.series_uid] = as_files(got[job.series_uid])

    def one(item: tuple[SeriesJob, str]) -> None:
        job, sop = item
        try:
            headers = reader.fetch(job, [sop], methods)
            names[job.series_uid] = institution_of(headers)
            if moved is not None:
                moved[job.series_uid] = headers
        except PacsCircuitOpenError:
            raise
        except PacsError as exc:
            log.info("series %s: InstitutionName of its files not read (%s)", job.series_uid, exc)

    rest = [item for item in todo if item[0].series_uid not in names]
    with Pool(max_workers=workers, thread_name_prefix="institution") as pool:
        list(pool.map(one, rest))
    log.debug("%s: InstitutionName of %d series read from their files", reader.day, len(names))
    return names
