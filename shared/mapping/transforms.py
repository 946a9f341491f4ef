"""Named transforms: the only computation a mapping file can ask for (no expression language, no eval).

Each YAML step (`trim`, `"decimal:2"`, `{concat: {fields: [a, b]}}`) is parsed once at load time
into a plain function, so a bad step name or argument fails the load (naming the rule) and mapping a
record is just calling functions. Transforms never see the network: reference data goes through
the resolver, not here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

Row = Mapping[str, Any]
Transform = Callable[[Any, Row], Any]


class TransformError(ValueError):
    """A value a transform cannot convert (malformed date, non-numeric decimal): fails one record."""


class TransformSpecError(ValueError):
    """A transform step in the YAML that does not exist or has a bad argument: fails the load."""


@dataclass(frozen=True)
class BuildContext:
    """What a transform may know at load time about the field it feeds.

    `source_name` maps a YAML source field to the name it has in a source row (Dataverse lookups are
    read as `_x_value`), and raises `TransformSpecError` for unknown fields; the compiler records
    every name it is asked about, so those columns are added to the source `$select`.
    """

    target_max_length: int | None
    source_name: Callable[[str], str]


Factory = Callable[[Any, BuildContext], Transform]


def is_empty(value: Any) -> bool:
    """Null or blank text counts as empty everywhere in the mapping layer."""
    return value is None or (isinstance(value, str) and value.strip() == "")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _string_op(name: str, op: Callable[[str], str]) -> Factory:
    def factory(arg: Any, _ctx: BuildContext) -> Transform:
        _no_arg(name, arg)

        def run(value: Any, _row: Row) -> Any:
            return None if value is None else op(_text(value))

        return run

    return factory


def _no_arg(name: str, arg: Any) -> None:
    if arg is not None:
        raise TransformSpecError(f"transform {name!r} takes no argument")


def _truncate(arg: Any, ctx: BuildContext) -> Transform:
    limit = int(arg) if arg is not None else ctx.target_max_length
    if limit is None or limit <= 0:
        raise TransformSpecError("truncate needs a length (`truncate:N`) when the target has no max length")

    def run(value: Any, _row: Row) -> Any:
        return None if value is None else _text(value)[:limit]

    return run


def to_decimal(value: Any) -> Decimal:
    """Parse a number from JSON (int, float, numeric text); bools are not numbers here."""
    if isinstance(value, bool):
        raise TransformError(f"expected a number, got boolean {value!r}")
    if isinstance(value, Decimal):
        return value
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, float) else Decimal(repr(value))
    except (InvalidOperation, ValueError):
        raise TransformError(f"not a number: {excerpt(value)}") from None
    if not number.is_finite():
        raise TransformError(f"not a finite number: {excerpt(value)}")
    return number


def _number_factory(name: str, combine: Callable[[Decimal, Decimal], Decimal]) -> Factory:
    def factory(arg: Any, _ctx: BuildContext) -> Transform:
        if arg is None:
            raise TransformSpecError(f"{name} needs a number argument (`{name}:N`)")
        try:
            operand = Decimal(str(arg))
        except InvalidOperation:
            raise TransformSpecError(f"{name} argument {arg!r} is not a number") from None
        if name == "divide" and operand == 0:
            raise TransformSpecError("divide by zero")

        def run(value: Any, _row: Row) -> Any:
            return None if is_empty(value) else combine(to_decimal(value), operand)

        return run

    return factory


def _decimal(arg: Any, _ctx: BuildContext) -> Transform:
    places = int(arg) if arg is not None else None
    if places is not None and not 0 <= places <= 10:
        raise TransformSpecError("decimal places must be between 0 and 10")
    quantum = Decimal(1).scaleb(-places) if places is not None else None

    def run(value: Any, _row: Row) -> Any:
        if is_empty(value):
            return None
        number = to_decimal(value)
        return number.quantize(quantum, rounding=ROUND_HALF_UP) if quantum is not None else number

    return run


def _int(arg: Any, _ctx: BuildContext) -> Transform:
    _no_arg("int", arg)

    def run(value: Any, _row: Row) -> Any:
        if is_empty(value):
            return None
        number = to_decimal(value)
        if number != number.to_integral_value():
            raise TransformError(f"not a whole number: {excerpt(value)}")
        return int(number)

    return run


_TRUE = {"true", "yes", "1", "y"}
_FALSE = {"false", "no", "0", "n"}


def to_bool(value: Any) -> bool:
    """Booleans from JSON, 0/1 and the usual words (`Yes`/`No` as F&O NoYes members)."""
    if isinstance(value, bool):
        return value
    text = _text(value).strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise TransformError(f"not a yes/no value: {excerpt(value)}")


def _bool(arg: Any, _ctx: BuildContext) -> Transform:
    _no_arg("bool", arg)
    return lambda value, _row: None if is_empty(value) else to_bool(value)


def _not(arg: Any, _ctx: BuildContext) -> Transform:
    _no_arg("not", arg)
    return lambda value, _row: None if is_empty(value) else not to_bool(value)


def parse_datetime(value: Any) -> datetime:
    """ISO 8601 date or date-time; naive values are taken as UTC (both services store UTC)."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        text = _text(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise TransformError(f"not an ISO date/time: {excerpt(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def iso_datetime(value: Any) -> str:
    """`2024-05-01T10:00:00Z`: the form both OData services accept for DateTimeOffset."""
    return parse_datetime(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_date(value: Any) -> str:
    """`2024-05-01`: the date part (in UTC) of a date or date-time."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return parse_datetime(value).date().isoformat()


def _date(arg: Any, _ctx: BuildContext) -> Transform:
    _no_arg("date", arg)
    return lambda value, _row: None if is_empty(value) else iso_date(value)


def _datetime(arg: Any, _ctx: BuildContext) -> Transform:
    _no_arg("datetime", arg)
    return lambda value, _row: None if is_empty(value) else iso_datetime(value)


def _concat(arg: Any, ctx: BuildContext) -> Transform:
    if isinstance(arg, list):
        arg = {"fields": arg}
    if not isinstance(arg, Mapping) or not isinstance(arg.get("fields"), list) or not arg["fields"]:
        raise TransformSpecError("concat needs {fields: [field, ...], separator: ' '}")
    unknown = set(arg) - {"fields", "separator"}
    if unknown:
        raise TransformSpecError(f"concat does not take {sorted(unknown)}")
    names = [ctx.source_name(str(name)) for name in arg["fields"]]
    separator = str(arg.get("separator", " "))

    def run(_value: Any, row: Row) -> Any:
        parts = [_text(row.get(name)).strip() for name in names if not is_empty(row.get(name))]
        return separator.join(parts) if parts else None

    return run


def _first_non_empty(arg: Any, ctx: BuildContext) -> Transform:
    if not isinstance(arg, list) or not arg:
        raise TransformSpecError("first_non_empty needs a list of fields")
    names = [ctx.source_name(str(name)) for name in arg]

    def run(_value: Any, row: Row) -> Any:
        for name in names:
            if not is_empty(row.get(name)):
                return row.get(name)
        return None

    return run


def _per_unit_args(name: str, arg: Any, ctx: BuildContext) -> tuple[str, str, int]:
    if not isinstance(arg, Mapping) or not {"amount", "quantity"} <= set(arg):
        raise TransformSpecError(f"{name} needs {{amount: <field>, quantity: <field>, places: 2}}")
    unknown = set(arg) - {"amount", "quantity", "places"}
    if unknown:
        raise TransformSpecError(f"{name} does not take {sorted(unknown)}")
    places = arg.get("places", 2)
    if not isinstance(places, int) or not 0 <= places <= 10:
        raise TransformSpecError(f"{name}: places must be a whole number from 0 to 10")
    return ctx.source_name(str(arg["amount"])), ctx.source_name(str(arg["quantity"])), places


def _per_unit_parts(
    row: Row, amount: str, quantity: str, places: int
) -> tuple[Decimal, Decimal, Decimal] | None:
    """(amount, quantity, amount per unit rounded half up) or None when there is no amount."""
    if is_empty(row.get(amount)):
        return None
    total = to_decimal(row.get(amount))
    qty = Decimal(0) if is_empty(row.get(quantity)) else to_decimal(row.get(quantity))
    if qty == 0:
        return total, qty, Decimal(0)
    step = Decimal(1).scaleb(-places)
    return total, qty, (total / qty).quantize(step, rounding=ROUND_HALF_UP)


def _per_unit(arg: Any, ctx: BuildContext) -> Transform:
    """A line total spread per unit (Sales keeps a line discount, F&O a discount per unit)."""
    amount, quantity, places = _per_unit_args("per_unit", arg, ctx)

    def run(_value: Any, row: Row) -> Any:
        parts = _per_unit_parts(row, amount, quantity, places)
        return None if parts is None else parts[2]

    return run


def _per_unit_remainder(arg: Any, ctx: BuildContext) -> Transform:
    """What rounding per unit lost: per_unit × quantity − amount (templates.md §6 moves it to a charge)."""
    amount, quantity, places = _per_unit_args("per_unit_remainder", arg, ctx)

    def run(_value: Any, row: Row) -> Any:
        parts = _per_unit_parts(row, amount, quantity, places)
        if parts is None:
            return None
        total, qty, each = parts
        if qty == 0:
            return Decimal(0)
        step = Decimal(1).scaleb(-places)
        return (each * qty - total).quantize(step, rounding=ROUND_HALF_UP)

    return run


REGISTRY: dict[str, Factory] = {
    "trim": _string_op("trim", str.strip),
    "upper": _string_op("upper", str.upper),
    "lower": _string_op("lower", str.lower),
    "string": _string_op("string", lambda text: text),
    "truncate": _truncate,
    "decimal": _decimal,
    "divide": _number_factory("divide", lambda a, b: a / b),
    "multiply": _number_factory("multiply", lambda a, b: a * b),
    "int": _int,
    "bool": _bool,
    "not": _not,
    "date": _date,
    "datetime": _datetime,
    "concat": _concat,
    "first_non_empty": _first_non_empty,
    "per_unit": _per_unit,
    "per_unit_remainder": _per_unit_remainder,
}


def parse_step(step: Any) -> tuple[str, Any]:
    """`"decimal:2"` → ("decimal", "2"); `{concat: {...}}` → ("concat", {...}); `"trim"` → ("trim", None)."""
    if isinstance(step, str):
        name, sep, arg = step.partition(":")
        return name.strip(), (arg.strip() if sep else None)
    if isinstance(step, Mapping) and len(step) == 1:
        ((name, arg),) = step.items()
        return str(name), arg
    raise TransformSpecError(f"a transform step is a name or a one-key mapping, not {step!r}")


def build(step: Any, ctx: BuildContext) -> tuple[str, Transform]:
    """Compile one YAML step; unknown names and bad arguments raise `TransformSpecError`."""
    name, arg = parse_step(step)
    factory = REGISTRY.get(name)
    if factory is None:
        raise TransformSpecError(f"unknown transform {name!r} (known: {', '.join(sorted(REGISTRY))})")
    try:
        return name, factory(arg, ctx)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, TransformSpecError):
            raise
        raise TransformSpecError(f"transform {name!r}: bad argument {arg!r}") from None


def excerpt(value: Any, limit: int = 60) -> str:
    """A short printable form of a value for error messages (never whole payloads)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
