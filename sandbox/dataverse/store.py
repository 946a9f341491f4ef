"""In-memory Dataverse tables with row versions, change tracking and alternate-key indexes.

Dataverse gives every write a new row version from one organisation-wide counter; the version is
both the `@odata.etag` (`W/"<n>"`) and the position used by change tracking. The store mirrors
that: a global counter, per-table version order (an insertion-ordered dict re-inserted on every
write, so "changed since v" is a walk from the end), and a deletion log for `$deletedEntity`.

Writes can run inside `transaction()`: an undo journal restores rows, indexes and the deletion
log when a `$batch` change set or a bulk message fails, which is what makes those atomic.

Rows are plain dicts with lookups stored as `_<col>_value` GUID strings; the lookup's target
logical name is kept beside the row (`annotations`) for the `lookuplogicalname` annotation.
"""

from __future__ import annotations

import bisect
import copy
import gc
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.dataverse.schema import TableInfo, build_tables

__all__ = ["DataverseStore", "DuplicateKey", "StoreTable", "key_value"]


class DuplicateKey(Exception):
    """An alternate-key value already belongs to another row (DuplicateRecordEntityKey)."""

    def __init__(self, table: str, key_name: str, columns: list[str], existing_id: str) -> None:
        super().__init__(f"{table}: alternate key {key_name} already used by {existing_id}")
        self.table = table
        self.key_name = key_name
        self.columns = columns
        self.existing_id = existing_id


