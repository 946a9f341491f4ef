"""OData v4 literals and key predicates, escaped once and correctly.

Every value that reaches a URL goes through ``literal`` (for ``$filter`` text, which httpx then
query-encodes) or ``key_predicate`` (for a key segment in the URL path, percent-encoded here because
httpx leaves paths alone). Input is never concatenated into OData text anywhere else, so a value such
as ``x' or 1 eq 1 or 'a`` stays a string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from uuid import UUID

__all__ = ["FO_ENUM_NAMESPACE", "EnumLiteral", "check_name", "key_predicate", "literal", "quote_path"]

FO_ENUM_NAMESPACE = "Microsoft.Dynamics.DataEntities"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUALIFIED_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

# Characters left as they are inside a key segment: unreserved characters plus the OData punctuation
# of the predicate itself. Everything else (/ ? # % & + space, non-ASCII...) is percent-encoded, so a
# value can neither end the path segment nor start a query string.
_PATH_SAFE = "'(),=:-._~"


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain OData property name, else raise ValueError."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"Invalid OData property name: {name!r}")
    return name


@dataclass(frozen=True)
class EnumLiteral:
    """An F&O enum value: ``EnumLiteral("NoYes", "Yes")`` → ``Microsoft.Dynamics.DataEntities.NoYes'Yes'``.

    ``enum_type`` may be fully qualified already; a bare name gets the F&O data-entities namespace.
    """

    enum_type: str
    member: str

    def __post_init__(self) -> None:
        if not _QUALIFIED_RE.match(self.enum_type):
            raise ValueError(f"Invalid enum type name: {self.enum_type!r}")
        if not _NAME_RE.match(self.member):
            raise ValueError(f"Invalid enum member name: {self.member!r}")

    def render(self) -> str:
        qualified = self.enum_type if "." in self.enum_type else f"{FO_ENUM_NAMESPACE}.{self.enum_type}"
        return f"{qualified}'{self.member}'"


def _datetime_text(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``; naive datetimes are taken to be UTC already (the sync's convention)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"Decimal {value} has no OData literal")
    text = format(value, "f")
    return text


def literal(value: Any) -> str:
    """The OData v4 URL literal of a Python value.

    str → ``'it''s'`` (quote doubled); bool → ``true``/``false``; None → ``null``; int, Decimal, float
    as numbers (``NaN``, ``INF``, ``-INF`` for the float specials); datetime → ``2024-01-02T03:04:05Z``
    (UTC, unquoted); date → ``2024-01-02``; UUID → bare GUID; ``EnumLiteral`` → qualified enum.
    Anything else is a TypeError: guessing a representation would silently build a wrong filter.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, EnumLiteral):
        return value.render()
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return _decimal_text(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "INF" if value > 0 else "-INF"
        return repr(value)
    if isinstance(value, datetime):
        return _datetime_text(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"No OData literal for a value of type {type(value).__name__}")


def quote_path(text: str) -> str:
    """Percent-encode OData text for use inside a URL path segment."""
    return quote(text, safe=_PATH_SAFE)


def key_predicate(key: Mapping[str, Any]) -> str:
    """The key segment of an entity URL, percent-encoded for the path.

    ``{"dataAreaId": "usmf", "CustomerAccount": "C'1"}`` → ``(dataAreaId='usmf',CustomerAccount='C''1')``;
    a single GUID key → ``(<guid>)`` (the primary-key form Dataverse documents). Key order is kept, as
    F&O lists its keys in declaration order in its own links.
    """
    if not key:
        raise ValueError("A key predicate needs at least one key property")
    items = list(key.items())
    if len(items) == 1 and isinstance(items[0][1], UUID):
        check_name(items[0][0])
        return "(" + str(items[0][1]) + ")"
    parts = []
    for name, value in items:
        check_name(name)
        if value is None:
            raise ValueError(f"Key property {name!r} has no value")
        parts.append(f"{name}={literal(value)}")
    return "(" + quote_path(",".join(parts)) + ")"
