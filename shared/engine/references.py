"""Reference data look-ups for the mapper, cached for one run.

Mappings name references by entity and natural key (a currency by ISO code, a unit by name); the
cache loads each small reference table once per run (so a run sees reference changes made since
the previous one) and answers every later look-up from memory. A value that is not there raises
`ReferenceMissing`, which the pipeline turns into a per-record error naming the value.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from shared.mapping import ReferenceMissing, synced_entity

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


@dataclass(frozen=True)
class SyncedTask:
    """Where a parent task's crosswalk lives and how its target key text splits into fields."""

    pair: str
    key_fields: tuple[str, ...]
    company_in_key: bool


class Parent(NamedTuple):
    """What a look-up can return about a synced parent: its crosswalk entry without hash or payload."""

    source_key: str
    target_key: str
    target_id: str
    origin: str


#: How a cached parent is held: its four fields joined by this character, one string instead of a
#: tuple of four strings (about 210 bytes a cached parent, its key and dict slot included, instead of
#: 385). A parent whose fields contain it (no real key does) is held as the `Parent` tuple itself.
_JOIN = "\x00"


def _packed(parent: Parent) -> Parent | str:
    """The form a parent is cached in: at 200,000 lines the cache is a run's largest memory user."""
    if any(_JOIN in part for part in parent):
        return parent
    return _JOIN.join(parent)


def _unpacked(held: Parent | str) -> Parent:
    if isinstance(held, str):
        source_key, target_key, target_id, origin = held.split(_JOIN)
        return Parent(source_key, target_key, target_id, origin)
    return held


#: Parents found on earlier pages that are kept for later ones. The pages of one run name the same
#: customers and orders again and again, so keeping them saves look-ups; but an initial load of a
#: million lines would name hundreds of thousands of orders, so the cache is bounded: once it holds
#: this many, the next page starts a new generation and only parents named again are carried over.
PARENT_CACHE_ENTRIES = 50_000

_Scope = tuple[str, str, str]  # (company, entity, by)


