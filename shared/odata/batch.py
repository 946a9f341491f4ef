"""OData v4 ``$batch`` codec (multipart/mixed), client side.

Both services take the same framing: top-level ``application/http`` parts, change sets as nested
``multipart/mixed`` parts whose members may carry ``Content-ID``; responses mirror it
(``batchresponse_<guid>`` / ``changesetresponse_<guid>``). The encoder writes CRLF exactly as the
services document; the decoder accepts CRLF or bare LF and any header case, because proxies and the
two services are not consistent, but it is strict about structure: a response we cannot frame is a
``Fatal`` protocol error, never a guess about which record succeeded.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.odata.errors import Fatal, Service, SyncError, decode_error

__all__ = [
    "BatchOperation",
    "BatchPartResponse",
    "ChangeSet",
    "boundary_of",
    "decode_batch",
    "encode_batch",
]

_CRLF = "\r\n"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_BOUNDARY_RE = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_STATUS_RE = re.compile(r"^HTTP/\d(?:\.\d)?\s+(\d{3})(?:\s+(.*))?$")
_URL_BREAK_RE = re.compile(r"[ \r\n\t]")
_PART_HEAD = f"Content-Type: application/http{_CRLF}Content-Transfer-Encoding: binary{_CRLF}"


@dataclass
class BatchOperation:
    """One request inside a batch.

    ``url`` is relative to the service root (``accounts(…)``), rooted (``/api/data/v9.2/accounts``)
    or absolute, or a ``$n`` Content-ID reference. ``body`` is JSON-serialised unless it is already
    ``bytes``/``str``.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: Any | None = None
    content_id: str | None = None


@dataclass
class ChangeSet:
    """Operations applied atomically: all succeed or all roll back (no GETs allowed)."""

    operations: list[BatchOperation]


@dataclass
class BatchPartResponse:
    """One inner response; ``headers`` keys are lower-case."""

    status: int
    headers: dict[str, str]
    body: bytes
    content_id: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The decoded JSON body, None when empty; ``Fatal`` when the part body is not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Fatal(f"A $batch response part (HTTP {self.status}) does not hold valid JSON") from exc

    def error(self, service: Service) -> SyncError | None:
        """The typed error of a failed part (None for 2xx), decoded like a whole response."""
        if self.ok:
            return None
        return decode_error(self.status, self.headers, self.body, service)


# ---------------------------------------------------------------------------------------------
# Encoding


def _check_header(name: str, value: str) -> None:
    if not _TOKEN_RE.match(name):
        raise ValueError(f"Invalid header name in a batch operation: {name!r}")
    if "\r" in value or "\n" in value:
        raise ValueError(f"Header {name!r} of a batch operation contains a line break")


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@functools.lru_cache(maxsize=128)
def _operation_head(method: str, headers: tuple[tuple[str, str], ...], has_body: bool) -> str:
    """Everything after an operation's URL up to its body, validated once per distinct shape.

    The operations of one batch nearly always share their method and headers (a crosswalk
    transaction is a hundred PUTs alike), so checking and joining them per operation was most of
    the encoder's time.
    """
    if not _TOKEN_RE.match(method):
        raise ValueError(f"Invalid HTTP method in a batch operation: {method!r}")
    lines = [" HTTP/1.1"]
    names = set()
    for name, value in headers:
        _check_header(name, value)
        names.add(name.lower())
        lines.append(f"{name}: {value}")
    if has_body and "content-type" not in names:
        lines.append("Content-Type: application/json; type=entry")
    return _CRLF.join(lines) + _CRLF + _CRLF


def _encode_operation(op: BatchOperation, *, in_changeset: bool) -> bytes:
    method = op.method.upper()
    if not op.url or _URL_BREAK_RE.search(op.url):
        raise ValueError(f"Invalid URL in a batch operation: {op.url!r}")
    if in_changeset and method == "GET":
        raise ValueError("GET operations are not allowed inside a change set")
    content_id = ""
    if op.content_id is not None:
        _check_header("Content-ID", op.content_id)
        content_id = f"Content-ID: {op.content_id}{_CRLF}"
    body = _body_bytes(op.body)
    head = _operation_head(method, tuple(op.headers.items()), bool(body))
    return f"{_PART_HEAD}{content_id}{_CRLF}{method} {op.url}{head}".encode() + body


def encode_batch(
    items: Sequence[BatchOperation | ChangeSet],
    *,
    boundary: str | None = None,
) -> tuple[str, bytes]:
    """Frame ``items`` as a ``$batch`` request; returns (Content-Type header value, body)."""
    if not items:
        raise ValueError("A batch needs at least one operation")
    outer = boundary or f"batch_{uuid.uuid4()}"
    if not _TOKEN_RE.match(outer) or len(outer) > 70:
        raise ValueError(f"Invalid multipart boundary: {outer!r}")
    chunks: list[bytes] = []
    for item in items:
        chunks.append(f"--{outer}{_CRLF}".encode())
        if isinstance(item, BatchOperation):
            chunks.append(_encode_operation(item, in_changeset=False))
            chunks.append(_CRLF.encode())
            continue
        if not isinstance(item, ChangeSet):
            raise TypeError(f"Batch items are BatchOperation or ChangeSet, not {type(item).__name__}")
        if not item.operations:
            raise ValueError("A change set needs at least one operation")
        ids = [op.content_id for op in item.operations if op.content_id is not None]
        if len(ids) != len(set(ids)):
            raise ValueError("Content-ID values must be unique within a change set")
        inner = f"changeset_{uuid.uuid4()}"
        chunks.append(f"Content-Type: multipart/mixed; boundary={inner}{_CRLF}{_CRLF}".encode())
        for op in item.operations:
            chunks.append(f"--{inner}{_CRLF}".encode())
            chunks.append(_encode_operation(op, in_changeset=True))
            chunks.append(_CRLF.encode())
        chunks.append(f"--{inner}--{_CRLF}".encode())
    chunks.append(f"--{outer}--{_CRLF}".encode())
    return f"multipart/mixed; boundary={outer}", b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# Decoding


