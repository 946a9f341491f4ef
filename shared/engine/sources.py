"""Source adapters: how each service delivers "what changed" (design.md §4).

- Dataverse: change tracking; the delta link is the checkpoint, deletes come as `$deletedEntity`.
- F&O: OData on `/data/` has no delta, so a task reads a full snapshot of its company and relies
  on the crosswalk hash to write only what changed; the checkpoint records the snapshot time.
- F&O immutable rows (posted invoices): a date cursor with a look-back window, de-duplicated by key
  through the crosswalk hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
        key: SourceKey,
        primary_id: str,
    ) -> None:
        self.client = client
        self.entity_set = entity_set
        self.primary_id = primary_id
        # the primary id always travels with a row: deletes and duplicate checks are by id
        self.select = list(dict.fromkeys([primary_id, *select]))
        self.key = key

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
        for start in range(0, len(natural), COMPOSITE_KEYS_PER_REQUEST):
            flt = self.key.filter_for(natural[start : start + COMPOSITE_KEYS_PER_REQUEST])
            if flt is not None:
                yield from self.client.query(self.entity_set, self.select, filter=flt)
        for start in range(0, len(by_id), 100):
            chunk = by_id[start : start + 100]
            yield from self.client.query(self.entity_set, self.select, filter=F.in_(self.primary_id, chunk))


@dataclass(frozen=True)
class SourceKey:
    """The columns of a source key and how their text parts turn back into typed values.

    Key text is the columns' values joined with `|` (see `TaskMapping.source_key_of`); retries
    and look-ups must filter by the typed values again, so numeric parts become numbers.
    """

    columns: tuple[str, ...]
    numeric: tuple[bool, ...]

    @classmethod
    def of(cls, columns: Sequence[str], numeric: Sequence[bool] | None = None) -> SourceKey:
        cols = tuple(columns)
        return cls(cols, tuple(numeric) if numeric is not None else tuple(False for _ in cols))

    def filter_for(self, keys: Sequence[str]) -> Filter | None:
        """One filter matching any of the given key texts (In for one column, OR of ANDs else)."""
        if not keys:
            return None
        if len(self.columns) == 1:
            return F.in_(self.columns[0], [self._typed(0, k) for k in keys])
        clauses: list[Filter] = []
        for key in keys:
            parts = key.split("|")
            if len(parts) != len(self.columns):
                continue
            clauses.append(
                F.and_(
                    *(
                        F.eq(col, self._typed(i, part))
                        for i, (col, part) in enumerate(zip(self.columns, parts, strict=True))
                    )
                )
            )
        return F.or_(*clauses) if clauses else None

    def _typed(self, index: int, text: str) -> Any:
        if self.numeric[index]:
            try:
                return int(text)
            except ValueError:
                return Decimal(text)
        return text


#: Composite-key filters grow with every key; F&O URLs stay well below their length limit with this.
COMPOSITE_KEYS_PER_REQUEST = 20


def _fetch_keys(
    client: FinOpsClient,
    entity_set: str,
    select: list[str],
    key: SourceKey,
    keys: Sequence[str],
    company: str,
) -> Iterator[list[dict[str, Any]]]:
    step = 100 if len(key.columns) == 1 else COMPOSITE_KEYS_PER_REQUEST
    for start in range(0, len(keys), step):
        flt = key.filter_for(keys[start : start + step])
        if flt is not None:
            yield from client.read_company(entity_set, select, company, filter=flt)


def _with_cursor_on_last(pages: Iterator[list[dict[str, Any]]], cursor: str) -> Iterator[SourcePage]:
    """Pages as read, the cursor on the last one only: the checkpoint moves once all are written."""
    pending: list[dict[str, Any]] | None = None
    for rows in pages:
        if pending is not None:
            yield SourcePage(rows=pending)
        pending = rows
    yield SourcePage(rows=pending or [], cursor=cursor)


class FinOpsSnapshotSource:
    """Every row of one company, page by page; the cursor is the snapshot's start time."""

    def __init__(
        self,
        client: FinOpsClient,
        entity_set: str,
        select: Sequence[str],
        key: SourceKey,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.entity_set = entity_set
        self.select = list(select)
        self.key = key
        self.clock = clock

    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        started = self.clock().isoformat()
        pages = self.client.read_company(self.entity_set, self.select, company)
        yield from _with_cursor_on_last(pages, f"snapshot:{started}")

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        yield from _fetch_keys(self.client, self.entity_set, self.select, self.key, keys, company)


class FinOpsDateCursorSource:
    """Immutable F&O rows newer than a watermark minus a look-back window."""

    def __init__(
        self,
        client: FinOpsClient,
        entity_set: str,
        select: Sequence[str],
        key: SourceKey,
        date_column: str,
        lookback: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.entity_set = entity_set
        self.select = list(select)
        self.key = key
        self.date_column = date_column
        self.lookback = lookback
        self.clock = clock

    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        started = self.clock()
        flt: Filter | None = None
        if cursor:
            since = datetime.fromisoformat(cursor) - self.lookback
            flt = F.ge(self.date_column, since)
        pages = self.client.read_company(self.entity_set, self.select, company, filter=flt)
        yield from _with_cursor_on_last(pages, started.isoformat())

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        yield from _fetch_keys(self.client, self.entity_set, self.select, self.key, keys, company)
