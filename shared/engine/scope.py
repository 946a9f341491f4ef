"""Everything one run shares across its tasks: lock, budget, counters, report, retry-store view.

A `RunScope` exists for exactly one run; it is built by the runner and thrown away after. It
answers the questions every step asks: may I still write (lease held, budget left)? what time is
it? where do per-record outcomes go? — so the pipeline never reaches for a global.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from shared.engine.counts import RunCounts
from shared.engine.ports import PlannedWrite
from shared.engine.references import RunResolver
from shared.state import ErrorRecord, StateStore

_TOKENISH = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*")


class WriteGuard(Protocol):
    """Raises when the run must stop writing (lease lost, time budget spent)."""

    def __call__(self) -> None: ...


class ReportSink(Protocol):
    def write(self, line: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunScope:
    template: str
    run_id: str
    mode: str
    dry_run: bool
    state: StateStore
    resolver: RunResolver
    guard: WriteGuard
    park_after: int
    secrets: tuple[str, ...] = ()
    report_sink: ReportSink | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    retry_limit: int = 1000
    counts: RunCounts = field(default_factory=RunCounts)
    dry_run_plans: list[tuple[str, str, PlannedWrite]] = field(default_factory=list)
    _open_errors: dict[tuple[str, str], set[str]] | None = None
    _open_records: dict[tuple[str, str], list[ErrorRecord]] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock()

    def open_error_keys(self, task: str, company: str) -> set[str]:
        """Keys with an unresolved retry-store entry, so a later success can resolve them cheaply."""
        self._load_open_errors()
        assert self._open_errors is not None
        return self._open_errors.setdefault((task, company), set())

    def open_error_records(self, task: str, company: str) -> list[ErrorRecord]:
        """The retry store's open records of one task and company, as they were when the run began."""
        self._load_open_errors()
        return self._open_records.get((task, company), [])

    def _load_open_errors(self) -> None:
        """One read of the open (retrying or parked) records per run, shared by every task."""
        if self._open_errors is not None:
            return
        grouped: dict[tuple[str, str], set[str]] = {}
        for status in ("retrying", "parked"):
            for rec in self.state.errors.list(self.template, status=status, limit=100_000):
                grouped.setdefault((rec.task, rec.company), set()).add(rec.source_key)
                self._open_records.setdefault((rec.task, rec.company), []).append(rec)
        self._open_errors = grouped

    def scrub(self, text: str) -> str:
        """Remove anything secret from text that may be stored or logged."""
        cleaned = _TOKENISH.sub(r"\1[redacted]", text)
        for secret in self.secrets:
            if secret:
                cleaned = cleaned.replace(secret, "[redacted]")
        return cleaned

    def excerpt(self, payload: Any, limit: int) -> str:
        try:
            text = json.dumps(payload, default=str, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(payload)
        text = self.scrub(text)
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def report(self, outcome: str, key: str, **details: Any) -> None:
        if self.report_sink is None:
            return
        line: dict[str, Any] = {"outcome": outcome, "key": key}
        line.update({k: v for k, v in details.items() if v is not None})
        self.report_sink.write(line)
