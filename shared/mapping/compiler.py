"""Compile a validated `MappingSpec` against the schema catalogue into runnable task mappings.

This is where the YAML meets the real schemas: every source column must exist on the source entity,
every target field must exist and be writable, value-map outputs and constants must be valid for
the target's type, enums and choices. Everything that can be wrong with a mapping *file* fails
here, once, with the task and field named; what remains at map time is what can be wrong with a
*record*.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.ids import deterministic_id
from shared.mapping.catalogue import Catalogue, CatalogueError, DataverseTable, FinOpsEntitySet
from shared.mapping.fields import TargetField, dataverse_field, finops_field
from shared.mapping.records import (
    SYNCED_BY,
    MapContext,
    MappedRecord,
    MappingFailure,
    record_hash,
    synced_entity,
)
from shared.mapping.rules import BIND_SUFFIX, SKIP, Applier, CompiledRule, RuleFailure, entities
from shared.mapping.spec import Condition, FieldRule, MappingSpec, SourceSpec, TargetSpec, TaskSpec
from shared.mapping.transforms import (
    BuildContext,
    Transform,
    TransformError,
    TransformSpecError,
    build,
    excerpt,
    is_empty,
)


class MappingSpecError(ValueError):
    """A mapping file that cannot be used; the message names the file, the task and the field."""

    def __init__(
        self, message: str, *, file: str | None = None, task: str | None = None, field: str | None = None
    ) -> None:
        where = ", ".join(
            part
            for part in (file, f"task {task!r}" if task else None, f"field {field!r}" if field else None)
            if part
        )
        super().__init__(f"{where}: {message}" if where else message)
        self.file = file
        self.task = task
        self.field = field
        self.problem = message


@dataclass
class TaskMapping:
    """One compiled task: what to read, where to write, and the pure `map` between them."""

    name: str
    source: SourceSpec
    target: TargetSpec
    delete_policy: str
    parent_entities: list[str]
    cursor: str | None
    rules: list[CompiledRule]
    key_reads: list[str]
    target_key_fields: list[str]
    target_table: str | None = None
    source_id_field: str | None = None
    deselect_policy: str = "ignore"
    deactivate: dict[str, Any] | None = None
    record_conflicts: bool = False

    def lookup_requests(self, rows: Sequence[dict[str, Any]]) -> dict[tuple[str, str], set[Any]]:
        """Values each plain `synced:` look-up will ask for, so the engine can fetch them per page.

        Only rules that look up the raw source value qualify (no transforms or value maps in
        between); anything else is still resolved one by one, just not prefetched.
        """
        wanted: dict[tuple[str, str], set[Any]] = {}
        for rule in self.rules:
            lookup = rule.rule.lookup or (rule.rule.bind.lookup if rule.rule.bind else None)
            if lookup is None or rule.value_map is not None:
                continue
            if rule.read is None or rule.transforms:
                if lookup.by == "target_key" and rule.transforms:
                    # composite target keys are built by transforms (concat): prefetch their values
                    keyed = {v for v in (rule.computed(row) for row in rows) if not is_empty(v)}
                    for entity in entities(lookup.entity):
                        if synced_entity(entity) is not None and keyed:
                            wanted.setdefault((entity, lookup.by), set()).update(keyed)
                continue
            row_values = {row.get(rule.read) for row in rows} - {None, ""}
            for entity in entities(lookup.entity):
                if synced_entity(entity) is not None and row_values:
                    wanted.setdefault((entity, lookup.by), set()).update(row_values)
        return {k: v for k, v in wanted.items() if v}

    @functools.cached_property
    def _appliers(self) -> list[tuple[str, Applier]]:
        """(payload name, applier) of every rule, built on first use (rules are final by then)."""
        return [(rule.payload_name, rule.applier()) for rule in self.rules]

    def synced_lookups(self) -> list[str]:
        """Every `synced:` entity a rule of this task looks up, optional ones included."""
        return _synced_entities(self.rules, with_optional=True)

    def source_key_of(self, row: dict[str, Any]) -> str | None:
        """The natural key text of a source row, or None when the row has none."""
        parts = []
        for name in self.key_reads:
            value = row.get(name)
            if is_empty(value):
                return None
            parts.append(str(value))
        return "|".join(parts)

    @property
    def key_columns(self) -> list[str]:
        """The source key as a list of columns (one for natural keys, several for lines)."""
        return list(self.key_reads)

    def map(self, row: dict[str, Any], ctx: MapContext) -> MappedRecord | MappingFailure:
        """Source row → target write. Pure; `ReferenceMissing` from the resolver propagates."""
        source_key = self.source_key_of(row)
        if source_key is None:
            names = ", ".join(self.key_reads)
            return MappingFailure(None, self.key_reads[0], f"required key {names} is empty")
        payload: dict[str, Any] = {}
        try:
            for name, apply in self._appliers:
                value = apply(row, ctx)
                if value is not SKIP:
                    payload[name] = value
        except RuleFailure as failure:
            return MappingFailure(source_key, failure.field, failure.reason)
        missing = [name for name in self.target_key_fields if is_empty(payload.get(name))]
        if missing:
            reason = f"target key field {missing[0]!r} is empty (source key {source_key!r})"
            return MappingFailure(source_key, missing[0], reason)
        return self._record(source_key, payload, row, ctx)

    def _record(
        self, source_key: str, payload: dict[str, Any], row: dict[str, Any], ctx: MapContext
    ) -> MappedRecord:
        values = [payload[name] for name in self.target_key_fields]
        source_id = row.get(self.source_id_field) if self.source_id_field else None
        if self.target.service == "finops":
            target_key = {"dataAreaId": ctx.company, **dict(zip(self.target_key_fields, values, strict=True))}
            key_text = "|".join(str(part) for part in (ctx.company, *values))
            target_id = None
        else:
            target_key = dict(zip(self.target_key_fields, values, strict=True))
            key_text = "|".join(str(part) for part in values) if values else source_key
            assert self.target_table is not None
            target_id = deterministic_id(self.target_table, ctx.company, source_key)
        return MappedRecord(
            source_key=source_key,
            target_key=target_key,
            target_key_text=key_text,
            payload=payload,
            hash=record_hash(payload, target_key),
            target_id=target_id,
            source_id=str(source_id) if source_id is not None else None,
        )


@dataclass
class CompiledMapping:
    """A whole template: its tasks in file order (headers before lines)."""

    template: str
    tasks: list[TaskMapping]
    spec: MappingSpec

    def task(self, name: str) -> TaskMapping:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(f"template {self.template!r} has no task {name!r}")


def _synced_entities(rules: Sequence[CompiledRule], *, with_optional: bool) -> list[str]:
    """The `synced:` entities the rules look up (plain or bind look-ups), each once, in rule order."""
    named: list[str] = []
    for compiled in rules:
        for lookup in (compiled.rule.lookup, compiled.rule.bind.lookup if compiled.rule.bind else None):
            if lookup is None or (lookup.optional and not with_optional):
                continue
            for entity in entities(lookup.entity):
                if synced_entity(entity) is not None and entity not in named:
                    named.append(entity)
    return named


class _Problem(Exception):
    """Internal: a spec problem with the field it concerns; the loader adds file and task."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass
