"""Typed view of the schema catalogue (`sandbox/schemas/{dataverse,finops}.json`).

The mapping loader validates every YAML field against the real entity names before any run starts,
so a typo or a read-only target fails at deploy time with the file, task and field named, instead
of as thousands of per-record service errors. The catalogue files are the single source of those
names (format in docs/internals.md); this module only parses them, it never guesses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
OPTION_TYPES = frozenset({"Picklist", "State", "Status"})
ENUM_PREFIX = "Microsoft.Dynamics.DataEntities."


class CatalogueError(KeyError):
    """A table, entity set or catalogue file the caller asked for does not exist."""

    def __str__(self) -> str:  # KeyError quotes its argument; a sentence reads better
        return str(self.args[0]) if self.args else "catalogue error"


@dataclass(frozen=True)
class ColumnSpec:
    """One Dataverse column: its attribute type and the limits a written value must respect."""

    name: str
    type: str
    max_length: int | None = None
    writable: bool = True
    required: bool = False
    options: dict[int, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    bind: dict[str, str] = field(default_factory=dict)
    precision: int | None = None
    min: float | None = None
    max: float | None = None

    @property
    def is_lookup(self) -> bool:
        return self.type in LOOKUP_TYPES

    @property
    def read_name(self) -> str:
        """The property name on the wire when read: lookups come back as `_<col>_value`."""
        return f"_{self.name}_value" if self.is_lookup else self.name


@dataclass(frozen=True)
class DataverseTable:
    """One Dataverse table as the catalogue describes it."""

    logical_name: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    supports_multiple: bool
    columns: dict[str, ColumnSpec]
    alternate_keys: dict[str, list[str]]

    def column_by_read_name(self, name: str) -> ColumnSpec | None:
        """Find a column by logical name or by its `_<col>_value` wire name."""
        if name in self.columns:
            return self.columns[name]
        if name.startswith("_") and name.endswith("_value"):
            column = self.columns.get(name[1:-6])
            if column is not None and column.is_lookup:
                return column
        return None

    def bind_names(self) -> dict[str, tuple[str, str]]:
        """Navigation property → (lookup column, target table) for every `@odata.bind` name."""
        out: dict[str, tuple[str, str]] = {}
        for column in self.columns.values():
            if not column.is_lookup:
                continue
            if column.bind:
                for target, nav in column.bind.items():
                    out[nav] = (column.name, target)
            elif len(column.targets) == 1:
                out[column.name] = (column.name, column.targets[0])
        return out


@dataclass(frozen=True)
class PropertySpec:
    """One F&O OData property: EDM type (or enum type), nullability and length limit."""

    name: str
    type: str
    nullable: bool = True
    max_length: int | None = None
    writable: bool = True

    @property
    def enum_name(self) -> str | None:
        """`NoYes` for `Microsoft.Dynamics.DataEntities.NoYes`; None for EDM primitive types."""
        if self.type.startswith(ENUM_PREFIX):
            return self.type[len(ENUM_PREFIX) :]
        return None


@dataclass(frozen=True)
class FinOpsEntitySet:
    """One F&O OData entity set: its key properties and all properties."""

    name: str
    keys: list[str]
    properties: dict[str, PropertySpec]


@dataclass
class Catalogue:
    """Both services' schemas; built by `load_catalogue` or directly from dicts in tests."""

    dataverse: dict[str, DataverseTable]
    finops: dict[str, FinOpsEntitySet]
    enum_types: dict[str, dict[str, int]]
    _by_set: dict[str, DataverseTable] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_set = {table.entity_set: table for table in self.dataverse.values()}

    @classmethod
    def from_dicts(cls, dataverse: Mapping[str, Any], finops: Mapping[str, Any]) -> Catalogue:
        """Parse the two catalogue documents (the JSON shapes in docs/internals.md)."""
        tables = {name: _table(name, spec) for name, spec in (dataverse.get("tables") or {}).items()}
        sets = {name: _entity_set(name, spec) for name, spec in (finops.get("entity_sets") or {}).items()}
        enums = {
            name: {str(member): int(value) for member, value in members.items()}
            for name, members in (finops.get("enum_types") or {}).items()
        }
        return cls(tables, sets, enums)

    def dataverse_table(self, logical: str) -> DataverseTable:
        try:
            return self.dataverse[logical]
        except KeyError:
            raise CatalogueError(f"unknown Dataverse table {logical!r}") from None

    def dataverse_table_by_set(self, entity_set: str) -> DataverseTable:
        try:
            return self._by_set[entity_set]
        except KeyError:
            raise CatalogueError(f"unknown Dataverse entity set {entity_set!r}") from None

    def dataverse_table_names(self) -> list[str]:
        return sorted(self.dataverse)

    def finops_entity_set(self, name: str) -> FinOpsEntitySet:
        try:
            return self.finops[name]
        except KeyError:
            raise CatalogueError(f"unknown F&O entity set {name!r}") from None

    def finops_entity_set_names(self) -> list[str]:
        return sorted(self.finops)

    def enum_members(self, enum_name: str) -> dict[str, int]:
        """Members of an F&O enum type; empty when the catalogue does not describe it."""
        return self.enum_types.get(enum_name, {})


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _float_or_none(value: Any) -> float | None:
    return float(value) if value is not None else None


