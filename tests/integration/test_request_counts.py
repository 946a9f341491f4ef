"""Request-count properties of the sync (issue 7), counted by the sandbox's request log, not timed.

What the services see is what costs money and throttling budget: an initial load must write in
full bulk requests (ceil(N / batch size)), an idle run must cost one read per task and nothing
else, and a full snapshot of unchanged data must write nothing (hash skip).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from sandbox.datagen import generate
from tests.fixtures.product import Product
from tests.fixtures.table_requests import count_queries
from tests.integration.test_orders_to_fno_sync import order_line_selected

pytestmark = pytest.mark.integration

SIZE = 250
BATCH = 20
WRITE_KINDS = ("batch", "bulk", "single")


def writes(product: Product) -> int:
    log = product.sandbox.log
    return sum(
        log.count(service=service, kind=kind) for service in ("dataverse", "finops") for kind in WRITE_KINDS
    )


def test_initial_idle_and_full_snapshot_request_counts(product: Product) -> None:
    product.sandbox.load(generate(size=SIZE, seed=23, templates=["accounts"]))
    accounts = product.with_settings(P2C_FINOPS_BATCH_SIZE=str(BATCH))
    product.sandbox.log.reset()

    first = accounts.run()
    assert first.status == "succeeded", first.message
    assert first.counts["written"] == SIZE
    assert product.sandbox.log.count(service="finops", kind="batch") == math.ceil(SIZE / BATCH)
    assert product.sandbox.log.count(service="finops", kind="single") == 0
    assert product.sandbox.log.count(status=429) == 0

    product.sandbox.log.reset()
    idle = accounts.run()
    assert idle.status == "succeeded", idle.message
    tasks = len(idle.tasks)
    assert tasks == 1
    assert product.sandbox.log.count(service="dataverse", kind="read") == tasks  # the delta link only
    assert product.sandbox.log.count() == tasks  # nothing else at all: no lookups, no writes
    assert writes(product) == 0

    product.sandbox.log.reset()
    full = accounts.run(mode="full")
    assert full.status == "succeeded", full.message
    assert full.counts["read"] == SIZE and full.counts.get("unchanged") == SIZE
    assert full.counts.get("written", 0) == 0
    assert writes(product) == 0


def test_initial_load_probes_the_empty_crosswalk_once_instead_of_per_page(product: Product) -> None:
    product.sandbox.load(generate(size=SIZE, seed=29, templates=["accounts"]))
    accounts = product.with_settings(P2C_DATAVERSE_PAGE_SIZE="50")
    counter = count_queries(product.state.crosswalk)

    first = accounts.run()
    assert first.status == "succeeded", first.message
    assert first.counts["written"] == SIZE
    assert counter.queries == 1  # the probe; no per-page look-ups of keys that cannot exist yet

    counter.reset()
    full = accounts.run(mode="full")
    assert full.counts.get("unchanged") == SIZE
    # a full re-read probes (no cursor) and, finding rows, looks every page's 50 keys up: spread
    # over the buckets they would take a query per bucket, so the crosswalk (250 rows) is read
    # whole instead, one page per page of records
    pages = math.ceil(SIZE / 50)
    assert counter.queries == 1 + pages


def test_only_the_parents_of_selected_rows_are_looked_up(
    product: Product, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines the template skips are never mapped: asking the crosswalk for their headers is waste.

    In the generated data most unselected lines belong to unselected orders, so those look-ups
    could only miss.
    """
    product.sandbox.load(generate(size=120, seed=11))
    small = product.with_settings(P2C_DATAVERSE_PAGE_SIZE="25")
    assert small.run("accounts").status == "succeeded"
    headers = "salesorders>CDSSalesOrderHeaders"
    asked: dict[str, set[str]] = {}
    crosswalk = small.state.crosswalk
    by_origin_many = crosswalk.by_origin_many

    def spy(pair: str, company: str, ids: list[str]) -> Any:
        asked.setdefault(pair, set()).update(ids)
        return by_origin_many(pair, company, ids)

    monkeypatch.setattr(crosswalk, "by_origin_many", spy)
    orders = small.run("orders-to-fno")

    assert orders.status in ("succeeded", "partial"), orders.message
    lines = product.sandbox.dataverse.rows("salesorderdetails")
    of_selected = {line["_salesorderid_value"] for line in lines if order_line_selected(line)}
    of_skipped = {line["_salesorderid_value"] for line in lines if not order_line_selected(line)}
    assert of_skipped - of_selected  # the data has headers named only by skipped lines
    assert asked[headers] and asked[headers] <= of_selected
