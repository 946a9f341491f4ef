"""Table Storage key encoding.

PartitionKey and RowKey values may not contain ``/ \\ # ?`` or control characters
(U+0000-U+001F, U+007F-U+009F) and are limited to 1 KiB (512 UTF-16 code units). Source keys
come from Dataverse and F&O data (F&O natural keys routinely contain ``/``), so every key is
encoded before it reaches a table.

The encoding is readable and reversible: forbidden characters, the escape character ``~`` and
lone surrogates (which cannot be sent as UTF-8 at all) become ``~XX`` / ``~uXXXX`` hex escapes.
``~`` is used rather than ``%`` because percent signs in keys have a history of being
double-decoded on the service's URL path. Keys whose encoding would exceed the limit keep a
readable prefix plus ``~~`` and a SHA-256 digest; ``~~`` never occurs in a short encoding, so a
hashed key can always be recognised. Hashed keys are not reversible, which is why every store
keeps the original values in ordinary properties and never decodes keys to recover data.

Composite keys (``company|task|source``) escape ``|`` inside each part, so different part
tuples can never encode to the same key.
"""

from __future__ import annotations

import functools
import hashlib
import re

ESCAPE = "~"
SEPARATOR = "|"
#: Service limit for PartitionKey/RowKey: 1 KiB = 512 UTF-16 code units.
MAX_KEY_UNITS = 512
_DIGEST_CHARS = 40
_HASH_MARK = ESCAPE + ESCAPE
_ALWAYS_ESCAPED = frozenset("/\\#?" + ESCAPE)
_DECODE = re.compile(r"~(?:u([0-9A-F]{4})|([0-9A-F]{2}))")


class KeyDecodeError(ValueError):
    """A stored key could not be decoded (malformed, or a hashed long key)."""


def _units(text: str) -> int:
    """Length in UTF-16 code units, the unit the service's key limit is expressed in."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _needs_escape(ch: str, extra: frozenset[str]) -> bool:
    code = ord(ch)
    return (
        ch in _ALWAYS_ESCAPED
        or ch in extra
        or code <= 0x1F
        or 0x7F <= code <= 0x9F
        or 0xD800 <= code <= 0xDFFF
    )


@functools.cache
def _unsafe(extra: frozenset[str]) -> re.Pattern[str]:
    """Any character `_needs_escape` accepts, as one character class (keys are encoded per record)."""
    listed = "".join(re.escape(ch) for ch in sorted(_ALWAYS_ESCAPED | extra))
    return re.compile(f"[{listed}\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(text: str, extra: frozenset[str] = frozenset()) -> str:
    if _unsafe(extra).search(text) is None:
        return text  # the usual case: nothing to escape
    out: list[str] = []
    for ch in text:
        if _needs_escape(ch, extra):
            code = ord(ch)
            out.append(f"{ESCAPE}{code:02X}" if code <= 0xFF else f"{ESCAPE}u{code:04X}")
        else:
            out.append(ch)
    return "".join(out)


def _bound(encoded: str, original: str, max_units: int) -> str:
    """Keep ``encoded`` if it fits; otherwise a readable prefix + ``~~`` + digest of the original."""
    if _units(encoded) <= max_units:
        return encoded
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    budget = max_units - len(_HASH_MARK) - _DIGEST_CHARS
    prefix: list[str] = []
    used = 0
    for ch in encoded:
        size = 2 if ord(ch) > 0xFFFF else 1
        if used + size > budget:
            break
        prefix.append(ch)
        used += size
    return "".join(prefix) + _HASH_MARK + digest


def encode_key(value: str, *, max_units: int = MAX_KEY_UNITS) -> str:
    """Encode one value for use as a PartitionKey or RowKey."""
    if max_units < len(_HASH_MARK) + _DIGEST_CHARS + 1:
        raise ValueError(f"max_units {max_units} leaves no room for a hashed key")
    return _bound(_escape(value), value, max_units)


def compose_key(*parts: str, max_units: int = MAX_KEY_UNITS) -> str:
    """Encode several values into one key; ``|`` inside a part is escaped so tuples stay distinct."""
    if not parts:
        raise ValueError("compose_key needs at least one part")
    encoded = SEPARATOR.join(_escape(part, frozenset(SEPARATOR)) for part in parts)
    original = "\x00".join(parts)  # digest input: NUL never appears unescaped in the joined form
    return _bound(encoded, original, max_units)


def is_hashed(key: str) -> bool:
    """True when ``key`` is a shortened long key that cannot be decoded."""
    return _HASH_MARK in key


def decode_key(key: str) -> str:
    """Reverse :func:`encode_key` (for diagnostics; stores read originals from properties)."""
    if is_hashed(key):
        raise KeyDecodeError(f"key {key[:40]!r}… is a hashed long key; read the original from its entity")
    pos = 0
    out: list[str] = []
    for match in _DECODE.finditer(key):
        if ESCAPE in key[pos : match.start()]:
            raise KeyDecodeError(f"malformed escape in key {key!r}")
        out.append(key[pos : match.start()])
        out.append(chr(int(match.group(1) or match.group(2), 16)))
        pos = match.end()
    if ESCAPE in key[pos:]:
        raise KeyDecodeError(f"malformed escape in key {key!r}")
    out.append(key[pos:])
    return "".join(out)


def decode_composite(key: str) -> list[str]:
    """Reverse :func:`compose_key`."""
    if is_hashed(key):
        raise KeyDecodeError(f"key {key[:40]!r}… is a hashed long key; read the original from its entity")
    return [decode_key(part) for part in key.split(SEPARATOR)]


def is_valid_key(key: str) -> bool:
    """Whether the service would accept ``key`` (used by tests and as a last-line assertion)."""
    return _units(key) <= MAX_KEY_UNITS and not any(
        _needs_escape(ch, frozenset()) and ch != ESCAPE for ch in key
    )
