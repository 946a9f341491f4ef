"""In-memory Finance and Operations data entities, keyed by each entity's natural key.

F&O entities have composite natural keys that almost always start with the company
(`dataAreaId`), so the store keeps, per entity set, rows in a dict keyed by the normalised key
tuple *with `dataAreaId` moved first*, plus a lazily built sorted list of those tuples. That one
ordering serves everything the OData stand-in needs: stable `$skip` paging, and the rows of one
company as a contiguous slice found by bisection (no scan of the other companies' rows).

Key values compare like SQL Server's default collation: case-insensitive. `dataAreaId` is stored
lower-case, as F&O returns it. Every write takes a new number from one store-wide counter, which
is the row's ETag (`W/"<n>"`, F&O's `@odata.etag`).

Writes can run inside `transaction()`: an undo journal restores the rows when a `$batch` change
set fails, which is what makes change sets atomic.
"""

from __future__ import annotations

import bisect
import copy
import gc
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sandbox.catalogue import catalogue_section

__all__ = [
    "COMPANY_KEY",
    "DuplicateKey",
    "EntityInfo",
    "FinOpsStore",
    "MissingKey",
    "build_entities",
    "catalogue_dict",
    "norm_key_value",
]

COMPANY_KEY = "dataAreaId"
ENTITY_NS = "Microsoft.Dynamics.DataEntities."

# Entity set → X++ data entity (AOT) name, used in F&O's "Write failed for table row of type '...'"
# texts. From the Common Data Model definitions in reference/schemas/fo (aot_entity); a catalogue
# entry may carry its own "aot_entity", which wins.
_AOT_ENTITIES = {
    "CustomersV3": "CustCustomerV3Entity",
    "CustomerGroups": "CustCustomerGroupEntity",
    "ContactPersons": "smmContactPersonV2Entity",
    "CDSContactPersonsV2": "smmContactPersonCDSV2Entity",
    "ReleasedProductsV2": "EcoResReleasedProductV2Entity",
    "ReleasedDistinctProductsV2": "EcoResReleasedDistinctProductV2Entity",
    "CDSReleasedDistinctProducts": "EcoResReleasedDistinctProductCDSEntity",
    "ProductsV2": "EcoResProductV2Entity",
    "DistinctProducts": "EcoResDistinctProductEntity",
    "UnitsOfMeasure": "UnitOfMeasureEntity",
    "UnitOfMeasureConversions": "UnitOfMeasureConversionEntity",
    "Currencies": "CurrencyEntity",
    "SalesQuotationHeadersV2": "SalesQuotationHeaderV2Entity",
    "SalesQuotationLines": "SalesQuotationLineV2Entity",
    "CDSSalesQuotationHeaders": "SalesQuotationHeaderCDSEntity",
    "CDSSalesQuotationLines": "SalesQuotationLineCDSEntity",
    "SalesOrderHeadersV2": "SalesOrderHeaderV2Entity",
    "SalesOrderLines": "SalesOrderLineV2Entity",
    "CDSSalesOrderHeaders": "SalesOrderHeaderCDSEntity",
    "CDSSalesOrderLines": "SalesOrderLineCDSEntity",
    "SalesInvoiceHeadersV2": "SalesInvoiceHeaderV2Entity",
    "SalesInvoiceV2Lines": "SalesInvoiceLineV2Entity",
    "PaymentTerms": "PaymentTermEntity",
    "Warehouses": "InventWarehouseEntity",
}


class DuplicateKey(Exception):
    """A row with the same natural key exists (F&O: "The record already exists.")."""

    def __init__(self, entity_set: str, key: Mapping[str, Any]) -> None:
        super().__init__(f"{entity_set}: a record with key {dict(key)} already exists")
        self.entity_set = entity_set
        self.key = dict(key)


class MissingKey(ValueError):
    """A row or key dict lacks a key property (or holds null in it)."""

    def __init__(self, entity_set: str, prop: str) -> None:
        super().__init__(f"{entity_set}: key property '{prop}' is missing")
        self.entity_set = entity_set
        self.prop = prop


