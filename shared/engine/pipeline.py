"""The sync loop of one task for one company: read → map → skip unchanged → write → record → checkpoint.

Order matters for crash safety (design.md §3): the checkpoint is saved only after every page it
covers has been written and recorded (crosswalk or retry store). A crash anywhere before that
leaves the old checkpoint, and the next run re-reads the same changes; deterministic target keys
(F&O natural keys, Dataverse UUIDv5 ids) and the create/update fallbacks make the replay converge
without duplicates.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from shared.engine.filters import Predicate
from shared.engine.ports import PlannedWrite, RetireRequest, Source, SourcePage, Target, WriteResult
from shared.engine.readahead import ReadAhead
from shared.engine.scope import RunScope
from shared.engine.seen_keys import SeenKeys
from shared.engine.values import same_value
from shared.mapping import (
    MapContext,
    MappedRecord,
    MappingFailure,
    ReferenceMissing,
    TaskMapping,
    synced_entity,
)
from shared.odata.errors import NotFound
from shared.state import Checkpoint, CrosswalkEntry, ErrorRecord

log = logging.getLogger("p2c.engine")

RETRY_BATCH = 100
PAYLOAD_EXCERPT_CHARS = 1500


@dataclass
class TaskSpecView:
    """What the pipeline needs to know about one task, resolved once from the mapping."""

    template: str
    task: str
    pair: str
    company: str
    mapping: TaskMapping
    source: Source
    target: Target
    selects: Predicate
    source_id_field: str | None = None
    delete_policy: str = "ignore"
    parent_entities: frozenset[str] = frozenset()
    #: another task looks this task's records up by target key: keep reverse crosswalk rows
    index_target_keys: bool = True
    #: a rule looks up records of this same task: write each page before mapping the next
    looks_itself_up: bool = False


@dataclass
class TaskResult:
    task: str
    company: str
    cursor_before: str | None
    cursor_after: str | None
    restarted: bool = False
    notes: list[str] = field(default_factory=list)
    #: this task's share of the run's counters (read, written, unchanged, failed, deferred, ...)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class OpenedSource:
    """A task's source being read ahead, with the checkpoint its cursor came from."""

    checkpoint: Checkpoint
    cursor: str | None
    reader: ReadAhead[SourcePage]

    @property
    def pages(self) -> Iterator[SourcePage]:
        return iter(self.reader)

    def close(self) -> None:
        self.reader.close()


def open_source(scope: RunScope, spec: TaskSpecView) -> OpenedSource:
    """Load the task's checkpoint and start reading its source from there, in the background."""
    checkpoint = scope.state.checkpoints.load(spec.template, spec.task, spec.company)
    cursor = None if scope.mode == "full" else checkpoint.cursor
    return OpenedSource(checkpoint, cursor, ReadAhead(spec.source.read(cursor, spec.company)).start())


