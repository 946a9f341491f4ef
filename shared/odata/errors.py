"""Typed failures of Dataverse and F&O calls, decoded in one place.

Every error body either service returns is turned into a ``SyncError`` subclass named for the action
the caller should take, not for the wire detail: retry (``Throttled``, ``Transient``), park the record
(``RecordRejected``, ``NotFound``, ``Conflict``) or stop the run (``AuthFailed``, ``Fatal``,
``BudgetExhausted``). Keeping the mapping here means the service clients and the engine never parse
error bodies themselves, and a new wire shape is fixed once.

Errors are stored in the ``errors`` table and shown to operators, so messages are the service's own
text, trimmed, with anything that looks like a credential scrubbed out.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

__all__ = [
    "AuthFailed",
    "BudgetExhausted",
    "ChangeTokenExpired",
    "Conflict",
    "Fatal",
    "NotFound",
    "RecordRejected",
    "Service",
    "SyncError",
    "Throttled",
    "Transient",
    "decode_error",
    "parse_retry_after",
    "scrub",
]

Service = Literal["dataverse", "finops"]

#: Longest service message kept; F&O infologs and stack traces can run to many kilobytes.
MAX_MESSAGE_CHARS = 1000


class SyncError(Exception):
    """Base of every failure the sync reports.

    ``status`` is the HTTP status (None for network errors), ``code`` the service's error code
    (Dataverse hex code such as ``0x80040237``; None when the service sent none), ``field`` the
    property the message blames when it could be told, ``retry_after`` the wait the service asked
    for (seconds). ``retryable`` is a class attribute: the retry loop decides on the type alone.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        field: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.field = field
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, status={self.status!r}, code={self.code!r}, "
            f"field={self.field!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (thread/process pools, stored reports).
        return (_rebuild, (type(self), self.message, self.to_dict()))

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able form for the errors table and run reports."""
        return {
            "type": type(self).__name__,
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "field": self.field,
            "retry_after": self.retry_after,
        }


def _rebuild(cls: type[SyncError], message: str, data: Mapping[str, Any]) -> SyncError:
    return cls(
        message,
        status=data.get("status"),
        code=data.get("code"),
        field=data.get("field"),
        retry_after=data.get("retry_after"),
    )


class Throttled(SyncError):
    """Service protection limit hit (HTTP 429 or a throttling code); wait ``retry_after`` and retry."""

    retryable = True


class Transient(SyncError):
    """Temporary failure: 5xx, network error, timeout, or a truncated/non-JSON success body."""

    retryable = True


class RecordRejected(SyncError):
    """The record itself is bad (validation, unknown property, too long, bad enum...); park it."""


class NotFound(SyncError):
    """The addressed record does not exist."""


class Conflict(SyncError):
    """Duplicate key, "already exists", or a failed precondition (412)."""


class AuthFailed(SyncError):
    """Credentials refused (401 after the token refresh) or access denied (403)."""


class Fatal(SyncError):
    """The protocol is broken or the configuration is wrong; retrying or parking would not help."""


class ChangeTokenExpired(Fatal):
    """Dataverse ``ExpiredVersionStamp`` (0x80044352): the delta link is too old, a full read is due.

    A ``Fatal`` subclass so that an unhandled expiry stops the run, while the Dataverse client catches
    this type to restart the tracked read.
    """


class BudgetExhausted(SyncError):
    """The run's time budget is spent; the run stops cleanly and resumes from its checkpoints."""


# ---------------------------------------------------------------------------------------------
# Secret scrubbing and message clean-up

_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/=]{8,}"), r"\1 ***"),
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}(?:\.[A-Za-z0-9_\-]*)?"), "***"),
    (
        re.compile(
            r"(?i)\b(authorization|client_secret|clientsecret|password|pwd|access_token|refresh_token|"
            r"accountkey|sharedaccesskey|sig|secret|token|apikey|api_key)\b(\s*[=:]\s*)(\"?)[^\s\"&;,]+"
        ),
        r"\1\2\3***",
    ),
)


