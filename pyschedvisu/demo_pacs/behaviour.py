"""How the demo PACS behaves (DOMAIN §2.4 and fault injection), and what it counts.

:class:`Behaviour` is read at every association and operation, so a test can change it while
the server runs; :class:`PacsStats` counts what the clients asked; the throttle answers
"busy" beyond the configured limits, like the hospital PACS did.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Behaviour:
    """How the demo PACS behaves; change it at run time for fault injection.

    - ``refuse_get``: C-GET SOP classes are not supported (their presentation contexts are
      rejected at association), as at the hospital.
    - ``image_level_minimal``: IMAGE-level C-FIND returns only SOPInstanceUID, SOPClassUID,
      InstanceNumber, StudyInstanceUID, SeriesInstanceUID (no timing tags).
    - ``max_in_flight`` / ``max_ops_per_s``: a C-FIND/C-GET/C-MOVE beyond K concurrent
      operations or R operations per second answers failure ``0xC336``.
    - ``fail_dates``: any query or retrieve about one of these StudyDates aborts the
      association (an unreachable PACS mid-run).
    - ``reject_calling_aes`` / ``allowed_calling_aes``: associations from these / from any
      other AE title are rejected ("calling AE title not recognised").
    - ``relational``: SERIES / IMAGE queries may leave the study key universal or give a
      UID list (relational-style, like Orthanc). When False the PACS is hierarchical about
      the study key (PS3.4 C.4.1.3.1: one StudyInstanceUID below STUDY level): such a query
      is refused with 0xA900, or, with ``hierarchical_ignores_keys``, answered as if the
      study key and StudyDate had not been given (the whole archive: the worse case).
    - ``single_uid_retrieve``: a C-GET / C-MOVE naming several UIDs at its level fails with
      0xA900 (a PACS that ignores PS3.4 C.4.2.2.1 list of UID matching in retrieves).
    - ``offer_worklist``: the Modality Worklist model is offered (when the department has an
      appointment book); False rejects its presentation context, as a plain PACS does.
    - ``worklist_now``: the time the worklist shows (a simulated day); None: the real time.
    - ``forget_performed``: performed entries leave the worklist, as most RIS do. A
      worklist query about one of ``fail_dates`` aborts the association too.
    """

    refuse_get: bool = False
    image_level_minimal: bool = False
    max_in_flight: int | None = None
    max_ops_per_s: float | None = None
    fail_dates: set[dt.date] = field(default_factory=set)
    reject_calling_aes: set[str] = field(default_factory=set)
    allowed_calling_aes: set[str] | None = None
    relational: bool = True
    hierarchical_ignores_keys: bool = False
    single_uid_retrieve: bool = False
    offer_worklist: bool = True
    worklist_now: dt.datetime | None = None
    forget_performed: bool = False

    @classmethod
    def hospital(
        cls, *, max_in_flight: int | None = 2, max_ops_per_s: float | None = 10.0, **kwargs: Any
    ) -> Behaviour:
        """The hospital PACS of 2019: no C-GET, minimal IMAGE level, throttled, hierarchical."""
        kwargs.setdefault("relational", False)
        return cls(
            refuse_get=True,
            image_level_minimal=True,
            max_in_flight=max_in_flight,
            max_ops_per_s=max_ops_per_s,
            **kwargs,
        )


@dataclass
class OpRecord:
    """One DIMSE operation served (or refused)."""

    kind: str  # echo | find | get | move
    level: str | None
    calling_ae: str
    status: int | None  # None: ran; status.BUSY; or the failure status
    started: float  # time.monotonic()
    matches: int = 0  # C-FIND answers or C-STORE sub-operations


@dataclass
class PacsStats:
    """Counters of the demo PACS. Read them directly; every update holds ``lock``."""

    associations: int = 0
    rejected: int = 0
    aborted: int = 0
    echo: int = 0
    find: int = 0
    get: int = 0
    move: int = 0
    store_sent: int = 0
    bytes_sent: int = 0
    throttled: int = 0
    max_in_flight_seen: int = 0
    relational_asked: int = 0  # C-FIND models offered with relational queries (ext. neg.)
    ops: list[OpRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: int) -> None:
        with self.lock:
            for name, n in increments.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, Any]:
        """A consistent copy of the counters (``ops`` as a list of dicts)."""
        with self.lock:
            out = {k: v for k, v in self.__dict__.items() if k not in ("lock", "ops")}
            out["ops"] = [asdict(o) for o in self.ops]
        return out


class Throttle:
    """Concurrent-operation and rate ceilings, checked when an operation starts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.starts: deque[float] = deque()

    def enter(self, behaviour: Behaviour) -> bool:
        now = time.monotonic()
        with self.lock:
            k = behaviour.max_in_flight
            if k is not None and self.in_flight >= k:
                return False
            rate = behaviour.max_ops_per_s
            if rate is not None and rate > 0:
                # Sliding window: at least one second, long enough to hold one operation.
                window = max(1.0, 1.0 / rate)
                allowed = max(1, int(rate * window))
                while self.starts and self.starts[0] <= now - window:
                    self.starts.popleft()
                if len(self.starts) >= allowed:
                    return False
            self.starts.append(now)
            self.in_flight += 1
            return True

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1
