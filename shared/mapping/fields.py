"""Target field types: turn a mapped value into what the target service accepts, or say why not.

Both services reject a badly typed value for the whole request or change set, with messages that
rarely name the field. Converting here, per field, turns those into a `MappingFailure` naming the
field, the value and the rule, and keeps the service writes clean. F&O enums are written as member
names (`"Yes"`), Dataverse choices as integers, numbers as JSON numbers, dates in ISO form.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from shared.mapping.catalogue import OPTION_TYPES, ColumnSpec, PropertySpec
from shared.mapping.transforms import TransformError, excerpt, iso_date, iso_datetime, to_bool, to_decimal

Kind = Literal["string", "int", "decimal", "bool", "date", "datetime", "enum", "option", "guid", "any"]

_FINOPS_KINDS: dict[str, Kind] = {
    "Edm.String": "string",
    "Edm.Int16": "int",
    "Edm.Int32": "int",
    "Edm.Int64": "int",
    "Edm.Byte": "int",
    "Edm.Decimal": "decimal",
    "Edm.Double": "decimal",
    "Edm.Single": "decimal",
    "Edm.Boolean": "bool",
    "Edm.Date": "date",
    "Edm.DateTimeOffset": "datetime",
    "Edm.Guid": "guid",
}

_DATAVERSE_KINDS: dict[str, Kind] = {
    "String": "string",
    "Memo": "string",
    "Integer": "int",
    "BigInt": "int",
    "Decimal": "decimal",
    "Double": "decimal",
    "Money": "decimal",
    "Boolean": "bool",
    "DateTime": "datetime",
    "DateOnly": "date",
    "Uniqueidentifier": "guid",
}


@dataclass(frozen=True)
class TargetField:
    """Everything needed to type-check one target field at map time."""

    name: str
    kind: Kind
    type_name: str
    max_length: int | None = None
    enum_members: dict[str, int] = field(default_factory=dict)
    options: dict[int, str] = field(default_factory=dict)

    def allowed(self) -> list[str]:
        """Valid values of an enum / choice field, for error messages and load-time checks."""
        if self.kind == "enum":
            return list(self.enum_members)
        if self.kind == "option":
            return [f"{value} ({label})" for value, label in self.options.items()]
        return []

    def coerce(self, value: Any) -> Any:
        """The value as the target expects it; raises `TransformError` saying what is wrong."""
        converter = _CONVERTERS[self.kind]
        return converter(self, value)


def finops_field(prop: PropertySpec, enum_members: dict[str, int]) -> TargetField:
    enum_name = prop.enum_name
    if enum_name is not None:
        return TargetField(prop.name, "enum", prop.type, enum_members=dict(enum_members))
    kind = _FINOPS_KINDS.get(prop.type, "any")
    return TargetField(prop.name, kind, prop.type, max_length=prop.max_length)


def dataverse_field(column: ColumnSpec) -> TargetField:
    if column.type in OPTION_TYPES:
        return TargetField(column.name, "option", column.type, options=dict(column.options))
    kind = _DATAVERSE_KINDS.get(column.type, "any")
    return TargetField(column.name, kind, column.type, max_length=column.max_length)


def _string(spec: TargetField, value: Any) -> Any:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float | Decimal):
        text = format(to_decimal(value).normalize(), "f")
    else:
        text = value if isinstance(value, str) else str(value)
    if spec.max_length is not None and len(text) > spec.max_length:
        raise TransformError(
            f"{len(text)} characters, longer than the target's {spec.max_length} "
            f"(add `truncate` to cut it): {excerpt(text)}"
        )
    return text


def json_number(number: Decimal) -> int | float:
    """A Decimal as a JSON number: int when whole, else float (exact for the ≤ 15 digits money uses)."""
    if number == number.to_integral_value():
        return int(number)
    return float(number)


def _int(_spec: TargetField, value: Any) -> Any:
    number = to_decimal(value)
    if number != number.to_integral_value():
        raise TransformError(f"not a whole number: {excerpt(value)}")
    return int(number)


def _decimal(_spec: TargetField, value: Any) -> Any:
    return json_number(to_decimal(value))


def _bool(_spec: TargetField, value: Any) -> Any:
    return to_bool(value)


def _date(_spec: TargetField, value: Any) -> Any:
    return iso_date(value)


def _datetime(_spec: TargetField, value: Any) -> Any:
    return iso_datetime(value)


def _guid(_spec: TargetField, value: Any) -> Any:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise TransformError(f"not a GUID: {excerpt(value)}") from None


def enum_member(spec: TargetField, value: Any) -> str | None:
    """Canonical member name for a name (any case), a numeric value, or a boolean (NoYes-like enums)."""
    members = spec.enum_members
    if isinstance(value, bool):
        wanted = "Yes" if value else "No"
        return wanted if wanted in members else None
    if isinstance(value, int):
        return next((name for name, number in members.items() if number == value), None)
    text = str(value).strip()
    folded = {name.casefold(): name for name in members}
    if text.casefold() in folded:
        return folded[text.casefold()]
    if text.lstrip("-").isdigit():
        return enum_member(spec, int(text))
    return None


def _enum(spec: TargetField, value: Any) -> Any:
    if not spec.enum_members:  # enum type not in the catalogue: pass names through unchecked
        return str(value)
    member = enum_member(spec, value)
    if member is None:
        raise TransformError(
            f"{excerpt(value)} is not a member of {spec.type_name} (allowed: {', '.join(spec.allowed())})"
        )
    return member


def option_value(spec: TargetField, value: Any) -> int | None:
    """Choice value for an integer, numeric text, or a label (any case)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in spec.options else None
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return option_value(spec, int(text))
    folded = {label.casefold(): number for number, label in spec.options.items()}
    return folded.get(text.casefold())


def _option(spec: TargetField, value: Any) -> Any:
    if not spec.options:
        return _int(spec, value)
    number = option_value(spec, value)
    if number is None:
        raise TransformError(
            f"{excerpt(value)} is not a valid {spec.type_name} value (allowed: {', '.join(spec.allowed())})"
        )
    return number


def _any(_spec: TargetField, value: Any) -> Any:
    if isinstance(value, Decimal):
        return json_number(value)
    return value


_CONVERTERS = {
    "string": _string,
    "int": _int,
    "decimal": _decimal,
    "bool": _bool,
    "date": _date,
    "datetime": _datetime,
    "enum": _enum,
    "option": _option,
    "guid": _guid,
    "any": _any,
}
