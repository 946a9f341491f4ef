"""OData v4 query options for the sandbox stand-ins (Dataverse and F&O).

Both stand-ins answer `$filter`, `$orderby` and `$select` the way the real services do, so the
product's clients can be tested unchanged. The filter text is tokenized and parsed once per request
(recursive descent) into a tree of closures over a row dict; evaluating it per row is then just a
few Python calls, which keeps a 100,000-row scan well inside the sandbox's latency budget.

Dialects:
- ``"dataverse"``: string comparisons and functions are case-insensitive (Dataverse's SQL
  collation), ``Microsoft.Dynamics.CRM.In/NotIn/Between`` are understood.
- ``"finops"``: enum literals ``Microsoft.Dynamics.DataEntities.NoYes'Yes'`` (``eq``/``ne`` only)
  and the ``Field eq '*x*'`` wildcard form of "contains" (F&O has no working ``contains``).

Null handling follows the services' SQL translation, not the OData spec: ``ne`` never matches a
null column (``name ne 'x'`` leaves out rows whose name is null); use ``eq null`` for those.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

Dialect = Literal["dataverse", "finops"]
Row = Mapping[str, Any]
Predicate = Callable[[Row], bool]
Getter = Callable[[Row], Any]

__all__ = [
    "CompiledFilter",
    "ODataQueryError",
    "OrderKey",
    "compile_filter",
    "parse_orderby",
    "parse_select",
    "sort_rows",
    "unknown_property_message",
]


class ODataQueryError(ValueError):
    """A query option the service would refuse with HTTP 400; ``message`` is the service text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def unknown_property_message(name: str, entity_type: str) -> str:
    """The ODataLib text both services return for an unknown property in a query option."""
    return f"Could not find a property named '{name}' on type '{entity_type}'."


# --------------------------------------------------------------------------------------------- lexer

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<dstring>"(?:[^"\\]|\\.)*")
  | (?P<typed>[A-Za-z_][A-Za-z0-9_.]*'(?:[^']|'')*')
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-]))
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?)
  | (?P<ident>[A-Za-z_$@][A-Za-z0-9_./]*)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<lbracket>\[)
  | (?P<rbracket>\])
  | (?P<comma>,)
  | (?P<equals>=)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    """Split filter text into tokens; anything unrecognised is a syntax error at its position."""
    tokens: list[_Tok] = []
    pos = 0
    length = len(text)
    while pos < length:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise ODataQueryError(f"Syntax error at position {pos} in '{text}'.")
        kind = m.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    tokens.append(_Tok("eof", "", length))
    return tokens


# ------------------------------------------------------------------------------------------ values

_STR, _NUM, _BOOL, _DT, _GUID, _NULL, _ENUM = "str", "num", "bool", "datetime", "guid", "null", "enum"


@dataclass(frozen=True, slots=True)
class _Literal:
    kind: str
    value: Any
    enum_type: str = ""


@dataclass(frozen=True, slots=True)
class _Prop:
    name: str


_Operand = _Literal | _Prop


def _unquote(text: str) -> str:
    return text[1:-1].replace("''", "'")


