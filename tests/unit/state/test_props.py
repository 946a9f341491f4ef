"""Entity property helpers: long text splits and rejoins, datetimes are UTC-aware, back-off grows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.state._props import PART_CHARS, get_text, put_text, truncate, utc
from shared.state.errors import BACKOFF_CAP, backoff


def test_long_text_is_split_and_rejoined() -> None:
    text = "😀" + "d" * (PART_CHARS * 2 + 10)
    entity: dict[str, Any] = {}
    put_text(entity, "Cursor", text, max_parts=5)
    assert entity["CursorParts"] == 3
    assert all(len(entity[k]) <= PART_CHARS for k in ("Cursor", "Cursor1", "Cursor2"))
    assert get_text(entity, "Cursor") == text


def test_none_and_empty_text_round_trip() -> None:
    entity: dict[str, Any] = {}
    put_text(entity, "Cursor", None, max_parts=1)
    assert get_text(entity, "Cursor") is None
    put_text(entity, "Cursor", "", max_parts=1)
    assert get_text(entity, "Cursor") == ""


def test_text_beyond_the_entity_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="at most"):
        put_text({}, "Cursor", "x" * (PART_CHARS * 2 + 1), max_parts=2)


def test_truncate_marks_the_cut() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("y" * 100, 20)
    assert len(cut) == 20 and cut.endswith("[truncated]")


def test_utc_normalises_and_rejects_naive() -> None:
    plus2 = datetime(2026, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus2) == datetime(2026, 1, 1, 10, 0, tzinfo=UTC)
    assert utc(plus2).tzinfo is UTC
    with pytest.raises(ValueError, match="naive"):
        utc(datetime(2026, 1, 1))


def test_backoff_doubles_and_caps_and_deferred_is_fixed() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(9) == timedelta(minutes=256)
    assert backoff(10) == BACKOFF_CAP == timedelta(hours=6)
    assert backoff(1000) == BACKOFF_CAP
    assert backoff(7, "deferred") == timedelta(minutes=1)
