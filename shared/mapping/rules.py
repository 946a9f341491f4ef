"""One compiled field rule: read → transforms → value map / look-up / bind → default → target type.

Compiling a `FieldRule` resolves everything that can be known before the first record (source wire
names, the target field's type, transform functions, the value map) so that mapping a record does
no parsing and no catalogue look-ups, and every problem with the rule itself surfaces at load time.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from shared.mapping.fields import TargetField, json_number
from shared.mapping.records import MapContext, ReferenceMissing
from shared.mapping.spec import FieldRule
from shared.mapping.transforms import Row, Transform, TransformError, excerpt, is_empty
from shared.odata.literals import literal

BIND_SUFFIX = "@odata.bind"


class RuleFailure(Exception):
    """A record-level problem in one rule; the compiler turns it into a `MappingFailure`."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason


_MISSING = object()
#: What an `Applier` returns for a field the payload leaves out.
SKIP: Any = object()
#: A rule as one function of (row, context): the field's value, or `SKIP`.
Applier = Callable[[Row, MapContext], Any]
#: A GUID already in the form `uuid.UUID` prints (what Dataverse sends and the coercion returns).
_CANONICAL_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def map_key_text(value: Any) -> str:
    """The text a source value is matched as against value-map keys (see spec `_key_text`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def entities(entity: str | list[str]) -> list[str]:
    """A look-up's entities as a list (one, or several tried in order)."""
    return [entity] if isinstance(entity, str) else list(entity)


def resolve_any(ctx: MapContext, entity: str | list[str], by: str, value: Any, returns: str) -> Any:
    """Try each entity in order; the first that has the value wins, else one error naming them all."""
    names = entities(entity)
    for name in names[:-1]:
        try:
            return ctx.resolver.resolve(name, by, value, returns)
        except ReferenceMissing:
            continue
    try:
        return ctx.resolver.resolve(names[-1], by, value, returns)
    except ReferenceMissing as missing:
        if len(names) > 1:
            raise ReferenceMissing(" or ".join(names), by, value, missing.field) from None
        raise


def describe(rule: FieldRule) -> str:
    """Short human form of a rule for error messages: `value map 'country_iso' from address1_country`."""
    if "value" in rule.model_fields_set:
        return f"constant {excerpt(rule.value)}"
    parts = []
    if rule.transform:
        parts.append("transform " + ", ".join(str(step) for step in rule.transform))
    if rule.value_map is not None:
        name = rule.value_map if isinstance(rule.value_map, str) else "inline"
        parts.append(f"value map {name!r}")
    if rule.lookup is not None:
        parts.append(f"look-up {rule.lookup.entity}.{rule.lookup.by} -> {rule.lookup.return_}")
    if rule.bind is not None:
        parts.append(f"bind to {rule.bind.entity_set}")
    if "default" in rule.model_fields_set:
        parts.append(f"default {excerpt(rule.default)}")
    shape = "; ".join(parts) if parts else "copy"
    return f"{shape} from {rule.source}" if rule.source else shape