def _table(logical: str, spec: Mapping[str, Any]) -> DataverseTable:
    columns: dict[str, ColumnSpec] = {}
    for name, col in (spec.get("columns") or {}).items():
        columns[name] = ColumnSpec(
            name=name,
            type=str(col.get("type", "String")),
            max_length=_int_or_none(col.get("max_length")),
            writable=bool(col.get("writable", True)),
            required=bool(col.get("required", False)),
            options={int(k): str(v) for k, v in (col.get("options") or {}).items()},
            targets=tuple(col.get("targets") or ()),
            bind={str(k): str(v) for k, v in (col.get("bind") or {}).items()},
            precision=_int_or_none(col.get("precision")),
            min=_float_or_none(col.get("min")),
            max=_float_or_none(col.get("max")),
        )
    return DataverseTable(
        logical_name=logical,
        entity_set=str(spec.get("entity_set") or f"{logical}s"),
        primary_id=str(spec.get("primary_id") or f"{logical}id"),
        primary_name=spec.get("primary_name"),
        supports_multiple=bool(spec.get("supports_multiple", False)),
        columns=columns,
        alternate_keys={str(k): list(v) for k, v in (spec.get("alternate_keys") or {}).items()},
    )


def _entity_set(name: str, spec: Mapping[str, Any]) -> FinOpsEntitySet:
    props: dict[str, PropertySpec] = {}
    raw_props = spec.get("properties") or {}
    items = raw_props.items() if isinstance(raw_props, Mapping) else ((p["name"], p) for p in raw_props)
    for prop_name, prop in items:
        writable = bool(prop.get("writable", not prop.get("read_only", False)))
        props[prop_name] = PropertySpec(
            name=prop_name,
            type=str(prop.get("type", "Edm.String")),
            nullable=bool(prop.get("nullable", True)),
            max_length=_int_or_none(prop.get("max_length")),
            writable=writable,
        )
    return FinOpsEntitySet(name=name, keys=list(spec.get("keys") or []), properties=props)


def load_catalogue(directory: Path) -> Catalogue:
    """Read `dataverse.json` and `finops.json` from `directory` (P2C_SCHEMA_CATALOGUE_DIR)."""
    docs: dict[str, Any] = {}
    for service in ("dataverse", "finops"):
        path = Path(directory) / f"{service}.json"
        try:
            docs[service] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CatalogueError(f"schema catalogue file {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise CatalogueError(f"schema catalogue file {path} is not valid JSON: {exc}") from None
    return Catalogue.from_dicts(docs["dataverse"], docs["finops"])
