"""The two sides of a task, as the pipeline sees them.

A task reads pages from a *source* and writes planned records to a *target*. Dataverse and F&O
play either role; the adapters in `sources.py` and `targets.py` hide which. Keeping the pipeline
ignorant of the services is what lets one loop serve all eight templates.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SourcePage:
    """One page of source changes.

    `cursor` is set only when the page completes a read: it is what the checkpoint may advance to
    once everything on this and the earlier pages has been written or recorded.
    """

    rows: list[dict[str, Any]]
    deleted_ids: list[str] = field(default_factory=list)
    cursor: str | None = None
    restarted: bool = False


@dataclass
class PlannedWrite:
    """A mapped record the pipeline decided to write (its hash differs from the crosswalk's)."""

    source_key: str
    target_key: dict[str, Any]
    target_key_text: str
    payload: dict[str, Any]
    hash: str
    exists: bool
    target_id: str | None = None
    source_id: str | None = None
    last_payload: str = ""


@dataclass
class WriteResult:
    """What the target said about one planned write."""

    source_key: str
    ok: bool
    target_id: str | None = None
    created: bool | None = None
    error: Exception | None = None


@dataclass
class RetireRequest:
    """A synced target record to take out of use: its source was deleted or is no longer selected."""

    source_key: str
    target_key: dict[str, Any]
    target_id: str
    action: str  # "delete" | "deactivate"
    payload: dict[str, Any] = field(default_factory=dict)


class Source(Protocol):
    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        """Changes since `cursor` (None = everything), page by page."""
        ...

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        """Current source rows for natural keys (retries of failed or deferred records)."""
        ...


class Target(Protocol):
    @property
    def write_unit(self) -> int:
        """Records one write request carries at most (a full UpsertMultiple or `$batch`)."""
        ...

    def write(self, records: Sequence[PlannedWrite]) -> list[WriteResult]:
        """Write in bulk; one outcome per record, in any order."""
        ...

    def retire(self, requests: Sequence[RetireRequest]) -> list[WriteResult]:
        """Delete or deactivate target records; one outcome per request."""
        ...

    def current(self, records: Sequence[PlannedWrite]) -> dict[str, dict[str, Any]]:
        """The target's current rows of records about to be updated, by source key (two-way tasks)."""
        ...