def _parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _as_datetime(value: Any) -> datetime | None:
    """Row values are ISO strings on the wire; compare them as aware datetimes."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    try:
        return _parse_datetime(str(value))
    except ValueError:
        return None


def _as_number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.lower()
        if low in ("true", "false"):
            return low == "true"
    if isinstance(value, int):
        return bool(value)
    return None


def _norm_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).casefold()


def _norm_text_cs(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# ------------------------------------------------------------------------------------------ parser

_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_STRING_FUNCS = {"contains", "startswith", "endswith"}
_CRM_PREFIX = "Microsoft.Dynamics.CRM."
_FO_ENUM_PREFIX = "Microsoft.Dynamics.DataEntities."


@dataclass
class CompiledFilter:
    """A compiled `$filter`: call it with a row dict.

    ``properties`` lists every column the filter reads; ``equalities`` holds the top-level
    ``and``-ed ``property eq literal`` terms (raw literal values), so a store can answer them from an
    index before evaluating the full predicate.
    """

    text: str
    predicate: Predicate
    properties: set[str] = field(default_factory=set)
    equalities: dict[str, Any] = field(default_factory=dict)

    def __call__(self, row: Row) -> bool:
        return self.predicate(row)


class _Parser:
    """Recursive descent: or_expr := and_expr ('or' and_expr)*; and_expr := unary ('and' unary)*;
    unary := 'not' unary | primary; primary := '(' or_expr ')' | function | operand cmp operand."""

    def __init__(
        self,
        text: str,
        *,
        dialect: Dialect,
        properties: Collection[str] | None,
        entity_type: str,
        case_insensitive: bool,
        enum_types: Mapping[str, Mapping[str, int]] | None,
    ) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0
        self.dialect = dialect
        self.known = properties
        self.known_folded: dict[str, str] | None = None
        self.entity_type = entity_type
        self.ci = case_insensitive
        self.norm_text = _norm_text if case_insensitive else _norm_text_cs
        self.enum_types = enum_types or {}
        self.used: set[str] = set()

    # -- token helpers
    def peek(self, offset: int = 0) -> _Tok:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self) -> _Tok:
        tok = self.tokens[self.i]
        if tok.kind != "eof":
            self.i += 1
        return tok

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.take()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind
            got = tok.text or "end of input"
            raise ODataQueryError(
                f"Syntax error: expected '{want}' at position {tok.pos} but found '{got}' in '{self.text}'."
            )
        return tok

    def is_keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "ident" and tok.text == word

    def error(self, tok: _Tok, what: str = "") -> ODataQueryError:
        found = tok.text or "end of input"
        detail = f" {what}" if what else ""
        return ODataQueryError(
            f"Syntax error at position {tok.pos} in '{self.text}': unexpected '{found}'.{detail}"
        )

    # -- property resolution
    def prop(self, name: str) -> str:
        if self.known is not None and name not in self.known:
            raise ODataQueryError(unknown_property_message(name, self.entity_type))
        self.used.add(name)
        return name

    # -- grammar
    def parse(self) -> tuple[Predicate, dict[str, Any]]:
        if self.peek().kind == "eof":
            raise ODataQueryError("The $filter expression is empty.")
        pred, eqs = self.or_expr()
        tok = self.peek()
        if tok.kind != "eof":
            raise self.error(tok)
        return pred, eqs

    def or_expr(self) -> tuple[Predicate, dict[str, Any]]:
        left, eqs = self.and_expr()
        parts = [left]
        while self.is_keyword("or"):
            self.take()
            right, _ = self.and_expr()
            parts.append(right)
        if len(parts) == 1:
            return left, eqs
        return _any_of(parts), {}

    def and_expr(self) -> tuple[Predicate, dict[str, Any]]:
        left, eqs = self.unary()
        parts = [left]
        merged = dict(eqs)
        while self.is_keyword("and"):
            self.take()
            right, more = self.unary()
            parts.append(right)
            for key, value in more.items():
                merged.setdefault(key, value)
        if len(parts) == 1:
            return left, eqs
        return _all_of(parts), merged

    def unary(self) -> tuple[Predicate, dict[str, Any]]:
        if self.is_keyword("not"):
            self.take()
            inner, _ = self.unary()
            return (lambda row: not inner(row)), {}
        return self.primary()

    def primary(self) -> tuple[Predicate, dict[str, Any]]:
        tok = self.peek()
        if tok.kind == "lparen":
            self.take()
            inner, inner_eqs = self.or_expr()
            self.expect("rparen")
            return inner, inner_eqs
        if tok.kind == "ident" and self.peek(1).kind == "lparen":
            return self.function_call(), {}
        left = self.operand()
        op_tok = self.take()
        if op_tok.kind != "ident" or op_tok.text not in _COMPARISONS:
            raise self.error(op_tok, "A comparison operator (eq, ne, gt, ge, lt, le) was expected.")
        right = self.operand()
        pred = self.comparison(op_tok.text, left, right)
        eqs: dict[str, Any] = {}
        if op_tok.text == "eq":
            if isinstance(left, _Prop) and isinstance(right, _Literal) and right.kind not in (_NULL, _ENUM):
                eqs[left.name] = right.value
            elif isinstance(right, _Prop) and isinstance(left, _Literal) and left.kind not in (_NULL, _ENUM):
                eqs[right.name] = left.value
        return pred, eqs

    def operand(self) -> _Operand:
        tok = self.take()
        kind = tok.kind
        if kind == "string":
            return _Literal(_STR, _unquote(tok.text))
        if kind == "number":
            text = tok.text.rstrip("mMdDfFlL")
            num: float = float(text) if any(c in text for c in ".eE") else int(text)
            return _Literal(_NUM, num)
        if kind == "guid":
            return _Literal(_GUID, tok.text.lower())
        if kind in ("datetime", "date"):
            try:
                return _Literal(_DT, _parse_datetime(tok.text))
            except ValueError as exc:
                raise ODataQueryError(f"Invalid date/time literal '{tok.text}'.") from exc
        if kind == "typed":
            return self.typed_literal(tok)
        if kind == "ident":
            word = tok.text
            if word == "null":
                return _Literal(_NULL, None)
            if word in ("true", "false"):
                return _Literal(_BOOL, word == "true")
            if word in _COMPARISONS or word in ("and", "or", "not"):
                raise self.error(tok)
            return _Prop(self.prop(word))
        raise self.error(tok)

    def typed_literal(self, tok: _Tok) -> _Literal:
        quote = tok.text.index("'")
        type_name, raw = tok.text[:quote], _unquote(tok.text[quote:])
        if type_name == "guid":
            return _Literal(_GUID, raw.lower())
        if type_name in ("datetime", "datetimeoffset"):
            try:
                return _Literal(_DT, _parse_datetime(raw))
            except ValueError as exc:
                raise ODataQueryError(f"Invalid date/time literal '{raw}'.") from exc
        if self.dialect == "finops" and type_name.startswith(_FO_ENUM_PREFIX):
            enum_name = type_name[len(_FO_ENUM_PREFIX) :]
            members = self.enum_types.get(enum_name)
            if members is not None and raw not in members:
                raise ODataQueryError(
                    f"The string '{raw}' is not a valid enumeration type constant for type '{type_name}'."
                )
            return _Literal(_ENUM, raw, enum_name)
        raise ODataQueryError(f"Unrecognized literal '{tok.text}' at position {tok.pos}.")

    # -- functions
    def function_call(self) -> Predicate:
        name_tok = self.take()
        name = name_tok.text
        self.expect("lparen")
        if name in _STRING_FUNCS:
            return self.string_function(name)
        if name.startswith(_CRM_PREFIX) and self.dialect == "dataverse":
            return self.crm_function(name[len(_CRM_PREFIX) :], name_tok)
        raise ODataQueryError(f"An unknown function with name '{name}' was found.")

    def string_function(self, name: str) -> Predicate:
        first = self.operand()
        self.expect("comma")
        second = self.operand()
        self.expect("rparen")
        if not isinstance(first, _Prop) or not isinstance(second, _Literal) or second.kind != _STR:
            raise ODataQueryError(f"The '{name}' function needs a property and a string literal.")
        if self.dialect == "dataverse" and name == "endswith" and second.value.endswith("%"):
            raise ODataQueryError("Trailing wildcards are not supported.")
        col = first.name
        norm = self.norm_text
        needle = norm(second.value) or ""
        if name == "contains":
            return lambda row: (v := norm(row.get(col))) is not None and needle in v
        if name == "startswith":
            return lambda row: (v := norm(row.get(col))) is not None and v.startswith(needle)
        return lambda row: (v := norm(row.get(col))) is not None and v.endswith(needle)

    def crm_function(self, name: str, tok: _Tok) -> Predicate:
        """Dataverse query functions: PropertyName='x', PropertyValue(s)=... named arguments."""
        args: dict[str, Any] = {}
        while True:
            key = self.expect("ident").text
            self.expect("equals")
            if self.peek().kind == "lbracket":
                self.take()
                items: list[Any] = []
                while self.peek().kind != "rbracket":
                    items.append(self.arg_value())
                    if self.peek().kind == "comma":
                        self.take()
                    elif self.peek().kind != "rbracket":
                        raise self.error(self.peek())
                self.take()
                args[key] = items
            else:
                args[key] = self.arg_value()
            if self.peek().kind == "comma":
                self.take()
                continue
            self.expect("rparen")
            break
        prop_name = args.get("PropertyName")
        if not isinstance(prop_name, str):
            raise ODataQueryError(f"The function '{_CRM_PREFIX}{name}' needs a PropertyName parameter.")
        col = self.prop(prop_name)
        if name in ("In", "NotIn"):
            values = args.get("PropertyValues")
            if not isinstance(values, list) or not values:
                raise ODataQueryError(f"The function '{_CRM_PREFIX}{name}' needs PropertyValues.")
            member = self.in_matcher(values)
            if name == "In":
                return lambda row: member(row.get(col))
            return lambda row: (v := row.get(col)) is not None and not member(v)
        if name == "Between":
            values = args.get("PropertyValues")
            if not isinstance(values, list) or len(values) != 2:
                raise ODataQueryError(f"The function '{_CRM_PREFIX}Between' needs two PropertyValues.")
            low = self.comparison("ge", _Prop(col), _guess_literal(values[0]))
            high = self.comparison("le", _Prop(col), _guess_literal(values[1]))
            return lambda row: low(row) and high(row)
        if name in ("Null", "NotNull"):
            want_null = name == "Null"
            return lambda row: (row.get(col) is None) == want_null
        raise ODataQueryError(f"An unknown function with name '{_CRM_PREFIX}{name}' was found.")

    def arg_value(self) -> Any:
        tok = self.take()
        if tok.kind == "string":
            return _unquote(tok.text)
        if tok.kind == "dstring":
            return tok.text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if tok.kind == "number":
            return tok.text
        if tok.kind == "guid":
            return tok.text
        if tok.kind == "ident" and tok.text in ("true", "false", "null"):
            return None if tok.text == "null" else tok.text
        raise self.error(tok)

    def in_matcher(self, values: Sequence[Any]) -> Callable[[Any], bool]:
        """`In` lists arrive as strings ("5", 'abc'); match them against any column type."""
        texts = {self.norm_text(str(v)) for v in values if v is not None}
        numbers = {n for v in values if (n := _as_number(v)) is not None}
        norm = self.norm_text

        def member(value: Any) -> bool:
            if value is None:
                return False
            if isinstance(value, int | float) and not isinstance(value, bool):
                return value in numbers
            return norm(value) in texts

        return member

    # -- comparisons
    def comparison(self, op: str, left: _Operand, right: _Operand) -> Predicate:
        if isinstance(left, _Literal) and isinstance(right, _Prop):
            left, right = right, left
            op = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}.get(op, op)
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            outcome = _compare_values(op, left.value, right.value, self.norm_text)
            return lambda row: outcome
        assert isinstance(left, _Prop)
        col = left.name
        if isinstance(right, _Prop):
            other = right.name
            norm = self.norm_text
            return lambda row: _compare_values(op, row.get(col), row.get(other), norm)
        return self.prop_vs_literal(op, col, right)

    def prop_vs_literal(self, op: str, col: str, lit: _Literal) -> Predicate:
        kind = lit.kind
        if kind == _NULL:
            if op == "eq":
                return lambda row: row.get(col) is None
            if op == "ne":
                return lambda row: row.get(col) is not None
            return lambda row: False
        if kind == _ENUM:
            if op not in ("eq", "ne"):
                raise ODataQueryError("Only 'eq' and 'ne' are supported on enumeration values.")
            return self.enum_compare(op, col, lit)
        normalizer: Callable[[Any], Any]
        target: Any
        if kind == _STR:
            if self.dialect == "finops" and "*" in lit.value and op in ("eq", "ne"):
                return self.wildcard(op, col, lit.value)
            normalizer, target = self.norm_text, self.norm_text(lit.value)
        elif kind == _NUM:
            normalizer, target = _as_number, lit.value
        elif kind == _BOOL:
            normalizer, target = _as_bool, lit.value
        elif kind == _DT:
            normalizer, target = _as_datetime, lit.value
        else:  # guid
            normalizer, target = _norm_text, lit.value
        return _make_compare(op, col, normalizer, target)

    def wildcard(self, op: str, col: str, pattern: str) -> Predicate:
        """F&O's `eq '*retail*'`: '*' matches any run of characters (case-insensitive)."""
        regex = re.compile(
            "^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$",
            re.IGNORECASE | re.DOTALL,
        )
        match = regex.match
        if op == "eq":
            return lambda row: (v := row.get(col)) is not None and match(str(v)) is not None
        return lambda row: (v := row.get(col)) is not None and match(str(v)) is None

    def enum_compare(self, op: str, col: str, lit: _Literal) -> Predicate:
        members = self.enum_types.get(lit.enum_type, {})
        name_folded = str(lit.value).casefold()
        number = members.get(lit.value)

        def same(value: Any) -> bool:
            if isinstance(value, str):
                return value.casefold() == name_folded
            if isinstance(value, int) and not isinstance(value, bool) and number is not None:
                return value == number
            if isinstance(value, bool) and number is not None:
                return int(value) == number
            return False

        if op == "eq":
            return lambda row: same(row.get(col))
        return lambda row: (v := row.get(col)) is not None and not same(v)


