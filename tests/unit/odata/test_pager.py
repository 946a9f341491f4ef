"""Paging over @odata.nextLink with the loop guard."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from shared.odata.errors import Fatal
from shared.odata.pager import iter_pages

BASE = "https://contoso.crm.dynamics.com/api/data/v9.2/"
SKIP2 = (
    BASE
    + "contacts?$select=fullname&$skiptoken=%3Ccookie%20pagenumber=%222%22%20istracking=%22False%22%20/%3E"
)


class FakeService:
    def __init__(self, pages: Mapping[str, Mapping[str, Any]]) -> None:
        self.pages = pages
        self.calls: list[str] = []

    def __call__(self, url: str) -> Mapping[str, Any]:
        self.calls.append(url)
        return self.pages[url]


def test_follows_next_links_unchanged_and_returns_delta_link() -> None:
    first = BASE + "contacts?$select=fullname"
    svc = FakeService(
        {
            first: {"value": [{"contactid": "1"}], "@odata.nextLink": SKIP2},
            SKIP2: {
                "value": [{"contactid": "2"}],
                "@odata.deltaLink": BASE + "contacts?$deltatoken=919042%2108",
            },
        }
    )
    pages = list(iter_pages(svc, first))
    assert svc.calls == [first, SKIP2]
    assert [p.rows for p in pages] == [[{"contactid": "1"}], [{"contactid": "2"}]]
    assert pages[0].next_link == SKIP2 and pages[0].delta_link is None
    assert pages[1].next_link is None and pages[1].delta_link == BASE + "contacts?$deltatoken=919042%2108"
    assert pages[1].raw["value"] == [{"contactid": "2"}]


def test_lazy() -> None:
    svc = FakeService({"a": {"value": [], "@odata.nextLink": "b"}, "b": {"value": []}})
    it = iter_pages(svc, "a")
    next(it)
    assert svc.calls == ["a"]


def test_self_link_is_a_loop() -> None:
    svc = FakeService({"a": {"value": [{"x": 1}], "@odata.nextLink": "a"}})
    it = iter_pages(svc, "a")
    assert next(it).rows == [{"x": 1}]
    with pytest.raises(Fatal, match="paging loop"):
        next(it)


def test_cycle_is_a_loop() -> None:
    svc = FakeService(
        {
            "a": {"value": [], "@odata.nextLink": "b"},
            "b": {"value": [], "@odata.nextLink": "c"},
            "c": {"value": [], "@odata.nextLink": "b"},
        }
    )
    with pytest.raises(Fatal, match="paging loop"):
        list(iter_pages(svc, "a"))
    assert svc.calls == ["a", "b", "c"]


def test_max_pages() -> None:
    svc = FakeService({f"p{i}": {"value": [], "@odata.nextLink": f"p{i + 1}"} for i in range(10)})
    with pytest.raises(Fatal, match="3 pages"):
        list(iter_pages(svc, "p0", max_pages=3))
    assert svc.calls == ["p0", "p1", "p2"]


@pytest.mark.parametrize("doc", [{"value": "nope"}, {"value": [1, 2]}, {"value": [], "@odata.nextLink": 5}])
def test_malformed_bodies(doc: Mapping[str, Any]) -> None:
    with pytest.raises(Fatal):
        list(iter_pages(lambda url: doc, "a"))


def test_missing_value_is_an_empty_page() -> None:
    assert [p.rows for p in iter_pages(lambda url: {}, "a")] == [[]]
