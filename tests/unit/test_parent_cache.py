"""The parents `SyncedRecords` keeps between pages: reused while named again, bounded in memory."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from shared.engine.references import Parent, SyncedRecords, SyncedTask
from shared.mapping import ReferenceMissing
from shared.state import CrosswalkEntry

ENTITY = "synced:accounts"


class Crosswalk:
    """Every even-numbered customer is synced; each look-up's keys are recorded."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def get_many(self, pair: str, company: str, keys: Sequence[str]) -> dict[str, CrosswalkEntry]:
        self.asked.append(sorted(keys))
        return {
            key: CrosswalkEntry(
                source_key=key,
                target_key=f"{company}|{key}",
                target_id="",
                hash="h" * 64,
                synced_at=datetime(2026, 5, 1, tzinfo=UTC),
                origin=f"id-{key}",
                payload='{"big": "payload"}',
            )
            for key in keys
            if int(key.split("-")[1]) % 2 == 0
        }


def records(crosswalk: Crosswalk, cache_entries: int) -> SyncedRecords:
    task = SyncedTask(pair="accounts>customers", key_fields=("CustomerAccount",), company_in_key=True)
    return SyncedRecords(crosswalk, lambda template, name: task, cache_entries=cache_entries)


def page(synced: SyncedRecords, keys: list[str]) -> None:
    synced.start_page()
    synced.prefetch("usmf", ENTITY, "source_key", keys)


def test_parents_found_once_are_reused_on_later_pages_without_a_look_up() -> None:
    crosswalk = Crosswalk()
    synced = records(crosswalk, cache_entries=100)
    page(synced, ["C-0", "C-1", "C-2"])
    page(synced, ["C-2", "C-3", "C-4"])
    assert crosswalk.asked == [["C-0", "C-1", "C-2"], ["C-3", "C-4"]]
    assert synced.resolve("usmf", ENTITY, "source_key", "C-2", "target_key") == "usmf|C-2"
    assert synced.resolve("usmf", ENTITY, "source_key", "C-4", "origin") == "id-C-4"
    with pytest.raises(ReferenceMissing):  # asked on this page and not found: not asked again
        synced.resolve("usmf", ENTITY, "source_key", "C-3", "target_key")
    assert len(crosswalk.asked) == 2


def test_only_what_a_look_up_returns_is_kept() -> None:
    synced = records(Crosswalk(), cache_entries=100)
    page(synced, ["C-0"])
    assert synced._cached(("usmf", ENTITY, "source_key"), "C-0") == Parent("C-0", "usmf|C-0", "", "id-C-0")


def test_the_cache_is_bounded_and_carries_over_only_parents_named_again() -> None:
    crosswalk = Crosswalk()
    synced = records(crosswalk, cache_entries=10)
    sizes = []
    for start in range(0, 200, 20):  # 10 pages of 20 customers, 10 of them synced
        page(synced, [f"C-{n}" for n in range(start, start + 20)] + ["C-0"])
        sizes.append(synced.cached)
    # a new generation starts once 10 are held: never more than two generations of one page each
    assert max(sizes) <= 2 * (10 + 11)
    asked = crosswalk.asked
    assert all("C-0" not in keys for keys in asked[1:])  # named on every page: carried over
    page(synced, ["C-2"])  # last named on the first page: dropped since, asked for again
    assert crosswalk.asked[-1] == ["C-2"]


def test_parents_are_held_as_one_string_unless_a_field_holds_the_separator() -> None:
    class Odd(Crosswalk):
        def get_many(self, pair: str, company: str, keys: Sequence[str]) -> dict[str, CrosswalkEntry]:
            found = super().get_many(pair, company, keys)
            found["C-2"].target_id = "a\x00b"
            return found

    synced = records(Odd(), cache_entries=100)
    page(synced, ["C-0", "C-2"])
    held = synced._recent[("usmf", ENTITY, "source_key")]
    assert isinstance(held["C-0"], str)
    assert held["C-2"] == Parent("C-2", "usmf|C-2", "a\x00b", "id-C-2")
    assert synced.resolve("usmf", ENTITY, "source_key", "C-0", "origin") == "id-C-0"
    assert synced.resolve("usmf", ENTITY, "source_key", "C-2", "target_id") == "a\x00b"
