"""The run's record of which source id first used each natural key (duplicate-key detection)."""

from __future__ import annotations

import uuid

from shared.engine.pipeline import SeenKeys


def test_ids_come_back_exactly_as_given() -> None:
    seen = SeenKeys()
    guid = str(uuid.uuid4())
    seen.add("ACC-1", guid)
    seen.add("ACC-2", "6F9619FF-8B86-D011-B42D-00C04FC964FF")  # upper case: kept as text
    seen.add("ACC-3", "not-a-guid")
    assert seen.first_id("ACC-1") == guid
    assert seen.first_id("ACC-2") == "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    assert seen.first_id("ACC-3") == "not-a-guid"
    assert seen.first_id("ACC-4") is None


def test_keys_are_told_apart() -> None:
    seen = SeenKeys()
    for n in range(10_000):
        seen.add(f"K-{n}", str(uuid.UUID(int=n)))
    assert all(seen.first_id(f"K-{n}") == str(uuid.UUID(int=n)) for n in range(10_000))
    assert seen.first_id("K-10000") is None
