"""Crosswalk: which target record each source record was written to, and with what content hash.

Forward rows: partition = ``pair|company|bucket``, row = source key. They answer "does this
record exist in the target, and did its mapped payload change?" for a whole page at once, so reads
are batched look-ups inside one partition, one key range per bucket when a page's keys cluster, or
a scan of the pair and company's own partitions when they are small enough to cost fewer requests
than the look-ups; never a scan of the table.
Reverse rows (partition ``rev|pair|company|bucket``, row = target key) answer "which source
record owns this target key?" and origin rows (``org|…``, row = the source record's own id)
"which record has this id?"; they hold only the source key and the indexed value, are written by
the same call and verified against the forward row on read, so an index row left behind by a
re-keyed record is never trusted.

Why buckets: the rows of one pair and company are spread over ``BUCKETS`` partitions by a hash of
the row key. A Table Storage partition is served by one server and has its own throughput target
(about 2,000 entities/s), and a look-up of 14 keys joined by ``or`` is a scan of its partition, so
one partition per pair would cap an initial load and make every look-up cost grow with the table.
Azurite shows the same shape more sharply: an upsert scans its partition, which made crosswalk
writes quadratic in the partition size. Why only 16: a transaction and a key query each cover one
partition, so every bucket more is more (small) requests per page of records; at 64 buckets the
Table requests were most of a run's CPU (``docs/performance.md``).
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from shared.state._props import get_text, put_text, read_dt, utc
from shared.state.keys import compose_key, encode_key
from shared.state.queries import keys_filter, query_pages, range_filter, row_range_filter
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
#: A look-up needing this many key queries scans the family instead, if it is small (`_lookup`).
SCAN_MIN_QUERIES = 8
#: Key queries one scanned page must replace to be worth reading.
QUERIES_PER_SCANNED_PAGE = 4
#: Rows per scanned page (the service's largest page).
SCAN_PAGE_ROWS = 1000
#: Partitions per pair, company and row kind. Part of the stored layout: changing it hides every
#: row written before (they would be found in no bucket), so it is a constant, not a setting.
BUCKETS = 16


#: One look-up request, as `CrosswalkStore._read` takes it: partition, row keys, whether a key range.
_Read = tuple[str, list[str], bool]


def _bucket(row_key: str) -> int:
    return zlib.crc32(row_key.encode("utf-8")) % BUCKETS


def bucket_of(row_key: str) -> str:
    """The bucket of an (encoded) row key: two hex digits, stable across processes and versions."""
    return f"{_bucket(row_key):02x}"


def _partitions(*parts: str) -> list[str]:
    """The partitions of one row kind of a pair and company, in key order (bucket 00 first)."""
    return [compose_key(*parts, f"{b:02x}") for b in range(BUCKETS)]


def forward_partitions(pair: str, company: str) -> list[str]:
    """Every partition holding forward rows of a pair and company (for scans and test judges)."""
    return _partitions(pair, company)


def _query_count(keys: Sequence[tuple[str, str]]) -> int:
    """Key queries needed for (partition, row) keys: 14 row keys per partition per query."""
    per_partition: dict[str, int] = defaultdict(int)
    for pk, _ in keys:
        per_partition[pk] += 1
    return sum(-(-n // KEYS_PER_QUERY) for n in per_partition.values())


def _settled(key: tuple[str, str], last: tuple[str, str]) -> bool:
    """Whether a scan that read up to ``last`` has seen ``key``'s row, if it exists.

    The service orders keys by UTF-16 code units and Python strings by code points; they agree
    below U+D800, so a key with a higher character is never taken as settled by a partial scan.
    """
    return key <= last and _ordered_alike((*key, *last))


def _ordered_alike(keys: Iterable[str]) -> bool:
    """Whether Python and the service order these keys alike: no character from U+D800 up."""
    return all(max(key, default=" ") < "\ud800" for key in keys)


def _rangeable(row_keys: Sequence[str]) -> bool:
    """Whether a bucket's wanted keys are worth one key-range read: more than one key query's worth,
    and ordered alike by Python and by the service (see `_settled`)."""
    return len(row_keys) > KEYS_PER_QUERY and _ordered_alike(row_keys)


def _chunks(keys: Sequence[str], size: int) -> list[list[str]]:
    return [list(keys[i : i + size]) for i in range(0, len(keys), size)]


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
        #: (partition, row) of reverse-index markers known to exist (checked once per store)
        self._indexed: set[tuple[str, str]] = set()
        #: Partition families (by first partition) a scan found larger than it could read: the
        #: pages it read (the family has more). A later scan is tried only with twice that budget
        #: or more, so the pages spent on scans cut short stay within twice the largest budget.
        self._scanned_past: dict[str, int] = {}
        #: Partition families whose wanted keys a bucket's key range held too sparsely to read
        self._sparse_families: set[str] = set()

    @staticmethod
    def _pk(pair: str, company: str, row_key: str) -> str:
        return compose_key(pair, company, bucket_of(row_key))

    @staticmethod
    def _rev_pk(pair: str, company: str, row_key: str) -> str:
        return compose_key("rev", pair, company, bucket_of(row_key))

    @staticmethod
    def _org_pk(pair: str, company: str, row_key: str) -> str:
        return compose_key("org", pair, company, bucket_of(row_key))

    # -- reads ----------------------------------------------------------------------------------

    def get_many(self, pair: str, company: str, source_keys: Sequence[str]) -> dict[str, CrosswalkEntry]:
        """Entries for the given source keys that exist (missing keys are simply absent)."""
        unique = list(dict.fromkeys(source_keys))
        if not unique:
            return {}
        wanted = set(unique)
        found: dict[str, CrosswalkEntry] = {}
        for row in self._lookup(forward_partitions(pair, company), unique):
            entry = _entry(row)
            if entry.source_key in wanted:
                found[entry.source_key] = entry
        return found

    def _lookup(self, family: Sequence[str], values: Sequence[str]) -> list[dict[str, Any]]:
        """Rows of a partition family (one row kind of a pair and company) whose RowKey is one of
        ``values`` (encoded here).

        Key queries take 14 keys each, so a page's worth of look-ups is dozens of queries per
        bucket. Two cheaper reads replace them where they can:

        - a small family (the usual case while an initial load builds it, or a few thousand
          parents) is scanned whole in a page or two, if that costs at most a quarter as many
          pages as the requests it replaces;
        - otherwise each bucket holding more keys than one key query takes is read as one key
          range, from its lowest wanted key to its highest. A page of source records comes in
          key order, or close to it, so the range holds the page's own rows and few others
          (none at all while an initial load writes new records): one request for the bucket
          instead of one per 14 keys.

        Either read is bounded by the same budget; cut short, it still settles every key up to
        the last row it read and the rest are queried by key. This store then tries a scan of
        that family again only with at least twice the budget (it is larger), and no more key
        ranges in it if a range was cut short (its keys are not clustered: origin ids are random
        GUIDs; the scans' budget is then set against key queries alone, so a family that is still
        small is scanned again).
        """
        wanted: dict[tuple[str, str], None] = {}
        for value in values:
            rk = encode_key(value)
            wanted[(family[_bucket(rk)], rk)] = None
        found: list[dict[str, Any]] = []
        remaining = list(wanted)
        reads = self._reads(family, remaining)
        queries_needed = _query_count(remaining)
        budget = 0
        if queries_needed >= SCAN_MIN_QUERIES:
            budget = min(queries_needed, len(reads)) // QUERIES_PER_SCANNED_PAGE
        past = self._scanned_past.get(family[0])
        if budget >= 1 and (past is None or budget >= 2 * past):
            found, last = self._scan(family, wanted, budget)
            if last is None:
                return found
            self._scanned_past[family[0]] = budget
            reads = self._reads(family, [key for key in remaining if not _settled(key, last)])
        if len(reads) <= 1:
            for read in reads:
                found.extend(self._read(family, *read))
            return found
        with ThreadPoolExecutor(max_workers=min(QUERY_WORKERS, len(reads))) as pool:
            for rows in pool.map(lambda read: self._read(family, *read), reads):
                found.extend(rows)
        return found

    def _reads(self, family: Sequence[str], keys: Sequence[tuple[str, str]]) -> list[_Read]:
        """The requests that look ``keys`` up without a family scan, as `_read` arguments: one key
        range per bucket with many keys (unless the family's keys proved sparse), key queries of
        up to 14 keys for the rest."""
        by_partition: dict[str, list[str]] = defaultdict(list)
        for pk, rk in keys:
            by_partition[pk].append(rk)
        reads: list[_Read] = []
        for pk, rks in by_partition.items():
            if _rangeable(rks) and family[0] not in self._sparse_families:
                reads.append((pk, sorted(rks), True))
            else:
                reads.extend((pk, chunk, False) for chunk in _chunks(rks, KEYS_PER_QUERY))
        return reads

    def _read(self, family: Sequence[str], pk: str, rks: list[str], ranged: bool) -> list[dict[str, Any]]:
        """One key query, or one bucket's key range (then key queries for what it left unsettled)."""
        if not ranged:
            return self._query_raw(pk, rks)
        budget = max(1, -(-len(rks) // KEYS_PER_QUERY) // QUERIES_PER_SCANNED_PAGE)
        wanted = set(rks)
        found: list[dict[str, Any]] = []
        where = row_range_filter(pk, rks[0], rks[-1])
        for pages, page in enumerate(query_pages(self.table, where, per_page=SCAN_PAGE_ROWS), 1):
            found.extend(row for row in page.rows if row["RowKey"] in wanted)
            if not page.more:
                return found
            if pages >= budget:
                # the keys are spread over more of the bucket than a page per 56 keys: sparse
                self._sparse_families.add(family[0])
                last = str(page.rows[-1]["RowKey"]) if page.rows else ""
                rest = [rk for rk in rks if rk > last]
                for chunk in _chunks(rest, KEYS_PER_QUERY):
                    found.extend(self._query_raw(pk, chunk))
                return found
        return found

    def _scan(
        self, family: Sequence[str], wanted: Mapping[tuple[str, str], None], budget: int
    ) -> tuple[list[dict[str, Any]], tuple[str, str] | None]:
        """The wanted rows among the family's first ``budget`` pages, and the last row read when
        the family has more (None when it was read whole)."""
        found: list[dict[str, Any]] = []
        last: tuple[str, str] | None = None
        members = set(family)
        where = range_filter(family[0], family[-1])
        for pages, page in enumerate(query_pages(self.table, where, per_page=SCAN_PAGE_ROWS), 1):
            for row in page.rows:
                key = (row["PartitionKey"], row["RowKey"])
                if key in wanted and key[0] in members:
                    found.append(row)
            if page.rows:
                last = (page.rows[-1]["PartitionKey"], page.rows[-1]["RowKey"])
            if not page.more:
                return found, None
            if pages >= budget:
                return found, last or ("", "")
        return found, None

    def by_origin_many(self, pair: str, company: str, origins: Sequence[str]) -> dict[str, CrosswalkEntry]:
        """Entries by the source record's own id (e.g. a Dataverse GUID), verified on the forward row.

        Child records name their parent by id (`_parentcustomerid_value`), while the parent's
        crosswalk is keyed by its natural key; the origin rows bridge the two without a scan.
        """
        return self._via_index(_partitions("org", pair, company), pair, company, origins, "Origin")

    def by_target_many(
        self, pair: str, company: str, target_keys: Sequence[str]
    ) -> dict[str, CrosswalkEntry]:
        """Entries by their current target key (reverse rows, verified on the forward row)."""
        self.ensure_reverse_index(pair, company)
        return self._via_index(_partitions("rev", pair, company), pair, company, target_keys, "TargetKey")

    def _via_index(
        self, family: Sequence[str], pair: str, company: str, values: Sequence[str], prop: str
    ) -> dict[str, CrosswalkEntry]:
        """Look values up in an index partition, then trust only rows their forward row agrees with."""
        unique = list(dict.fromkeys(v for v in values if v))
        if not unique:
            return {}
        rows = self._lookup(family, unique)
        source_by_value = {str(e.get(prop, "")): str(e["SourceKey"]) for e in rows if "SourceKey" in e}
        forward = self.get_many(pair, company, list(source_by_value.values()))
        attribute = "origin" if prop == "Origin" else "target_key"
        found: dict[str, CrosswalkEntry] = {}
        for value, source_key in source_by_value.items():
            entry = forward.get(source_key)
            if entry is not None and getattr(entry, attribute) == value and not entry.deleted:
                found[value] = entry
        return found

    def _query_raw(self, pk: str, row_keys: Sequence[str]) -> list[dict[str, Any]]:
        return [row for page in query_pages(self.table, keys_filter(pk, row_keys)) for row in page.rows]

    def get(self, pair: str, company: str, source_key: str) -> CrosswalkEntry | None:
        try:
            rk = encode_key(source_key)
            entity = self.table.get_entity(self._pk(pair, company, rk), rk)
        except ResourceNotFoundError:
            return None
        entry = _entry(entity)
        return entry if entry.source_key == source_key else None

    def by_target(self, pair: str, company: str, target_key: str) -> CrosswalkEntry | None:
        """The entry whose current target key is ``target_key`` (reverse row, verified)."""
        self.ensure_reverse_index(pair, company)
        try:
            rk = encode_key(target_key)
            rev = self.table.get_entity(self._rev_pk(pair, company, rk), rk)
        except ResourceNotFoundError:
            return None
        if rev.get("TargetKey") != target_key:
            return None
        entry = self.get(pair, company, str(rev["SourceKey"]))
        if entry is None or entry.target_key != target_key:
            return None
        return entry

    def ensure_reverse_index(self, pair: str, company: str) -> None:
        """Make sure every forward row of the pair and company has its reverse row (once).

        Tasks nobody looks up by target key are written without reverse rows. The first look-up by
        target key (a mapping added later) writes them from a scan of the forward rows and then a
        marker row, so later look-ups trust the index; writers of such a task keep it complete.
        """
        marker = (compose_key("index", pair, company), "reverse")
        if marker in self._indexed:
            return
        try:
            self.table.get_entity(*marker)
        except ResourceNotFoundError:
            batch: list[dict[str, Any]] = []
            for entry in self.iter(pair, company):
                if entry.target_key and not entry.deleted:
                    rk = encode_key(entry.target_key)
                    batch.append(_index_entity(self._rev_pk(pair, company, rk), rk, entry, "TargetKey"))
                if len(batch) >= 1000:
                    self._upsert(batch)
                    batch = []
            self._upsert(batch)
            upsert_transaction(self.table, [{"PartitionKey": marker[0], "RowKey": marker[1]}])
        self._indexed.add(marker)

    def _forward_rows(
        self, pair: str, company: str, *, select: list[str] | None = None, per_page: int = 1000
    ) -> Iterator[Any]:
        """Forward rows of every bucket of one pair and company: one range query over the buckets."""
        partitions = forward_partitions(pair, company)
        wanted = set(partitions)
        where = range_filter(partitions[0], partitions[-1])
        for page in query_pages(
            self.table, where, select=[*select, "PartitionKey"] if select else None, per_page=per_page
        ):
            for row in page.rows:
                if row["PartitionKey"] in wanted:
                    yield row

    def iter(self, pair: str, company: str) -> Iterator[CrosswalkEntry]:
        """Every forward entry of one pair and company, streamed page by page."""
        for row in self._forward_rows(pair, company):
            yield _entry(row)

    def is_empty(self, pair: str, company: str) -> bool:
        """True when no forward row exists for the pair and company (stops at the first row)."""
        return next(self._forward_rows(pair, company, select=["RowKey"], per_page=1), None) is None

    def count(self, pair: str, company: str) -> int:
        return sum(1 for _ in self._forward_rows(pair, company, select=["RowKey"]))

    # -- writes ---------------------------------------------------------------------------------

    def put_many(
        self, pair: str, company: str, entries: Iterable[CrosswalkEntry], *, reverse: bool = True
    ) -> None:
        """Upsert entries (last one wins per key) in transactions of at most 100 rows.

        ``reverse=False`` skips the reverse rows: only tasks that another task looks up by target
        key need them (the engine knows which from the mapping files). Should a mapping start
        needing them later, :meth:`by_target_many` first rebuilds them from the forward rows.
        """
        by_source: dict[str, CrosswalkEntry] = {}
        for entry in entries:
            by_source[entry.source_key] = entry
        if not by_source:
            return
        forward = []
        for key, e in by_source.items():
            rk = encode_key(key)
            forward.append(_entity(self._pk(pair, company, rk), rk, e, with_payload=True))
        by_target: dict[str, CrosswalkEntry] = {}
        for entry in by_source.values() if reverse else ():
            if entry.target_key:
                by_target[entry.target_key] = entry
        reverse_rows = []
        for target_key, e in by_target.items():
            rk = encode_key(target_key)
            reverse_rows.append(_index_entity(self._rev_pk(pair, company, rk), rk, e, "TargetKey"))
        by_origin: dict[str, CrosswalkEntry] = {e.origin: e for e in by_source.values() if e.origin}
        origins = []
        for origin, e in by_origin.items():
            rk = encode_key(origin)
            origins.append(_index_entity(self._org_pk(pair, company, rk), rk, e, "Origin"))
        # Index rows first, forward rows last: the forward row is the commit point. An index row
        # is trusted only when its forward row agrees, and a crash before the forward row is
        # written makes the next run write the record (and its index rows) again; the other order
        # could leave a forward row whose index rows never get written, as the hash then matches.
        self._upsert([*reverse_rows, *origins])
        self._upsert(forward)

    def _upsert(self, entities: list[dict[str, Any]]) -> None:
        """Transactions of ≤100 rows of one partition, sent concurrently (the store's latency, not
        its throughput, is what limits a sequential loop)."""
        by_partition: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entity in entities:
            by_partition[entity["PartitionKey"]].append(entity)
        chunks = [
            rows[i : i + TRANSACTION_LIMIT]
            for rows in by_partition.values()
            for i in range(0, len(rows), TRANSACTION_LIMIT)
        ]

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


def _index_entity(pk: str, rk: str, entry: CrosswalkEntry, prop: str) -> dict[str, Any]:
    """An index row: the indexed value and the source key, all a look-up reads (`_via_index`).

    Everything else lives on the forward row, which every index hit is verified against anyway;
    copying it here only made each index row cost as much to encode and store as the forward row.
    """
    value = entry.target_key if prop == "TargetKey" else entry.origin
    return {"PartitionKey": pk, "RowKey": rk, "SourceKey": entry.source_key, prop: value}


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
