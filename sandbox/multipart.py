"""Server-side OData `$batch` codec (multipart/mixed) for the sandbox stand-ins.

The product's client writes `$batch` bodies by hand, exactly as Dataverse and F&O document them;
the stand-ins must read those bodies the way the services do and answer in the same framing
(``batchresponse_<guid>``, ``changesetresponse_<guid>``, echoed ``Content-ID``), so that the
client's response parser is exercised against realistic bytes. Parsing is lenient about line
endings (CRLF or LF) and strict about structure (boundaries, request lines, nesting).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "BatchPart",
    "BatchRequest",
    "ChangeSet",
    "Headers",
    "MultipartError",
    "PartResponse",
    "boundary_of",
    "build_batch_response",
    "count_operations",
    "parse_batch",
    "relative_path",
    "resolve_content_ids",
]


class MultipartError(ValueError):
    """The body is not a well-formed `$batch` request; the services answer HTTP 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Headers:
    """Case-insensitive header list that keeps the original spelling and order."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        low = name.lower()
        for key, value in self.items:
            if key.lower() == low:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def to_dict(self) -> dict[str, str]:
        """Lower-case names → values (the last one wins)."""
        return {key.lower(): value for key, value in self.items}

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"


@dataclass
class BatchRequest:
    """One inner request of a `$batch`.

    ``url`` is as written (absolute, ``/api/data/v9.2/...``, relative, or ``$1/...``);
    ``content_id`` is the part's ``Content-ID`` (also looked for among the inner headers).
    """

    method: str
    url: str
    headers: Headers
    body: bytes
    content_id: str | None = None
    part_headers: Headers = field(default_factory=Headers)

    def json(self) -> Any:
        """The JSON body (None when empty); MultipartError when it is not JSON."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise MultipartError(
                f"The body of the batch part '{self.method} {self.url}' is not JSON."
            ) from exc

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


@dataclass
class ChangeSet:
    """An atomic group of requests: all succeed or all roll back."""

    boundary: str
    requests: list[BatchRequest]


BatchPart = BatchRequest | ChangeSet


