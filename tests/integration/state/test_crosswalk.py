"""Crosswalk against Azurite: batched look-ups, ≤100-row transactions, reverse rows, awkward keys."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from shared.state import CrosswalkEntry, StateStore, crosswalk
from shared.state.crosswalk import BUCKETS, KEYS_PER_QUERY, bucket_of
from tests.fixtures.table_requests import CountingTable, count_queries

pytestmark = pytest.mark.integration

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
AWKWARD = ["a/b#c?d\\e", "Ünïcödé ключ 客户 😀", "k" * 2000, "tab\tand\x01ctl", "O'Brien|x", "~7E"]


def entry(key: str, n: int = 0, target: str | None = None) -> CrosswalkEntry:
    return CrosswalkEntry(
        source_key=key,
        target_key=target if target is not None else f"T-{key}",
        target_id=f"id-{n}",
        hash=f"h{n}",
        synced_at=NOW,
        origin=f"origin-{n}",
    )


def test_put_many_250_and_get_many(state: StateStore) -> None:
    entries = [entry(f"CUST-{i:04d}", i) for i in range(250)]
    state.crosswalk.put_many("accounts>customers", "usmf", entries)
    assert state.crosswalk.count("accounts>customers", "usmf") == 250
    wanted = [f"CUST-{i:04d}" for i in range(0, 250, 3)] + ["MISSING-1", "MISSING-2"]
    found = state.crosswalk.get_many("accounts>customers", "usmf", wanted)
    assert set(found) == {k for k in wanted if not k.startswith("MISSING")}
    assert len(found) > KEYS_PER_QUERY  # several chunks were needed
    got = found["CUST-0099"]
    assert got == entry("CUST-0099", 99)
    assert got.synced_at.tzinfo is not None
    assert sorted(e.source_key for e in state.crosswalk.iter("accounts>customers", "usmf")) == sorted(
        e.source_key for e in entries
    )


def test_get_many_is_scoped_to_pair_and_company(state: StateStore) -> None:
    state.crosswalk.put_many("p", "usmf", [entry("K1", 1)])
    state.crosswalk.put_many("p", "demf", [entry("K1", 2)])
    assert state.crosswalk.get_many("p", "usmf", ["K1"])["K1"].target_id == "id-1"
    assert state.crosswalk.get_many("p", "demf", ["K1"])["K1"].target_id == "id-2"
    assert state.crosswalk.get_many("other", "usmf", ["K1"]) == {}
    assert state.crosswalk.get_many("p", "usmf", []) == {}


def test_awkward_keys_round_trip(state: StateStore) -> None:
    entries = [entry(k, i) for i, k in enumerate(AWKWARD)]
    state.crosswalk.put_many("pair/with#odd?chars", "us|mf", entries)
    found = state.crosswalk.get_many("pair/with#odd?chars", "us|mf", AWKWARD + AWKWARD[:2])
    assert set(found) == set(AWKWARD)
    for i, key in enumerate(AWKWARD):
        assert found[key] == entry(key, i)
        assert state.crosswalk.get("pair/with#odd?chars", "us|mf", key) == entry(key, i)
        assert state.crosswalk.by_target("pair/with#odd?chars", "us|mf", f"T-{key}") == entry(key, i)
    # a long key that shares the hashed prefix is still a different key
    assert state.crosswalk.get("pair/with#odd?chars", "us|mf", "k" * 1999 + "j") is None


def test_upsert_replaces_and_last_duplicate_wins(state: StateStore) -> None:
    state.crosswalk.put_many("p", "usmf", [entry("K", 1)])
    state.crosswalk.put_many("p", "usmf", [entry("K", 2), entry("K", 3)])
    assert state.crosswalk.get("p", "usmf", "K") == entry("K", 3)
    deleted = entry("K", 4)
    deleted.deleted = True
    state.crosswalk.put_many("p", "usmf", [deleted])
    got = state.crosswalk.get("p", "usmf", "K")
    assert got is not None and got.deleted
    assert state.crosswalk.count("p", "usmf") == 1  # reverse rows are not counted


def test_by_target_ignores_a_stale_reverse_row(state: StateStore) -> None:
    state.crosswalk.put_many("p", "usmf", [entry("S1", 1, target="OLD")])
    assert state.crosswalk.by_target("p", "usmf", "OLD") == entry("S1", 1, target="OLD")
    state.crosswalk.put_many("p", "usmf", [entry("S1", 2, target="NEW")])
    assert state.crosswalk.by_target("p", "usmf", "OLD") is None
    assert state.crosswalk.by_target("p", "usmf", "NEW") == entry("S1", 2, target="NEW")
    assert state.crosswalk.by_target("p", "usmf", "NEVER") is None


def test_entries_without_target_key_have_no_reverse_row(state: StateStore) -> None:
    state.crosswalk.put_many("p", "usmf", [entry("S", 1, target="")])
    assert state.crosswalk.by_target("p", "usmf", "") is None
    assert state.crosswalk.get("p", "usmf", "S") is not None


def test_is_empty_sees_one_row_of_its_own_partition_only(state: StateStore) -> None:
    assert state.crosswalk.is_empty("a>b", "usmf")
    state.crosswalk.put_many("a>b", "demf", [entry("K1", 1)])
    assert state.crosswalk.is_empty("a>b", "usmf")
    state.crosswalk.put_many("a>b", "usmf", [entry(f"K{i}", i) for i in range(3)])
    assert not state.crosswalk.is_empty("a>b", "usmf")


def test_rows_spread_over_buckets_and_scans_see_all_of_them(state: StateStore) -> None:
    entries = [entry(f"B-{i:03d}", i) for i in range(600)]
    state.crosswalk.put_many("spread", "usmf", entries)
    partitions = {e["PartitionKey"] for e in state.crosswalk.table.query_entities("RowKey ge 'B-'")}
    forward = {pk for pk in partitions if pk.startswith("spread|usmf|")}
    assert len(forward) == BUCKETS  # 600 keys hit every bucket
    assert state.crosswalk.count("spread", "usmf") == 600
    assert state.crosswalk.count("spread", "demf") == 0
    assert {e.source_key for e in state.crosswalk.iter("spread", "usmf")} == {e.source_key for e in entries}
    assert state.crosswalk.get("spread", "usmf", "B-077") == entries[77]
    assert state.crosswalk.by_target("spread", "usmf", "T-B-077") == entries[77]
    origins = state.crosswalk.by_origin_many("spread", "usmf", [f"origin-{i}" for i in range(0, 600, 7)])
    assert {e.source_key for e in origins.values()} == {f"B-{i:03d}" for i in range(0, 600, 7)}


def test_index_rows_hold_only_the_source_key_and_the_indexed_value(state: StateStore) -> None:
    state.crosswalk.put_many("slim", "usmf", [entry("I-1", 1)])
    index_rows = {
        e["PartitionKey"].split("|")[0]: {k: v for k, v in e.items() if k not in ("PartitionKey", "RowKey")}
        for e in state.crosswalk.table.query_entities("SourceKey eq 'I-1'")
        if not e["PartitionKey"].startswith("slim|")
    }
    assert index_rows == {
        "rev": {"SourceKey": "I-1", "TargetKey": "T-I-1"},
        "org": {"SourceKey": "I-1", "Origin": "origin-1"},
    }
    # every index hit is verified against the forward row, which keeps everything else
    assert state.crosswalk.by_origin_many("slim", "usmf", ["origin-1"]) == {"origin-1": entry("I-1", 1)}
    assert state.crosswalk.by_target_many("slim", "usmf", ["T-I-1"]) == {"T-I-1": entry("I-1", 1)}


def test_bucket_of_is_stable() -> None:
    # part of the stored layout: a change would hide every row written before it
    assert [bucket_of(k) for k in ("ACC-0001", "a|b", "")] == ["01", "0b", "00"]


def test_reverse_rows_are_optional_and_rebuilt_on_first_lookup_by_target(state: StateStore) -> None:
    entries = [entry(f"R-{i:03d}", i) for i in range(30)]
    state.crosswalk.put_many("lean", "usmf", entries, reverse=False)
    query = "PartitionKey ge 'rev|lean|' and PartitionKey lt 'rev|lean}'"
    reverse_rows = list(state.crosswalk.table.query_entities(query))
    assert reverse_rows == []  # nobody looked these up by target key: a third fewer writes

    # a mapping that looks the task up by target key arrives: the first look-up builds the index
    found = state.crosswalk.by_target_many("lean", "usmf", ["T-R-005", "T-R-029", "T-missing"])
    assert {k: e.source_key for k, e in found.items()} == {"T-R-005": "R-005", "T-R-029": "R-029"}
    assert state.crosswalk.table.get_entity("index|lean|usmf", "reverse") is not None

    # from then on the writers keep it complete (the engine passes reverse=True for such tasks)
    state.crosswalk.put_many("lean", "usmf", [entry("R-100", 100)], reverse=True)
    assert state.crosswalk.by_target("lean", "usmf", "T-R-100") == entry("R-100", 100)


def _many_keys(state: StateStore, size: int) -> list[CrosswalkEntry]:
    entries = [entry(f"S-{i:04d}", i) for i in range(size)]
    state.crosswalk.put_many("scan", "usmf", entries)
    state.crosswalk.put_many("scan", "demf", [entry("S-0001", 9999)])  # a neighbouring family
    return entries


def test_a_small_family_is_scanned_once_instead_of_many_key_queries(state: StateStore) -> None:
    entries = _many_keys(state, 300)
    counter = count_queries(state.crosswalk)
    wanted = [e.source_key for e in entries[::2]] + ["S-MISSING"]
    found = state.crosswalk.get_many("scan", "usmf", wanted)
    assert (counter.scans, counter.key_queries) == (1, 0)
    assert found == {e.source_key: e for e in entries[::2]}
    origins = state.crosswalk.by_origin_many("scan", "usmf", [f"origin-{i}" for i in range(0, 300, 2)])
    assert {v.source_key for v in origins.values()} == {e.source_key for e in entries[::2]}
    assert (counter.scans, counter.key_queries) == (3, 0)  # the origin rows, then their forward rows


def test_a_large_family_settles_what_the_scan_read_and_queries_the_rest(
    state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _many_keys(state, 300)
    monkeypatch.setattr(crosswalk, "SCAN_PAGE_ROWS", 60)
    monkeypatch.setattr(crosswalk, "QUERIES_PER_SCANNED_PAGE", 8)  # a budget of 2 pages of 60 rows
    counter = count_queries(state.crosswalk)
    wanted = [e.source_key for e in entries[::2]] + ["S-MISSING", "S-ZZZZ"]
    found = state.crosswalk.get_many("scan", "usmf", wanted)
    assert found == {e.source_key: e for e in entries[::2]}
    assert counter.scans == 2
    assert 0 < counter.key_queries < math.ceil(len(wanted) / KEYS_PER_QUERY) + BUCKETS
    # the store now knows the family is large: the next look-up queries by key only
    counter.reset()
    assert state.crosswalk.get_many("scan", "usmf", wanted) == found
    assert counter.scans == 0 and counter.key_queries >= crosswalk.SCAN_MIN_QUERIES


def test_few_keys_are_queried_by_key(state: StateStore) -> None:
    entries = _many_keys(state, 300)
    counter = count_queries(state.crosswalk)
    assert state.crosswalk.get_many("scan", "usmf", ["S-0001", "S-0002"]) == {
        "S-0001": entries[1],
        "S-0002": entries[2],
    }
    assert (counter.scans, counter.key_queries) == (0, 2 if bucket_of("S-0001") != bucket_of("S-0002") else 1)


def _large_family(
    state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[CrosswalkEntry], CountingTable]:
    """2,000 rows, 125 per bucket, read 100 rows a page: too large for a family scan, which the
    store learns from its first look-up (a scan cut short after its budget of four pages)."""
    entries = [entry(f"S-{i:04d}", i) for i in range(2000)]
    state.crosswalk.put_many("range", "usmf", entries, reverse=False)
    monkeypatch.setattr(crosswalk, "SCAN_PAGE_ROWS", 100)
    counter = count_queries(state.crosswalk)
    first = entries[:600]
    assert state.crosswalk.get_many("range", "usmf", [e.source_key for e in first]) == {
        e.source_key: e for e in first
    }
    assert counter.scans == 4
    counter.reset()
    return entries, counter


def test_a_page_of_clustered_keys_is_read_as_one_key_range_per_bucket(
    state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries, counter = _large_family(state, monkeypatch)
    block = entries[1000:1600]  # a page of source records in key order: about 37 per bucket
    found = state.crosswalk.get_many("range", "usmf", [e.source_key for e in block] + ["S-1000x"])
    assert found == {e.source_key: e for e in block}
    # one request per bucket, where key queries would have taken three
    assert (counter.scans, counter.ranges, counter.key_queries) == (0, BUCKETS, 0)

    # an initial load's page: keys not written yet, past the rows of earlier pages
    counter.reset()
    assert state.crosswalk.get_many("range", "usmf", [f"S-{i:04d}" for i in range(5000, 5600)]) == {}
    assert (counter.scans, counter.ranges, counter.key_queries) == (0, BUCKETS, 0)


def test_keys_spread_over_the_buckets_fall_back_to_key_queries(
    state: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries, counter = _large_family(state, monkeypatch)
    spread = entries[::4]  # about 31 per bucket, over the whole of each bucket's 125 rows
    wanted = [e.source_key for e in spread] + ["S-0000x", "S-9999"]
    found = state.crosswalk.get_many("range", "usmf", wanted)
    assert found == {e.source_key: e for e in spread}
    # each range stopped after its page (budget) and settled the keys up to its last row
    assert counter.ranges == BUCKETS
    assert 0 < counter.key_queries < math.ceil(len(wanted) / KEYS_PER_QUERY) + BUCKETS
    # the store now knows this family's keys are sparse: no more key ranges; a scan is worth up to
    # a quarter of the key queries, more pages than before, so it is tried once more (and cut short)
    counter.reset()
    assert state.crosswalk.get_many("range", "usmf", wanted) == found
    assert counter.ranges == 0 and 4 < counter.scans < 20
    counter.reset()
    assert state.crosswalk.get_many("range", "usmf", wanted) == found
    assert counter.ranges == 0 and counter.scans == 0
    assert counter.key_queries >= math.ceil(len(wanted) / KEYS_PER_QUERY)
