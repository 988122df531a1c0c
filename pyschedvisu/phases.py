"""Wall time of the named phases of a run (for the logs and the benchmarks), and what each is
doing while it runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PhaseClock:
    """Wall time of the named phases of a run (seconds, in order), for logs and the benchmark."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)

    def text(self) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())


@contextmanager
def phase(logger: logging.Logger | logging.LoggerAdapter[Any], text: str) -> Iterator[None]:
    """Say what a phase of a run does: a line ``text…`` in the run's log, and, when a command
    shows the run on a terminal (:func:`pyschedvisu.progress.live_here`), a spinner meanwhile."""
    from pyschedvisu.progress import status

    logger.info("%s…", text)
    with status(f"{text}…", line=False):
        yield