@dataclass
class PartResponse:
    """One inner response to frame; ``body`` may be bytes, str, or a JSON-able object."""

    status: int
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    body: bytes | str | Any = None
    content_id: str | None = None
    reason: str | None = None

    def body_bytes(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


_BOUNDARY_RE = re.compile(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_REQUEST_LINE_RE = re.compile(r"^([A-Z]+)\s+(\S+)(?:\s+HTTP/\d(?:\.\d)?)?$")


def boundary_of(content_type: str | None) -> str:
    """The ``boundary`` parameter of a ``multipart/mixed`` Content-Type."""
    if not content_type or not content_type.lower().lstrip().startswith("multipart/mixed"):
        raise MultipartError(
            "The batch request must have a Content-Type of 'multipart/mixed' with a boundary."
        )
    m = _BOUNDARY_RE.search(content_type)
    if m is None:
        raise MultipartError("The 'boundary' parameter is missing from the multipart/mixed Content-Type.")
    return m.group(1) or m.group(2)


def _split_head(block: bytes) -> tuple[list[str], bytes]:
    """Split a block into header lines and the remainder after the first empty line."""
    found = [(idx, sep) for sep in (b"\r\n\r\n", b"\n\n") if (idx := block.find(sep)) != -1]
    if not found:
        return block.decode("utf-8").splitlines(), b""
    idx, sep = min(found)
    return block[:idx].decode("utf-8").splitlines(), block[idx + len(sep) :]


def _parse_headers(lines: Iterable[str]) -> Headers:
    items: list[tuple[str, str]] = []
    for line in lines:
        if not line.strip():
            continue
        if ":" not in line:
            raise MultipartError(f"Invalid header line '{line}' in the batch request.")
        name, value = line.split(":", 1)
        items.append((name.strip(), value.strip()))
    return Headers(items)


#: A line that starts with ``--``: a delimiter candidate. One pattern for every boundary: each change
#: set has a boundary of its own, and compiling a pattern per boundary cost more than the rest of a batch.
_DELIMITER_LINE = re.compile(rb"(?:^|\r?\n)--([^\r\n]*)(?=\r?\n|$)")


def _split_parts(body: bytes, boundary: str) -> list[bytes]:
    """Parts between ``--boundary`` delimiters, up to ``--boundary--`` (preamble/epilogue dropped)."""
    delim = boundary.encode("utf-8")
    closing = delim + b"--"
    parts: list[bytes] = []
    last_end: int | None = None
    closed = False
    # Delimiters sit at the start of a line (trailing blanks allowed); other lines are content.
    for m in _DELIMITER_LINE.finditer(body):
        token = m.group(1).rstrip(b" \t")
        if token not in (delim, closing):
            continue
        if last_end is not None:
            parts.append(body[last_end : m.start()])
        if token == closing:
            closed = True
            break
        last_end = m.end()
        # skip the line break after the delimiter
        if body.startswith(b"\r\n", last_end):
            last_end += 2
        elif body.startswith(b"\n", last_end):
            last_end += 1
    if last_end is None:
        raise MultipartError(f"The batch body does not contain the boundary '{boundary}'.")
    if not closed:
        raise MultipartError(f"The batch body is not terminated by '--{boundary}--'.")
    return parts


def _parse_http_part(part_headers: Headers, content: bytes) -> BatchRequest:
    lines_and_body = content
    # skip leading blank lines before the request line
    while lines_and_body.startswith((b"\r\n", b"\n")):
        lines_and_body = lines_and_body[2:] if lines_and_body.startswith(b"\r\n") else lines_and_body[1:]
    head_lines, body = _split_head(lines_and_body)
    if not head_lines:
        raise MultipartError("A batch part has no request line.")
    m = _REQUEST_LINE_RE.match(head_lines[0].strip())
    if m is None:
        raise MultipartError(f"Invalid request line '{head_lines[0].strip()}' in the batch request.")
    headers = _parse_headers(head_lines[1:])
    content_id = part_headers.get("Content-ID") or headers.get("Content-ID")
    return BatchRequest(
        method=m.group(1),
        url=m.group(2),
        headers=headers,
        body=body,
        content_id=content_id,
        part_headers=part_headers,
    )


def _parse_part(raw: bytes, *, in_changeset: bool) -> BatchPart:
    head_lines, content = _split_head(raw)
    part_headers = _parse_headers(head_lines)
    ctype = (part_headers.get("Content-Type") or "").lower()
    if ctype.startswith("multipart/mixed"):
        if in_changeset:
            raise MultipartError("Change sets cannot be nested.")
        boundary = boundary_of(part_headers.get("Content-Type"))
        requests: list[BatchRequest] = []
        for inner in _split_parts(content, boundary):
            item = _parse_part(inner, in_changeset=True)
            assert isinstance(item, BatchRequest)
            if item.method == "GET":
                raise MultipartError("GET requests are not allowed inside a change set.")
            requests.append(item)
        return ChangeSet(boundary=boundary, requests=requests)
    if ctype and not ctype.startswith("application/http"):
        raise MultipartError(f"Unsupported batch part Content-Type '{part_headers.get('Content-Type')}'.")
    return _parse_http_part(part_headers, content)


def parse_batch(body: bytes, content_type: str | None) -> list[BatchPart]:
    """Parse a ``$batch`` request body into requests and change sets, in order."""
    boundary = boundary_of(content_type)
    return [_parse_part(raw, in_changeset=False) for raw in _split_parts(body, boundary)]


def count_operations(parts: Sequence[BatchPart]) -> int:
    """Inner requests in a batch (change set members counted one by one)."""
    return sum(len(p.requests) if isinstance(p, ChangeSet) else 1 for p in parts)


_REF_RE = re.compile(r"\$(\d+)(?![\d])")


def resolve_content_ids(text: str, ids: Mapping[str, str]) -> str:
    """Replace ``$n`` references (Content-ID of earlier parts of the change set) by their URLs.

    An unknown reference raises MultipartError with the service's text:
    ``Content-ID Reference: '$1' does not exist in the batch context.``
    Only whole references are replaced: ``$batch``/``$filter`` are not numbers, so they are safe.
    """

    def repl(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in ids:
            raise MultipartError(f"Content-ID Reference: '${key}' does not exist in the batch context.")
        return ids[key]

    return _REF_RE.sub(repl, text)


def relative_path(url: str, base_path: str) -> str:
    """Map an inner URL (absolute, rooted, or relative to the service root) to the part after
    ``base_path``, without a leading slash, query string kept: ``accounts(…)?$select=name``."""
    parts = urlsplit(url)
    path = parts.path
    base = base_path.rstrip("/")
    if path.startswith(base + "/"):
        path = path[len(base) + 1 :]
    elif path == base:
        path = ""
    else:
        path = path.lstrip("/")
    return path + (f"?{parts.query}" if parts.query else "")


def _status_line(resp: PartResponse) -> str:
    reason = resp.reason
    if reason is None:
        try:
            reason = HTTPStatus(resp.status).phrase
        except ValueError:
            reason = ""
    return f"HTTP/1.1 {resp.status} {reason}".rstrip()


def _header_items(headers: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


def _frame_response(resp: PartResponse, *, in_changeset: bool) -> bytes:
    lines = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
    if resp.content_id is not None and in_changeset:
        lines.append(f"Content-ID: {resp.content_id}")
    body = resp.body_bytes()
    inner = [_status_line(resp)]
    items = _header_items(resp.headers)
    names = {k.lower() for k, _ in items}
    inner.extend(f"{k}: {v}" for k, v in items)
    if body and "content-type" not in names:
        inner.append("Content-Type: application/json; odata.metadata=minimal")
    text = "\r\n".join(lines) + "\r\n\r\n" + "\r\n".join(inner) + "\r\n\r\n"
    return text.encode("utf-8") + body


def build_batch_response(
    items: Sequence[PartResponse | Sequence[PartResponse]],
    *,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """Frame inner responses as a multipart/mixed ``$batch`` response.

    ``items``: a PartResponse per top-level request, or a sequence of them per change set.
    Returns (body, content type header value).
    """
    outer = boundary or f"batchresponse_{uuid.uuid4()}"
    chunks: list[bytes] = []
    for item in items:
        chunks.append(f"--{outer}\r\n".encode())
        if isinstance(item, PartResponse):
            chunks.append(_frame_response(item, in_changeset=False))
            chunks.append(b"\r\n")
            continue
        inner_boundary = f"changesetresponse_{uuid.uuid4()}"
        chunks.append(f"Content-Type: multipart/mixed; boundary={inner_boundary}\r\n\r\n".encode())
        for resp in item:
            chunks.append(f"--{inner_boundary}\r\n".encode())
            chunks.append(_frame_response(resp, in_changeset=True))
            chunks.append(b"\r\n")
        chunks.append(f"--{inner_boundary}--\r\n".encode())
    chunks.append(f"--{outer}--\r\n".encode())
    return b"".join(chunks), f"multipart/mixed; boundary={outer}"
