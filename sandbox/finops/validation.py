"""Payload validation and error bodies of the F&O OData stand-in.

F&O answers in two voices, and the stand-in keeps both so the product's error decoder meets the
real shapes:

- OData/ODataLib failures (unknown property, a value that does not convert to the EDM type, null
  in a non-nullable property, bad query options) come back with the ODataLib text in
  `error.message` and the exception in `innererror`.
- X++ failures (the business logic behind the entity: duplicate key, missing record) come back
  as `"message": "An error has occurred."` with the Infolog text in `innererror.message` and the
  type `...AxODataWriteException` (live capture in apis.md B2).

Where apis.md has the exact text it is used verbatim; texts marked SANDBOX are the stand-in's
own wording for cases no source pins down (e.g. a too-long string).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.finops.store import COMPANY_KEY, ENTITY_NS, EntityInfo

__all__ = [
    "AX_WRITE_EXCEPTION",
    "NOT_FOUND_FOR_UPDATE",
    "ODATA_EXCEPTION",
    "FinOpsError",
    "Validator",
    "odata_error",
    "unknown_property",
    "xpp_error",
]

ODATA_EXCEPTION = "Microsoft.OData.ODataException"
AX_WRITE_EXCEPTION = "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"
NOT_FOUND_FOR_UPDATE = "No resources were found when selecting for update."


class FinOpsError(Exception):
    """A failure F&O reports as `{"error": {"code": "", "message", "innererror"}}`."""

    def __init__(self, status: int, message: str, *, inner: str | None = None, inner_type: str = "") -> None:
        super().__init__(inner or message)
        self.status = status
        self.message = message
        self.inner = inner if inner is not None else message
        self.inner_type = inner_type or ODATA_EXCEPTION

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": "",
                "message": self.message,
                "innererror": {"message": self.inner, "type": self.inner_type, "stacktrace": ""},
            }
        }


def odata_error(message: str, status: int = 400) -> FinOpsError:
    """An ODataLib-level failure: the text is the top-level message."""
    return FinOpsError(status, message, inner_type=ODATA_EXCEPTION)


def xpp_error(inner: str, status: int) -> FinOpsError:
    """An X++ failure: generic top-level message, the Infolog text inside (apis.md B2)."""
    return FinOpsError(status, "An error has occurred.", inner=inner, inner_type=AX_WRITE_EXCEPTION)


def unknown_property(name: str, info: EntityInfo) -> FinOpsError:
    """ODataLib's text for a payload property the entity type does not declare."""
    return odata_error(
        f"The property '{name}' does not exist on type '{info.full_type}'. "
        "Make sure to only use property names that are defined by the type."
    )


def _convert_error(value: Any, edm: str) -> FinOpsError:
    shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else value
    return odata_error(f"Cannot convert the literal '{shown}' to the expected type '{edm}'.")


_GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DTO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})$")
_INT_LIMITS = {"Edm.Int32": (-(2**31), 2**31 - 1), "Edm.Int64": (-(2**63), 2**63 - 1)}


class Validator:
    """Checks payload properties of one entity set against the catalogue (built once per app)."""

    def __init__(self, enum_types: Mapping[str, Mapping[str, int]]) -> None:
        self.enum_types = enum_types

    def payload(self, info: EntityInfo, body: Any) -> dict[str, Any]:
        """The JSON object of a POST/PATCH with every property checked; annotations dropped."""
        if not isinstance(body, dict):
            raise odata_error("The request body must be a JSON object describing the entity.")
        odata_type = body.get("@odata.type")
        if isinstance(odata_type, str) and odata_type.lstrip("#") != info.full_type:
            raise odata_error(
                f"A resource with type '{odata_type.lstrip('#')}' was found, but it is not assignable to "
                f"the expected type '{info.full_type}'. The type specified in the resource must be equal "
                "to either the expected type or a derived type."
            )
        out: dict[str, Any] = {}
        for name, value in body.items():
            if "@" in name:
                continue
            spec = info.properties.get(name)
            if spec is None:
                raise unknown_property(name, info)
            out[name] = self.value(info, name, spec, value)
        return out

    def value(self, info: EntityInfo, name: str, spec: Mapping[str, Any], value: Any) -> Any:
        """One property value as stored; FinOpsError (400) when it does not fit the property."""
        edm = str(spec.get("type") or "Edm.String")
        if value is None:
            if spec.get("nullable") is False:
                full = f"{edm}[Nullable=False]"
                raise odata_error(
                    f"A null value was found for the property named '{name}', which has the expected type "
                    f"'{full}'. The expected type '{full}' does not allow null values."
                )
            return None
        if edm.startswith(ENTITY_NS):
            return self._enum(edm, value)
        if edm == "Edm.String":
            if not isinstance(value, str):
                raise odata_error(
                    f"Cannot convert a primitive value to the expected type 'Edm.String'. "
                    f"See the inner exception for more details. (property '{name}')"
                )
            max_length = spec.get("max_length")
            if isinstance(max_length, int) and len(value) > max_length:
                # SANDBOX wording: no source pins F&O's text for an over-long string.
                raise odata_error(
                    f"The value of property '{name}' on type '{info.full_type}' is {len(value)} characters "
                    f"long; the maximum length of field '{name}' is {max_length}."
                )
            if name == COMPANY_KEY:
                return value.lower()
            return value
        if edm in ("Edm.Decimal", "Edm.Double", "Edm.Single"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _convert_error(value, edm)
            if isinstance(value, float) and not math.isfinite(value):
                raise _convert_error(value, edm)
            return value
        if edm in _INT_LIMITS:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise _convert_error(value, edm)
            low, high = _INT_LIMITS[edm]
            if not low <= value <= high:
                raise _convert_error(value, edm)
            return value
        if edm == "Edm.Boolean":
            if not isinstance(value, bool):
                raise _convert_error(value, edm)
            return value
        if edm == "Edm.DateTimeOffset":
            return _datetime_offset(value, edm)
        if edm == "Edm.Date":
            if not isinstance(value, str):
                raise _convert_error(value, edm)
            try:
                return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
            except ValueError as exc:
                raise _convert_error(value, edm) from exc
        if edm == "Edm.Guid":
            if not isinstance(value, str) or not _GUID_RE.match(value):
                raise _convert_error(value, edm)
            return value.lower()
        return value

    def _enum(self, edm: str, value: Any) -> str:
        """Enums travel as member names (`"Yes"`); a numeric string naming a value is accepted too,
        as ODataLib does. Stored as the member name."""
        members = self.enum_types.get(edm[len(ENTITY_NS) :])
        if not isinstance(value, str):
            raise odata_error(f"Cannot convert a primitive value to the expected type '{edm}'.")
        if members is None or value in members:
            return value
        if value.lstrip("-").isdigit():
            for member, number in members.items():
                if number == int(value):
                    return member
        raise odata_error(f"The string '{value}' is not a valid enumeration type constant for type '{edm}'.")


def _datetime_offset(value: Any, edm: str) -> str:
    """ISO 8601 with an offset (ODataLib requires one); stored as UTC `YYYY-MM-DDTHH:MM:SSZ`."""
    if not isinstance(value, str) or not _DTO_RE.match(value):
        raise _convert_error(value, edm)
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    if "." in text:
        head, _, tail = text.partition(".")
        digits = re.match(r"\d+", tail)
        frac = digits.group() if digits else ""
        text = head + "." + frac[:6].ljust(6, "0") + tail[len(frac) :]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise _convert_error(value, edm) from exc
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