def key_value(value: Any) -> Any:
    """Alternate-key values compare like SQL Server's default collation: case-insensitive."""
    if isinstance(value, str):
        return value.casefold()
    return value


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class StoreTable:
    """One table's rows and indexes (all access under the store lock)."""

    info: TableInfo
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    # id → version, kept in ascending version order (re-inserted on every write)
    by_version: dict[str, int] = field(default_factory=dict)
    # id → version of its latest delete
    deleted: dict[str, int] = field(default_factory=dict)
    # lookup column → target logical name, per row (for lookuplogicalname)
    annotations: dict[str, dict[str, str]] = field(default_factory=dict)
    # alternate key name → normalised value tuple → id
    alt_index: dict[str, dict[tuple[Any, ...], str]] = field(default_factory=dict)
    _sorted_ids: list[str] | None = None

    def sorted_ids(self) -> list[str]:
        """Primary keys in ascending order: the stable order behind paging cookies."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.rows)
        return self._sorted_ids

    def key_tuple(self, key_name: str, row: Mapping[str, Any]) -> tuple[Any, ...] | None:
        cols = self.info.alternate_keys[key_name]
        values = tuple(key_value(row.get(_col_read_name(self.info, c))) for c in cols)
        return None if any(v is None for v in values) else values


def _col_read_name(info: TableInfo, column: str) -> str:
    spec = info.columns.get(column)
    if spec is not None and spec.get("type") in ("Lookup", "Customer", "Owner"):
        return f"_{column}_value"
    return column


_UNDO_PUT = "put"


class DataverseStore:
    """Thread-safe in-memory Dataverse. Entity sets are addressed by their set name
    (`accounts`); the logical name (`account`) is accepted too."""

    def __init__(self, catalogue: Any) -> None:
        self.tables_info: dict[str, TableInfo] = build_tables(catalogue)
        self.by_logical: dict[str, TableInfo] = {t.logical: t for t in self.tables_info.values()}
        self.lock = threading.RLock()
        self._tables: dict[str, StoreTable] = {}
        for name, info in self.tables_info.items():
            table = StoreTable(info)
            table.alt_index = {k: {} for k in info.alternate_keys}
            self._tables[name] = table
        self._version = 1000
        self._token_floor = 0
        self._journal: list[tuple[Any, ...]] | None = None

    # ------------------------------------------------------------------------------ addressing
    def table(self, entity_set: str) -> StoreTable:
        """The table for an entity set (or logical) name; KeyError when unknown."""
        table = self._tables.get(entity_set)
        if table is None:
            info = self.by_logical.get(entity_set)
            if info is None:
                raise KeyError(entity_set)
            table = self._tables[info.entity_set]
        return table

    def info(self, entity_set: str) -> TableInfo:
        return self.table(entity_set).info

    @property
    def version(self) -> int:
        """The latest row version handed out."""
        return self._version

    @property
    def token_floor(self) -> int:
        """Delta tokens older than this version are expired."""
        return self._token_floor

    def next_version(self) -> int:
        self._version += 1
        return self._version

    # ------------------------------------------------------------------------------ transactions
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock and journal every write; an exception undoes them all (nestable)."""
        with self.lock:
            outer = self._journal is None
            if outer:
                self._journal = []
            assert self._journal is not None
            mark = len(self._journal)
            try:
                yield
            except BaseException:
                self._undo_to(mark)
                raise
            finally:
                if outer:
                    self._journal = None

    def _undo_to(self, mark: int) -> None:
        journal = self._journal
        assert journal is not None
        touched: set[str] = set()
        while len(journal) > mark:
            _, set_name, row_id, old_row, old_version, old_ann, old_deleted = journal.pop()
            table = self._tables[set_name]
            self._unindex(table, row_id)
            if old_row is None:
                table.rows.pop(row_id, None)
                table.by_version.pop(row_id, None)
                table.annotations.pop(row_id, None)
            else:
                table.rows[row_id] = old_row
                table.by_version[row_id] = old_version
                if old_ann is None:
                    table.annotations.pop(row_id, None)
                else:
                    table.annotations[row_id] = old_ann
                self._index(table, row_id, old_row)
            if old_deleted is None:
                table.deleted.pop(row_id, None)
            else:
                table.deleted[row_id] = old_deleted
            table._sorted_ids = None
            touched.add(set_name)
        for set_name in touched:
            table = self._tables[set_name]
            table.by_version = dict(sorted(table.by_version.items(), key=lambda kv: kv[1]))

    def _journal_row(self, table: StoreTable, row_id: str) -> None:
        if self._journal is None:
            return
        old = table.rows.get(row_id)
        ann = table.annotations.get(row_id)
        self._journal.append(
            (
                _UNDO_PUT,
                table.info.entity_set,
                row_id,
                old,
                table.by_version.get(row_id),
                dict(ann) if ann is not None else None,
                table.deleted.get(row_id),
            )
        )

    # ------------------------------------------------------------------------------ indexes
    def _index(self, table: StoreTable, row_id: str, row: Mapping[str, Any]) -> None:
        for key_name, index in table.alt_index.items():
            values = table.key_tuple(key_name, row)
            if values is not None:
                index[values] = row_id

    def _unindex(self, table: StoreTable, row_id: str) -> None:
        row = table.rows.get(row_id)
        if row is None:
            return
        for key_name, index in table.alt_index.items():
            values = table.key_tuple(key_name, row)
            if values is not None and index.get(values) == row_id:
                del index[values]

    def _check_keys(self, table: StoreTable, row_id: str, row: Mapping[str, Any]) -> None:
        for key_name, index in table.alt_index.items():
            values = table.key_tuple(key_name, row)
            if values is None:
                continue
            owner = index.get(values)
            if owner is not None and owner != row_id:
                raise DuplicateKey(table.info.logical, key_name, table.info.alternate_keys[key_name], owner)

    def find_by_key(self, entity_set: str, values: Mapping[str, Any]) -> str | None:
        """Id of the row whose alternate key (the one made of exactly these columns) matches."""
        table = self.table(entity_set)
        cols = set(values)
        for key_name, key_cols in table.info.alternate_keys.items():
            if set(key_cols) == cols:
                probe = tuple(key_value(values[c]) for c in key_cols)
                with self.lock:
                    return table.alt_index[key_name].get(probe)
        raise KeyError(f"no alternate key {sorted(cols)} on {table.info.logical}")

    # ------------------------------------------------------------------------------ core writes
    def put_row(
        self,
        entity_set: str,
        row_id: str,
        row: dict[str, Any],
        annotations: Mapping[str, str] | None = None,
    ) -> int:
        """Store the full new state of a row (create or replace); returns its new version.

        Raises DuplicateKey before changing anything when an alternate key collides.
        """
        with self.lock:
            table = self.table(entity_set)
            self._check_keys(table, row_id, row)
            self._journal_row(table, row_id)
            self._unindex(table, row_id)
            is_new = row_id not in table.rows
            version = self.next_version()
            row[table.info.primary_id] = row_id
            if "versionnumber" in table.info.columns:
                row["versionnumber"] = version
            table.rows[row_id] = row
            table.by_version.pop(row_id, None)
            table.by_version[row_id] = version
            if annotations is not None:
                current = table.annotations.get(row_id, {})
                merged = {**current, **annotations}
                if merged:
                    table.annotations[row_id] = merged
            self._index(table, row_id, row)
            if is_new and table._sorted_ids is not None:
                bisect.insort(table._sorted_ids, row_id)
            return version

    def remove_row(self, entity_set: str, row_id: str) -> bool:
        """Delete a row and log it for `$deletedEntity`; False when it did not exist."""
        with self.lock:
            table = self.table(entity_set)
            if row_id not in table.rows:
                return False
            self._journal_row(table, row_id)
            self._unindex(table, row_id)
            del table.rows[row_id]
            table.by_version.pop(row_id, None)
            table.annotations.pop(row_id, None)
            table.deleted[row_id] = self.next_version()
            if table._sorted_ids is not None:
                idx = bisect.bisect_left(table._sorted_ids, row_id)
                if idx < len(table._sorted_ids) and table._sorted_ids[idx] == row_id:
                    del table._sorted_ids[idx]
            return True

    # ------------------------------------------------------------------------------ Python API
    def _stamp(self, table: StoreTable, row: dict[str, Any], *, created: bool) -> None:
        stamp = now_iso()
        cols = table.info.columns
        if created and "createdon" in cols and row.get("createdon") is None:
            row["createdon"] = stamp
        if "modifiedon" in cols:
            row["modifiedon"] = stamp

    def insert(self, entity_set: str, row: Mapping[str, Any]) -> str:
        """Create a row (lookups given as `_<col>_value`); returns its id."""
        with self.lock:
            table = self.table(entity_set)
            data = dict(row)
            row_id = str(data.get(table.info.primary_id) or uuid.uuid4()).lower()
            if row_id in table.rows:
                raise ValueError(f"{table.info.logical} {row_id} already exists")
            self._stamp(table, data, created=True)
            ann = self.lookup_annotations(table.info, data)
            _strip_annotations(data)
            self.put_row(table.info.entity_set, row_id, data, ann)
            return row_id

    def update(self, entity_set: str, row_id: str, changes: Mapping[str, Any]) -> None:
        """Change columns of an existing row (new version); KeyError when missing."""
        with self.lock:
            table = self.table(entity_set)
            row_id = row_id.lower()
            current = table.rows.get(row_id)
            if current is None:
                raise KeyError(row_id)
            data = {**current, **changes}
            self._stamp(table, data, created=False)
            ann = self.lookup_annotations(table.info, changes)
            _strip_annotations(data)
            self.put_row(table.info.entity_set, row_id, data, ann)

    def delete(self, entity_set: str, row_id: str) -> None:
        """Delete a row; KeyError when missing."""
        if not self.remove_row(entity_set, row_id.lower()):
            raise KeyError(row_id)

    def get(self, entity_set: str, row_id: str) -> dict[str, Any] | None:
        """A copy of the row, or None."""
        with self.lock:
            row = self.table(entity_set).rows.get(row_id.lower())
            return dict(row) if row is not None else None

    def etag(self, entity_set: str, row_id: str) -> str | None:
        with self.lock:
            version = self.table(entity_set).by_version.get(row_id.lower())
            return f'W/"{version}"' if version is not None else None

    def rows(self, entity_set: str) -> list[dict[str, Any]]:
        """Copies of all rows, in primary-key order."""
        with self.lock:
            table = self.table(entity_set)
            return [dict(table.rows[i]) for i in table.sorted_ids()]

    def find(self, entity_set: str, **eq: Any) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values (strings case-insensitively)."""
        wanted = {k: key_value(v) for k, v in eq.items()}
        with self.lock:
            table = self.table(entity_set)
            return [
                dict(r)
                for i in table.sorted_ids()
                if all(key_value((r := table.rows[i]).get(k)) == v for k, v in wanted.items())
            ]

    def count(self, entity_set: str) -> int:
        with self.lock:
            return len(self.table(entity_set).rows)

    def load_rows(self, entity_set: str, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Bulk insert (seed data): one version each, alternate keys checked, no journal.

        Not atomic: a duplicate id or key raises after the rows before it were stored.
        """
        ids: list[str] = []
        with self.lock:
            table = self.table(entity_set)
            info = table.info
            pk = info.primary_id
            stamp = now_iso()
            has_created = "createdon" in info.columns
            has_modified = "modifiedon" in info.columns
            has_versionnumber = "versionnumber" in info.columns
            lookup_reads = [f"_{c}_value" for c in info.lookup_columns()]
            keys = [
                (name, [_col_read_name(info, c) for c in cols], table.alt_index[name])
                for name, cols in info.alternate_keys.items()
            ]
            rows_map = table.rows
            by_version = table.by_version
            new_id = uuid.uuid4
            for source in rows:
                row = dict(source)
                raw_id = row.get(pk)
                row_id = str(raw_id).lower() if raw_id else str(new_id())
                if row_id in rows_map:
                    raise ValueError(f"{info.logical} {row_id} already exists")
                key_values = []
                for name, reads, index in keys:
                    values = tuple(key_value(row.get(r)) for r in reads)
                    if any(v is None for v in values):
                        continue
                    owner = index.get(values)
                    if owner is not None:
                        raise DuplicateKey(info.logical, name, info.alternate_keys[name], owner)
                    key_values.append((index, values))
                if has_created and row.get("createdon") is None:
                    row["createdon"] = stamp
                if has_modified and row.get("modifiedon") is None:
                    row["modifiedon"] = stamp
                self._version += 1
                row[pk] = row_id
                if has_versionnumber:
                    row["versionnumber"] = self._version
                if lookup_reads and any(row.get(r) is not None for r in lookup_reads):
                    ann = self.lookup_annotations(info, row)
                    if ann:
                        table.annotations[row_id] = ann
                    _strip_annotations(row)
                rows_map[row_id] = row
                by_version[row_id] = self._version
                for index, values in key_values:
                    index[values] = row_id
                ids.append(row_id)
            table._sorted_ids = None
        # Seed rows live for the whole run and hold no reference cycles: moving them out of the
        # collector's view keeps full GC passes (50-100 ms with 100,000 wide rows) off page reads.
        gc.freeze()
        return ids

    def lookup_annotations(self, info: TableInfo, row: Mapping[str, Any]) -> dict[str, str]:
        """Target logical names of `_x_value` columns given directly (seed data / Python API):
        an explicit `_x_value@Microsoft.Dynamics.CRM.lookuplogicalname`, else the target table that
        holds the id, else the first listed target."""
        ann: dict[str, str] = {}
        for name, spec in info.columns.items():
            if spec.get("type") not in ("Lookup", "Customer", "Owner"):
                continue
            read = f"_{name}_value"
            value = row.get(read)
            if value is None:
                continue
            explicit = row.get(f"{read}@Microsoft.Dynamics.CRM.lookuplogicalname")
            targets = [str(t) for t in spec.get("targets") or []]
            if explicit:
                ann[name] = str(explicit)
                continue
            chosen = targets[0] if targets else None
            if len(targets) > 1:
                for target in targets:
                    target_info = self.by_logical.get(target)
                    if target_info and str(value).lower() in self._tables[target_info.entity_set].rows:
                        chosen = target
                        break
            if chosen:
                ann[name] = chosen
        return ann

    def expire_change_tokens(self) -> None:
        """Make every delta token issued so far expire (to exercise ExpiredVersionStamp)."""
        with self.lock:
            self._token_floor = self.next_version()

    def clear(self) -> None:
        """Drop all rows and logs (catalogue kept)."""
        with self.lock:
            for table in self._tables.values():
                table.rows.clear()
                table.by_version.clear()
                table.deleted.clear()
                table.annotations.clear()
                for index in table.alt_index.values():
                    index.clear()
                table._sorted_ids = None

    # ------------------------------------------------------------------------------ persistence
    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of the whole state (rows, versions, deletion log, token floor)."""
        with self.lock:
            return {
                "version": self._version,
                "token_floor": self._token_floor,
                "tables": {
                    name: {
                        "rows": copy.deepcopy(list(t.rows.values())),
                        "versions": list(t.by_version.items()),
                        "deleted": dict(t.deleted),
                        "annotations": copy.deepcopy(t.annotations),
                    }
                    for name, t in self._tables.items()
                    if t.rows or t.deleted
                },
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the whole state with a `snapshot()`."""
        with self.lock:
            self.clear()
            for name, data in state.get("tables", {}).items():
                if name not in self._tables:
                    continue
                table = self._tables[name]
                pk = table.info.primary_id
                for row in data.get("rows", []):
                    table.rows[row[pk]] = dict(row)
                table.by_version = {k: int(v) for k, v in data.get("versions", [])}
                table.deleted = {k: int(v) for k, v in data.get("deleted", {}).items()}
                table.annotations = {k: dict(v) for k, v in data.get("annotations", {}).items()}
                for row_id, row in table.rows.items():
                    self._index(table, row_id, row)
            self._version = int(state.get("version", self._version))
            self._token_floor = int(state.get("token_floor", 0))


def _strip_annotations(row: dict[str, Any]) -> None:
    """Seed rows may carry `x@...` annotations; they are metadata, never stored as columns."""
    for key in [k for k in row if "@" in k]:
        del row[key]
