"""How hard one PACS is pushed, and when to stop asking it (DOMAIN §2.4): the client's policies.

Pure logic around a clock (injected: the tests drive it by hand); the DIMSE client composes
them, one of each per PACS in a process, shared by every day in flight:

- :class:`Pacer` — additive increase, multiplicative decrease (AIMD) of the requests in flight
  and per second. A "busy" answer (0xC336, 0xA7xx, an association rejected for load) halves
  both, at most once per burst; answers coming back raise them again slowly, more slowly
  still near the pace that was answered busy last. Never below one request at a time.
- :class:`Breaker` — a circuit breaker: so many connection refusals or timeouts in a row
  (whatever the day or the request) and the PACS is taken as down; every request fails at
  once with the time it went down, until a C-ECHO answers again (half-open, after a cooldown).
- :class:`Backoff` — the delay before asking again.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pyschedvisu_core.errors import PacsCircuitOpenError
from pyschedvisu_core.transport import Pace

log = logging.getLogger("pyschedvisu.pacs")

Clock = Callable[[], float]
Outcome = Literal["ok", "busy", "other"]


@dataclass(frozen=True)
class Backoff:
    """Exponential delays with jitter: ``base * 2**attempt`` up to ``max_s``, plus ``[0, jitter]``."""

    base_s: float
    max_s: float
    jitter_s: float

    def delay(self, attempt: int, rng: random.Random) -> float:
        step = min(self.max_s, self.base_s * 2.0 ** min(attempt, 30))
        return float(step + rng.uniform(0, self.jitter_s))


@dataclass(frozen=True)
class Ticket:
    """Leave to send one request, granted by :meth:`Pacer.acquire`."""

    generation: int
    at: float


class Pacer:
    """AIMD on the requests in flight and per second, for one PACS (thread-safe).

    ``acquire`` waits for room (fewer requests in flight than the window, and the rate's
    spacing); ``release`` says what the PACS answered. On "busy" the window and the rate are
    halved from what was really being sent (requests in flight, requests of the last seconds:
    a configured 500/s halves to half the rate the PACS saw, not 250/s), and that pace is
    remembered as the PACS's ceiling. Answers raise the rate by a tenth of that ceiling per
    second of answers, and by an eightieth within 15 % of it; the window gains one request per
    eight windows of answers (sixty-four near the ceiling). A ceiling passed by a quarter
    without a busy answer is forgotten (the PACS got faster).
    """

    DECREASE = 0.5
    #: rate gain per second of answers, as a share of the ceiling (or of the starting rate)
    RATE_GAIN = 0.1
    #: near the ceiling (above NEAR of it), gains are divided by SLOW
    NEAR = 0.85
    SLOW = 8.0
    #: answers per window that add one request in flight
    WINDOW_ANSWERS = 8.0
    FORGET = 1.25
    #: what "requests of the last seconds" means for the measured rate
    MEASURE_S = 2.0

    def __init__(
        self,
        max_concurrent: int,
        max_ops_per_s: float,
        *,
        label: str = "PACS",
        min_ops_per_s: float = 0.2,
        clock: Clock = time.monotonic,
    ) -> None:
        self.label = label
        self.max_window = max(1, int(max_concurrent))
        self.max_rate = float(max_ops_per_s) if max_ops_per_s > 0 else float("inf")
        self.min_rate = min(min_ops_per_s, self.max_rate)
        self._clock = clock
        self._cond = threading.Condition()
        self._window = float(self.max_window)
        self._rate = self.max_rate
        self._reference = self.max_rate  # what the rate gain is a share of
        self._ceiling_rate: float | None = None
        self._ceiling_window: int | None = None
        self._in_flight = 0
        self._next_at = 0.0
        self._generation = 0
        self._sent: deque[float] = deque()
        self._logged = self.pace
        #: "busy" answers seen, and how many of them slowed the pace down
        self.busy_answers = 0
        self.slowdowns = 0

    # -- state ------------------------------------------------------------------------------
    @property
    def pace(self) -> Pace:
        with self._cond:
            rate = self._rate if self._rate != float("inf") else 0.0
            return Pace(int(self._window), round(rate, 3))

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def start_from(self, pace: Pace) -> None:
        """Resume at ``pace`` (kept from an earlier run), within the configured ceilings."""
        with self._cond:
            self._window = float(min(self.max_window, max(1, pace.concurrency)))
            self._rate = min(self.max_rate, max(self.min_rate, pace.ops_per_s))
            self._reference = self._rate
            self._logged = Pace(int(self._window), round(self._rate, 3))

    # -- granting -----------------------------------------------------------------------------
    def poll(self, now: float) -> Ticket | float:
        """A ticket when a request may go now, else how long to wait (inf: until a release)."""
        with self._cond:
            return self._poll(now)

    def _poll(self, now: float) -> Ticket | float:
        if self._in_flight >= int(self._window):
            return float("inf")
        if now < self._next_at:
            return self._next_at - now
        self._in_flight += 1
        if self._rate != float("inf"):
            self._next_at = now + 1.0 / self._rate
        self._sent.append(now)
        while self._sent and self._sent[0] < now - self.MEASURE_S:
            self._sent.popleft()
        return Ticket(self._generation, now)

    def acquire(self, halt: threading.Event, until: float | None = None) -> Ticket | None:
        """Wait for leave to send; None when ``halt`` is set or ``until`` passes first."""
        with self._cond:
            while True:
                if halt.is_set():
                    return None
                now = self._clock()
                if until is not None and now >= until:
                    return None
                got = self._poll(now)
                if isinstance(got, Ticket):
                    return got
                wait = min(got, 0.5)  # wake now and then: ``halt`` is an Event, not this lock
                if until is not None:
                    wait = min(wait, max(until - now, 0.0))
                self._cond.wait(wait)

    def wake(self) -> None:
        """Wake every waiter (the client halted: they see it and give up)."""
        with self._cond:
            self._cond.notify_all()

    def release(self, ticket: Ticket, outcome: Outcome) -> None:
        """The request of ``ticket`` ended: answered (``ok``), ``busy``, or anything else."""
        with self._cond:
            now = self._clock()
            if outcome == "busy":
                self.busy_answers += 1
                if ticket.generation == self._generation:
                    self._slow_down(now)
            self._in_flight = max(0, self._in_flight - 1)
            if outcome == "ok":
                self._speed_up()
            self._cond.notify_all()

    # -- AIMD ---------------------------------------------------------------------------------
    def _measured_rate(self, now: float) -> float | None:
        recent = [t for t in self._sent if t >= now - self.MEASURE_S]
        if len(recent) < 3:
            return None
        span = max(now - recent[0], 1.0 / max(self._rate, 1e-9), 1e-3)
        return len(recent) / span

    def _slow_down(self, now: float) -> None:
        self._generation += 1  # the other answers to this burst are not counted again
        self.slowdowns += 1
        measured = self._measured_rate(now)
        sent = min(self._rate, measured) if measured is not None else self._rate
        if sent == float("inf"):
            sent = self.max_rate if self.max_rate != float("inf") else 10.0
        self._ceiling_rate = sent
        self._ceiling_window = max(1, self._in_flight)
        self._rate = max(self.min_rate, sent * self.DECREASE)
        self._reference = self._ceiling_rate
        self._window = max(1.0, float(int(min(self._window, self._in_flight) * self.DECREASE)))
        self._next_at = max(self._next_at, now + 1.0 / self._rate)
        self._tell("busy: slowing down to")

    def _speed_up(self) -> None:
        if self._rate < self.max_rate:
            gain = self.RATE_GAIN * self._reference / max(self._rate, 1e-9)  # per answer
            near = self._ceiling_rate is not None and self._rate >= self.NEAR * self._ceiling_rate
            self._rate = min(self.max_rate, self._rate + (gain / self.SLOW if near else gain))
            if self._ceiling_rate is not None and self._rate > self.FORGET * self._ceiling_rate:
                self._ceiling_rate = None
        if self._window < self.max_window:
            step = 1.0 / (self.WINDOW_ANSWERS * int(self._window))
            if self._ceiling_window is not None and int(self._window) + 1 >= self._ceiling_window:
                step /= self.SLOW
            self._window = min(float(self.max_window), self._window + step)
            if self._ceiling_window is not None and self._window >= self._ceiling_window + 1:
                self._ceiling_window = None
        pace = Pace(int(self._window), round(self._rate, 3))
        if pace.concurrency > self._logged.concurrency or (
            self._rate >= 1.5 * self._logged.ops_per_s
        ):
            self._tell("answering again: speeding up to")

    def _tell(self, what: str) -> None:
        """One line when the pace changed notably since the last line (DEBUG otherwise)."""
        pace = Pace(int(self._window), round(self._rate, 3))
        old = self._logged
        notable = pace.concurrency != old.concurrency or not (
            old.ops_per_s / 1.5 < pace.ops_per_s < old.ops_per_s * 1.5
        )
        log.log(logging.INFO if notable else logging.DEBUG, "%s %s %s", self.label, what, pace)
        if notable:
            self._logged = pace


class Breaker:
    """Consecutive connection failures across the client open the circuit (thread-safe).

    ``failures`` refusals / timeouts in a row, with no association made nor answer received
    in between, open it: :meth:`admit` then raises :class:`PacsCircuitOpenError` ("PACS
    unreachable since HH:MM:SS (N attempts): ..."). After ``cooldown_s`` the next caller is
    told to probe (half-open; the others wait for its outcome): an answer closes the circuit,
    a failure opens it again for another cooldown.
    """

    def __init__(
        self,
        label: str,
        failures: int,
        cooldown_s: float,
        *,
        clock: Clock = time.monotonic,
        wall: Callable[[], dt.datetime] = dt.datetime.now,
        probe_wait_s: float = 60.0,
    ) -> None:
        self.label = label
        self.failures = max(1, failures)
        self.cooldown_s = cooldown_s
        self.probe_wait_s = probe_wait_s
        self._clock = clock
        self._wall = wall
        self._cond = threading.Condition()
        self.state: Literal["closed", "open", "half-open"] = "closed"
        self._streak = 0
        self._since: dt.datetime | None = None
        self._last = ""
        self._opened_at = 0.0

    @property
    def is_open(self) -> bool:
        with self._cond:
            return self.state != "closed"

    def error(self) -> PacsCircuitOpenError:
        """What every request is told while the circuit is open."""
        with self._cond:
            return self._error()

    def _error(self) -> PacsCircuitOpenError:
        since = f"{self._since:%H:%M:%S}" if self._since is not None else "?"
        last = self._last.removeprefix(f"{self.label}: ")
        for hint in (": check host, port and firewall", "; check host, port and firewall"):
            last = last.removesuffix(hint)
        return PacsCircuitOpenError(
            f"PACS {self.label} unreachable since {since} ({self._streak} attempts): {last}. "
            "Is it up? Check pacs.host, pacs.port and the firewall; the days already "
            "retrieved are kept: run again once it answers",
            since=since,
            attempts=self._streak,
        )

    def success(self) -> bool:
        """An association was made or an answer received; True when this closed the circuit."""
        with self._cond:
            was = self.state
            self._streak = 0
            self._since = None
            self.state = "closed"
            self._cond.notify_all()
        if was != "closed":
            log.info("%s answers again: resuming", self.label)
            return True
        return False

    def failure(self, why: str, *, give_up: bool = False) -> bool:
        """A refusal or a timeout; True when this opened the circuit (it was closed).

        ``give_up``: a caller ran out of retries on it; the circuit opens whatever the count
        (every other request would meet the same refusals).
        """
        with self._cond:
            if self._streak == 0:
                self._since = self._wall()
            self._streak += 1
            self._last = why
            if self.state == "half-open":
                self.state = "open"
                self._opened_at = self._clock()
                self._cond.notify_all()
                return False
            if self.state == "closed" and (give_up or self._streak >= self.failures):
                self.state = "open"
                self._opened_at = self._clock()
                since = f"{self._since:%H:%M:%S}" if self._since is not None else "?"
                streak = self._streak
                self._cond.notify_all()
            else:
                return False
        log.warning(
            "PACS %s unreachable (%d attempts since %s): every request stops until it answers",
            self.label,
            streak,
            since,
        )
        return True

    def admit(self) -> bool:
        """True: go ahead. False: the caller is the half-open probe (it reports back with
        :meth:`success` or :meth:`failure`). Raises :class:`PacsCircuitOpenError` while open."""
        with self._cond:
            waited = 0.0
            while True:
                if self.state == "closed":
                    return True
                if self.state == "open":
                    if self._clock() - self._opened_at < self.cooldown_s:
                        raise self._error()
                    self.state = "half-open"
                    return False
                if waited >= self.probe_wait_s:  # a probe that never reported back
                    raise self._error()
                self._cond.wait(1.0)
                waited += 1.0


__all__ = ["Backoff", "Breaker", "Clock", "Outcome", "Pacer", "Ticket"]