class TaskPipeline:
    """Runs one task for one company inside a run scope (lock, budget, counters, report)."""

    def __init__(self, scope: RunScope, spec: TaskSpecView) -> None:
        self.scope = scope
        self.spec = spec
        self._seen_keys = SeenKeys()
        # keys two source records share in this run: their error stays open even though one was written
        self._duplicates: set[str] = set()
        # keys already handled by this run's read: a due retry of one of them would only repeat it
        self._handled: set[str] = set()
        self._open_errors: set[str] = scope.open_error_keys(spec.task, spec.company)
        self._resolver = scope.resolver.for_company(spec.company)
        # True while this run may skip crosswalk look-ups: see `_crosswalk_empty`
        self._empty_at_start: bool | None = False
        # planned writes held back to fill the next page's first bulk request: see `_write`
        self._held: dict[str, PlannedWrite] = {}

    # -- the loop ---------------------------------------------------------------------------------

    def run(self, opened: OpenedSource | None = None) -> TaskResult:
        """Read, map and write every page, then retry what is due and save the checkpoint.

        ``opened``: this task's source, opened (and its first page fetched) by the runner while
        the previous task was still writing; opened here otherwise.
        """
        scope, spec = self.scope, self.spec
        source = opened if opened is not None else open_source(scope, spec)
        checkpoint, cursor = source.checkpoint, source.cursor
        result = TaskResult(spec.task, spec.company, checkpoint.cursor, None)
        counts_before = scope.counts.as_dict()
        self._empty_at_start = None if cursor is None else False
        completed_cursor: str | None = None
        try:
            # the next page is read while this one is mapped and written (see readahead.py)
            for page in source.pages:
                scope.guard()
                if page.restarted and not result.restarted:
                    result.restarted = True
                    result.notes.append("change token expired: full re-read, compared by hash")
                self.process_rows(page.rows)
                self.process_deletes(page.deleted_ids)
                if page.cursor is not None:
                    completed_cursor = page.cursor
        finally:
            source.close()
        scope.guard()
        self._flush()
        self.retry_due()
        if completed_cursor is not None and not scope.dry_run:
            scope.guard()  # a run that lost its lease must not move the checkpoint
            checkpoint.cursor = completed_cursor
            checkpoint.updated_at = scope.now()
            scope.state.checkpoints.save(checkpoint)
        result.cursor_after = completed_cursor if completed_cursor is not None else checkpoint.cursor
        result.counts = {k: v - counts_before.get(k, 0) for k, v in scope.counts.as_dict().items()}
        return result

    # -- one page -------------------------------------------------------------------------------

    def process_rows(self, rows: Sequence[dict[str, Any]], retrying: bool = False) -> None:
        scope, spec = self.scope, self.spec
        mapped: dict[str, MappedRecord] = {}
        deselected: list[str] = []
        selected = [spec.selects(row) for row in rows]
        # parents of this page's selected records, found with one crosswalk query per parent task
        # and 14 values (rows the template does not select are never mapped: their parents would
        # cost look-ups for nothing)
        chosen_rows = [row for row, chosen in zip(rows, selected, strict=True) if chosen]
        self._resolver.prefetch(spec.mapping.lookup_requests(chosen_rows))
        for row, chosen in zip(rows, selected, strict=True):
            scope.counts.add(read=1, retried=1 if retrying else 0)
            if not chosen:
                key = self._key_hint(row)
                self._supersede(key, row)
                if key in self._open_errors:
                    self._resolve(key, "no longer selected by the template's source filter")
                if spec.mapping.deselect_policy != "ignore":
                    deselected.append(key)
                continue
            if not retrying and self._open_errors:
                hint = self._key_hint(row)
                if hint in self._open_errors:  # only keys the retry store could hand back
                    self._handled.add(hint)
            record = self._map(row)
            if record is None:
                continue
            duplicate_of = self._seen_keys.first_id(record.source_key)
            source_id = self._source_id(row)
            if duplicate_of is not None and source_id is not None and duplicate_of != source_id:
                self._fail(
                    record.source_key,
                    row,
                    "DuplicateSourceKey",
                    f"natural key {record.source_key!r} is used by two source records "
                    f"({duplicate_of} and {source_id}); the first one was synced, fix the duplicate",
                    field_name=None,
                )
                self._duplicates.add(record.source_key)
                continue
            if source_id is not None:
                self._seen_keys.add(record.source_key, source_id)
            if self._held:
                self._supersede(record.source_key, row)
            mapped[record.source_key] = record
        if deselected and not self._crosswalk_empty():
            found = scope.state.crosswalk.get_many(spec.pair, spec.company, deselected)
            live = [e for e in found.values() if not e.deleted]
            self._retire(
                live, spec.mapping.deselect_policy, "no longer selected by the template's source filter"
            )
        if not mapped:
            return
        existing = {} if self._crosswalk_empty() else scope.state.crosswalk.get_many(
            spec.pair, spec.company, list(mapped)
        )
        plans: list[PlannedWrite] = []
        for key, record in mapped.items():
            entry = existing.get(key)
            if entry is not None and entry.hash == record.hash and not entry.deleted:
                scope.counts.add(unchanged=1)
                if key in self._open_errors:
                    self._resolve(key, "target already up to date")
                continue
            plans.append(
                PlannedWrite(
                    source_key=key,
                    target_key=record.target_key,
                    target_key_text=record.target_key_text,
                    payload=record.payload,
                    hash=record.hash,
                    exists=entry is not None and not entry.deleted,
                    target_id=entry.target_id if entry is not None and entry.target_id else record.target_id,
                    source_id=record.source_id,
                    last_payload=entry.payload if entry is not None else "",
                )
            )
        if not plans:
            return
        if scope.dry_run:
            for plan in plans:
                scope.report(
                    "would_update" if plan.exists else "would_create", plan.source_key, payload=plan.payload
                )
                scope.counts.add(written=0)
            scope.dry_run_plans.extend((spec.task, spec.company, plan) for plan in plans)
            return
        self._write(plans)

    # -- writing --------------------------------------------------------------------------------

    def _write(self, plans: Sequence[PlannedWrite]) -> None:
        """Write whole bulk requests now; hold the remainder back to fill the next page's first one.

        A page rarely maps to a multiple of the target's request size (filters skip rows, pages
        hold 5,000 rows), so writing every page out in full would end each one with a part-filled
        request: 68 F&O pages cost 293 UpsertMultiple calls for a minimum of 244. Held records
        are written by a later page or by `_flush` before the retries and the checkpoint, so the
        checkpoint still covers only records that were written or recorded. A later source event
        for a held record replaces it (`_supersede`); one request never carries a key twice.
        """
        if self.spec.looks_itself_up:
            self._send(plans)
            return
        for plan in plans:
            self._held[plan.source_key] = plan
        unit = max(1, self.spec.target.write_unit)
        ready = len(self._held) // unit * unit
        if not ready:
            return
        held = list(self._held.values())
        self._held = {plan.source_key: plan for plan in held[ready:]}
        self._send(held[:ready])

    def _flush(self) -> None:
        """Write what `_write` held back: the source is read to its end (or the retries are done)."""
        if self._held:
            held, self._held = list(self._held.values()), {}
            self._send(held)

    def _send(self, plans: Sequence[PlannedWrite]) -> None:
        scope, spec = self.scope, self.spec
        scope.guard()
        if spec.mapping.record_conflicts:
            self._report_conflicts([p for p in plans if p.exists and p.last_payload])
        results = spec.target.write(plans)
        self._record_results(plans, results)

    def _supersede(self, key: str, row: dict[str, Any]) -> None:
        """Drop a held write of this record: a later row of it was read, and that row decides.

        The held version never reached the target, so the crosswalk still says what the target
        holds, and the later row is compared with it as usual. A row of another source record
        that shares the natural key (a duplicate) does not replace the first one.
        """
        held = self._held.get(key)
        if held is None:
            return
        source_id = self._source_id(row)
        if held.source_id is None or source_id is None or held.source_id == source_id:
            del self._held[key]

    def _report_conflicts(self, updates: Sequence[PlannedWrite]) -> None:
        """Both sides changed a record since the last sync: say which target edits this write loses.

        The target is read just before the write; a field whose current value differs from what
        p2c-sync last wrote was edited on the target side, and if the new value differs too, that
        edit is about to be overwritten. It is reported (never silently dropped) and the write
        goes ahead: the template's selection rules decide which side owns a record.
        """
        if not updates:
            return
        scope = self.scope
        current = self.spec.target.current(updates)
        for plan in updates:
            row = current.get(plan.source_key)
            if row is None:
                continue
            try:
                last = json.loads(plan.last_payload)
            except ValueError:
                continue
            lost = {
                name: row.get(name)
                for name, new in plan.payload.items()
                if "@" not in name
                and name in last
                and name in row
                and not same_value(row.get(name), last[name])
                and not same_value(row.get(name), new)
            }
            if lost:
                scope.counts.add(conflicts=1)
                scope.report(
                    "conflict_lost",
                    plan.source_key,
                    message="changed on the target since the last sync and overwritten by the source",
                    fields=lost,
                )

    def _record_results(self, plans: Sequence[PlannedWrite], results: Iterable[WriteResult]) -> None:
        scope, spec = self.scope, self.spec
        by_key = {plan.source_key: plan for plan in plans}
        entries: list[CrosswalkEntry] = []
        now = scope.now()
        seen: set[str] = set()
        for res in results:
            plan = by_key.get(res.source_key)
            if plan is None:
                continue
            seen.add(res.source_key)
            if res.ok:
                created = bool(res.created) if res.created is not None else not plan.exists
                scope.counts.add(written=1, created=1 if created else 0, updated=0 if created else 1)
                entries.append(
                    CrosswalkEntry(
                        source_key=plan.source_key,
                        target_key=plan.target_key_text,
                        target_id=res.target_id or plan.target_id or "",
                        hash=plan.hash,
                        synced_at=now,
                        origin=plan.source_id or "",
                        payload=_payload_json(plan.payload) if spec.mapping.record_conflicts else "",
                    )
                )
                scope.report("created" if created else "updated", plan.source_key)
                if plan.source_key in self._open_errors:
                    self._resolve(plan.source_key, "written")
            else:
                error = res.error or RuntimeError("the service gave no outcome for this record")
                if isinstance(error, NotFound):
                    # the target cannot find a record this one refers to (a bound lookup, a customer
                    # account): wait for it like a missing parent instead of failing the record
                    self._record_error(
                        plan.source_key,
                        plan.payload,
                        "deferred",
                        "DependencyMissing",
                        f"the target refers to a record that does not exist yet: {error}",
                        getattr(error, "field", None),
                        missing=str(error)[:200],
                    )
                    continue
                self._fail(
                    plan.source_key,
                    plan.payload,
                    type(error).__name__,
                    str(error),
                    field_name=getattr(error, "field", None),
                )
        for plan in plans:
            if plan.source_key not in seen:
                self._fail(
                    plan.source_key,
                    plan.payload,
                    "Transient",
                    "the service returned no outcome for this record; it will be retried",
                    field_name=None,
                )
        if entries:
            scope.state.crosswalk.put_many(spec.pair, spec.company, entries, reverse=spec.index_target_keys)

    def _crosswalk_empty(self) -> bool:
        """Whether this task's crosswalk partition held no row when the run began (one probe).

        An initial load then skips the per-page look-ups (one Table query per 14 keys) that could
        only find nothing. Rows written by this run are not looked up either: a key that the same
        read returns twice is written twice (once, if the first is still held back by `_write`),
        which both targets take as an update (Dataverse upserts; F&O turns "already exists" into
        an update), never as a duplicate. Runs that start from a checkpoint do not probe.
        """
        if self._empty_at_start is None:
            self._empty_at_start = self.scope.state.crosswalk.is_empty(self.spec.pair, self.spec.company)
        return self._empty_at_start

    # -- deletes --------------------------------------------------------------------------------

    def process_deletes(self, deleted_ids: Sequence[str]) -> None:
        """Source deletes (Dataverse `$deletedEntity`), handled as the task's `delete_policy` says.

        Only deletes of records this task synced (in this company) count: with several companies
        every company's delta carries the same delete, and a record that was never selected has
        nothing on the target side to act on.
        """
        if not deleted_ids:
            return
        if self._held:
            gone = set(deleted_ids)
            self._held = {k: p for k, p in self._held.items() if p.source_id not in gone}
        scope, spec = self.scope, self.spec
        found = scope.state.crosswalk.by_origin_many(spec.pair, spec.company, list(deleted_ids))
        if not found:
            return
        scope.counts.add(deleted=len(found))
        policy = spec.mapping.delete_policy
        if policy == "ignore":
            for entry in found.values():
                scope.report(
                    "source_deleted",
                    entry.source_key,
                    message="deleted in the source; delete_policy 'ignore': the target record is kept "
                    "and this deletion is recorded",
                )
            return
        self._retire(list(found.values()), policy, "deleted in the source")

    def _retire(self, entries: Sequence[CrosswalkEntry], policy: str, why: str) -> None:
        """Delete or deactivate the target records of `entries`; their crosswalk rows are marked deleted
        so that a source record that comes back is created again."""
        scope, spec = self.scope, self.spec
        if not entries or policy == "ignore":
            return
        action = "delete" if policy == "delete" else "deactivate"
        if scope.dry_run:
            for entry in entries:
                scope.report(f"would_{action}", entry.source_key, message=why)
            return
        scope.guard()
        requests = [
            RetireRequest(
                source_key=e.source_key,
                target_key=self._target_key_of(e),
                target_id=e.target_id,
                action=action,
                payload=dict(spec.mapping.deactivate or {}),
            )
            for e in entries
        ]
        by_key = {e.source_key: e for e in entries}
        done: list[CrosswalkEntry] = []
        for res in spec.target.retire(requests):
            retired = by_key.get(res.source_key)
            if retired is None:
                continue
            if res.ok:
                done.append(replace(retired, deleted=True, hash="", synced_at=scope.now()))
                scope.counts.add(retired=1)
                scope.report(f"target_{action}d", retired.source_key, message=why)
            else:
                error = res.error or RuntimeError("the service gave no outcome for this record")
                self._fail(
                    retired.source_key,
                    {"target_key": retired.target_key},
                    type(error).__name__,
                    f"could not {action} the target record ({why}): {error}",
                    field_name=getattr(error, "field", None),
                )
        if done:
            scope.state.crosswalk.put_many(spec.pair, spec.company, done, reverse=spec.index_target_keys)

    def _target_key_of(self, entry: CrosswalkEntry) -> dict[str, Any]:
        """The target key as a typed dict again, from the crosswalk's key text."""
        mapping = self.spec.mapping
        parts = entry.target_key.split("|")
        if mapping.target.service == "finops":
            company, values = parts[0], parts[1:]
            key: dict[str, Any] = {"dataAreaId": company}
        else:
            values, key = parts, {}
        rules = {rule.payload_name: rule for rule in mapping.rules}
        for name, text in zip(mapping.target_key_fields, values, strict=False):
            rule = rules.get(name)
            key[name] = rule.target.coerce(text) if rule is not None and rule.target is not None else text
        return key

    # -- retry store ----------------------------------------------------------------------------

    def retry_due(self) -> None:
        scope, spec = self.scope, self.spec
        if scope.dry_run:
            return
        self._wake_deferred()
        due = [
            rec
            for rec in scope.state.errors.due(spec.template, scope.now(), limit=scope.retry_limit)
            if rec.task == spec.task and rec.company == spec.company and rec.source_key not in self._handled
        ]
        if not due:
            return
        keys = [rec.source_key for rec in due]
        found: set[str] = set()
        for start in range(0, len(keys), RETRY_BATCH):
            scope.guard()
            chunk = keys[start : start + RETRY_BATCH]
            for rows in spec.source.fetch_by_keys(chunk, spec.company):
                for row in rows:
                    hint = self._key_hint(row)
                    if hint:
                        found.add(hint)
                self.process_rows(rows, retrying=True)
        self._flush()
        for key in keys:
            if key not in found and key in self._open_errors:
                self._resolve(key, "the source record no longer exists")

    def _wake_deferred(self) -> None:
        """Deferred records whose parent has been synced since are due now, even when parked.

        A line deferred because its header was not selected yet (a draft quote) would otherwise
        wait out its back-off or, once parked, wait for an operator; change tracking will not bring
        the unchanged line back when the header finally syncs. Checking the named parents through
        the crosswalk is one batched query per parent task.
        """
        scope, spec = self.scope, self.spec
        waiting: dict[tuple[str, str], dict[str, str]] = {}
        for rec in scope.open_error_records(spec.task, spec.company):
            if rec.kind != "deferred" or not rec.missing_reference:
                continue
            parsed = _parse_missing(rec.missing_reference)
            if parsed is not None:
                entity, by, value = parsed
                waiting.setdefault((entity, by), {})[rec.source_key] = value
        ready: list[str] = []
        for (entity, by), keys in waiting.items():
            for name in entity.split(" or "):
                if synced_entity(name) is None:
                    continue
                self._resolver.prefetch({(name, by): set(keys.values())})
                for key, value in keys.items():
                    try:
                        self._resolver.resolve(name, by, value, "target_key")
                    except ReferenceMissing:
                        continue
                    ready.append(key)
        if ready:
            scope.state.errors.requeue(spec.template, keys=sorted(set(ready)), now=scope.now())

    # -- helpers --------------------------------------------------------------------------------

    def _map(self, row: dict[str, Any]) -> MappedRecord | None:
        spec = self.spec
        try:
            outcome = spec.mapping.map(row, MapContext(company=spec.company, resolver=self._resolver))
        except ReferenceMissing as missing:
            key = self._key_hint(row)
            self._supersede(key, row)
            if any(name in spec.parent_entities for name in missing.entity.split(" or ")):
                self._defer(key, row, missing)
            else:
                self._fail(
                    key,
                    row,
                    "ReferenceMissing",
                    _missing_text(missing),
                    field_name=missing.field,
                )
            return None
        if isinstance(outcome, MappingFailure):
            key = outcome.source_key or self._key_hint(row)
            self._supersede(key, row)
            self._fail(
                key,
                row,
                "MappingError",
                outcome.reason,
                field_name=outcome.field,
            )
            return None
        return outcome

    def _key_hint(self, row: dict[str, Any]) -> str:
        key = self.spec.mapping.source_key_of(row)
        if key:
            return key
        source_id = self._source_id(row)
        return f"id:{source_id}" if source_id else "(no key)"

    def _source_id(self, row: dict[str, Any]) -> str | None:
        name = self.spec.source_id_field
        if name is None:
            return None
        value = row.get(name)
        return str(value) if value is not None else None

    def _fail(self, key: str, payload: Any, error_class: str, message: str, field_name: str | None) -> None:
        self._record_error(key, payload, "failed", error_class, message, field_name, missing=None)

    def _defer(self, key: str, payload: Any, missing: ReferenceMissing) -> None:
        self._record_error(
            key,
            payload,
            "deferred",
            "DependencyMissing",
            str(missing),
            missing.field,
            missing=f"{missing.entity}.{missing.by}={missing.value}",
        )

    def _record_error(
        self,
        key: str,
        payload: Any,
        kind: str,
        error_class: str,
        message: str,
        field_name: str | None,
        missing: str | None,
    ) -> None:
        scope, spec = self.scope, self.spec
        excerpt = scope.excerpt(payload, PAYLOAD_EXCERPT_CHARS)
        record = ErrorRecord(
            template=spec.template,
            source_key=key,
            company=spec.company,
            task=spec.task,
            kind=kind,
            error_class=error_class,
            message=scope.scrub(message),
            field=field_name,
            payload_excerpt=excerpt,
            missing_reference=missing,
            run_id=scope.run_id,
        )
        if scope.dry_run:
            # a dry run shows what would fail but leaves the retry store as it found it
            record.attempts = 1
            saved = record
        else:
            saved = scope.state.errors.record(record, park_after=scope.park_after, now=scope.now())
            self._open_errors.add(key)
        if saved.status == "parked":
            scope.counts.add(
                parked=1, failed=1 if kind == "failed" else 0, deferred=1 if kind != "failed" else 0
            )
        elif kind == "failed":
            scope.counts.add(failed=1)
        else:
            scope.counts.add(deferred=1)
        scope.report(
            kind if saved.status != "parked" else "parked",
            key,
            error_class=error_class,
            message=scope.scrub(message),
            field=field_name,
            attempts=saved.attempts,
        )
        log.info("%s %s/%s %s: %s", kind, spec.template, spec.task, key, scope.scrub(message))

    def _resolve(self, key: str, why: str) -> None:
        scope, spec = self.scope, self.spec
        if scope.dry_run or key in self._duplicates:
            return
        scope.state.errors.resolve(spec.template, key, spec.company)
        self._open_errors.discard(key)
        scope.counts.add(resolved=1)
        scope.report("resolved", key, message=why)


def _missing_text(missing: ReferenceMissing) -> str:
    """`SalesUnitSymbol: no uom with name = 'Dozen' [rule: look-up …]`: the field, the value, the fix."""
    text = f"{missing.field}: {missing}" if missing.field else str(missing)
    return f"{text} [rule: {missing.rule}]" if missing.rule else text


def _parse_missing(reference: str) -> tuple[str, str, str] | None:
    """`synced:quotes.header.origin=<id>` → ("synced:quotes.header", "origin", "<id>")."""
    left, sep, value = reference.partition("=")
    entity, dot, by = left.rpartition(".")
    if not sep or not dot or not entity.startswith("synced:"):
        return None
    return entity, by, value


def _payload_json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))


def utcnow() -> datetime:
    return datetime.now(UTC)
