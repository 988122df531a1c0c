"""The client's policies as pure logic on a hand-driven clock: AIMD pacing, circuit breaker, backoff."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time

import pytest

from pyschedvisu.adapters.pacing import Backoff, Breaker, Pacer, Ticket
from pyschedvisu_core.errors import PacsCircuitOpenError, PacsUnreachableError
from pyschedvisu_core.transport import Pace


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def grant(pacer: Pacer, clock: Clock) -> Ticket:
    """The next ticket, moving the clock by exactly the wait the pacer asks for."""
    for _ in range(1000):
        got = pacer.poll(clock.t)
        if isinstance(got, Ticket):
            return got
        assert got != float("inf"), "no slot: a request must end first"
        clock.t += got
    raise AssertionError("never granted")


def answered(pacer: Pacer, clock: Clock, n: int) -> None:
    """``n`` requests sent one after the other at the pacer's pace, all answered."""
    for _ in range(n):
        pacer.release(grant(pacer, clock), "ok")


# -- Pacer ------------------------------------------------------------------------------------


def test_requests_are_spaced_at_the_rate_and_bounded_by_the_window() -> None:
    clock = Clock()
    pacer = Pacer(2, 10.0, clock=clock)
    a = pacer.poll(clock.t)
    assert isinstance(a, Ticket)
    assert pacer.poll(clock.t) == pytest.approx(0.1)  # the rate: 10/s
    clock.t += 0.1
    b = pacer.poll(clock.t)
    assert isinstance(b, Ticket)
    clock.t += 1
    assert pacer.poll(clock.t) == float("inf")  # two in flight: wait for one to end
    pacer.release(a, "ok")
    assert isinstance(pacer.poll(clock.t), Ticket)


