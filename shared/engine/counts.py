"""Per-run counters: what the run summary, the run record and the run event report."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class RunCounts:
    """How many records went which way in one run (all tasks, all companies)."""

    read: int = 0
    written: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    parked: int = 0
    deleted: int = 0
    retired: int = 0
    conflicts: int = 0
    retried: int = 0
    resolved: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self) if not f.name.startswith("_")}