class _SourceView:
    """Source-side names: which YAML names exist and what they are called in a row."""

    service: str
    dataverse: DataverseTable | None
    finops: FinOpsEntitySet | None
    reads: list[str] = field(default_factory=list)

    def wire(self, name: str) -> str:
        if self.dataverse is not None:
            column = self.dataverse.column_by_read_name(name)
            if column is None and name != self.dataverse.primary_id:
                raise TransformSpecError(
                    f"source field {name!r} does not exist on Dataverse table {self.dataverse.logical_name!r}"
                )
            wire = column.read_name if column is not None else name
        else:
            assert self.finops is not None
            if name not in self.finops.properties:
                raise TransformSpecError(
                    f"source field {name!r} does not exist on F&O entity {self.finops.name!r}"
                )
            wire = name
        if wire not in self.reads:
            self.reads.append(wire)
        return wire


def compile_spec(spec: MappingSpec, catalogue: Catalogue, file: str | None = None) -> CompiledMapping:
    """Validate `spec` against `catalogue`; raises `MappingSpecError` naming file, task and field."""
    tasks = []
    for task in spec.tasks:
        try:
            tasks.append(_compile_task(spec, task, catalogue))
        except _Problem as problem:
            raise MappingSpecError(problem.message, file=file, task=task.name, field=problem.field) from None
    return CompiledMapping(template=spec.template, tasks=tasks, spec=spec)


