"""Target adapters: bulk writes with one outcome per record (design.md §7)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from shared.dataverse import DataverseClient, DataverseWrite
from shared.engine.ports import PlannedWrite, RetireRequest, WriteResult
from shared.finops import FinOpsClient, FinOpsWrite
from shared.odata.errors import SyncError
from shared.odata.filters import F


class FinOpsTarget:
    """F&O has no upsert: create vs update comes from the crosswalk, with the client's fallbacks."""

    def __init__(self, client: FinOpsClient, entity_set: str) -> None:
        self.client = client
        self.entity_set = entity_set

    @property
    def write_unit(self) -> int:
        return self.client.batch_size

    def write(self, records: Sequence[PlannedWrite]) -> list[WriteResult]:
        writes = [
            FinOpsWrite(source_key=r.source_key, key=r.target_key, payload=r.payload, exists=r.exists)
            for r in records
        ]
        return [
            WriteResult(o.source_key, o.ok, o.target_id, o.created, o.error)
            for o in self.client.write(self.entity_set, writes)
        ]

    def retire(self, requests: Sequence[RetireRequest]) -> list[WriteResult]:
        results = _delete_each(requests, lambda r: self.client.delete(self.entity_set, r.target_key))
        updates = [r for r in requests if r.action == "deactivate"]
        if updates:
            writes = [FinOpsWrite(r.source_key, r.target_key, r.payload, exists=True) for r in updates]
            for o in self.client.write(self.entity_set, writes):
                results.append(WriteResult(o.source_key, o.ok, o.target_id, False, o.error))
        return results

    def current(self, records: Sequence[PlannedWrite]) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for r in records:
            row = self.client.get(self.entity_set, r.target_key)
            if row is not None:
                rows[r.source_key] = row
        return rows


class DataverseTarget:
    """Keyed upserts by deterministic primary id: UpsertMultiple, `$batch` where it is not offered."""

    def __init__(
        self,
        client: DataverseClient,
        table: str,
        entity_set: str,
        supports_multiple: bool,
        primary_id: str = "",
        match: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.table = table
        self.entity_set = entity_set
        self.supports_multiple = supports_multiple
        self.primary_id = primary_id or f"{table}id"
        self.match = list(match)

    @property
    def write_unit(self) -> int:
        return self.client.bulk_size

    def write(self, records: Sequence[PlannedWrite]) -> list[WriteResult]:
        existing = self._existing_ids(records)
        writes = [
            DataverseWrite(
                source_key=r.source_key,
                target_id=existing.get(r.source_key) or _mapped_id(r, self.primary_id) or r.target_id or "",
                payload=r.payload,
            )
            for r in records
        ]
        outcomes = self.client.upsert_many(
            self.table, self.entity_set, writes, supports_multiple=self.supports_multiple
        )
        return [
            WriteResult(o.source_key, o.ok, str(o.target_id) if o.target_id else None, o.created, o.error)
            for o in outcomes
        ]

    def _existing_ids(self, records: Sequence[PlannedWrite]) -> dict[str, str]:
        """Rows that already exist in Sales under the record's alternate key (design.md §3).

        A record never synced before may already be in Sales (entered by hand, or by an earlier
        integration); writing it under our deterministic id would collide with its alternate key.
        Matching first turns that create into an update of the existing row. Only first-time
        records are matched, so steady-state runs pay nothing.
        """
        by_column: dict[str, dict[str, str]] = {}
        for r in records:
            if r.exists or len(r.target_key) != 1:
                continue
            [(column, value)] = r.target_key.items()
            if isinstance(value, str) and value:
                by_column.setdefault(column, {})[value] = r.source_key
        found: dict[str, str] = {}
        for column, wanted in by_column.items():
            ids = self.client.match_existing(self.entity_set, column, list(wanted), self.primary_id)
            for value, row_id in ids.items():
                found[wanted[value]] = row_id
        if self.match:
            found.update(self._match_by_lookups([r for r in records if not r.exists]))
        return found

    def _match_by_lookups(self, records: Sequence[PlannedWrite]) -> dict[str, str]:
        """Existing rows with the same related records (`target.match`), for tables with no alternate key."""
        wanted: dict[tuple[str, ...], str] = {}
        for r in records:
            ids = tuple(_bound_id(r.payload.get(f"{name}@odata.bind")) for name in self.match)
            if all(ids):
                wanted[ids] = r.source_key
        columns = [f"_{name}_value" for name in self.match]
        found: dict[str, str] = {}
        combos = list(wanted)
        for start in range(0, len(combos), MATCH_COMBOS_PER_QUERY):
            chunk = combos[start : start + MATCH_COMBOS_PER_QUERY]
            flt = F.or_(
                *(F.and_(*(F.eq(c, v) for c, v in zip(columns, combo, strict=True))) for combo in chunk)
            )
            for page in self.client.query(self.entity_set, [self.primary_id, *columns], filter=flt):
                for row in page:
                    combo = tuple(str(row.get(c) or "").lower() for c in columns)
                    key = wanted.get(combo)
                    if key is not None and key not in found:
                        found[key] = str(row[self.primary_id])
        return found

    def retire(self, requests: Sequence[RetireRequest]) -> list[WriteResult]:
        """Deletes one by one (rare); deactivations as one bulk upsert of the state payload."""
        results = _delete_each(requests, lambda r: self.client.delete(self.entity_set, r.target_id))
        updates = [
            DataverseWrite(r.source_key, r.target_id, dict(r.payload))
            for r in requests
            if r.action == "deactivate"
        ]
        if updates:
            outcomes = self.client.upsert_many(
                self.table, self.entity_set, updates, supports_multiple=self.supports_multiple
            )
            results.extend(WriteResult(o.source_key, o.ok, o.target_id, False, o.error) for o in outcomes)
        return results

    def current(self, records: Sequence[PlannedWrite]) -> dict[str, dict[str, Any]]:
        by_id = {r.target_id: r.source_key for r in records if r.target_id}
        columns = sorted({k for r in records for k in r.payload if "@" not in k} | {self.primary_id})
        rows: dict[str, dict[str, Any]] = {}
        ids = list(by_id)
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            for page in self.client.query(self.entity_set, columns, filter=F.in_(self.primary_id, chunk)):
                for row in page:
                    key = by_id.get(str(row.get(self.primary_id, "")).lower())
                    if key is not None:
                        rows[key] = row
        return rows


def _delete_each(
    requests: Sequence[RetireRequest], delete: Callable[[RetireRequest], object]
) -> list[WriteResult]:
    """The `delete` requests, one by one (deletes are rare); a refusal stays with its record."""
    results: list[WriteResult] = []
    for req in requests:
        if req.action != "delete":
            continue
        try:
            delete(req)
        except SyncError as exc:
            results.append(WriteResult(req.source_key, False, req.target_id, False, exc))
            continue
        results.append(WriteResult(req.source_key, True, req.target_id, False))
    return results


def _mapped_id(record: PlannedWrite, primary_id: str) -> str | None:
    """A mapping may name the target row itself (e.g. the Sales line an F&O line came from)."""
    value = record.payload.get(primary_id)
    return str(value) if value else None


#: Composite matches are OR-ed AND-clauses; this many keep the URL short.
MATCH_COMBOS_PER_QUERY = 20


def _bound_id(bind: Any) -> str:
    """`products(6f9…)` → `6f9…` (lower case); anything else (alternate-key binds) → ""."""
    if not isinstance(bind, str) or not bind.endswith(")") or "(" not in bind:
        return ""
    inner = bind[bind.index("(") + 1 : -1]
    return "" if "=" in inner or "'" in inner else inner.lower()
