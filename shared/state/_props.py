"""Entity property helpers shared by the stores.

Table Storage caps a string property at 64 KiB (32,768 UTF-16 code units) and an entity at 1 MiB.
Long values (delta links, JSON blobs) are split across numbered properties; small free-text
values (messages, payload excerpts) are truncated. Datetimes are normalised to timezone-aware
UTC because the SDK returns its own ``TablesEntityDatetime`` subclass and naive values would be
read back as UTC silently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

#: Python characters per part; an astral character is 2 UTF-16 units, so 16,384 chars always fit.
PART_CHARS = 16_384
TRUNCATION_MARK = "…[truncated]"


def utc(value: datetime) -> datetime:
    """A plain, timezone-aware UTC datetime (rejects naive values instead of guessing)."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: state datetimes must be timezone-aware")
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def read_dt(entity: Mapping[str, Any], name: str) -> datetime | None:
    value = entity.get(name)
    if value is None:
        return None
    if isinstance(value, datetime):
        return utc(value if value.tzinfo is not None else value.replace(tzinfo=UTC))
    return utc(datetime.fromisoformat(str(value)))


def put_text(entity: dict[str, Any], name: str, text: str | None, *, max_parts: int) -> None:
    """Store ``text`` as ``<name>`` (+ ``<name>1``, ``<name>2`` … when long) and ``<name>Parts``."""
    if text is None:
        entity[f"{name}Parts"] = 0
        return
    parts = [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]
    if len(parts) > max_parts:
        raise ValueError(
            f"{name} is {len(text)} characters; at most {max_parts * PART_CHARS} fit in one entity"
        )
    entity[f"{name}Parts"] = len(parts)
    for index, part in enumerate(parts):
        entity[name if index == 0 else f"{name}{index}"] = part


def get_text(entity: Mapping[str, Any], name: str) -> str | None:
    count = entity.get(f"{name}Parts")
    if count is None:  # written without the split layout
        value = entity.get(name)
        return None if value is None else str(value)
    if int(count) == 0:
        return None
    return "".join(str(entity.get(name if i == 0 else f"{name}{i}", "")) for i in range(int(count)))


def truncate(text: str | None, limit: int) -> str:
    """Cut free text to ``limit`` characters, marking the cut so readers know it is partial."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(TRUNCATION_MARK))] + TRUNCATION_MARK


def put_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def get_json(entity: Mapping[str, Any], name: str, default: Any) -> Any:
    raw = entity.get(name)
    if raw in (None, ""):
        return default
    return json.loads(str(raw))


def etag_of(entity: Any) -> str | None:
    metadata = getattr(entity, "metadata", None) or {}
    etag = metadata.get("etag")
    return None if etag is None else str(etag)
