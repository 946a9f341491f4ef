"""Crosswalk: which target record each source record was written to, and with what content hash.

Forward rows: partition = ``pair|company``, row = source key. They answer "does this record
exist in the target, and did its mapped payload change?" for a whole page at once, so reads are
batched point look-ups inside one partition — never a table scan. Reverse rows (partition
``rev|pair|company``, row = target key) answer "which source record owns this target key?" for
two-way templates; they are written by the same call and verified against the forward row on
read, so a reverse row left behind by a re-keyed record is never trusted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.state._props import get_text, put_text, read_dt, utc
from shared.state.keys import compose_key, encode_key
from shared.state.transactions import upsert_transaction

#: Table transactions take at most 100 operations, all in one partition.
TRANSACTION_LIMIT = 100
#: The Table service documents at most 15 discrete comparisons per $filter: PartitionKey + 14 RowKeys.
KEYS_PER_QUERY = 14
#: Last-written payloads (two-way tasks) longer than this are not kept: conflicts then go unreported.
PAYLOAD_PARTS = 3
PAYLOAD_MAX_CHARS = PAYLOAD_PARTS * 16384
#: Parallel look-up queries per get_many call.
QUERY_WORKERS = 8


@dataclass
class CrosswalkEntry:
    """One synced record: source key → target key/id, the hash of the last written payload."""

    source_key: str
    target_key: str
    target_id: str
    hash: str
    synced_at: datetime
    origin: str = ""
    deleted: bool = False
    #: JSON of the payload last written, kept only for two-way tasks (conflict detection)
    payload: str = ""


class CrosswalkStore:
    """The ``crosswalk`` table."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    @staticmethod
    def _pk(pair: str, company: str) -> str:
        return compose_key(pair, company)

    @staticmethod
    def _rev_pk(pair: str, company: str) -> str:
        return compose_key("rev", pair, company)

    @staticmethod
    def _org_pk(pair: str, company: str) -> str:
        return compose_key("org", pair, company)

    # -- reads ----------------------------------------------------------------------------------

    def get_many(self, pair: str, company: str, source_keys: Sequence[str]) -> dict[str, CrosswalkEntry]:
        """Entries for the given source keys that exist (missing keys are simply absent)."""
        unique = list(dict.fromkeys(source_keys))
        if not unique:
            return {}
        pk = self._pk(pair, company)
        chunks = [unique[i : i + KEYS_PER_QUERY] for i in range(0, len(unique), KEYS_PER_QUERY)]
        found: dict[str, CrosswalkEntry] = {}
        if len(chunks) == 1:
            results = [self._query_chunk(pk, chunks[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(QUERY_WORKERS, len(chunks))) as pool:
                results = list(pool.map(lambda chunk: self._query_chunk(pk, chunk), chunks))
        wanted = set(unique)
        for entries in results:
            for entry in entries:
                if entry.source_key in wanted:
                    found[entry.source_key] = entry
        return found

    def by_origin_many(self, pair: str, company: str, origins: Sequence[str]) -> dict[str, CrosswalkEntry]:
        """Entries by the source record's own id (e.g. a Dataverse GUID), verified on the forward row.

        Child records name their parent by id (`_parentcustomerid_value`), while the parent's
        crosswalk is keyed by its natural key; the origin rows bridge the two without a scan.
        """
        return self._via_index(self._org_pk(pair, company), pair, company, origins, "Origin")

    def by_target_many(
        self, pair: str, company: str, target_keys: Sequence[str]
    ) -> dict[str, CrosswalkEntry]:
        """Entries by their current target key (reverse rows, verified on the forward row)."""
        return self._via_index(self._rev_pk(pair, company), pair, company, target_keys, "TargetKey")

    def _via_index(
        self, index_pk: str, pair: str, company: str, values: Sequence[str], prop: str
    ) -> dict[str, CrosswalkEntry]:
        """Look values up in an index partition, then trust only rows their forward row agrees with."""
        unique = list(dict.fromkeys(v for v in values if v))
        if not unique:
            return {}
        chunks = [unique[i : i + KEYS_PER_QUERY] for i in range(0, len(unique), KEYS_PER_QUERY)]
        with ThreadPoolExecutor(max_workers=max(1, min(QUERY_WORKERS, len(chunks)))) as pool:
            results = list(pool.map(lambda chunk: self._query_raw(index_pk, chunk), chunks))
        source_by_value = {
            str(e.get(prop, "")): str(e["SourceKey"]) for rows in results for e in rows if "SourceKey" in e
        }
        forward = self.get_many(pair, company, list(source_by_value.values()))
        attribute = "origin" if prop == "Origin" else "target_key"
        found: dict[str, CrosswalkEntry] = {}
        for value, source_key in source_by_value.items():
            entry = forward.get(source_key)
            if entry is not None and getattr(entry, attribute) == value and not entry.deleted:
                found[value] = entry
        return found

    def _query_raw(self, pk: str, keys: Sequence[str]) -> list[Any]:
        params: dict[str, Any] = {"pk": pk}
        clauses = []
        for index, key in enumerate(keys):
            params[f"k{index}"] = encode_key(key)
            clauses.append(f"RowKey eq @k{index}")
        query = f"PartitionKey eq @pk and ( {' or '.join(clauses)} )"
        return list(self.table.query_entities(query, parameters=params))

    def _query_chunk(self, pk: str, keys: Sequence[str]) -> list[CrosswalkEntry]:
        return [_entry(e) for e in self._query_raw(pk, keys)]

    def get(self, pair: str, company: str, source_key: str) -> CrosswalkEntry | None:
        try:
            entity = self.table.get_entity(self._pk(pair, company), encode_key(source_key))
        except ResourceNotFoundError:
            return None
        entry = _entry(entity)
        return entry if entry.source_key == source_key else None

    def by_target(self, pair: str, company: str, target_key: str) -> CrosswalkEntry | None:
        """The entry whose current target key is ``target_key`` (reverse row, verified)."""
        try:
            rev = self.table.get_entity(self._rev_pk(pair, company), encode_key(target_key))
        except ResourceNotFoundError:
            return None
        if rev.get("TargetKey") != target_key:
            return None
        entry = self.get(pair, company, str(rev["SourceKey"]))
        if entry is None or entry.target_key != target_key:
            return None
        return entry

    def iter(self, pair: str, company: str) -> Iterator[CrosswalkEntry]:
        """Every forward entry of one pair and company, streamed page by page."""
        entities = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": self._pk(pair, company)}, results_per_page=1000
        )
        for entity in entities:
            yield _entry(entity)

    def is_empty(self, pair: str, company: str) -> bool:
        """True when no forward row exists for the pair and company (one query, one row at most)."""
        pk = self._pk(pair, company)
        query = "PartitionKey eq @pk"
        rows = self.table.query_entities(query, parameters={"pk": pk}, select=["RowKey"], results_per_page=1)
        pages = rows.by_page()
        return not any(True for _ in next(pages, []))

    def count(self, pair: str, company: str) -> int:
        entities = self.table.query_entities(
            "PartitionKey eq @pk",
            parameters={"pk": self._pk(pair, company)},
            select=["RowKey"],
            results_per_page=1000,
        )
        return sum(1 for _ in entities)

    # -- writes ---------------------------------------------------------------------------------

    def put_many(self, pair: str, company: str, entries: Iterable[CrosswalkEntry]) -> None:
        """Upsert entries (last one wins per key) in transactions of at most 100 rows."""
        by_source: dict[str, CrosswalkEntry] = {}
        for entry in entries:
            by_source[entry.source_key] = entry
        if not by_source:
            return
        pk = self._pk(pair, company)
        forward = [_entity(pk, encode_key(key), e, with_payload=True) for key, e in by_source.items()]
        by_target: dict[str, CrosswalkEntry] = {}
        for entry in by_source.values():
            if entry.target_key:
                by_target[entry.target_key] = entry
        rev_pk = self._rev_pk(pair, company)
        reverse = [_entity(rev_pk, encode_key(key), e) for key, e in by_target.items()]
        org_pk = self._org_pk(pair, company)
        by_origin = [_entity(org_pk, encode_key(e.origin), e) for e in by_source.values() if e.origin]
        # Index rows first, forward rows last: the forward row is the commit point. An index row
        # is trusted only when its forward row agrees, and a crash before the forward row is
        # written makes the next run write the record (and its index rows) again; the other order
        # could leave a forward row whose index rows never get written, as the hash then matches.
        self._upsert([*reverse, *by_origin])
        self._upsert(forward)

    def _upsert(self, entities: list[dict[str, Any]]) -> None:
        """Transactions of ≤100 rows of one partition, sent concurrently (the store's latency, not
        its throughput, is what limits a sequential loop)."""
        chunks: list[list[dict[str, Any]]] = []
        for entity in entities:
            last = chunks[-1] if chunks else None
            if (
                last is None
                or len(last) >= TRANSACTION_LIMIT
                or last[0]["PartitionKey"] != entity["PartitionKey"]
            ):
                chunks.append([entity])
            else:
                last.append(entity)

        def submit(chunk: list[dict[str, Any]]) -> None:
            upsert_transaction(self.table, chunk)

        if len(chunks) <= 1:
            for chunk in chunks:
                submit(chunk)
            return
        with ThreadPoolExecutor(max_workers=min(QUERY_WORKERS, len(chunks))) as pool:
            list(pool.map(submit, chunks))


def _entity(pk: str, rk: str, entry: CrosswalkEntry, *, with_payload: bool = False) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": rk,
        "SourceKey": entry.source_key,
        "TargetKey": entry.target_key,
        "TargetId": entry.target_id,
        "Hash": entry.hash,
        "SyncedAt": utc(entry.synced_at),
        "Origin": entry.origin,
        "Deleted": entry.deleted,
    }
    if with_payload and entry.payload and len(entry.payload) <= PAYLOAD_MAX_CHARS:
        put_text(entity, "Payload", entry.payload, max_parts=PAYLOAD_PARTS)
    return entity


def _entry(entity: Any) -> CrosswalkEntry:
    synced = read_dt(entity, "SyncedAt")
    if synced is None:
        raise ValueError(f"crosswalk row {entity.get('RowKey')!r} has no SyncedAt")
    return CrosswalkEntry(
        source_key=str(entity["SourceKey"]),
        target_key=str(entity.get("TargetKey", "")),
        target_id=str(entity.get("TargetId", "")),
        hash=str(entity.get("Hash", "")),
        synced_at=synced,
        origin=str(entity.get("Origin", "")),
        deleted=bool(entity.get("Deleted", False)),
        payload=get_text(entity, "Payload") or "",
    )