def _guess_literal(raw: Any) -> _Literal:
    """Between's values arrive as strings; guess number, then datetime, else string."""
    text = str(raw)
    number = _as_number(text)
    if number is not None:
        return _Literal(_NUM, number)
    try:
        return _Literal(_DT, _parse_datetime(text))
    except ValueError:
        return _Literal(_STR, text)


def _make_compare(op: str, col: str, norm: Callable[[Any], Any], target: Any) -> Predicate:
    """Specialised closures for `column <op> literal`: the hot path of every filtered read."""
    if op == "eq":
        return lambda row: norm(row.get(col)) == target

    def guard(fn: Callable[[Any], bool]) -> Predicate:
        def check(row: Row) -> bool:
            value = norm(row.get(col))
            if value is None:
                return False
            try:
                return fn(value)
            except TypeError:
                return False

        return check

    if op == "ne":
        return guard(lambda v: v != target)
    if op == "gt":
        return guard(lambda v: v > target)
    if op == "ge":
        return guard(lambda v: v >= target)
    if op == "lt":
        return guard(lambda v: v < target)
    return guard(lambda v: v <= target)


def _compare_values(op: str, a: Any, b: Any, norm_text: Callable[[Any], str | None]) -> bool:
    """Generic comparison (column vs column): strings by collation, null only equals null."""
    if a is None or b is None:
        return op == "eq" and a is None and b is None
    if isinstance(a, str) and isinstance(b, str):
        a, b = norm_text(a), norm_text(b)
    try:
        if op == "eq":
            return bool(a == b)
        if op == "ne":
            return bool(a != b)
        if op == "gt":
            return bool(a > b)
        if op == "ge":
            return bool(a >= b)
        if op == "lt":
            return bool(a < b)
        return bool(a <= b)
    except TypeError:
        return False


