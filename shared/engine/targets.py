"""Target adapters: bulk writes with one outcome per record (design.md §7)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.dataverse import DataverseClient, DataverseWrite
from shared.engine.ports import PlannedWrite, WriteResult
from shared.finops import FinOpsClient, FinOpsWrite


class FinOpsTarget:
    """F&O has no upsert: create vs update comes from the crosswalk, with the client's fallbacks."""

    def __init__(self, client: FinOpsClient, entity_set: str) -> None:
        self.client = client
        self.entity_set = entity_set

    def write(self, records: Sequence[PlannedWrite]) -> list[WriteResult]:
        writes = [
            FinOpsWrite(source_key=r.source_key, key=r.target_key, payload=r.payload, exists=r.exists)
            for r in records
        ]
        return [
            WriteResult(o.source_key, o.ok, o.target_id, o.created, o.error)
            for o in self.client.write(self.entity_set, writes)
        ]


class DataverseTarget:
    """Keyed upserts by deterministic primary id: UpsertMultiple, `$batch` where it is not offered."""

    def __init__(self, client: DataverseClient, table: str, entity_set: str, supports_multiple: bool) -> None:
        self.client = client
        self.table = table
        self.entity_set = entity_set
        self.supports_multiple = supports_multiple

    def write(self, records: Sequence[PlannedWrite]) -> list[WriteResult]:
        writes = [
            DataverseWrite(source_key=r.source_key, target_id=r.target_id or "", payload=r.payload)
            for r in records
        ]
        outcomes = self.client.upsert_many(
            self.table, self.entity_set, writes, supports_multiple=self.supports_multiple
        )
        return [
            WriteResult(o.source_key, o.ok, str(o.target_id) if o.target_id else None, o.created, o.error)
            for o in outcomes
        ]