def boundary_of(content_type: str | None) -> str:
    """The boundary of a ``multipart/mixed`` Content-Type; ``Fatal`` if it is not one."""
    if not content_type or not content_type.strip().lower().startswith("multipart/mixed"):
        raise Fatal(f"Expected a multipart/mixed $batch response, got {content_type!r}")
    m = _BOUNDARY_RE.search(content_type)
    if m is None:
        raise Fatal("The $batch response Content-Type has no boundary")
    return m.group(1) or m.group(2)


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    """Bodies between ``--boundary`` lines up to ``--boundary--``; the line break before a delimiter
    belongs to the delimiter (RFC 2046), so part bodies come back without it.

    A delimiter counts only at the start of the body or of a line, followed by optional ``--``,
    optional blanks and a line break (or the end). Scanned with ``bytes.find`` rather than a regex:
    every F&O change set answers with a boundary of its own, and compiling a pattern per part was
    the largest CPU cost of a bulk write.
    """
    delim = b"--" + boundary.encode("utf-8")
    size = len(body)
    parts: list[bytes] = []
    start: int | None = None
    pos = 0
    while True:
        at = body.find(delim, pos)
        if at < 0:
            break
        pos = at + 1
        if at == 0:
            line_start = 0
        elif body[at - 1] == 0x0A:  # "\n", possibly after "\r"
            line_start = at - 2 if at >= 2 and body[at - 2] == 0x0D else at - 1
        else:
            continue
        end = at + len(delim)
        closing = body.startswith(b"--", end)
        if closing:
            end += 2
        while end < size and body[end] in (0x20, 0x09):
            end += 1
        if end < size:
            if body.startswith(b"\r\n", end):
                end += 2
            elif body[end] == 0x0A:
                end += 1
            else:
                continue
        if start is not None:
            parts.append(body[start:line_start])
        if closing:
            return parts
        start = pos = end
    if start is None:
        raise Fatal(f"The $batch response does not contain its boundary {boundary!r}")
    raise Fatal(f"The $batch response is truncated: no closing '--{boundary}--'")


def _split_head(block: bytes) -> tuple[list[str], bytes]:
    """Header lines and the rest, split at the first empty line (CRLF or LF)."""
    m = re.search(rb"\r?\n\r?\n", block)
    if m is None:
        text = block.decode("utf-8", errors="replace")
        return text.splitlines(), b""
    return block[: m.start()].decode("utf-8", errors="replace").splitlines(), block[m.end() :]


def _headers(lines: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            continue
        if ":" not in line:
            raise Fatal(f"Invalid header line in a $batch response: {line[:100]!r}")
        name, value = line.split(":", 1)
        out[name.strip().lower()] = value.strip()
    return out


def _decode_http(part_headers: dict[str, str], content: bytes) -> BatchPartResponse:
    content = content.lstrip(b"\r\n")
    lines, body = _split_head(content)
    if not lines:
        raise Fatal("A $batch response part has no status line")
    m = _STATUS_RE.match(lines[0].strip())
    if m is None:
        raise Fatal(f"Invalid status line in a $batch response: {lines[0][:100]!r}")
    headers = _headers(lines[1:])
    content_id = part_headers.get("content-id") or headers.get("content-id")
    return BatchPartResponse(status=int(m.group(1)), headers=headers, body=body, content_id=content_id)


def _decode_part(raw: bytes, *, nested: bool) -> list[BatchPartResponse]:
    lines, content = _split_head(raw)
    part_headers = _headers(lines)
    ctype = part_headers.get("content-type", "").lower()
    if ctype.startswith("multipart/mixed"):
        if nested:
            raise Fatal("Nested change sets in a $batch response")
        inner = boundary_of(part_headers["content-type"])
        out: list[BatchPartResponse] = []
        for sub in _split_parts(content, inner):
            out.extend(_decode_part(sub, nested=True))
        return out
    if ctype and not ctype.startswith("application/http"):
        raise Fatal(f"Unexpected $batch response part Content-Type {ctype!r}")
    return [_decode_http(part_headers, content)]


def decode_batch(content_type: str, body: bytes) -> list[BatchPartResponse]:
    """Inner responses of a ``$batch`` response, in order, change sets expanded in place."""
    outer = boundary_of(content_type)
    out: list[BatchPartResponse] = []
    for raw in _split_parts(body, outer):
        out.extend(_decode_part(raw, nested=False))
    return out
