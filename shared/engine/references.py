"""Reference data look-ups for the mapper, cached for one run.

Mappings name references by entity and natural key (a currency by ISO code, a unit by name); the
cache loads each small reference table once per run (so a run sees reference changes made since
the previous one) and answers every later look-up from memory. A value that is not there raises
`ReferenceMissing`, which the pipeline turns into a per-record error naming the value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.mapping import ReferenceMissing

RowsLoader = Callable[[str, list[str]], Iterable[list[dict[str, Any]]]]


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().casefold()
    return value


class ReferenceCache:
    """`ReferenceResolver` over whole reference tables, loaded lazily, one load per (entity, field)."""

    def __init__(self, loaders: Mapping[str, RowsLoader], default_loader: RowsLoader | None = None) -> None:
        self._loaders = loaders
        self._default = default_loader
        self._indexes: dict[tuple[str, str, str], dict[Any, Any]] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def resolve(self, entity: str, by: str, value: Any, return_field: str) -> Any:
        if value is None or value == "":
            raise ReferenceMissing(entity, by, value)
        index = self._index(entity, by, return_field)
        found = index.get(_norm(value))
        if found is None:
            raise ReferenceMissing(entity, by, value)
        return found

    def _index(self, entity: str, by: str, return_field: str) -> dict[Any, Any]:
        key = (entity, by, return_field)
        with self._lock:
            cached = self._indexes.get(key)
            if cached is not None:
                return cached
            loader = self._loaders.get(entity, self._default)
            if loader is None:
                raise ReferenceMissing(entity, by, f"(no loader for reference entity {entity!r})")
            index: dict[Any, Any] = {}
            for rows in loader(entity, sorted({by, return_field})):
                for row in rows:
                    index.setdefault(_norm(row.get(by)), row.get(return_field))
            self.loads += 1
            self._indexes[key] = index
            return index
