"""Which keys a partial crosswalk scan has settled (the service's key order vs Python's)."""

from __future__ import annotations

from shared.state.crosswalk import _query_count, _settled


def test_keys_up_to_the_last_row_read_are_settled() -> None:
    last = ("p|01", "K-0500")
    assert _settled(("p|00", "Z"), last)
    assert _settled(("p|01", "K-0500"), last)
    assert _settled(("p|01", "K-0499"), last)
    assert not _settled(("p|01", "K-0501"), last)
    assert not _settled(("p|02", "A"), last)


def test_characters_whose_order_differs_in_utf16_are_never_settled_by_a_partial_scan() -> None:
    # U+FF21 sorts after U+1F600 in Python (code points) but before it in UTF-16 code units
    assert "\uff21" < "\U0001f600"
    assert not _settled(("p|01", "\uff21"), ("p|01", "\U0001f600"))
    assert not _settled(("p|01", "A"), ("p|01", "\U0001f600"))
    assert _settled(("p|01", "Ünïcödé"), ("p|01", "客户"))  # both below U+D800: same order


def test_query_count_is_per_partition_in_chunks_of_14() -> None:
    keys = [("a", f"k{i}") for i in range(15)] + [("b", "k")]
    assert _query_count(keys) == 3
    assert _query_count([]) == 0