def scrub(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Remove anything that looks like a credential and trim to ``limit`` characters."""
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    text = text.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


# ---------------------------------------------------------------------------------------------
# Retry-After


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date; None if absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return None if math.isnan(seconds) else max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


# ---------------------------------------------------------------------------------------------
# Body parsing

_GENERIC_MESSAGES = {"", "an error has occurred.", "an error has occurred"}


def _text_of(value: Any) -> str:
    """OData v3-style bodies nest the text as ``{"lang": ..., "value": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        inner = value.get("value")
        return inner if isinstance(inner, str) else ""
    return ""


def _inner_messages(error: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Messages and exception types from ``innererror``/``internalexception`` chains, outermost first."""
    messages: list[str] = []
    types: list[str] = []
    annotated = error.get("@Microsoft.PowerApps.CDS.InnerError.Message")
    if isinstance(annotated, str) and annotated.strip():
        messages.append(annotated)
    node: Any = error.get("innererror")
    depth = 0
    while isinstance(node, Mapping) and depth < 20:
        text = _text_of(node.get("message"))
        if text.strip():
            messages.append(text)
        kind = node.get("type")
        if isinstance(kind, str) and kind:
            types.append(kind)
        node = node.get("internalexception") or node.get("innererror")
        depth += 1
    return messages, types


def _parse_body(body: bytes) -> tuple[str | None, str, list[str], list[str], bool]:
    """(code, message, inner messages, inner types, parsed_ok) of an error body."""
    if not body or not body.strip():
        return None, "", [], [], False
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, "", [], [], False
    if not isinstance(doc, Mapping):
        return None, "", [], [], False
    error = doc.get("error") or doc.get("odata.error")
    if not isinstance(error, Mapping):
        # Some gateways answer {"message": "..."} or {"Message": "..."}.
        for key in ("message", "Message", "error_description"):
            if isinstance(doc.get(key), str):
                return None, str(doc[key]), [], [], True
        return None, "", [], [], False
    raw_code = error.get("code")
    code = str(raw_code).strip() if raw_code not in (None, "") else None
    message = _text_of(error.get("message"))
    inner, types = _inner_messages(error)
    return code, message, inner, types, True


def _best_message(message: str, inner: list[str]) -> str:
    """The innermost useful text: F&O's outer message is the useless "An error has occurred."."""
    useful = [m for m in inner if m.strip().lower() not in _GENERIC_MESSAGES]
    if useful:
        return useful[-1] if len(useful[-1]) >= 10 else useful[0]
    return message


def _html_title(body: bytes) -> str:
    text = body[:4096].decode("utf-8", errors="replace")
    m = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if m:
        return " ".join(m.group(1).split())
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())[:200]


# ---------------------------------------------------------------------------------------------
# Classification tables

# Dataverse service-protection codes (api-limits) plus DSSThrottlingConcurrencyLimitExceededError.
_DV_THROTTLE_CODES = {"0x80072322", "0x80072321", "0x80072326", "0x80072327"}
#: "Number of requests exceeded the limit": pacing answers it; fewer requests in flight would not.
REQUEST_COUNT_THROTTLE_CODES = frozenset({"0x80072322"})
_DV_CONFLICT_CODES = {
    "0x80040237",  # DuplicateRecord
    "0x80060892",  # DuplicateRecordEntityKey
    "0x80040333",  # DuplicateRecordsFound (duplicate detection)
    "0x80073002",  # CrmSQLUniqueIndexOrConstraintViolation
    "0x80060882",  # ConcurrencyVersionMismatch
}
_DV_NOT_FOUND_CODES = {"0x80040217"}  # ObjectDoesNotExist
_DV_EXPIRED_CODES = {"0x80044352", "-2147204270"}  # ExpiredVersionStamp
# SQL deadlock (-2147204784) and SQL timeout (-2147204783) are worth a retry.
_DV_TRANSIENT_CODES = {"0x80044150", "0x80044151", "-2147204784", "-2147204783"}

_THROTTLE_TEXT = re.compile(
    r"(?i)(high resource utilization|exc?eeded the limit of|exceeded limit of \d|"
    r"number of concurrent requests exceeded|too many concurrent requests|combined execution time)"
)
_TRANSIENT_TEXT = re.compile(
    r"(?i)(sql number:\s*1205|deadlock|sql timeout|timeout expired|a transport-level error|"
    r"service unavailable|temporarily unavailable|try again later)"
)
_CONFLICT_TEXT = re.compile(
    r"(?i)(already exists|duplicate key|cannot insert duplicate|a record with matching key values|"
    r"the version of the existing record doesn't match)"
)
# F&O's answer to a PATCH/DELETE of a missing key (community-observed as 400; also seen inside $batch as 500).
_NO_RESOURCES_TEXT = re.compile(r"(?i)no resources were found")
_NOT_FOUND_TEXT = re.compile(r"(?i)(does not exist\b|not found)")
_EXPIRED_TEXT = re.compile(r"(?i)version stamp associated with the client has expired")
_CONFIG_TEXT = re.compile(
    r"(?i)(the key in the request uri is not valid|resource not found for the segment|"
    r"no http resource was found)"
)
_VALIDATION_TEXT = re.compile(
    r"(?i)(validation|must be filled in|is not valid|invalid|cannot convert|exceeded the maximum|"
    r"does not exist on type|could not find a property|not found in the enumeration|"
    r"does not exist in the enum|write failed|update failed|cannot create a record|cannot be edited|"
    r"the value .* is not|required|too long|out of range|not allowed)"
)

# Field names inside service messages, most specific first.
_FIELD_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"(?i)could not find a property named '([^']+)'"),
    re.compile(r"(?i)the property '([^']+)' does not exist"),
    re.compile(r"(?i)the length of the '([^']+)' attribute"),
    re.compile(r"(?i)property '([^']+)'"),
    re.compile(r"(?i)attribute '([^']+)'"),
    re.compile(r"(?i)field '([^']+)'"),
    re.compile(r"(?i)'([^']+)' attribute"),
    re.compile(r"(?i)column '([^']+)'"),
    re.compile(r"(?i)of '([^']+)' on record"),
)

