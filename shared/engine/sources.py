"""Source adapters: how each service delivers "what changed" (design.md §4).

- Dataverse: change tracking; the delta link is the checkpoint, deletes come as `$deletedEntity`.
- F&O: OData on `/data/` has no delta, so a task reads a full snapshot of its company and relies
  on the crosswalk hash to write only what changed; the checkpoint records the snapshot time.
- F&O immutable rows (posted invoices): a date cursor with a look-back window, de-duplicated by key
  through the crosswalk hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.dataverse import DataverseClient
from shared.engine.ports import SourcePage
from shared.finops import FinOpsClient
from shared.odata.filters import F, Filter


class DataverseChangeSource:
    """Sales rows changed since the delta link (None → full tracked read)."""

    def __init__(
        self,
        client: DataverseClient,
        entity_set: str,
        select: Sequence[str],
        key_column: str,
        primary_id: str,
    ) -> None:
        self.client = client
        self.entity_set = entity_set
        self.primary_id = primary_id
        # the primary id always travels with a row: deletes and duplicate checks are by id
        self.select = list(dict.fromkeys([primary_id, *select]))
        self.key_column = key_column

    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        for page in self.client.read_changes(self.entity_set, self.select, cursor):
            yield SourcePage(
                rows=page.rows,
                deleted_ids=list(page.deleted_ids),
                cursor=page.delta_link,
                restarted=page.restarted,
            )

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        natural = [k for k in keys if not k.startswith("id:")]
        by_id = [k[3:] for k in keys if k.startswith("id:")]
        if natural:
            yield from self.client.query(self.entity_set, self.select, filter=F.in_(self.key_column, natural))
        if by_id:
            yield from self.client.query(self.entity_set, self.select, filter=F.in_(self.primary_id, by_id))


class FinOpsSnapshotSource:
    """Every row of one company, page by page; the cursor is the snapshot's start time."""

    def __init__(
        self,
        client: FinOpsClient,
        entity_set: str,
        select: Sequence[str],
        key_column: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.entity_set = entity_set
        self.select = list(select)
        self.key_column = key_column
        self.clock = clock

    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        started = self.clock().isoformat()
        pending: list[dict[str, Any]] | None = None
        for rows in self.client.read_company(self.entity_set, self.select, company):
            if pending is not None:
                yield SourcePage(rows=pending)
            pending = rows
        yield SourcePage(rows=pending or [], cursor=f"snapshot:{started}")

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        if keys:
            yield from self.client.read_company(
                self.entity_set,
                self.select,
                company,
                filter=F.in_(self.key_column, list(keys)),
            )


class FinOpsDateCursorSource:
    """Immutable F&O rows newer than a watermark minus a look-back window."""

    def __init__(
        self,
        client: FinOpsClient,
        entity_set: str,
        select: Sequence[str],
        key_column: str,
        date_column: str,
        lookback: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.entity_set = entity_set
        self.select = list(select)
        self.key_column = key_column
        self.date_column = date_column
        self.lookback = lookback
        self.clock = clock

    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        started = self.clock()
        flt: Filter | None = None
        if cursor:
            since = datetime.fromisoformat(cursor) - self.lookback
            flt = F.ge(self.date_column, since)
        pending: list[dict[str, Any]] | None = None
        for rows in self.client.read_company(self.entity_set, self.select, company, filter=flt):
            if pending is not None:
                yield SourcePage(rows=pending)
            pending = rows
        yield SourcePage(rows=pending or [], cursor=started.isoformat())

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        if keys:
            yield from self.client.read_company(
                self.entity_set,
                self.select,
                company,
                filter=F.in_(self.key_column, list(keys)),
            )
