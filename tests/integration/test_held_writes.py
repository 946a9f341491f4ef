"""Writes held back from one page to fill the next page's bulk request (issue 7).

A page rarely maps to a whole number of bulk requests, so the pipeline writes the full requests
and holds the rest for the next page (`TaskPipeline._write`). These tests pin down what that
must not change: the request count is the minimum across pages, a record read again later in the
same run is written as its later row says (not as the held one), and a task whose records look
up records of the same task still finds each parent written before the page that names it.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.datagen import generate
from shared.engine import RunOutcome
from shared.engine.ports import Source, SourcePage
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPANY = "usmf"
SIZE = 250


class ReadsOneRowTwice:
    """A source that delivers one record again on an extra page right after the page that held it.

    Position-based paging does this when rows move while a snapshot is read; here the second
    delivery carries `second` (the record as it was when the crosswalk last saw it), or, when
    `second` is None, the record's deletion.
    """

    def __init__(self, inner: Source, row_id: str, second: dict[str, Any] | None) -> None:
        self.inner = inner
        self.row_id = row_id
        self.second = second

    def read(self, cursor: str | None, company: str) -> Iterator[SourcePage]:
        for page in self.inner.read(cursor, company):
            again = [row for row in page.rows if row.get("accountid") == self.row_id]
            if not again:
                yield page
                continue
            yield replace(page, cursor=None)
            if self.second is None:
                yield SourcePage(rows=[], deleted_ids=[self.row_id], cursor=page.cursor)
            else:
                yield SourcePage(rows=[{**row, **self.second} for row in again], cursor=page.cursor)

    def fetch_by_keys(self, keys: Sequence[str], company: str) -> Iterator[list[dict[str, Any]]]:
        return self.inner.fetch_by_keys(keys, company)


def customers(product: Product) -> dict[str, dict[str, Any]]:
    return {r["CustomerAccount"]: r for r in product.sandbox.finops.rows("CustomersV2", company=COMPANY)}


def test_page_remainders_fill_the_next_pages_request(product: Product) -> None:
    product.sandbox.load(generate(size=SIZE, seed=31, templates=["accounts"]))
    # 30-row pages into 20-record batches: written page by page this was 2 batches a page (17)
    accounts = product.with_settings(P2C_DATAVERSE_PAGE_SIZE="30", P2C_FINOPS_BATCH_SIZE="20")
    product.sandbox.log.reset()

    first = accounts.run()

    assert first.status == "succeeded", first.message
    assert first.counts["written"] == SIZE
    assert product.sandbox.log.count(service="finops", kind="batch") == math.ceil(SIZE / 20)
    assert len(customers(product)) == SIZE


def full_run_reading_one_account_twice(
    product: Product, monkeypatch: pytest.MonkeyPatch, seed: int, edit: str, *, revert: bool
) -> tuple[RunOutcome, dict[str, Any]]:
    """Sync 250 accounts, rename one to `edit`, then a full run whose source reads it twice.

    The second delivery has the old name again (`revert`) or is the account's deletion. Returns
    the run and the account as it was before the edit.
    """
    product.sandbox.load(generate(size=SIZE, seed=seed, templates=["accounts"]))
    accounts = product.with_settings(P2C_DATAVERSE_PAGE_SIZE="30", P2C_FINOPS_BATCH_SIZE="20")
    assert accounts.run().status == "succeeded"
    victim = product.sandbox.dataverse.rows("accounts")[100]
    product.sandbox.dataverse.update("accounts", victim["accountid"], {"name": edit})
    build = accounts.engine._task_view

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        view = build(*args, **kwargs)
        second = {"name": victim["name"]} if revert else None
        view.source = ReadsOneRowTwice(view.source, victim["accountid"], second)
        return view

    monkeypatch.setattr(accounts.engine, "_task_view", wrapped)
    return accounts.run(mode="full"), victim


@pytest.mark.parametrize(
    ("seed", "revert", "expected"),
    [
        # the edit was read first and held back; the later row (edited back) matches the
        # crosswalk, so it replaces the held write and nothing is written at all
        pytest.param(37, True, {"unchanged": SIZE}, id="edited-back"),
        # accounts keep the F&O customer of a deleted account (delete_policy: ignore) as last synced
        pytest.param(39, False, {"deleted": 1}, id="deleted"),
    ],
)
def test_a_held_record_is_replaced_by_what_the_read_says_later(
    product: Product, monkeypatch: pytest.MonkeyPatch, seed: int, revert: bool, expected: dict[str, int]
) -> None:
    full, victim = full_run_reading_one_account_twice(product, monkeypatch, seed, "Edited", revert=revert)

    assert full.status == "succeeded", full.message
    assert full.counts.get("written", 0) == 0
    assert {name: full.counts[name] for name in expected} == expected
    assert customers(product)[victim["accountnumber"]]["OrganizationName"] == victim["name"]


def test_a_task_that_looks_itself_up_writes_each_page_before_the_next(
    product: Product, tmp_path: Path
) -> None:
    """Parents on one page, their children (same task) on the next: no child waits for a parent."""
    mappings = tmp_path / "mappings"
    shutil.copytree(ROOT / "mappings", mappings)
    path = mappings / "accounts.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    [task] = doc["tasks"]
    task["fields"].append(
        {
            "target": "InvoiceAccount",
            "source": "parentaccountid",
            "lookup": {"entity": "synced:accounts", "by": "origin", "return": "CustomerAccount"},
        }
    )
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    product.sandbox.load(generate(size=SIZE, seed=41, templates=["accounts"]))
    rows = product.sandbox.dataverse.rows("accounts")
    parents, children = rows[:10], rows[10:20]
    # changed last, in this order: the delta read ends with a page of parents, then one of children
    for parent in parents:
        product.sandbox.dataverse.update("accounts", parent["accountid"], {"telephone1": "+1 425 555 0100"})
    for child, parent in zip(children, parents, strict=True):
        link = {"_parentaccountid_value": parent["accountid"]}
        product.sandbox.dataverse.update("accounts", child["accountid"], link)
    # 10-row pages into 100-record batches: held back, the parents would still be unwritten
    accounts = product.with_settings(
        P2C_MAPPINGS_DIR=str(mappings), P2C_DATAVERSE_PAGE_SIZE="10", P2C_FINOPS_BATCH_SIZE="100"
    )
    product.sandbox.log.reset()

    first = accounts.run()

    assert first.status == "succeeded", first.message
    assert first.counts.get("deferred", 0) == 0
    assert first.counts["written"] == SIZE
    assert product.sandbox.log.count(service="finops", kind="batch") == SIZE // 10
    synced = customers(product)
    for child, parent in zip(children, parents, strict=True):
        assert synced[child["accountnumber"]]["InvoiceAccount"] == parent["accountnumber"]
