"""Source filters evaluated on our side.

Dataverse refuses `$filter` on change-tracking queries, so a template's selection rule (e.g.
"contacts that are not active customers") is applied to each row after it is read. The same
evaluator serves F&O snapshot reads, so a rule means the same thing whichever side is the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from shared.engine.values import as_decimal

Predicate = Callable[[dict[str, Any]], bool]


class Condition(Protocol):
    """Structural view of a mapping spec filter condition: `{field, op, value}`."""

    @property
    def field(self) -> str: ...

    @property
    def op(self) -> str: ...

    @property
    def value(self) -> Any: ...


def _comparable(value: Any) -> Any:
    """Numbers (and numeric text) as Decimals, other text case-folded, anything else as it is."""
    number = as_decimal(value)
    if number is not None:
        return number
    return value.casefold() if isinstance(value, str) else value


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.casefold() == right.casefold()
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right or left == right
    return bool(_comparable(left) == _comparable(right))


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        if left is None or right is None:
            return False
        a, b = _comparable(left), _comparable(right)
        try:
            if op == "gt":
                return bool(a > b)
            if op == "ge":
                return bool(a >= b)
            if op == "lt":
                return bool(a < b)
            return bool(a <= b)
        except TypeError:
            return False

    return compare


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": _equal,
    "ne": lambda left, right: not _equal(left, right),
    "gt": _ordered("gt"),
    "ge": _ordered("ge"),
    "lt": _ordered("lt"),
    "le": _ordered("le"),
    "in": lambda left, right: any(_equal(left, item) for item in (right or [])),
    "not_in": lambda left, right: not any(_equal(left, item) for item in (right or [])),
    "null": lambda left, right: (left is None or left == "") == bool(right if right is not None else True),
    "not_null": lambda left, _right: left is not None and left != "",
}


def _text_test(op: str, value: Any, general: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    """`op` against text constants, comparing text values by one casefold and a set look-up.

    A filter runs for every row read, mostly comparing text with text (`eq "Yes"`,
    `not_in [Active]`); other values (numbers, booleans, null) take the general comparison.
    """
    texts = [value] if op in ("eq", "ne") else list(value or [])
    folded = frozenset(text.casefold() for text in texts)
    negate = op in ("ne", "not_in")

    def test(left: Any, right: Any) -> bool:
        if left.__class__ is str:
            return (left.casefold() in folded) is not negate
        return general(left, right)

    return test


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and bool(value) and all(isinstance(item, str) for item in value)
    )


def compile_filter(conditions: Iterable[Condition] | None) -> Predicate:
    """All conditions must hold (AND); an empty list selects every row."""
    compiled: list[tuple[str, Callable[[Any, Any], bool], Any]] = []
    for condition in conditions or ():
        op = _OPS.get(condition.op)
        if op is None:
            raise ValueError(f"unsupported filter operator {condition.op!r} on field {condition.field!r}")
        single = condition.op in ("eq", "ne") and isinstance(condition.value, str)
        listed = condition.op in ("in", "not_in") and _is_text(condition.value)
        if single or listed:
            op = _text_test(condition.op, condition.value, op)
        compiled.append((condition.field, op, condition.value))

    def predicate(row: dict[str, Any]) -> bool:
        return all(op(row.get(name), value) for name, op, value in compiled)

    return predicate
