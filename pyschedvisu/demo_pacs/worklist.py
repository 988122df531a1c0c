"""The demo PACS's Modality Worklist: the synthetic department's RIS, answering C-FIND.

The appointment book is ``DIR/truth/book.parquet`` (:mod:`pyschedvisu.synth.appointments`).
At a time ``at`` (the real time, or :attr:`Behaviour.worklist_now` for a simulated day) the
worklist shows what the RIS shows then: booked entries, not cancelled yet, with the start
they had then, and, with :attr:`Behaviour.forget_performed`, none that was performed (as
most RIS drop an entry once the modality starts it). Matching (PS3.4 K.6.1.2.2, C.2.2.2) is
on the step's station AE title, start date (a date or a range) and modality, and on the
PatientID and AccessionNumber; answers carry the attributes asked for.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import polars as pl
from pydicom.dataset import Dataset

from pyschedvisu.demo_pacs.indexing import value_str
from pyschedvisu.demo_pacs.matching import compile_query
from pyschedvisu.synth.appointments import BOOK_SCHEMA, mwl_dataset, visible_at
from pyschedvisu_core import status
from pyschedvisu_core.dicomvalues import sequence_items
from pyschedvisu_core.errors import PacsOperationError

log = logging.getLogger(__name__)

BOOK_FILE = Path("truth") / "book.parquet"
#: Step attributes matched, with their VR, and the book column they match.
_STEP_KEYS = {
    "ScheduledStationAETitle": ("AE", "station_ae"),
    "Modality": ("CS", "modality"),
}
_TOP_KEYS = {
    "PatientID": ("LO", "patient_id"),
    "AccessionNumber": ("SH", "accession_number"),
}


def _query(ds: Dataset, keyword: str) -> str | None:
    return value_str(ds[keyword]) if keyword in ds else None


class DemoWorklist:
    """The worklist of one appointment book (see the module docstring)."""

    def __init__(self, book: pl.DataFrame) -> None:
        self.book = book

    @classmethod
    def load(cls, data_dir: Path) -> DemoWorklist | None:
        """The book of the department in ``data_dir``; None when it has none."""
        path = Path(data_dir) / BOOK_FILE
        if not path.exists():
            return None
        book = pl.read_parquet(path).select(list(BOOK_SCHEMA))
        log.info("demo worklist: %d appointment(s) from %s", book.height, path)
        return cls(book)

    def answers(self, ident: Dataset, at: dt.datetime, *, forget_performed: bool) -> list[Dataset]:
        """The entries matching ``ident`` at ``at``, with the attributes it asks for.

        Raises :class:`PacsOperationError` (0xA900) for an identifier without its Scheduled
        Procedure Step Sequence item.
        """
        items = sequence_items(ident, "ScheduledProcedureStepSequence")
        if not items:
            raise PacsOperationError(
                "no Scheduled Procedure Step Sequence item", status=status.BAD_IDENTIFIER
            )
        item = items[0]
        rows = self.book
        date = compile_query(_query(item, "ScheduledProcedureStepStartDate"), "DA")
        if date is not None:
            days = rows["date"].unique().to_list()
            rows = rows.filter(pl.col("date").is_in([d for d in days if date(f"{d:%Y%m%d}")]))
        for source, keys in ((item, _STEP_KEYS), (ident, _TOP_KEYS)):
            for keyword, (vr, column) in keys.items():
                pred = compile_query(_query(source, keyword), vr)
                if pred is None:
                    continue
                values = [v for v in rows[column].unique().to_list() if pred(v)]
                rows = rows.filter(pl.col(column).is_in(values))
        shown = visible_at(rows, at, forget_performed=forget_performed)
        return [
            _asked(mwl_dataset(r), ident, item)
            for r in shown.sort("shown_start", "step_id").iter_rows(named=True)
        ]


def _asked(full: Dataset, ident: Dataset, item: Dataset) -> Dataset:
    """``full`` reduced to the attributes of ``ident`` (and of its step item)."""
    out = Dataset()
    out.SpecificCharacterSet = full.SpecificCharacterSet
    for elem in ident:
        if elem.keyword == "ScheduledProcedureStepSequence" or elem.keyword == "":
            continue
        if elem.keyword in full:
            out[elem.tag] = full[elem.tag]
        else:
            out[elem.tag] = elem  # asked, unknown here: returned empty as asked
    step = Dataset()
    have = full.ScheduledProcedureStepSequence[0]
    for elem in item:
        step[elem.tag] = have.get(elem.tag, elem)
    out.ScheduledProcedureStepSequence = [step]
    return out
