"""The small client interface the retrieval talks to (like an HTTP transport), and its records.

A :class:`PacsClient` hides how DICOM messages travel: pynetdicom in
:mod:`pyschedvisu.adapters.dimse`, anything else in tests. :class:`Capabilities` is what a
probe found a PACS to accept; :class:`OpCounters` what a client did; :class:`Pace` how hard
a client pushes its PACS (what it settled on is remembered per PACS).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from pydicom.dataset import Dataset

from pyschedvisu_core.queries import Level, Root

Method = Literal["image-find", "c-get", "c-move"]

#: Lightest first: IMAGE-level C-FIND moves no file at all, C-GET needs no port on our side.
METHODS: tuple[Method, ...] = ("image-find", "c-get", "c-move")


@dataclass(frozen=True)
class Capabilities:
    """What one PACS accepts, found by a probe (or set by the configuration)."""

    echo: bool = True
    image_find_timing: bool = False
    c_get: bool = False
    c_move: bool = False
    notes: tuple[str, ...] = ()
    #: answers SERIES / IMAGE queries over a list of studies (None: not tried yet)
    relational: bool | None = None
    #: False when only ``relational`` is known (the methods are still to be probed)
    probed: bool = True

    def methods(self) -> list[Method]:
        """Usable methods, lightest first."""
        ok = {"image-find": self.image_find_timing, "c-get": self.c_get, "c-move": self.c_move}
        return [m for m in METHODS if ok[m]]

    def to_json(self) -> dict[str, Any]:
        """Plain form for the capabilities cache file."""
        out = asdict(self)
        out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Capabilities:
        """Inverse of :meth:`to_json`."""
        return cls(
            echo=bool(data.get("echo", True)),
            image_find_timing=bool(data.get("image_find_timing", False)),
            c_get=bool(data.get("c_get", False)),
            c_move=bool(data.get("c_move", False)),
            notes=tuple(str(n) for n in data.get("notes", ())),
            relational=None if data.get("relational") is None else bool(data["relational"]),
            probed=bool(data.get("probed", True)),
        )


def fallback_methods(primary: Method, caps: Capabilities | None) -> list[Method]:
    """File methods to try, in order, when ``primary`` does not give what a series needs.

    IMAGE-level responses may lack what a series needs (NM sequences, a PACS that only
    indexes main tags). Without probe results (none, or only what day-wide queries taught)
    every heavier file method is tried.
    """
    files: list[Method] = ["c-get", "c-move"]
    candidates = [m for m in files if m != primary]
    if caps is None or not caps.probed:
        return candidates
    return [m for m in candidates if m in caps.methods()]


@dataclass(frozen=True)
class Pace:
    """How hard a client pushes a PACS: requests at the same time, and per second.

    A client adapts it to what the PACS answers (slower on "busy", faster while it answers);
    the pace a run settled on is kept per PACS and the next run starts from it.
    """

    concurrency: int
    ops_per_s: float

    def to_json(self) -> dict[str, Any]:
        """Plain form for the capabilities file."""
        return {"concurrency": self.concurrency, "ops_per_s": round(self.ops_per_s, 3)}

    @classmethod
    def from_json(cls, data: Any) -> Pace | None:
        """Inverse of :meth:`to_json`; None for anything unusable (the configured pace then)."""
        if not isinstance(data, dict):
            return None
        try:
            concurrency = int(data["concurrency"])
            rate = float(data["ops_per_s"])
        except (KeyError, TypeError, ValueError):
            return None
        if concurrency < 1 or not 0 < rate < float("inf"):
            return None
        return cls(concurrency, rate)

    def __str__(self) -> str:
        return f"{self.concurrency} at a time, {self.ops_per_s:.3g} requests/s"


@dataclass
class OpCounters:
    """What a client did; adapters increment, callers read deltas with :meth:`minus`."""

    associations: int = 0
    inbound_associations: int = 0  # C-MOVE deliveries to our Storage SCP
    echo: int = 0
    find: int = 0
    get: int = 0
    move: int = 0
    responses: int = 0
    instances_received: int = 0
    bytes_received: int = 0
    retries: int = 0
    throttled: int = 0
    timeouts: int = 0
    aborted: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def dimse_ops(self) -> int:
        """DIMSE requests sent (C-ECHO, C-FIND, C-GET, C-MOVE), retries included."""
        return self.echo + self.find + self.get + self.move

    def snapshot(self) -> OpCounters:
        """A copy."""
        return OpCounters(**{**asdict(self), "extra": dict(self.extra)})

    def minus(self, other: OpCounters) -> OpCounters:
        """Counter deltas ``self - other``."""
        a, b = asdict(self), asdict(other)
        a.pop("extra")
        b.pop("extra")
        return OpCounters(**{k: a[k] - b[k] for k in a})

    def as_dict(self) -> dict[str, int]:
        """Plain counters, plus ``dimse_ops``."""
        out = {k: v for k, v in asdict(self).items() if k != "extra"}
        out["dimse_ops"] = self.dimse_ops
        return out


@runtime_checkable
class PacsClient(Protocol):
    """Everything the retrieval asks of a PACS. Every method raises ``PacsError`` subclasses.

    One client is shared by the days in flight of a run (thread-safe); its pacing, retries
    and association pool are its own business.
    """

    @property
    def counters(self) -> OpCounters:
        """Operations done so far (live object; use ``snapshot()``)."""
        ...

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran: operations then fail at once."""
        ...

    @property
    def answers_deflated(self) -> bool | None:
        """Whether C-FIND answers come deflated on the last association (None: none yet)."""
        ...

    def tally(self) -> AbstractContextManager[OpCounters]:
        """Counters of what the calling context asks while the block runs (one day of many)."""
        ...

    def deadline(self, at: float | None) -> AbstractContextManager[None]:
        """Operations asked in this context retry "busy" answers until ``at`` (a
        ``time.monotonic()`` value) instead of a fixed number of times; None: no deadline."""
        ...

    @property
    def pace(self) -> Pace:
        """The pace the client runs at now (adapted to what the PACS answered)."""
        ...

    def resume_pace(self, pace: Pace) -> None:
        """Start from ``pace`` (what an earlier run settled on), within the configured ceilings."""
        ...

    def echo(self) -> None:
        """C-ECHO; raises when the PACS is unreachable or rejects us."""
        ...

    def find(
        self, level: Level, query: Dataset, root: Root = "study", *, limit: int | None = None
    ) -> list[Dataset]:
        """C-FIND at ``level``: every matching identifier.

        More than ``limit`` answers cancels the query and raises ``PacsOperationError``.
        """
        ...

    def find_worklist(self, query: Dataset, *, limit: int | None = None) -> list[Dataset]:
        """C-FIND on the Modality Worklist Information Model – FIND: every matching entry
        (Scheduled Procedure Step), with the pacing, retries and associations of the others.

        More than ``limit`` answers cancels the query and raises ``PacsOperationError``.
        """
        ...

    def fetch_headers(
        self,
        study_uid: str,
        series_uid: str,
        sop_instance_uids: Sequence[str] | None,
        method: Method,
    ) -> list[Dataset]:
        """Instance headers (no pixel data) of the listed instances (None = whole series)."""
        ...

    def fetch_headers_many(
        self, wanted: Sequence[tuple[str, str, Sequence[str]]], method: Method
    ) -> Mapping[str, list[Dataset]]:
        """Headers of listed instances of several series (study, series, SOP UIDs) in one
        relational-style C-GET / C-MOVE; what arrived, by series (the caller checks it)."""
        ...

    def fetch_whole_series(
        self, study_uid: str, series_uids: Sequence[str], method: Method
    ) -> Mapping[str, list[Dataset]]:
        """Every instance of several series of one study in one C-GET / C-MOVE, by series."""
        ...

    def probe(
        self, sample: tuple[str, str] | None = None, *, thorough: bool = False
    ) -> Capabilities:
        """Find what the PACS accepts, using ``(study_uid, series_uid)`` as test data."""
        ...

    def close(self) -> None:
        """Release associations and stop any Storage SCP."""
        ...
