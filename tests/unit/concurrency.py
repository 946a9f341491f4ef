"""A fake service's view of how many requests it is handling at once (for concurrency tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class InFlight:
    """Counts requests inside `serving()`; `peak` is the most that were in it together."""

    def __init__(self, hold: float = 0.05) -> None:
        self.hold = hold  # each request takes this long, so concurrent ones overlap
        self.peak = 0
        self._now = 0
        self._lock = threading.Lock()

    @contextmanager
    def serving(self) -> Iterator[None]:
        with self._lock:
            self._now += 1
            self.peak = max(self.peak, self._now)
        try:
            time.sleep(self.hold)
            yield
        finally:
            with self._lock:
                self._now -= 1