_NOT_FOUND_MESSAGE_EXCLUDES = re.compile(r"(?i)(property|enumeration|enum\b|\bvalue\b.*\bnot found in)")


def _field_from(message: str) -> str | None:
    for pattern in _FIELD_PATTERNS:
        m = pattern.search(message)
        if m:
            name = m.group(1).strip()
            # "Microsoft.Dynamics.CRM.account" style type names are not fields.
            if name and "." not in name and len(name) <= 128:
                return name
    return None


def decode_error(status: int, headers: Mapping[str, str], body: bytes, service: Service) -> SyncError:
    """Turn a failed response (status, headers, body) into the matching ``SyncError``.

    ``headers`` is looked up case-insensitively (``httpx.Headers`` or a plain dict). Works on whole
    responses and on ``$batch`` parts alike. Never raises.
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    retry_after = parse_retry_after(lower.get("retry-after"))
    code, message, inner, types, parsed = _parse_body(body)
    best = _best_message(message, inner)
    everything = " ".join([message, *inner])
    content_type = lower.get("content-type", "").lower()

    if not parsed or not best.strip():
        if b"<html" in body[:2048].lower() or "text/html" in content_type:
            detail = _html_title(body)
        else:
            detail = body[:300].decode("utf-8", errors="replace")
        best = detail.strip() or f"HTTP {status} with no error body"
    text = scrub(best)
    kw: dict[str, Any] = {"status": status, "code": code}

    # 1. Throttling, whatever the status.
    if status == 429 or code in _DV_THROTTLE_CODES or _THROTTLE_TEXT.search(everything):
        return Throttled(text, retry_after=retry_after, **kw)

    # 2. Authentication / authorisation.
    if status in (401, 403):
        return AuthFailed(text, **kw)

    # 3. Body-specific meanings that beat the status (F&O reports duplicates as 500).
    if code in _DV_EXPIRED_CODES or _EXPIRED_TEXT.search(everything):
        return ChangeTokenExpired(text, **kw)
    if parsed and (code in _DV_CONFLICT_CODES or status == 412 or _CONFLICT_TEXT.search(everything)):
        return Conflict(text, field=_field_from(text), **kw)
    if status == 412:
        return Conflict(text, **kw)
    if code in _DV_TRANSIENT_CODES or (parsed and _TRANSIENT_TEXT.search(everything)):
        return Transient(text, retry_after=retry_after, **kw)
    if parsed and _CONFIG_TEXT.search(everything):
        return Fatal(text, **kw)
    if code in _DV_NOT_FOUND_CODES or (parsed and _NO_RESOURCES_TEXT.search(everything)):
        return NotFound(text, **kw)
    if (
        status in (400, 404)
        and parsed
        and _NOT_FOUND_TEXT.search(everything)
        and not _NOT_FOUND_MESSAGE_EXCLUDES.search(everything)
    ):
        return NotFound(text, **kw)
    if status == 404:
        return NotFound(text, **kw)

    # 4. Server-side failures: F&O X++ write/validation errors arrive as 500 with a write-exception
    #    type; anything else on 5xx is presumed temporary.
    if status >= 500 or status == 408:
        if service == "finops" and parsed and status == 500:
            write_error = any("WriteException" in t or "Validat" in t for t in types)
            if write_error or _VALIDATION_TEXT.search(" ".join(inner)):
                return RecordRejected(text, field=_field_from(text), **kw)
        if status == 501:
            return Fatal(text, **kw)
        return Transient(text, retry_after=retry_after, **kw)

    # 5. Remaining client errors: the request (the record) was refused.
    if status in (400, 405, 409, 413, 414, 422):
        if status == 409:
            return Conflict(text, field=_field_from(text), **kw)
        return RecordRejected(text, field=_field_from(text), **kw)
    if 400 <= status < 500:
        return Fatal(text, **kw)
    # A non-error status handed to the decoder (e.g. 3xx): the protocol went somewhere unexpected.
    return Fatal(f"Unexpected HTTP {status}: {text}", **kw)