def _source_view(source: SourceSpec, catalogue: Catalogue) -> _SourceView:
    try:
        if source.service == "dataverse":
            return _SourceView("dataverse", catalogue.dataverse_table_by_set(source.entity_set), None)
        return _SourceView("finops", None, catalogue.finops_entity_set(source.entity_set))
    except CatalogueError as exc:
        raise _Problem(f"source: {exc}") from None


def _wire(view: _SourceView, name: str, where: str) -> str:
    try:
        return view.wire(name)
    except TransformSpecError as exc:
        raise _Problem(str(exc), where) from None


def _compile_task(spec: MappingSpec, task: TaskSpec, catalogue: Catalogue) -> TaskMapping:
    view = _source_view(task.source, catalogue)
    key_names = [task.source.key] if isinstance(task.source.key, str) else list(task.source.key)
    if not key_names:
        raise _Problem("source key must name at least one column", None)
    key_reads = [_wire(view, name, name) for name in key_names]
    for name in task.source.select:
        _wire(view, name, name)
    conditions = [_check_condition(view, condition) for condition in task.source.filter]
    if task.cursor is not None:
        if task.source.service != "finops":
            raise _Problem("cursor applies only to F&O sources", task.cursor)
        _wire(view, task.cursor, task.cursor)
    targets = _TargetView.build(task.target, catalogue)
    rules: list[CompiledRule] = []
    seen: set[str] = set()
    for rule in task.fields:
        compiled = _compile_rule(spec, rule, view, targets, catalogue)
        if compiled.payload_name in seen:
            raise _Problem("mapped twice in this task", rule.target)
        seen.add(compiled.payload_name)
        rules.append(compiled)
    key_fields = targets.key_fields(task.target)
    for name in task.target.match or []:
        if name + BIND_SUFFIX not in seen:
            raise _Problem("a `match` field must be a lookup written by a `bind` rule of this task", name)
    for name in key_fields:
        if name not in seen:
            raise _Problem("target key field is not mapped by any rule", name)
    parents = list(task.parent_entities)
    for entity in parents:
        synced = synced_entity(entity)
        if synced is not None:
            _check_synced(synced[0], "source_key", None)
        elif entity not in catalogue.dataverse and entity not in catalogue.finops:
            raise _Problem(f"parent entity {entity!r} is not in the schema catalogue", None)
    # A record whose parent has not been synced yet waits for it (deferred), it is not failed.
    for entity in _synced_entities(rules, with_optional=False):
        if entity not in parents:
            parents.append(entity)
    # The engine filters rows as read, so conditions name wire columns (`_x_value` for lookups).
    source = task.source.model_copy(update={"select": list(view.reads), "filter": conditions})
    return TaskMapping(
        name=task.name,
        source=source,
        target=task.target,
        delete_policy=task.delete_policy,
        parent_entities=parents,
        cursor=task.cursor,
        rules=rules,
        key_reads=key_reads,
        target_key_fields=key_fields,
        target_table=targets.dataverse.logical_name if targets.dataverse is not None else None,
        deselect_policy=task.deselect_policy,
        record_conflicts=task.record_conflicts,
        deactivate=_deactivate_payload(task, targets),
        source_id_field=view.dataverse.primary_id if view.dataverse is not None else None,
    )


def _check_condition(view: _SourceView, condition: Condition) -> Condition:
    wire = _wire(view, condition.field, condition.field)
    if condition.op in ("in", "not_in") and not isinstance(condition.value, list):
        raise _Problem(f"filter op {condition.op!r} needs a list value", condition.field)
    return condition if wire == condition.field else condition.model_copy(update={"field": wire})


