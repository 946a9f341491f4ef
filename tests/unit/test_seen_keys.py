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


def test_a_key_added_again_keeps_the_last_id_in_either_form() -> None:
    seen = SeenKeys()
    guid = str(uuid.uuid4())
    seen.add("ACC-1", "legacy-id")
    seen.add("ACC-1", guid)
    seen.add("ACC-2", guid)
    seen.add("ACC-2", "legacy-id")
    seen.add("ACC-3", str(uuid.UUID(int=0)))  # the nil GUID is a GUID, not an empty slot
    assert (seen.first_id("ACC-1"), seen.first_id("ACC-2")) == (guid, "legacy-id")
    assert seen.first_id("ACC-3") == "00000000-0000-0000-0000-000000000000"
    assert len(seen) == 3


def test_memory_is_a_few_machine_words_per_key() -> None:
    seen = SeenKeys()
    for n in range(50_000):
        seen.add(f"K-{n}", str(uuid.UUID(int=n)))
    table_bytes = sum(a.buffer_info()[1] * a.itemsize for a in (seen._keys, seen._high, seen._low))
    assert table_bytes / len(seen) <= 3 * 8 * 4  # at most a quarter full after growing: ≤ 96 bytes
    assert not seen._texts