def _all_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda row: a(row) and b(row)
    return lambda row: all(p(row) for p in parts)


def _any_of(parts: list[Predicate]) -> Predicate:
    if len(parts) == 2:
        a, b = parts
        return lambda row: a(row) or b(row)
    return lambda row: any(p(row) for p in parts)


def compile_filter(
    text: str,
    *,
    dialect: Dialect = "dataverse",
    properties: Collection[str] | None = None,
    entity_type: str = "Microsoft.Dynamics.CRM.entity",
    case_insensitive: bool = True,
    enum_types: Mapping[str, Mapping[str, int]] | None = None,
) -> CompiledFilter:
    """Compile a `$filter` value (already URL-decoded) into a row predicate.

    ``properties``: the queryable property names; any other name raises ``ODataQueryError`` with
    the service's "Could not find a property named ..." text for ``entity_type``. ``None`` skips
    the check. ``enum_types`` (finops): enum name → {member: value}, used to validate enum
    literals and to match rows that store the numeric value.
    """
    if dialect not in ("dataverse", "finops"):
        raise ValueError(f"unknown dialect {dialect!r}")
    parser = _Parser(
        text,
        dialect=dialect,
        properties=properties,
        entity_type=entity_type,
        case_insensitive=case_insensitive,
        enum_types=enum_types,
    )
    predicate, equalities = parser.parse()
    return CompiledFilter(text=text, predicate=predicate, properties=parser.used, equalities=equalities)