@dataclass
class _TargetView:
    """Target-side names: typed fields, writability and the default key."""

    dataverse: DataverseTable | None
    finops: FinOpsEntitySet | None
    catalogue: Catalogue

    @classmethod
    def build(cls, target: TargetSpec, catalogue: Catalogue) -> _TargetView:
        try:
            if target.service == "dataverse":
                return cls(catalogue.dataverse_table_by_set(target.entity_set), None, catalogue)
            return cls(None, catalogue.finops_entity_set(target.entity_set), catalogue)
        except CatalogueError as exc:
            raise _Problem(f"target: {exc}") from None

    def field(self, name: str) -> TargetField:
        if self.finops is not None:
            prop = self.finops.properties.get(name)
            if prop is None:
                raise _Problem(f"does not exist on F&O entity {self.finops.name!r}", name)
            if name == "dataAreaId":
                raise _Problem("dataAreaId is set from the company being served, do not map it", name)
            if not prop.writable:
                raise _Problem(f"is read-only on F&O entity {self.finops.name!r}", name)
            enum_name = prop.enum_name
            return finops_field(prop, self.catalogue.enum_members(enum_name) if enum_name else {})
        assert self.dataverse is not None
        column = self.dataverse.columns.get(name)
        if column is None:
            raise _Problem(f"does not exist on Dataverse table {self.dataverse.logical_name!r}", name)
        if not column.writable:
            raise _Problem(f"is not writable on Dataverse table {self.dataverse.logical_name!r}", name)
        if column.is_lookup:
            raise _Problem("is a lookup: write it with a `bind` rule on its navigation property", name)
        return dataverse_field(column)

    def bind_target(self, name: str, entity_set: str) -> None:
        if self.dataverse is None:
            raise _Problem("`bind` applies only to Dataverse targets", name)
        binds = self.dataverse.bind_names()
        if name not in binds:
            raise _Problem(
                f"is not a lookup navigation property of {self.dataverse.logical_name!r} "
                f"(known: {', '.join(sorted(binds)) or 'none'})",
                name,
            )
        column_name, related = binds[name]
        column = self.dataverse.columns[column_name]
        if not column.writable:
            raise _Problem(f"lookup {column_name!r} is not writable", name)
        related_table = self.catalogue.dataverse.get(related)
        if related_table is not None and related_table.entity_set != entity_set:
            raise _Problem(f"bind entity_set must be {related_table.entity_set!r} for {name!r}", name)

    def key_fields(self, target: TargetSpec) -> list[str]:
        if target.key is not None:
            return list(target.key)
        if self.finops is not None:
            return [name for name in self.finops.keys if name != "dataAreaId"]
        assert self.dataverse is not None
        for columns in self.dataverse.alternate_keys.values():
            return list(columns)
        return []


def _compile_rule(
    spec: MappingSpec, rule: FieldRule, view: _SourceView, targets: _TargetView, catalogue: Catalogue
) -> CompiledRule:
    name = rule.target
    target: TargetField | None
    if rule.bind is not None:
        targets.bind_target(name, rule.bind.entity_set)
        payload_name, target = name + BIND_SUFFIX, None
        bind_lookup = rule.bind.lookup
        if bind_lookup is not None:
            for entity in entities(bind_lookup.entity):
                _check_lookup(catalogue, entity, bind_lookup.by, bind_lookup.return_, name)
    else:
        target = targets.field(name)
        payload_name = name
    if rule.lookup is not None:
        for entity in entities(rule.lookup.entity):
            _check_lookup(catalogue, entity, rule.lookup.by, rule.lookup.return_, name)
    read = _wire(view, rule.source, name) if rule.source is not None else None
    transforms = _transforms(rule, target, view)
    value_map = _value_map(spec, rule)
    then_map = _named_map(spec, rule.then_map, name) if rule.then_map is not None else None
    compiled = CompiledRule(rule, payload_name, target, read, transforms, value_map, then_map=then_map)
    if target is not None and rule.lookup is None:
        _check_outputs(rule, target, value_map, compiled)
    return compiled


def _transforms(
    rule: FieldRule, target: TargetField | None, view: _SourceView
) -> list[tuple[str, Transform]]:
    ctx = BuildContext(target_max_length=target.max_length if target else None, source_name=view.wire)
    try:
        return [build(step, ctx) for step in rule.transform]
    except TransformSpecError as exc:
        raise _Problem(str(exc), rule.target) from None


