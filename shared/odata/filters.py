"""A small ``$filter`` builder: filters are trees, rendered per service dialect.

Callers never concatenate input into filter text. Field names are checked against a strict
identifier pattern and every value goes through ``literal``. The same tree renders for both
services because their dialects differ where it matters for the sync:

- Dataverse has ``Microsoft.Dynamics.CRM.In(...)``; F&O supports neither ``in`` nor ``has``, so a set
  membership becomes an ``or`` chain of ``eq``.
- F&O has no working ``contains``/``startswith``; it matches ``*`` wildcards in ``eq`` instead
  (``Name eq '*retail*'``). F&O cannot escape ``*``, so wildcard search text containing ``*`` is
  refused (ValueError) rather than silently broadened. Plain ``eq`` values containing ``*`` are also
  treated as patterns by F&O; callers comparing keys re-check the rows they get back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from shared.odata.literals import check_name, literal

__all__ = ["Dialect", "F", "Filter"]

Dialect = Literal["dataverse", "finops"]

_DIALECTS = ("dataverse", "finops")
_COMPARE_OPS = ("eq", "ne", "gt", "ge", "lt", "le")


def _check_dialect(dialect: str) -> None:
    if dialect not in _DIALECTS:
        raise ValueError(f"Unknown OData dialect: {dialect!r}")


class Filter:
    """Base of filter nodes; combine with ``&``, ``|`` and ``~``."""

    def render(self, dialect: Dialect = "dataverse") -> str:
        _check_dialect(dialect)
        return self._render(dialect)

    def _render(self, dialect: Dialect) -> str:
        raise NotImplementedError

    def _render_operand(self, dialect: Dialect) -> str:
        """Rendering when nested under and/or/not: composites get parentheses."""
        return self._render(dialect)

    def __and__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return F.and_(self, other)

    def __or__(self, other: Filter) -> Filter:
        if not isinstance(other, Filter):
            return NotImplemented
        return F.or_(self, other)

    def __invert__(self) -> Filter:
        return F.not_(self)

    def __str__(self) -> str:
        return self.render("dataverse")


@dataclass(frozen=True, eq=True)
class Compare(Filter):
    op: str
    field: str
    value: Any

    def _render(self, dialect: Dialect) -> str:
        return f"{self.field} {self.op} {literal(self.value)}"


@dataclass(frozen=True, eq=True)
class In(Filter):
    field: str
    values: tuple[Any, ...]
    forced_dialect: Dialect | None = None

    def _render(self, dialect: Dialect) -> str:
        effective = self.forced_dialect or dialect
        if effective == "dataverse":
            # PropertyValues is Collection(Edm.String): every value travels as a string literal.
            values = ",".join(literal(_in_text(v)) for v in self.values)
            return f"Microsoft.Dynamics.CRM.In(PropertyName='{self.field}',PropertyValues=[{values}])"
        if len(self.values) == 1:
            return f"{self.field} eq {literal(self.values[0])}"
        return "(" + " or ".join(f"{self.field} eq {literal(v)}" for v in self.values) + ")"


def _in_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool):
        raise ValueError(f"Microsoft.Dynamics.CRM.In cannot match {value!r}")
    return literal(value)  # numbers, GUIDs, dates: their literal text, quoted as a string below


@dataclass(frozen=True, eq=True)
class TextMatch(Filter):
    function: str  # "contains" | "startswith" | "endswith"
    field: str
    text: str

    def _render(self, dialect: Dialect) -> str:
        if dialect == "dataverse":
            return f"{self.function}({self.field},{literal(self.text)})"
        if "*" in self.text:
            raise ValueError("F&O wildcard matching cannot search for a literal '*'")
        pattern = {
            "contains": f"*{self.text}*",
            "startswith": f"{self.text}*",
            "endswith": f"*{self.text}",
        }[self.function]
        return f"{self.field} eq {literal(pattern)}"


@dataclass(frozen=True, eq=True)
class Junction(Filter):
    op: str  # "and" | "or"
    operands: tuple[Filter, ...]

    def _render(self, dialect: Dialect) -> str:
        return f" {self.op} ".join(f._render_operand(dialect) for f in self.operands)

    def _render_operand(self, dialect: Dialect) -> str:
        return "(" + self._render(dialect) + ")"


@dataclass(frozen=True, eq=True)
class Not(Filter):
    operand: Filter

    def _render(self, dialect: Dialect) -> str:
        return f"not ({self.operand._render(dialect)})"


def _junction(op: str, filters: Sequence[Filter]) -> Filter:
    flat: list[Filter] = []
    for f in filters:
        if not isinstance(f, Filter):
            raise TypeError(f"Expected a Filter, got {type(f).__name__}")
        if isinstance(f, Junction) and f.op == op:
            flat.extend(f.operands)
        else:
            flat.append(f)
    if not flat:
        raise ValueError(f"'{op}' needs at least one filter")
    if len(flat) == 1:
        return flat[0]
    return Junction(op, tuple(flat))


class F:
    """Constructors for filter nodes (``F.eq("name", "x") & F.in_("statecode", [0, 1])``)."""

    @staticmethod
    def _compare(op: str, field: str, value: Any) -> Filter:
        literal(value)  # fail at build time on unsupported types
        return Compare(op, check_name(field), value)

    @staticmethod
    def eq(field: str, value: Any) -> Filter:
        return F._compare("eq", field, value)

    @staticmethod
    def ne(field: str, value: Any) -> Filter:
        return F._compare("ne", field, value)

    @staticmethod
    def gt(field: str, value: Any) -> Filter:
        return F._compare("gt", field, value)

    @staticmethod
    def ge(field: str, value: Any) -> Filter:
        return F._compare("ge", field, value)

    @staticmethod
    def lt(field: str, value: Any) -> Filter:
        return F._compare("lt", field, value)

    @staticmethod
    def le(field: str, value: Any) -> Filter:
        return F._compare("le", field, value)

    @staticmethod
    def in_(field: str, values: Iterable[Any], *, dialect: Dialect | None = None) -> Filter:
        """Set membership; ``dialect`` forces one rendering regardless of the service asked later.

        Duplicates are dropped (order kept); an empty set is a ValueError because neither service has
        a literal for "matches nothing" and an empty query is the caller's decision.
        """
        if dialect is not None:
            _check_dialect(dialect)
        unique: list[Any] = []
        seen: set[Any] = set()
        for v in values:
            literal(v)
            marker = (type(v).__name__, v)
            if marker not in seen:
                seen.add(marker)
                unique.append(v)
        if not unique:
            raise ValueError("in_ needs at least one value")
        return In(check_name(field), tuple(unique), dialect)

    @staticmethod
    def contains(field: str, text: str) -> Filter:
        return TextMatch("contains", check_name(field), _text(text))

    @staticmethod
    def startswith(field: str, text: str) -> Filter:
        return TextMatch("startswith", check_name(field), _text(text))

    @staticmethod
    def endswith(field: str, text: str) -> Filter:
        return TextMatch("endswith", check_name(field), _text(text))

    @staticmethod
    def is_null(field: str) -> Filter:
        return Compare("eq", check_name(field), None)

    @staticmethod
    def not_null(field: str) -> Filter:
        return Compare("ne", check_name(field), None)

    @staticmethod
    def and_(*filters: Filter) -> Filter:
        return _junction("and", filters)

    @staticmethod
    def or_(*filters: Filter) -> Filter:
        return _junction("or", filters)

    @staticmethod
    def not_(f: Filter) -> Filter:
        if not isinstance(f, Filter):
            raise TypeError(f"Expected a Filter, got {type(f).__name__}")
        return Not(f)


def _text(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError("Text matching needs a str")
    return text