@dataclass
class CompiledRule:
    """Runtime form of a `FieldRule`. `payload_name` is the target field or `<nav>@odata.bind`."""

    rule: FieldRule
    payload_name: str
    target: TargetField | None
    read: str | None
    transforms: list[tuple[str, Transform]]
    value_map: dict[str, Any] | None
    constant: Any = _MISSING
    then_map: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self._folded = {k.casefold(): v for k, v in (self.value_map or {}).items()}
        self._has_default = "default" in self.rule.model_fields_set
        self._pass_if = re.compile(self.rule.pass_if) if self.rule.pass_if else None
        # Decided once here rather than per record: `apply` runs for every field of every record.
        self._has_value = "value" in self.rule.model_fields_set
        self._required = bool(self.rule.required)
        #: a copy: read one column, no transforms, maps, look-ups or binds (most rules)
        self._plain = (
            not self._has_value
            and self.read is not None
            and not self.transforms
            and self.value_map is None
            and self.rule.lookup is None
            and self.rule.bind is None
        )

    def applier(self) -> Applier:
        """This rule as one function, with a fast path for values the target takes as they are.

        Mapping runs every rule of every record (20-30 per record). For a copy or a chain of
        transforms (no value map, look-up or bind), the common case is a value already in the form
        the target wants (text within its length, a JSON number, a member name): it is recognised
        by its type and returned. Anything else, and any error, goes through `apply`, which holds
        every rule's full logic and error reporting; the fast path returns exactly what `apply`
        would (`tests/unit/mapping/test_rule_appliers.py` compares the two on every kind of value).
        """
        if self.constant is not _MISSING:
            constant = self.constant
            return lambda _row, _ctx: constant
        general = self._general
        accept = _acceptor(self.target)
        if (
            accept is None
            or self._has_value
            or self._required
            or self.value_map is not None
            or self.rule.lookup is not None
            or self.rule.bind is not None
        ):
            return general
        read = self.read
        steps = [transform for _name, transform in self.transforms]
        if read is not None and not steps:

            def copy(row: Row, ctx: MapContext) -> Any:
                value = accept(row.get(read))
                return general(row, ctx) if value is _MISSING else value

            return copy

        def transformed(row: Row, ctx: MapContext) -> Any:
            value = None if read is None else row.get(read)
            try:
                for step in steps:
                    value = step(value, row)
            except Exception:  # `apply` repeats the steps and reports the error
                return general(row, ctx)
            value = accept(value)
            return general(row, ctx) if value is _MISSING else value

        return transformed

    def _general(self, row: Row, ctx: MapContext) -> Any:
        present, value = self.apply(row, ctx)
        return value if present else SKIP

    @property
    def has_truncate(self) -> bool:
        return any(name == "truncate" for name, _ in self.transforms)

    def apply(self, row: Row, ctx: MapContext) -> tuple[bool, Any]:
        """(True, value) to write the value; (False, None) to leave the field out of the payload."""
        if self.constant is not _MISSING:  # (set by the compiler after construction)
            return True, self.constant
        try:
            if self._plain:
                value = row.get(self.read)  # type: ignore[arg-type]
                if value is None or (isinstance(value, str) and not value.strip()):
                    value = self._when_empty()
            else:
                value = self._value(row, ctx)
            if value is _MISSING or (value is None and self._required):
                if self._required:
                    raise TransformError(f"is required but {self.rule.source or 'the source'} is empty")
                return False, None
            return True, self._typed(value)
        except ReferenceMissing as missing:
            if missing.field is None:
                missing.field = self.rule.target
            if missing.rule is None:
                missing.rule = describe(self.rule)
            raise
        except TransformError as exc:
            raise self._failure(str(exc)) from None
        except ArithmeticError as exc:  # decimal overflow and the like on absurd inputs
            raise self._failure(f"arithmetic error ({type(exc).__name__})") from None

    def _failure(self, problem: str) -> RuleFailure:
        """`<field>: <problem with value excerpt> [rule: <rule>]`, the text an operator sees."""
        return RuleFailure(self.rule.target, f"{self.rule.target}: {problem} [rule: {describe(self.rule)}]")

    def _value(self, row: Row, ctx: MapContext) -> Any:
        read = self.read
        value = self.rule.value if self._has_value else (None if read is None else row.get(read))
        for _name, transform in self.transforms:
            value = transform(value, row)
        if is_empty(value):
            return self._when_empty()
        if self.value_map is not None:
            value = self._mapped(value)
            if is_empty(value) or (self.rule.lookup is None and self.rule.bind is None):
                return value
        lookup = self.rule.lookup
        if lookup is not None:
            try:
                found = resolve_any(ctx, lookup.entity, lookup.by, value, lookup.return_)
            except ReferenceMissing:
                if not lookup.optional:
                    raise
                return self._when_empty()
            if self.then_map is not None:
                return self._then_mapped(found)
            return found
        bind = self.rule.bind
        if bind is not None:
            if bind.key is not None:
                return f"{bind.entity_set}({bind.key}={literal(value)})"
            related = value
            if bind.lookup is not None:
                related = resolve_any(ctx, bind.lookup.entity, bind.lookup.by, value, bind.lookup.return_)
            return f"{bind.entity_set}({related})"
        return value

    def computed(self, row: Row) -> Any:
        """The source value after transforms, before maps and look-ups (for prefetching)."""
        value = row.get(self.read) if self.read is not None else None
        try:
            for _name, transform in self.transforms:
                value = transform(value, row)
        except TransformError:
            return None
        return value

    def _then_mapped(self, value: Any) -> Any:
        assert self.then_map is not None
        text = map_key_text(value)
        if text in self.then_map:
            return self.then_map[text]
        for key, mapped in self.then_map.items():
            if key.casefold() == text.strip().casefold():
                return mapped
        raise TransformError(f"looked-up value {excerpt(value)} is not in the value map `then_map`")

    def _when_empty(self) -> Any:
        if self.value_map is not None and "" in self.value_map:
            return self.value_map[""]
        if self._has_default:
            return self.rule.default
        return _MISSING

    def _mapped(self, value: Any) -> Any:
        assert self.value_map is not None
        text = map_key_text(value)
        if text in self.value_map:
            return self.value_map[text]
        folded = text.strip().casefold()
        if folded in self._folded:
            return self._folded[folded]
        if self.rule.unmapped == "default":
            return self.rule.default
        if self.rule.unmapped == "pass":
            if self._pass_if is not None and not self._pass_if.fullmatch(text.strip()):
                raise TransformError(
                    f"{excerpt(value)} is not in the value map and not a valid code ({self.rule.pass_if})"
                )
            return value
        raise TransformError(f"{excerpt(value)} is not in the value map")

    def _typed(self, value: Any) -> Any:
        if value is None:  # a value map / default may say "write null" explicitly
            return None
        if self.target is None:  # bind: already `set(id)`
            return value
        return self.target.coerce(value)


def _acceptor(target: TargetField | None) -> Callable[[Any], Any] | None:
    """For a target type: a function returning a value the type's coercion would return unchanged
    (or its JSON number), else `_MISSING`; None when the type has no such fast case."""
    if target is None:
        return None
    kind = target.kind
    if kind == "string":
        limit = target.max_length if target.max_length is not None else sys.maxsize

        def text(value: Any) -> Any:
            if value.__class__ is str and len(value) <= limit and value.strip():
                return value
            return _MISSING

        return text
    if kind == "decimal":

        def number(value: Any) -> Any:
            cls = value.__class__
            if cls is int:
                return value
            if cls is float and math.isfinite(value):
                return int(value) if value.is_integer() else value
            if cls is Decimal and value.is_finite():
                return json_number(value)
            return _MISSING

        return number
    if kind in ("int", "bool"):
        exact = int if kind == "int" else bool
        return lambda value: value if value.__class__ is exact else _MISSING
    if kind == "enum" and target.enum_members:
        members = frozenset(target.enum_members)
        return lambda value: value if value.__class__ is str and value in members else _MISSING
    if kind == "option" and target.options:
        options = frozenset(target.options)
        return lambda value: value if value.__class__ is int and value in options else _MISSING
    if kind == "guid":
        guid = _CANONICAL_GUID.fullmatch
        return lambda value: value if value.__class__ is str and guid(value) else _MISSING
    return None