# ---------------------------------------------------------------------------------- $orderby/$select

_ANY_TYPE = "Microsoft.Dynamics.CRM.entity"
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class OrderKey:
    """One `$orderby` term."""

    name: str
    descending: bool = False


def _check_name(name: str, properties: Collection[str] | None, entity_type: str, option: str) -> str:
    if not name:
        raise ODataQueryError(f"The {option} query option has an empty item.")
    if not _NAME_RE.match(name):
        raise ODataQueryError(f"Syntax error in {option}: '{name}' is not a property name.")
    if properties is not None and name not in properties:
        raise ODataQueryError(unknown_property_message(name, entity_type))
    return name


def parse_orderby(
    text: str, *, properties: Collection[str] | None = None, entity_type: str = _ANY_TYPE
) -> list[OrderKey]:
    """`name asc,createdon desc` → [OrderKey('name'), OrderKey('createdon', True)]."""
    keys: list[OrderKey] = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2:
            raise ODataQueryError(f"Syntax error in $orderby: '{item.strip()}'.")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ODataQueryError(f"Syntax error in $orderby: '{item.strip()}'.")
        keys.append(OrderKey(_check_name(words[0], properties, entity_type, "$orderby"), direction == "desc"))
    return keys


def parse_select(
    text: str, *, properties: Collection[str] | None = None, entity_type: str = _ANY_TYPE
) -> list[str]:
    """`name,accountnumber` → ['name', 'accountnumber'] (duplicates dropped, order kept)."""
    seen: dict[str, None] = {}
    for item in text.split(","):
        name = item.strip()
        if name == "*":
            return ["*"]
        seen[_check_name(name, properties, entity_type, "$select")] = None
    return list(seen)


def _sort_value(value: Any, case_insensitive: bool) -> tuple[int, Any]:
    """Nulls first (SQL Server order); strings by collation."""
    if value is None:
        return (0, 0)
    if isinstance(value, str) and case_insensitive:
        return (1, value.casefold())
    return (1, value)


def sort_rows(rows: Iterable[Row], keys: Sequence[OrderKey], *, case_insensitive: bool = True) -> list[Row]:
    """Stable multi-key sort (last key first), each key ascending or descending."""
    result = list(rows)
    for key in reversed(keys):
        name = key.name
        result.sort(key=lambda r: _sort_value(r.get(name), case_insensitive), reverse=key.descending)
    return result