def norm_key_value(value: Any) -> Any:
    """Key values compare case-insensitively (SQL collation); bools as 0/1 like X++ enums."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, bool):
        return int(value)
    return value


_PLURAL_RE = re.compile(r"^(?P<stem>.*?)s(?P<version>V\d+)?$")


def entity_type_name(entity_set: str) -> str:
    """Public collection name → entity type: `CustomersV2` → `CustomerV2`, `CustomerGroups` →
    `CustomerGroup` (F&O names collections as the plural of the type; a catalogue may override)."""
    m = _PLURAL_RE.match(entity_set)
    if m is None:
        return entity_set
    return m.group("stem") + (m.group("version") or "")


@dataclass
class EntityInfo:
    """One entity set of the catalogue, shaped for the stand-in's hot paths."""

    name: str
    keys: list[str]
    properties: dict[str, dict[str, Any]]
    type_name: str
    aot_entity: str
    # the keys in index order: dataAreaId first when the entity is per company
    index_keys: list[str] = field(default_factory=list)
    property_set: frozenset[str] = frozenset()
    # non-nullable, non-key properties → the value F&O shows when nothing was written to them
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def per_company(self) -> bool:
        return COMPANY_KEY in self.keys

    @property
    def full_type(self) -> str:
        return ENTITY_NS + self.type_name


def catalogue_dict(catalogue: Any) -> Mapping[str, Any]:
    """The finops part of the catalogue, however it is handed over (see `catalogue_section`)."""
    return catalogue_section(catalogue, "finops")


_NULL_DATE = "1900-01-01T00:00:00Z"  # X++ dateNull(), what F&O returns for an empty date
_TYPE_DEFAULTS: dict[str, Any] = {
    "Edm.String": "",
    "Edm.Decimal": 0,
    "Edm.Double": 0,
    "Edm.Int32": 0,
    "Edm.Int64": 0,
    "Edm.Boolean": False,
    "Edm.DateTimeOffset": _NULL_DATE,
    "Edm.Guid": "00000000-0000-0000-0000-000000000000",
}


def _default_value(spec: Mapping[str, Any], enum_types: Mapping[str, Any]) -> Any:
    """X++ columns are never SQL NULL: an unset non-nullable field reads as 0, '', the enum's 0
    member, or 1900-01-01. Seeded and created rows get these so filters on them behave."""
    edm = str(spec.get("type") or "Edm.String")
    if edm.startswith(ENTITY_NS):
        members = enum_types.get(edm[len(ENTITY_NS) :]) or {}
        zero = [name for name, value in members.items() if value == 0]
        return zero[0] if zero else next(iter(members), None)
    return _TYPE_DEFAULTS.get(edm)


def build_entities(catalogue: Any) -> dict[str, EntityInfo]:
    """Entity set name → EntityInfo for every entity set of the catalogue."""
    raw = catalogue_dict(catalogue)
    enum_types = raw.get("enum_types") or {}
    out: dict[str, EntityInfo] = {}
    for name, spec in raw.get("entity_sets", {}).items():
        keys = [str(k) for k in spec.get("keys") or []]
        if not keys:
            raise ValueError(f"F&O catalogue: entity set {name} has no keys")
        properties = {str(k): dict(v) for k, v in (spec.get("properties") or {}).items()}
        for key in keys:
            properties.setdefault(key, {"type": "Edm.String", "nullable": False})
        type_name = str(spec.get("entity_type") or entity_type_name(name))
        if type_name.startswith(ENTITY_NS):
            type_name = type_name[len(ENTITY_NS) :]
        index_keys = ([COMPANY_KEY] if COMPANY_KEY in keys else []) + [k for k in keys if k != COMPANY_KEY]
        out[name] = EntityInfo(
            name=name,
            keys=keys,
            properties=properties,
            type_name=type_name,
            aot_entity=str(spec.get("aot_entity") or _AOT_ENTITIES.get(name) or f"{type_name}Entity"),
            index_keys=index_keys,
            property_set=frozenset(properties),
            defaults={
                prop: value
                for prop, spec in properties.items()
                if spec.get("nullable") is False
                and prop not in keys
                and (value := _default_value(spec, enum_types)) is not None
            },
        )
    return out


KeyTuple = tuple[Any, ...]


@dataclass
class EntityTable:
    """One entity set's rows (all access under the store lock)."""

    info: EntityInfo
    rows: dict[KeyTuple, dict[str, Any]] = field(default_factory=dict)
    versions: dict[KeyTuple, int] = field(default_factory=dict)
    _sorted: list[KeyTuple] | None = None

    def sorted_keys(self) -> list[KeyTuple]:
        """Normalised key tuples in ascending order: the stable order behind `$skip` paging."""
        if self._sorted is None:
            self._sorted = sorted(self.rows)
        return self._sorted

    def company_range(self, company: str | None) -> tuple[int, int]:
        """[lo, hi) of `sorted_keys()` holding one company's rows (all rows when None or the
        entity is shared between companies)."""
        keys = self.sorted_keys()
        if company is None or not self.info.per_company:
            return 0, len(keys)
        norm = company.casefold()
        lo = bisect.bisect_left(keys, (norm,))
        hi = bisect.bisect_left(keys, (norm + "\x00",), lo)
        return lo, hi

    def etag(self, nkey: KeyTuple) -> str:
        return f'W/"{self.versions[nkey]}"'