class SyncedRecords:
    """`synced:<template>[.<task>]` look-ups: is the parent record synced, and under which key?

    Backed by the crosswalk, not the target service: a parent that was written in this run or an
    earlier one is found with one batched Table query per page (see `prefetch`), and a parent that
    is not there yet raises `ReferenceMissing`, which the pipeline turns into a deferral.
    """

    def __init__(
        self,
        crosswalk: Any,
        tasks: Callable[[str, str | None], SyncedTask],
        *,
        cache_entries: int = PARENT_CACHE_ENTRIES,
    ) -> None:
        self._crosswalk = crosswalk
        self._tasks = tasks
        self._cache_entries = cache_entries
        # two generations of found parents (see PARENT_CACHE_ENTRIES), by (company, entity, by)
        self._recent: dict[_Scope, dict[str, Parent | str]] = {}
        self._older: dict[_Scope, dict[str, Parent | str]] = {}
        # values the current page's prefetch asked for and did not find: asking the crosswalk again
        # for each of them while the page is mapped (one query per record) cannot find them either,
        # as nothing is written between a page's prefetch and its mapping
        self._misses: set[tuple[str, str, str, str]] = set()
        self._lock = threading.Lock()

    @staticmethod
    def _size(generation: Mapping[_Scope, Mapping[str, Parent | str]]) -> int:
        # one dict per company, entity and look-up kind: a handful, so counting is cheap
        return sum(len(found) for found in generation.values())

    @property
    def cached(self) -> int:
        """Parents held in memory (both generations)."""
        return self._size(self._recent) + self._size(self._older)

    def start_page(self) -> None:
        """A new page (or retry batch) begins: what was missing before may have been written since."""
        with self._lock:
            self._misses.clear()
            if self._size(self._recent) >= self._cache_entries:
                self._older, self._recent = self._recent, {}

    def _cached(self, scope: _Scope, value: str) -> Parent | None:
        held = self._recent.get(scope, {}).get(value)
        if held is None:
            held = self._older.get(scope, {}).get(value)
            if held is not None:
                self._keep(scope, {value: held})
        return None if held is None else _unpacked(held)

    def _keep(self, scope: _Scope, found: Mapping[str, Parent | str]) -> None:
        with self._lock:
            self._recent.setdefault(scope, {}).update(found)

    def prefetch(self, company: str, entity: str, by: str, values: Iterable[Any]) -> None:
        template, task = _split(entity)
        synced = self._tasks(template, task)
        scope = (company, entity, by)
        wanted = [text for text in {str(v) for v in values} if self._cached(scope, text) is None]
        if not wanted:
            return
        if by == "origin":
            found = self._crosswalk.by_origin_many(synced.pair, company, wanted)
        elif by == "target_key":
            # F&O target keys start with the company: callers give the rest (e.g. "SO-1|3")
            prefix = f"{company}|" if synced.company_in_key else ""
            hits = self._crosswalk.by_target_many(synced.pair, company, [prefix + w for w in wanted])
            found = {key[len(prefix) :]: entry for key, entry in hits.items()}
        else:
            found = {
                k: e
                for k, e in self._crosswalk.get_many(synced.pair, company, wanted).items()
                if not e.deleted
            }
        self._keep(
            scope,
            {v: _packed(Parent(e.source_key, e.target_key, e.target_id, e.origin)) for v, e in found.items()},
        )
        with self._lock:
            self._misses.update((company, entity, by, v) for v in wanted if v not in found)

    def resolve(self, company: str, entity: str, by: str, value: Any, return_field: str) -> Any:
        scope, text = (company, entity, by), str(value)
        entry = self._cached(scope, text)
        if entry is None and (company, entity, by, text) not in self._misses:
            self.prefetch(company, entity, by, [value])
            entry = self._cached(scope, text)
        if entry is None:
            raise ReferenceMissing(entity, by, value)
        if return_field == "target_key":
            return entry.target_key
        if return_field == "target_id":
            return entry.target_id
        if return_field == "source_key":
            return entry.source_key
        if return_field == "origin":
            if not entry.origin:
                raise ReferenceMissing(entity, f"{by} (no origin id recorded)", value)
            return entry.origin
        template, task = _split(entity)
        synced = self._tasks(template, task)
        parts = entry.target_key.split("|")
        if synced.company_in_key:
            parts = parts[1:]
        try:
            return parts[synced.key_fields.index(return_field)]
        except (ValueError, IndexError):
            raise ReferenceMissing(entity, f"{by} (no key field {return_field!r})", value) from None


def _split(entity: str) -> tuple[str, str | None]:
    parsed = synced_entity(entity)
    if parsed is None:
        raise ValueError(f"not a synced look-up: {entity!r}")
    return parsed


class RunResolver:
    """One run's resolver: reference tables through `ReferenceCache`, parents through `SyncedRecords`."""

    def __init__(self, references: ReferenceCache, synced: SyncedRecords) -> None:
        self.references = references
        self.synced = synced

    def for_company(self, company: str) -> CompanyResolver:
        return CompanyResolver(self, company)


class CompanyResolver:
    """The `ReferenceResolver` a mapping sees while one company is being served."""

    def __init__(self, run: RunResolver, company: str) -> None:
        self._run = run
        self.company = company

    def resolve(self, entity: str, by: str, value: Any, return_field: str) -> Any:
        if synced_entity(entity) is not None:
            return self._run.synced.resolve(self.company, entity, by, value, return_field)
        return self._run.references.resolve(entity, by, value, return_field)

    def prefetch(self, requests: Mapping[tuple[str, str], Iterable[Any]]) -> None:
        """Parents of one page's records, fetched in batches before the page is mapped."""
        self._run.synced.start_page()
        for (entity, by), values in requests.items():
            if synced_entity(entity) is not None:
                self._run.synced.prefetch(self.company, entity, by, values)
