"""Per-table view of the Dataverse schema catalogue, shaped for the stand-in's hot paths.

The catalogue JSON (`sandbox/schemas/dataverse.json`, format in docs/internals.md) is parsed once
into `TableInfo` objects: readable property names (lookups as `_<col>_value`), the `@odata.bind`
navigation properties, alternate keys, and the entity set ↔ logical name maps. Store and app both
use it, so they agree on naming.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandbox.catalogue import catalogue_section

LOOKUP_TYPES = frozenset({"Lookup", "Customer", "Owner"})
CRM_NS = "Microsoft.Dynamics.CRM."


@dataclass
class TableInfo:
    """Everything the stand-in needs to know about one table."""

    logical: str
    entity_set: str
    primary_id: str
    primary_name: str | None
    columns: dict[str, dict[str, Any]]
    alternate_keys: dict[str, list[str]]
    supports_multiple: bool
    # navigation property used in `<nav>@odata.bind` → (lookup column, target logical name)
    binds: dict[str, tuple[str, str]] = field(default_factory=dict)
    # names a client can read/filter/select: primary id, plain columns, `_<lookup>_value`
    readable: list[str] = field(default_factory=list)
    readable_set: frozenset[str] = frozenset()

    @property
    def type_name(self) -> str:
        return CRM_NS + self.logical

    def lookup_columns(self) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.get("type") in LOOKUP_TYPES]


def read_name(column: str, spec: Mapping[str, Any]) -> str:
    """The name a column has on the wire when read: lookups are `_<col>_value`."""
    return f"_{column}_value" if spec.get("type") in LOOKUP_TYPES else column


def catalogue_dict(catalogue: Any) -> Mapping[str, Any]:
    """The dataverse part of the catalogue, however it is handed over (see `catalogue_section`)."""
    return catalogue_section(catalogue, "dataverse")


def build_tables(catalogue: Any) -> dict[str, TableInfo]:
    """Entity set name → TableInfo for every table of the catalogue."""
    raw = catalogue_dict(catalogue)
    tables: dict[str, TableInfo] = {}
    for logical, spec in raw.get("tables", {}).items():
        columns: dict[str, dict[str, Any]] = {k: dict(v) for k, v in spec.get("columns", {}).items()}
        primary_id = spec.get("primary_id") or f"{logical}id"
        info = TableInfo(
            logical=logical,
            entity_set=spec.get("entity_set") or f"{logical}s",
            primary_id=primary_id,
            primary_name=spec.get("primary_name"),
            columns=columns,
            alternate_keys={k: list(v) for k, v in (spec.get("alternate_keys") or {}).items()},
            supports_multiple=bool(spec.get("supports_multiple", False)),
        )
        readable: dict[str, None] = {primary_id: None}
        for name, col in columns.items():
            readable[read_name(name, col)] = None
            if col.get("type") in LOOKUP_TYPES:
                targets = list(col.get("targets") or [])
                bind = dict(col.get("bind") or {})
                if not bind and len(targets) == 1:
                    bind = {targets[0]: name}
                for target, nav in bind.items():
                    info.binds[nav] = (name, target)
        info.readable = list(readable)
        info.readable_set = frozenset(readable)
        tables[info.entity_set] = info
    return tables
