"""What one PACS allows, in one record (DOMAIN §2.4: find what the PACS accepts, use the lightest).

A :class:`PacsRecord` per PACS (and data dir) holds everything the retrieval knows of it:

- **probed**, kept in ``<data_dir>/pacs_capabilities.json``: which methods read instance timing
  (IMAGE-level C-FIND, C-GET, C-MOVE), whether day-wide (relational) queries are answered and
  whether IMAGE-level answers carry the Radiopharmaceutical Information Sequence;
- **settled**, kept there too: the pace (requests at once, per second) the client's pacer
  settled on against this PACS, where the next run's client starts;
- **learned** while this process runs, not kept (cheap to learn again, and a PACS upgrade must
  not stay hidden behind an old file): IMAGE-level queries per study, lists of SOP Instance
  UIDs, picks by InstanceNumber, one retrieve for many series, lists of series in a retrieve.

Every read-modify-write holds the record's lock; days starting together probe once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pyschedvisu.config import Settings
from pyschedvisu.store import atomic_write_bytes
from pyschedvisu_core import queries as q
from pyschedvisu_core import status
from pyschedvisu_core.errors import (
    PacsAnswerError,
    PacsCircuitOpenError,
    PacsError,
    PacsOperationError,
    RetrievalError,
)
from pyschedvisu_core.transport import Capabilities, Method, Pace, PacsClient, fallback_methods

log = logging.getLogger("pyschedvisu.retrieval")

CAPABILITIES_FILE = "pacs_capabilities.json"

#: The query and retrieve forms a PACS may turn out not to take (learned, per process).
Form = Literal[
    "per_study_image_find",  # IMAGE-level C-FIND over a whole study
    "uid_lists",  # IMAGE-level C-FIND with a list of SOP Instance UIDs
    "direct_picks",  # IMAGE-level C-FIND of instance 1 and N by InstanceNumber, day-wide
    "batch_retrieve",  # one C-GET / C-MOVE for listed instances of many series
    "series_list_retrieve",  # one C-GET / C-MOVE for several whole series of a study
]
FORMS: tuple[Form, ...] = (
    "per_study_image_find",
    "uid_lists",
    "direct_picks",
    "batch_retrieve",
    "series_list_retrieve",
)


def pacs_key(settings: Settings) -> str:
    """Key of a PACS in the capabilities file: what it accepts depends on all of these."""
    p = settings.pacs
    return (
        f"{p.host}:{p.port}/{p.called_ae}/{p.calling_ae}/{p.move_ae or p.calling_ae}:{p.move_port}"
    )


@dataclass(frozen=True)
class Resolved:
    """How this run reads instance timing: the primary method, then the file methods to try."""

    method: Method
    fallbacks: list[Method]
    capabilities: Capabilities | None


class PacsRecord:
    """Everything known of what one PACS allows (see the module docstring)."""

    def __init__(self, key: str, path: Path | None) -> None:
        self.key = key
        #: the capabilities file, None when ``pacs.probe_cache`` is off
        self.path = path
        self._lock = threading.RLock()
        self._probe_lock = threading.Lock()
        self._caps: Capabilities | None = None
        self._loaded = False
        self._pace: Pace | None = None
        self._pace_loaded = False
        self._refused: set[Form] = set()

    # -- probed (kept) ----------------------------------------------------------------------
    def capabilities(self) -> Capabilities | None:
        """What a probe found (or only whether day-wide queries work); None: nothing yet."""
        with self._lock:
            if not self._loaded:
                self._loaded = True
                self._caps = self._read()
            return self._caps

    def _entry(self) -> dict[str, Any]:
        """This PACS's entry of the capabilities file ({} when none or unreadable)."""
        entry = self._file().get(self.key)
        return entry if isinstance(entry, dict) else {}

    def _file(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _read(self) -> Capabilities | None:
        entry = self._entry()
        if "echo" not in entry:  # nothing probed yet (perhaps only a pace kept)
            return None
        try:
            return Capabilities.from_json(entry)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def _write(self, update: dict[str, Any]) -> None:
        """Merge ``update`` into this PACS's entry of the file (other PACS kept)."""
        if self.path is None:
            return
        data = self._file()
        entry = data.get(self.key)
        data[self.key] = {**(entry if isinstance(entry, dict) else {}), **update}
        atomic_write_bytes(self.path, json.dumps(data, indent=2, sort_keys=True).encode())

    def remember(self, caps: Capabilities) -> None:
        """Keep ``caps`` for this PACS (and in the capabilities file, other PACS kept)."""
        with self._lock:
            self._caps, self._loaded = caps, True
            entry = caps.to_json()
            entry["probed_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            self._write(entry)

    # -- settled (kept) ---------------------------------------------------------------------
    def pace(self) -> Pace | None:
        """The pace a client settled on against this PACS last time (None: none kept)."""
        with self._lock:
            if not self._pace_loaded:
                self._pace_loaded = True
                self._pace = Pace.from_json(self._entry().get("pace"))
            return self._pace

    def remember_pace(self, pace: Pace) -> None:
        """Keep ``pace`` as where the next run starts (written when it moved by over 10 %)."""
        with self._lock:
            old = self.pace()
            if (
                old is not None
                and old.concurrency == pace.concurrency
                and abs(old.ops_per_s - pace.ops_per_s) <= 0.1 * old.ops_per_s
            ):
                return
            if Pace.from_json(pace.to_json()) is None:
                return  # not a pace to start from (no rate)
            self._pace = pace
            log.info("PACS %s: pace kept for the next run: %s", self.key, pace)
            self._write(
                {
                    "pace": pace.to_json(),
                    "pace_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                }
            )

    @property
    def relational(self) -> bool | None:
        """Whether the PACS answers day-wide (relational) queries; None: not tried yet."""
        caps = self.capabilities()
        return None if caps is None else caps.relational

    def set_relational(self, ok: bool) -> None:
        """Remember, with the probe results, whether day-wide queries can be used."""
        with self._lock:  # read-modify-write: a probe finishing meanwhile is not undone
            caps = self.capabilities() or Capabilities(probed=False)
            if caps.relational != ok:
                self.remember(dataclasses.replace(caps, relational=ok))

    def hierarchical_unless_known(self) -> bool:
        """Record the PACS as hierarchical if nothing says otherwise; True when recorded now.

        A PACS never seen answering day-wide queries is remembered as hierarchical; one that
        did before (another day running alongside) keeps its record: one doubtful day must not
        turn day-wide queries off for good.
        """
        with self._lock:
            if self.relational is not None:
                return False
            self.set_relational(False)
            return True

    def resolve(
        self, configured: str, client: PacsClient, sample: tuple[str, str] | None
    ) -> Resolved:
        """How to read instance timing on this PACS.

        The configured method wins; ``auto`` probes once (remembered) and takes the lightest
        allowed: IMAGE-level C-FIND > C-GET > C-MOVE.
        """
        caps = self.capabilities()
        if configured != "auto":
            method: Method = configured  # type: ignore[assignment]
            return Resolved(method, fallback_methods(method, caps), caps)
        with self._probe_lock:  # days starting together: one probe, not one each
            caps = self.capabilities()
            if caps is None or not caps.probed:
                probed = client.probe(sample)
                with self._lock:  # what other days learnt meanwhile (relational) is kept
                    known = self.capabilities()
                    caps = dataclasses.replace(
                        probed,
                        relational=self.relational,
                        probed=True,
                        image_find_radiopharm=known.image_find_radiopharm if known else None,
                    )
                    if sample is not None:
                        self.remember(caps)
                log.info("PACS %s probed: %s", self.key, "; ".join(caps.notes))
        methods = caps.methods()
        if not methods:
            if sample is None:
                # Nothing to test with: the heaviest, most widely allowed method is the safe bet.
                return Resolved("c-move", [], None)
            raise RetrievalError(
                f"PACS {self.key} allows no way to read instance timing "
                f"({'; '.join(caps.notes)}). Set pacs.retrieval and check pacs.move_ae / move_port."
            )
        return Resolved(methods[0], fallback_methods(methods[0], caps), caps)

    def returns_radiopharm(self, client: PacsClient, samples: Sequence[tuple[str, str]]) -> bool:
        """Whether IMAGE-level answers carry the Radiopharmaceutical Information Sequence.

        Probed once per PACS and remembered with the probe results: an IMAGE-level C-FIND
        asking the sequence of instance 1 (every instance when none is numbered 1) of a PT /
        NM series of the day (``samples``, (study, series), a second one tried when the first
        answers without it). True when an answer carries it with an item; False when the
        samples answered without it or the PACS refused the key. Nothing is remembered (False
        for this day) without a sample or an answer, or on a busy / lost PACS.
        """
        with self._probe_lock:
            caps = self.capabilities()
            if caps is not None and caps.image_find_radiopharm is not None:
                return caps.image_find_radiopharm
            found: bool | None = None
            for sample in samples[:2]:
                found = _probe_radiopharm(client, sample)
                if found is not False:
                    break
            if found is None:
                return False
            with self._lock:
                caps = self.capabilities() or Capabilities(probed=False)
                self.remember(dataclasses.replace(caps, image_find_radiopharm=found))
            log.info(
                "PACS %s: IMAGE-level C-FIND %s the Radiopharmaceutical Information Sequence",
                self.key,
                "returns" if found else "does not return",
            )
            return found

    # -- learned (this process) -----------------------------------------------------------
    def allows(self, form: Form) -> bool:
        """False once the PACS refused (or misread) this query / retrieve form."""
        with self._lock:
            return form not in self._refused

    def refuse(self, form: Form) -> None:
        """The PACS does not take ``form``: the other ways are used from now on."""
        with self._lock:
            self._refused.add(form)


def _probe_radiopharm(client: PacsClient, sample: tuple[str, str]) -> bool | None:
    """One sample of :meth:`PacsRecord.returns_radiopharm` (None: it says nothing)."""
    study_uid, series_uid = sample
    try:
        answers = client.find("IMAGE", q.radiopharm_probe_query(study_uid, series_uid))
        if not answers:  # numbered from 0, or by another scheme: the series' instances
            answers = client.find("IMAGE", q.radiopharm_probe_query(study_uid, series_uid, None))
    except PacsAnswerError:
        return None
    except PacsOperationError as exc:
        # a PACS refusing the sequence key would refuse every timing query asking it
        return False if status.refuses_identifier(exc.status) else None
    except PacsCircuitOpenError:
        raise  # the PACS is given a rest: the day stops here
    except PacsError:
        return None
    if not answers:
        return None
    return any(q.has_radiopharm(a) for a in answers)


_records: dict[tuple[str, str | None], PacsRecord] = {}
_records_lock = threading.Lock()


def record_for(settings: Settings) -> PacsRecord:
    """The record of the configured PACS, as kept in this data dir (one per process)."""
    key = pacs_key(settings)
    path = Path(settings.paths.data_dir) / CAPABILITIES_FILE if settings.pacs.probe_cache else None
    with _records_lock:
        record = _records.get((key, str(path) if path else None))
        if record is None:
            record = PacsRecord(key, path)
            _records[(key, str(path) if path else None)] = record
        return record


def forget_capabilities() -> None:
    """Drop every record held in memory (the capabilities files stay): tests, ``pacs check``."""
    with _records_lock:
        _records.clear()
