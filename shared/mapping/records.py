"""What mapping produces and what it needs from outside: results, the resolver port, the record hash.

Mapping is a pure function (row + context → record or failure). Anything that needs I/O, such as
finding a currency's ISO code from its GUID, is asked of the `ReferenceResolver` in the context,
which the engine backs with a per-run cache. A missing reference is an exception, not a failure
result, because the engine decides whether it defers the record (missing parent) or fails it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from shared.mapping.transforms import excerpt


class ReferenceMissing(Exception):
    """No `entity` row has `by` equal to `value` (yet): the record cannot be mapped now."""

    def __init__(self, entity: str, by: str, value: Any, field: str | None = None) -> None:
        super().__init__(entity, by, value)
        self.entity = entity
        self.by = by
        self.value = value
        #: the target field whose rule asked (set by the rule), so the error names it
        self.field = field
        #: the rule in words (look-up, value map…), so the error says what to fix
        self.rule: str | None = None

    def __str__(self) -> str:
        return f"no {self.entity} with {self.by} = {excerpt(self.value)}"


SYNCED_PREFIX = "synced:"
#: What a `synced:` look-up can match on (it returns target_key, target_id, source_key, origin or a
#: key field of the parent's target).
SYNCED_BY = ("source_key", "origin", "target_key")


def synced_entity(entity: str) -> tuple[str, str | None] | None:
    """`synced:accounts` → ("accounts", None); `synced:quotes.header` → ("quotes", "header")."""
    if not entity.startswith(SYNCED_PREFIX):
        return None
    name = entity[len(SYNCED_PREFIX) :]
    template, _, task = name.partition(".")
    return template, task or None


class ReferenceResolver(Protocol):
    """Look up reference data by natural key; raises `ReferenceMissing` when there is no match."""

    def resolve(self, entity: str, by: str, value: Any, return_field: str) -> Any: ...


@dataclass
class MapContext:
    """Per-run inputs of a mapping: the company (dataAreaId) being served and the resolver."""

    company: str
    resolver: ReferenceResolver


@dataclass
class MappedRecord:
    """A source row turned into a target write, plus the identity the crosswalk keeps for it."""

    source_key: str
    target_key: dict[str, Any]
    target_key_text: str
    payload: dict[str, Any]
    hash: str
    target_id: str | None = None
    source_id: str | None = None


@dataclass
class MappingFailure:
    """A row that cannot be written as it is; `reason` names the field, value excerpt and rule."""

    source_key: str | None
    field: str | None
    reason: str


#: The hash's JSON form. One encoder for every record: `json.dumps` with options builds a new one
#: per call. It holds no state between calls.
_HASH_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


#: Exact types whose values are their own canonical form (a subclass goes the long way).
_CANONICAL = frozenset({str, bool, int, type(None)})


def _canonical(value: Any) -> Any:
    """JSON-ready, representation-independent form: 10, 10.0 and Decimal('10.00') hash alike."""
    if type(value) in _CANONICAL:
        return value
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float | Decimal):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if number == number.to_integral_value():
            return int(number)
        return format(number.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        # most values are already canonical: no call for them (this runs for every record)
        return {str(k): v if type(v) in _CANONICAL else _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return str(value)


def record_hash(payload: dict[str, Any], target_key: dict[str, Any]) -> str:
    """sha256 of canonical JSON of payload + key; stable across processes (no hash seeds, sorted keys)."""
    document = {"key": _canonical(target_key), "payload": _canonical(payload)}
    return hashlib.sha256(_HASH_JSON.encode(document).encode("utf-8")).hexdigest()
