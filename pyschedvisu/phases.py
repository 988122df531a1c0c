"""Wall time of the named phases of a run (for the logs and the benchmarks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


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