def test_busy_halves_concurrency_and_the_rate_really_sent_once_per_burst(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pacer = Pacer(4, 500.0, label="HOSP", clock=clock)
    tickets = []
    for _ in range(4):  # a burst: 4 in flight at 500/s, but really ~10/s (a slow PACS)
        tickets.append(grant(pacer, clock))
        clock.t += 0.1
    with caplog.at_level(logging.INFO, logger="pyschedvisu.pacs"):
        for t in tickets:
            pacer.release(t, "busy")  # every answer of the burst says busy
    pace = pacer.pace
    assert pace.concurrency == 2  # 4 in flight, halved: once, not once per answer
    assert 4.0 <= pace.ops_per_s <= 7.0  # half of ~10/s really sent, not 250/s
    assert pacer.slowdowns == 1 and pacer.busy_answers == 4
    assert any("HOSP busy: slowing down to 2 at a time" in r.message for r in caplog.records)


def test_never_below_one_request_at_a_time_nor_the_rate_floor() -> None:
    clock = Clock()
    pacer = Pacer(3, 20.0, clock=clock, min_ops_per_s=0.5)
    for _ in range(30):
        pacer.release(grant(pacer, clock), "busy")
    assert pacer.pace.concurrency == 1
    assert pacer.pace.ops_per_s == pytest.approx(0.5)
    assert isinstance(grant(pacer, clock), Ticket)  # still sends, one at a time


def test_answers_raise_the_pace_slowly_and_more_slowly_near_the_last_busy_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pacer = Pacer(2, 100.0, label="P", clock=clock)
    answered(pacer, clock, 20)  # ~100/s really sent
    pacer.release(grant(pacer, clock), "busy")  # the PACS says busy at that pace
    low = pacer.pace.ops_per_s
    assert 40 <= low <= 60
    # the rate gains about a tenth of the ceiling (~100/s) per second of answers...
    start = clock.t
    with caplog.at_level(logging.INFO, logger="pyschedvisu.pacs"):
        answered(pacer, clock, 200)
    elapsed = clock.t - start
    middle = pacer.pace.ops_per_s
    assert low < middle < 100
    # ...then within 15 % of the ceiling, an eighth of that: far from back at 100/s
    answered(pacer, clock, 400)
    assert pacer.pace.ops_per_s < 100
    assert elapsed > 1.0  # not an instant recovery
    assert any("speeding up" in r.message for r in caplog.records)


def test_concurrency_comes_back_one_request_per_many_windows_of_answers() -> None:
    clock = Clock()
    pacer = Pacer(4, 1000.0, clock=clock)
    held = [grant(pacer, clock) for _ in range(4)]
    pacer.release(held[0], "busy")  # 4 in flight: busy → 2
    for t in held[1:]:
        pacer.release(t, "ok")
    assert pacer.pace.concurrency == 2
    answered(pacer, clock, 8)
    assert pacer.pace.concurrency == 2  # 8 answers are not 8 windows' worth (16)
    answered(pacer, clock, 20)
    assert pacer.pace.concurrency == 3
    answered(pacer, clock, 100)
    assert pacer.pace.concurrency == 3  # next to the 4 that was answered busy: 8x slower
    answered(pacer, clock, 3000)
    assert pacer.pace.concurrency == 4  # up to the configured ceiling, not beyond


def test_start_from_a_kept_pace_within_the_configured_ceilings() -> None:
    pacer = Pacer(2, 20.0)
    pacer.start_from(Pace(1, 4.5))
    assert pacer.pace == Pace(1, 4.5)
    pacer.start_from(Pace(8, 900.0))
    assert pacer.pace == Pace(2, 20.0)


def test_acquire_gives_up_when_halted_or_past_the_deadline() -> None:
    pacer = Pacer(1, 1000.0)
    halt = threading.Event()
    first = pacer.acquire(halt)
    assert first is not None
    # the only slot is taken: a deadline already near ends the wait without a ticket
    assert pacer.acquire(halt, until=time.monotonic() + 0.05) is None
    halt.set()
    pacer.release(first, "ok")
    assert pacer.acquire(halt) is None


def test_pace_round_trips_through_json_and_refuses_nonsense() -> None:
    assert Pace.from_json(Pace(2, 4.25).to_json()) == Pace(2, 4.25)
    for bad in (None, {}, {"concurrency": 0, "ops_per_s": 3}, {"concurrency": 1, "ops_per_s": 0}):
        assert Pace.from_json(bad) is None


# -- Breaker ----------------------------------------------------------------------------------


def make_breaker(clock: Clock, failures: int = 3, cooldown_s: float = 10.0) -> Breaker:
    return Breaker(
        "PACS@h:1",
        failures,
        cooldown_s,
        clock=clock,
        wall=lambda: dt.datetime(2026, 12, 4, 14, 3, 12),
        probe_wait_s=2.0,
    )


def test_consecutive_failures_open_the_circuit_and_a_success_in_between_resets_them() -> None:
    clock = Clock()
    breaker = make_breaker(clock)
    assert not breaker.failure("refused")
    assert not breaker.failure("refused")
    breaker.success()  # an association made: the streak ends
    assert not breaker.failure("refused")
    assert not breaker.failure("refused")
    assert breaker.failure("PACS@h:1: cannot connect (refused): check host, port and firewall")
    with pytest.raises(PacsCircuitOpenError) as info:
        breaker.admit()
    err = info.value
    assert isinstance(err, PacsUnreachableError)
    assert str(err).startswith("PACS PACS@h:1 unreachable since 14:03:12 (3 attempts): cannot")
    assert str(err).count("firewall") == 1  # the hint once
    assert (err.since, err.attempts) == ("14:03:12", 3)


def test_after_the_cooldown_one_caller_probes_and_its_answer_decides() -> None:
    clock = Clock()
    breaker = make_breaker(clock, failures=1)
    breaker.failure("refused")
    with pytest.raises(PacsCircuitOpenError):
        breaker.admit()
    clock.t += 10
    assert breaker.admit() is False  # this caller probes (C-ECHO)
    breaker.failure("C-ECHO: refused")  # still down: open for another cooldown
    with pytest.raises(PacsCircuitOpenError, match=r"\(2 attempts\)"):
        breaker.admit()
    clock.t += 10
    assert breaker.admit() is False
    assert breaker.success() is True  # answers: closed, everyone goes on
    assert breaker.admit() is True
    assert not breaker.is_open


def test_others_wait_for_the_probe_instead_of_probing_too() -> None:
    clock = Clock()
    breaker = make_breaker(clock, failures=1, cooldown_s=0)
    breaker.failure("refused")
    assert breaker.admit() is False  # the probe
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(breaker.admit()))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not results  # waiting, not probing
    breaker.success()
    waiter.join(5)
    assert results == [True]


def test_a_caller_out_of_retries_opens_the_circuit_at_once() -> None:
    breaker = make_breaker(Clock(), failures=5)
    assert breaker.failure("refused", give_up=True)
    assert breaker.is_open


# -- Backoff ----------------------------------------------------------------------------------


def test_backoff_doubles_up_to_its_maximum_plus_jitter() -> None:
    backoff = Backoff(0.5, 4.0, 0.25)
    rng = random.Random(1)
    delays = [backoff.delay(k, rng) for k in range(8)]
    for k, d in enumerate(delays):
        base = min(4.0, 0.5 * 2**k)
        assert base <= d <= base + 0.25
    assert backoff.delay(10_000, rng) <= 4.25  # no overflow on a long busy spell