def _named_map(spec: MappingSpec, value_map: str | dict[str, Any], where: str) -> dict[str, Any]:
    if isinstance(value_map, str):
        named = spec.value_maps.get(value_map)
        if named is None:
            raise _Problem(f"value map {value_map!r} is not defined in value_maps", where)
        return dict(named)
    return dict(value_map)


def _value_map(spec: MappingSpec, rule: FieldRule) -> dict[str, Any] | None:
    if rule.value_map is None:
        return None
    if isinstance(rule.value_map, str):
        named = spec.value_maps.get(rule.value_map)
        if named is None:
            raise _Problem(f"value map {rule.value_map!r} is not defined in value_maps", rule.target)
        return dict(named)
    return dict(rule.value_map)


def _check_outputs(
    rule: FieldRule, target: TargetField, value_map: dict[str, Any] | None, compiled: CompiledRule
) -> None:
    """Constants, defaults and value-map outputs must already be valid for the target type."""
    candidates: list[tuple[str, Any]] = []
    if "value" in rule.model_fields_set:
        candidates.append(("constant", rule.value))
    if "default" in rule.model_fields_set:
        candidates.append(("default", rule.default))
    for key, value in (value_map or {}).items():
        candidates.append((f"value map entry {key!r}", value))
    for label, value in candidates:
        if value is None:  # an explicit null is written as null
            if label == "constant":
                compiled.constant = None
            continue
        try:
            typed = target.coerce(value)
        except TransformError as exc:
            problem = f"{label} {excerpt(value)} is invalid for {target.type_name}: {exc}"
            raise _Problem(problem, rule.target) from None
        if label == "constant":
            compiled.constant = typed


def _check_lookup(catalogue: Catalogue, entity: str, by: str, returns: str, where: str) -> None:
    synced = synced_entity(entity)
    if synced is not None:
        _check_synced(synced[0], by, where)
        return
    table = catalogue.dataverse.get(entity)
    if table is not None:
        for column in (by, returns):
            if table.column_by_read_name(column) is None and column != table.primary_id:
                problem = f"look-up column {column!r} does not exist on Dataverse table {entity!r}"
                raise _Problem(problem, where)
        return
    entity_set = catalogue.finops.get(entity)
    if entity_set is not None:
        for column in (by, returns):
            if column not in entity_set.properties:
                raise _Problem(f"look-up column {column!r} does not exist on F&O entity {entity!r}", where)
        return
    raise _Problem(f"look-up entity {entity!r} is not in the schema catalogue", where)


def _check_synced(template: str, by: str, where: str | None) -> None:
    from shared.templates import TEMPLATE_NAMES

    if template not in TEMPLATE_NAMES:
        raise _Problem(f"synced look-up names unknown template {template!r}", where)
    if by not in SYNCED_BY:
        raise _Problem(f"a synced look-up matches by one of {', '.join(SYNCED_BY)}, not {by!r}", where)


DATAVERSE_DEACTIVATE = {"statecode": 1, "statuscode": 2}


def _deactivate_payload(task: TaskSpec, targets: _TargetView) -> dict[str, Any] | None:
    """The typed payload that deactivates a target record, checked like any other rule output."""
    wanted = "deactivate" in (task.delete_policy, task.deselect_policy)
    raw = task.deactivate
    if raw is None and targets.dataverse is not None:
        raw = dict(DATAVERSE_DEACTIVATE) if "statecode" in targets.dataverse.columns else None
    if raw is None:
        if wanted:
            raise _Problem("a `deactivate` policy needs a `deactivate:` payload for this target", None)
        return None
    payload: dict[str, Any] = {}
    for name, value in raw.items():
        if targets.dataverse is not None and name in ("statecode", "statuscode"):
            payload[name] = value  # state/status are written as they are (not validated as options here)
            continue
        field_ = targets.field(name)
        try:
            payload[name] = field_.coerce(value)
        except TransformError as exc:
            raise _Problem(f"deactivate value {excerpt(value)} is invalid: {exc}", name) from None
    return payload