class FinOpsStore:
    """Thread-safe in-memory F&O entity sets.

    Keys are given as dicts of key property → value (`{"dataAreaId": "usmf", "CustomerAccount":
    "C1"}`); `dataAreaId` defaults to `default_company` when a key dict or row leaves it out.
    """

    def __init__(self, catalogue: Any, default_company: str = "usmf") -> None:
        raw = catalogue_dict(catalogue)
        self.entities: dict[str, EntityInfo] = build_entities(raw)
        self.enum_types: dict[str, dict[str, int]] = {
            str(k): {str(m): int(v) for m, v in members.items()}
            for k, members in (raw.get("enum_types") or {}).items()
        }
        self.default_company = default_company.lower()
        self.lock = threading.RLock()
        self._tables = {name: EntityTable(info) for name, info in self.entities.items()}
        self._version = 1000
        self._journal: list[tuple[str, KeyTuple, dict[str, Any] | None, int | None]] | None = None

    # ------------------------------------------------------------------------------ addressing
    def table(self, entity_set: str) -> EntityTable:
        """The table of an entity set; KeyError when the catalogue has no such set."""
        return self._tables[entity_set]

    @property
    def version(self) -> int:
        """The latest ETag number handed out (changes on every write)."""
        return self._version

    def key_tuple(self, info: EntityInfo, values: Mapping[str, Any]) -> KeyTuple:
        """Normalised index tuple of a key dict or row; MissingKey when a key value is absent."""
        out: list[Any] = []
        for name in info.index_keys:
            value = values.get(name)
            if value is None and name == COMPANY_KEY:
                value = self.default_company
            if value is None:
                raise MissingKey(info.name, name)
            out.append(norm_key_value(value))
        return tuple(out)

    def key_dict(self, info: EntityInfo, row: Mapping[str, Any]) -> dict[str, Any]:
        """The key properties of a row as stored (original spelling), in the entity's key order."""
        return {k: row.get(k) for k in info.keys}

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
        while len(journal) > mark:
            set_name, nkey, old_row, old_version = journal.pop()
            table = self._tables[set_name]
            if old_row is None:
                table.rows.pop(nkey, None)
                table.versions.pop(nkey, None)
            else:
                table.rows[nkey] = old_row
                table.versions[nkey] = old_version if old_version is not None else self._next()
            table._sorted = None

    def _journal_row(self, table: EntityTable, nkey: KeyTuple) -> None:
        if self._journal is not None:
            self._journal.append((table.info.name, nkey, table.rows.get(nkey), table.versions.get(nkey)))

    def _next(self) -> int:
        self._version += 1
        return self._version

    # ------------------------------------------------------------------------------ core writes
    def _prepare(self, info: EntityInfo, row: Mapping[str, Any]) -> dict[str, Any]:
        """A new row as stored: defaults filled, company lower-case, annotations dropped."""
        data = {**info.defaults, **row} if info.defaults else dict(row)
        if info.per_company:
            company = data.get(COMPANY_KEY)
            data[COMPANY_KEY] = str(company).lower() if company is not None else self.default_company
        for key in info.keys:
            if data.get(key) is None:
                raise MissingKey(info.name, key)
        for name in [k for k in data if "@" in k]:
            del data[name]  # annotations (`@odata.etag`, `x@odata.type`) are not columns
        return data

    def insert(self, entity_set: str, row: Mapping[str, Any]) -> None:
        """Create a row; DuplicateKey when its key exists, MissingKey when a key is absent."""
        with self.lock:
            table = self._tables[entity_set]
            data = self._prepare(table.info, row)
            nkey = self.key_tuple(table.info, data)
            if nkey in table.rows:
                raise DuplicateKey(entity_set, self.key_dict(table.info, table.rows[nkey]))
            self._journal_row(table, nkey)
            table.rows[nkey] = data
            table.versions[nkey] = self._next()
            if table._sorted is not None:
                bisect.insort(table._sorted, nkey)

    def update(self, entity_set: str, key: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        """Change properties of an existing row (new ETag); KeyError when missing.

        Key properties in `changes` must keep their value (case may differ); F&O does not rename.
        """
        with self.lock:
            table = self._tables[entity_set]
            nkey = self.key_tuple(table.info, key)
            current = table.rows.get(nkey)
            if current is None:
                raise KeyError(dict(key))
            data = {**current, **{k: v for k, v in changes.items() if "@" not in k}}
            if table.info.per_company:
                data[COMPANY_KEY] = current[COMPANY_KEY]
            if self.key_tuple(table.info, data) != nkey:
                raise ValueError(f"{entity_set}: key properties cannot be changed")
            self._journal_row(table, nkey)
            table.rows[nkey] = data
            table.versions[nkey] = self._next()

    def delete(self, entity_set: str, key: Mapping[str, Any]) -> None:
        """Delete a row; KeyError when missing."""
        with self.lock:
            table = self._tables[entity_set]
            nkey = self.key_tuple(table.info, key)
            if nkey not in table.rows:
                raise KeyError(dict(key))
            self._journal_row(table, nkey)
            del table.rows[nkey]
            del table.versions[nkey]
            if table._sorted is not None:
                idx = bisect.bisect_left(table._sorted, nkey)
                if idx < len(table._sorted) and table._sorted[idx] == nkey:
                    del table._sorted[idx]

    # ------------------------------------------------------------------------------ reads
    def get(self, entity_set: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """A copy of the row with this key, or None."""
        with self.lock:
            table = self._tables[entity_set]
            row = table.rows.get(self.key_tuple(table.info, key))
            return dict(row) if row is not None else None

    def etag(self, entity_set: str, key: Mapping[str, Any]) -> str | None:
        """The row's `@odata.etag` (`W/"<n>"`), or None when missing."""
        with self.lock:
            table = self._tables[entity_set]
            version = table.versions.get(self.key_tuple(table.info, key))
            return f'W/"{version}"' if version is not None else None

    def rows(self, entity_set: str, company: str | None = None) -> list[dict[str, Any]]:
        """Copies of the rows in key order; only one company's when `company` is given."""
        with self.lock:
            table = self._tables[entity_set]
            keys = table.sorted_keys()
            lo, hi = table.company_range(company)
            return [dict(table.rows[k]) for k in keys[lo:hi]]

    def count(self, entity_set: str, company: str | None = None) -> int:
        """Rows in the set (of one company when given)."""
        with self.lock:
            table = self._tables[entity_set]
            if company is None or not table.info.per_company:
                return len(table.rows)
            lo, hi = table.company_range(company)
            return hi - lo

    def load_rows(self, entity_set: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Bulk insert (seed data), no journal; returns the number stored.

        Not atomic: a duplicate or keyless row raises after the rows before it were stored.
        """
        count = 0
        with self.lock:
            table = self._tables[entity_set]
            info = table.info
            store_rows = table.rows
            versions = table.versions
            try:
                for source in rows:
                    data = self._prepare(info, source)
                    nkey = self.key_tuple(info, data)
                    if nkey in store_rows:
                        raise DuplicateKey(entity_set, self.key_dict(info, store_rows[nkey]))
                    store_rows[nkey] = data
                    self._version += 1
                    versions[nkey] = self._version
                    count += 1
            finally:
                table._sorted = None
        # Seed rows live for the whole run and hold no cycles: keep full GC passes off page reads.
        gc.freeze()
        return count

    def clear(self) -> None:
        """Drop all rows (catalogue kept)."""
        with self.lock:
            for table in self._tables.values():
                table.rows.clear()
                table.versions.clear()
                table._sorted = None

    # ------------------------------------------------------------------------------ persistence
    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of the whole state (rows with their ETag numbers)."""
        with self.lock:
            return {
                "version": self._version,
                "entity_sets": {
                    name: {
                        "rows": copy.deepcopy(list(t.rows.values())),
                        "versions": [t.versions[k] for k in t.rows],
                    }
                    for name, t in self._tables.items()
                    if t.rows
                },
            }

    def restore(self, state: Mapping[str, Any]) -> None:
        """Replace the whole state with a `snapshot()` (unknown entity sets are skipped)."""
        with self.lock:
            self.clear()
            for name, data in (state.get("entity_sets") or {}).items():
                table = self._tables.get(name)
                if table is None:
                    continue
                rows = data.get("rows") or []
                versions = data.get("versions") or []
                for idx, row in enumerate(rows):
                    nkey = self.key_tuple(table.info, row)
                    table.rows[nkey] = dict(row)
                    table.versions[nkey] = int(versions[idx]) if idx < len(versions) else self._next()
            self._version = max(int(state.get("version", self._version)), self._version)
