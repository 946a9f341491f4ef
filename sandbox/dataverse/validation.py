"""Column value validation for writes, with Dataverse's error codes and texts.

Every write the stand-in accepts is checked against the catalogue the way Dataverse checks it, so
a mapping bug (a string in a money column, a 300-character name, an unknown option value) fails
in the sandbox with the same code the product would see in production. `sandbox.catalogue` may
offer `validate_dataverse_value`; when it does it is used, otherwise the private fallback here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.dataverse.schema import LOOKUP_TYPES, TableInfo


class DataverseError(Exception):
    """A failure the Web API reports as `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


# Error codes (apis.md A6) ---------------------------------------------------------------------
INVALID_PROPERTY = "0x80060888"
PAYLOAD_ERROR = "0x80048d19"
LENGTH_EXCEEDED = "0x80044331"
OUT_OF_RANGE = "0x8004431a"  # "outside the valid range" (picklist/number); code UNCONFIRMED
REQUIRED_MISSING = "0x80040203"  # InvalidArgument; exact code for a missing required column UNCONFIRMED

_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_EDM = {
    "String": "Edm.String",
    "Memo": "Edm.String",
    "Integer": "Edm.Int32",
    "BigInt": "Edm.Int64",
    "Decimal": "Edm.Decimal",
    "Double": "Edm.Double",
    "Money": "Edm.Decimal",
    "Boolean": "Edm.Boolean",
    "DateTime": "Edm.DateTimeOffset",
    "DateOnly": "Edm.Date",
    "Picklist": "Edm.Int32",
    "State": "Edm.Int32",
    "Status": "Edm.Int32",
    "Uniqueidentifier": "Edm.Guid",
}
_INT_LIMITS = {"Integer": (-2147483648, 2147483647), "BigInt": (-(2**63), 2**63 - 1)}


def invalid_property(name: str, info: TableInfo) -> DataverseError:
    return DataverseError(
        400, INVALID_PROPERTY, f"Invalid property '{name}' was found in entity '{info.type_name}'."
    )


def _type_error(info: TableInfo, column: str, value: Any, edm: str) -> DataverseError:
    return DataverseError(
        400,
        PAYLOAD_ERROR,
        f"Error identified in Payload provided by the user for Entity :'{info.entity_set}', For more "
        f"information on this error please follow this help link https://go.microsoft.com/fwlink/?linkid=2195293"
        f"  ---->  InnerException : Microsoft.OData.ODataException: Cannot convert the literal "
        f"'{value}' to the expected type '{edm}'. (property '{column}')",
    )


def _range_error(info: TableInfo, column: str, value: Any) -> DataverseError:
    return DataverseError(
        400,
        OUT_OF_RANGE,
        f"A validation error occurred. The value {value} of '{column}' on record of type "
        f"'{info.logical}' is outside the valid range.",
    )


def _fallback_validate(info: TableInfo, column: str, spec: Mapping[str, Any], value: Any) -> Any:
    """Check one value against its column spec; returns the value as stored."""
    if value is None:
        return None
    kind = str(spec.get("type", "String"))
    edm = _EDM.get(kind, "Edm.String")
    if kind in ("String", "Memo"):
        if not isinstance(value, str):
            raise _type_error(info, column, value, edm)
        max_length = spec.get("max_length")
        if isinstance(max_length, int) and len(value) > max_length:
            raise DataverseError(
                400,
                LENGTH_EXCEEDED,
                f"A validation error occurred.  The length of the '{column}' attribute of the "
                f"'{info.logical}' entity exceeded the maximum allowed length of '{max_length}'.",
            )
        return value
    if kind in ("Integer", "BigInt", "Picklist", "State", "Status"):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer() and kind in ("Integer", "BigInt"):
                value = int(value)
            else:
                raise _type_error(info, column, value, edm)
        if kind in ("Picklist", "State", "Status"):
            options = spec.get("options")
            if options and str(value) not in {str(k) for k in options}:
                raise DataverseError(
                    400,
                    OUT_OF_RANGE,
                    f"A validation error occurred. The value {value} of '{column}' on record of type "
                    f"'{info.logical}' is outside the valid range. Accepted Values: "
                    + ",".join(str(k) for k in options),
                )
            return value
        low, high = _INT_LIMITS[kind]
        low = spec.get("min", low)
        high = spec.get("max", high)
        if value < low or value > high:
            raise _range_error(info, column, value)
        return value
    if kind in ("Decimal", "Double", "Money"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(info, column, value, edm)
        if isinstance(value, float) and not math.isfinite(value):
            raise _type_error(info, column, value, edm)
        min_value = spec.get("min")
        max_value = spec.get("max")
        if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
            raise _range_error(info, column, value)
        precision = spec.get("precision")
        if isinstance(precision, int) and kind != "Double" and isinstance(value, float):
            value = round(value, precision)
        return value
    if kind == "Boolean":
        if not isinstance(value, bool):
            raise _type_error(info, column, value, edm)
        return value
    if kind == "DateTime":
        if not isinstance(value, str):
            raise _type_error(info, column, value, edm)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError as exc:
            raise _type_error(info, column, value, edm) from exc
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "DateOnly":
        if not isinstance(value, str):
            raise _type_error(info, column, value, edm)
        try:
            return datetime.fromisoformat(value).date().isoformat()
        except ValueError as exc:
            raise _type_error(info, column, value, edm) from exc
    if kind == "Uniqueidentifier":
        if not isinstance(value, str) or not _GUID_RE.match(value):
            raise _type_error(info, column, value, edm)
        return value.lower()
    return value


def _external_validator() -> Callable[..., Any] | None:
    """`sandbox.catalogue.validate_dataverse_value`, when the catalogue module provides it."""
    import importlib

    try:
        catalogue_module = importlib.import_module("sandbox.catalogue")
    except ImportError:
        return None
    fn = getattr(catalogue_module, "validate_dataverse_value", None)
    return fn if callable(fn) else None


class Validator:
    """Validates payload columns of one table; built once per app."""

    def __init__(self, *, use_external: bool = False) -> None:
        self._external = _external_validator() if use_external else None

    def value(self, info: TableInfo, column: str, value: Any) -> Any:
        spec = info.columns[column]
        # The external helper's contract is not pinned yet; our fallback defines the error texts,
        # so it always runs. The external one only adds checks (it may raise ValueError).
        stored = _fallback_validate(info, column, spec, value)
        if self._external is not None and value is not None:
            try:
                self._external(spec, value)
            except (ValueError, TypeError) as exc:
                raise DataverseError(400, PAYLOAD_ERROR, str(exc)) from exc
        return stored

    def required_missing(self, info: TableInfo, row: Mapping[str, Any]) -> None:
        """On create: every `required` column must have a value."""
        for name, spec in info.columns.items():
            if not spec.get("required"):
                continue
            read = f"_{name}_value" if spec.get("type") in LOOKUP_TYPES else name
            if row.get(read) is None:
                raise DataverseError(
                    400,
                    REQUIRED_MISSING,
                    f"A validation error occurred. A value must be provided for the required "
                    f"attribute '{name}' of the '{info.logical}' entity.",
                )
