"""Benchmark workloads: one per template, named by the template (the harness takes it as a parameter).

A workload knows how to seed the sandbox with N source records without building them all at once,
how to change 1% of them, which templates must have run once (unmeasured) before its initial load,
and where its source and target rows live (for the parse baseline).

- ``accounts``: Sales accounts → F&O CustomersV2 (no lines). N = accounts.
- ``orders-to-fno``: Sales salesorders + salesorderdetails → F&O CDSSalesOrderHeaders/Lines. Its
  headers look up ``synced:accounts`` (the customer by origin), so ``accounts`` runs first as set-up.
  N ≈ order lines.
- ``orders-to-sales``: F&O CDSSalesOrderHeaders/Lines → Sales salesorders/salesorderdetails plus the
  "Freight Tax" line. N ≈ order lines.

The order workloads seed the *other* side as a deployment that already ran accounts and products
would have it: every customer account, product, unit, price list and currency an order names exists
in the target, so every selected record resolves and nothing is deferred. Records a template's
selection rules leave out (drafts, F&O-only customers, unconfirmed or work-order orders) are read
and skipped; they are not errors.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.catalogue import load_catalogue_files
from sandbox.datagen import (
    BASE_UNIT,
    FO_ORDER_HEADERS,
    FO_ORDER_LINES,
    UNIT_GROUP,
    UNITS,
    ProductMaster,
    SalesCatalogue,
    SalesReference,
    customer_refs,
    finops_defaults,
    generate,
    iter_accounts,
    iter_finops_order_documents,
    iter_product_masters,
    iter_sales_order_documents,
    iter_synced_sales_products,
)

ROOT = Path(__file__).resolve().parent.parent
SEED = 7
#: The company the bench's product settings serve (`sandbox.product_env`: P2C_COMPANIES=usmf).
COMPANY = "usmf"
#: Rows handed to a sandbox store at a time (a 200,000-record seed never sits in one list).
CHUNK = 10000
#: Fixed date for order documents, so every run of the bench seeds the same rows.
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
LINES_PER_ORDER = 3  # the generators draw 1-5 lines per order


@dataclass(frozen=True)
class Workload:
    """One template under test; ``direction`` is ``sales_to_fno`` or ``fno_to_sales``.

    ``prerequisites`` are templates the harness runs once, unmeasured, after seeding and before the
    initial load (same state prefix), so the records this template looks up (``synced:``) exist.
    """

    template: str
    direction: str
    seed: Callable[[Any, int], None]
    change: Callable[[Any, float], int]
    prerequisites: tuple[str, ...] = ()

    def available(self) -> bool:
        names = (self.template, *self.prerequisites)
        return all((ROOT / "mappings" / f"{name}.yaml").exists() for name in names)


def _load_chunks(store: Any, entity_set: str, rows: Iterable[dict[str, Any]]) -> int:
    """Stream `rows` into a sandbox store in slices; returns how many were loaded."""
    it = iter(rows)
    total = 0
    while True:
        chunk = list(itertools.islice(it, CHUNK))
        if not chunk:
            return total
        store.load_rows(entity_set, chunk)
        total += len(chunk)


def _every(fraction: float) -> int:
    return max(1, round(1 / fraction))


def _seed_reference(sb: Any) -> None:
    """Currencies, units, price lists and business units (Sales); configuration (F&O)."""
    sb.load(generate(size=0, seed=SEED, templates=["accounts"], companies=(COMPANY,)))


def _sales_reference(sb: Any) -> SalesReference:
    """The ids of the Sales reference rows `_seed_reference` loaded, as datagen's generators take them."""
    dv = sb.dataverse
    currency_ids = {
        r["isocurrencycode"]: r["transactioncurrencyid"] for r in dv.rows("transactioncurrencies")
    }
    uoms = {r["name"]: r["uomid"] for r in dv.rows("uoms")}
    uom_ids = {BASE_UNIT: uoms[BASE_UNIT], **{u.symbol: uoms[u.sales_name] for u in UNITS}}
    schedule = next(r["uomscheduleid"] for r in dv.rows("uomschedules") if r["name"] == UNIT_GROUP)
    currency_codes = {v: k for k, v in currency_ids.items()}
    pricelevel_ids = {
        currency_codes[r["_transactioncurrencyid_value"]]: r["pricelevelid"] for r in dv.rows("pricelevels")
    }
    return SalesReference(currency_ids, uom_ids, schedule, pricelevel_ids, rows={})


def _seed_accounts_rows(sb: Any, count: int) -> list[dict[str, Any]]:
    """`count` Sales accounts (streamed into the store); returns the rows, for customer references."""
    currency_ids = {
        r["isocurrencycode"]: r["transactioncurrencyid"] for r in sb.dataverse.rows("transactioncurrencies")
    }
    rows = list(iter_accounts(count, SEED, currency_ids))
    _load_chunks(sb.dataverse, "accounts", rows)
    return rows


def _seed_sales_products(
    sb: Any, masters: list[ProductMaster], reference: SalesReference, *, all_sellable: bool
) -> SalesCatalogue:
    """Sales products (and their price list items) as the products template wrote them.

    datagen emits only the "already synced" half of the F&O products into Sales; with
    `all_sellable` every product that is not sales-stopped is there, as after a full products run
    (an F&O order may name any sellable product).
    """
    currency = "USD"
    chosen = [m._replace(ordinal=2 * m.ordinal) if all_sellable else m for m in masters]  # even: synced
    products, items, refs = [], [], []
    for product, item, ref in iter_synced_sales_products(chosen, SEED, currency, reference):
        products.append(product)
        items.append(item)
        refs.append(ref)
    _load_chunks(sb.dataverse, "products", products)
    _load_chunks(sb.dataverse, "productpricelevels", items)
    return SalesCatalogue(refs, reference.currency_ids[currency], reference.pricelevel_ids[currency])


# -- accounts (Sales → F&O CustomersV2) -----------------------------------------------------------


def seed_accounts(sb: Any, size: int) -> None:
    """Reference data from `generate`, then `size` accounts streamed into the store in slices."""
    sb.load(generate(size=0, seed=SEED, templates=["accounts"]))
    currency_ids = {
        r["isocurrencycode"]: r["transactioncurrencyid"] for r in sb.dataverse.rows("transactioncurrencies")
    }
    _load_chunks(sb.dataverse, "accounts", iter_accounts(size, SEED, currency_ids))


def change_accounts(sb: Any, fraction: float) -> int:
    """Change the main phone of every (1/fraction)-th account; returns how many changed."""
    step = _every(fraction)
    changed = 0
    for index, row in enumerate(sb.dataverse.rows("accounts")):
        if index % step == 0:
            sb.dataverse.update(
                "accounts", row["accountid"], {"telephone1": f"+1 425 555 {index % 10000:04d}"}
            )
            changed += 1
    return changed


# -- orders-to-fno (Sales salesorders/salesorderdetails → F&O CDSSalesOrderHeaders/Lines) ----------


def orders_to_fno_accounts(size: int) -> int:
    """Customers of the Sales orders: the accounts set-up run syncs them, so keep it small."""
    return max(10, size // 20)


def seed_sales_orders(sb: Any, size: int) -> None:
    """About `size` Sales order lines (size/3 orders, 1-5 lines each) of Sales accounts.

    Customers are accounts only (the prerequisite `accounts` run makes each an F&O customer; a
    contact customer would need `contacts-to-customers` too) and products are the Sales products
    already synced from F&O. Drafts, cancelled orders and orders with write-in products are
    generated as in life and are not selected by the template.
    """
    _seed_reference(sb)
    reference = _sales_reference(sb)
    accounts = _seed_accounts_rows(sb, orders_to_fno_accounts(size))
    masters = list(iter_product_masters(max(10, size // 10), SEED))
    catalogue = _seed_sales_products(sb, masters, reference, all_sellable=False)
    customers = customer_refs(accounts)
    documents = iter_sales_order_documents(max(1, size // LINES_PER_ORDER), SEED, customers, catalogue)
    _load_documents(sb.dataverse, "salesorders", "salesorderdetails", documents)


def _load_documents(
    store: Any,
    header_set: str,
    line_set: str,
    documents: Iterator[tuple[dict[str, Any], list[dict[str, Any]]]],
) -> None:
    while True:
        chunk = list(itertools.islice(documents, CHUNK // LINES_PER_ORDER))
        if not chunk:
            return
        store.load_rows(header_set, [header for header, _ in chunk])
        store.load_rows(line_set, [line for _, lines in chunk for line in lines])


@functools.cache
def task_selection(template: str, task: str) -> Callable[[dict[str, Any]], bool]:
    """A mapping task's selection rule, compiled by the product: the bench never restates it."""
    from shared.engine.filters import compile_filter
    from shared.mapping import load_catalogue, load_mapping

    catalogue = load_catalogue(ROOT / "sandbox" / "schemas")
    mapping = load_mapping(ROOT / "mappings" / f"{template}.yaml", catalogue)
    return compile_filter(mapping.task(task).source.filter)


def sales_line_selected(line: dict[str, Any]) -> bool:
    """orders-to-fno's line selection (mappings/orders-to-fno.yaml, task `lines`)."""
    return task_selection("orders-to-fno", "lines")(line)


def change_sales_order_lines(sb: Any, fraction: float) -> int:
    """Raise the quantity (→ OrderedSalesQuantity) of every (1/fraction)-th selected Sales line."""
    step = _every(fraction)
    changed = 0
    selected = [r for r in sb.dataverse.rows("salesorderdetails") if sales_line_selected(r)]
    for index, row in enumerate(selected):
        if index % step == 0:
            sb.dataverse.update(
                "salesorderdetails", row["salesorderdetailid"], {"quantity": float(row["quantity"]) + 1.0}
            )
            changed += 1
    return changed


# -- orders-to-sales (F&O CDSSalesOrderHeaders/Lines → Sales salesorders/salesorderdetails) -------


def seed_fno_orders(sb: Any, size: int) -> None:
    """About `size` F&O order lines (size/3 orders in the served company) and a Sales side that has
    everything they name.

    Sales has every account the orders name (as after the accounts template), every sellable
    product (as after the products template) and, from the reference data, every unit, price list
    and currency. Every order's totals are calculated (``AreTotalsUpdated`` Yes, as F&O has them
    once an order is confirmed): datagen leaves 10% of headers at "No" while their lines say
    ``AreTotalsCalculated`` Yes, so those lines were selected but their header was not, and each
    deferred on every run. Orders of F&O-only customers, unconfirmed and work-order orders stay as
    generated; the template's selection skips them.
    """
    _seed_reference(sb)
    reference = _sales_reference(sb)
    accounts = _seed_accounts_rows(sb, max(10, size // 10))
    masters = list(iter_product_masters(max(10, size // 10), SEED))
    _seed_sales_products(sb, masters, reference, all_sellable=True)
    _, finops_raw = load_catalogue_files()
    documents = iter_finops_order_documents(
        max(1, size // LINES_PER_ORDER),
        SEED,
        COMPANY,
        customer_refs(accounts),
        masters,
        AS_OF,
        header_defaults=finops_defaults(finops_raw, FO_ORDER_HEADERS),
        line_defaults=finops_defaults(finops_raw, FO_ORDER_LINES),
    )
    totals_calculated = (({**header, "AreTotalsUpdated": "Yes"}, lines) for header, lines in documents)
    _load_documents(sb.finops, FO_ORDER_HEADERS, FO_ORDER_LINES, totals_calculated)


def fno_line_selected(line: dict[str, Any]) -> bool:
    """orders-to-sales's line selection (mappings/orders-to-sales.yaml, task `line`)."""
    return task_selection("orders-to-sales", "line")(line)


def change_fno_order_lines(sb: Any, fraction: float) -> int:
    """Raise the quantity (→ Sales quantity) of every (1/fraction)-th selected F&O order line."""
    step = _every(fraction)
    changed = 0
    selected = [r for r in sb.finops.rows(FO_ORDER_LINES, company=COMPANY) if fno_line_selected(r)]
    for index, row in enumerate(selected):
        if index % step == 0:
            key = {
                "dataAreaId": row["dataAreaId"],
                "SalesOrderNumber": row["SalesOrderNumber"],
                "LineCreationSequenceNumber": row["LineCreationSequenceNumber"],
            }
            sb.finops.update(
                FO_ORDER_LINES, key, {"OrderedSalesQuantity": float(row["OrderedSalesQuantity"]) + 1}
            )
            changed += 1
    return changed


WORKLOADS: dict[str, Workload] = {
    "accounts": Workload("accounts", "sales_to_fno", seed_accounts, change_accounts),
    "orders-to-fno": Workload(
        "orders-to-fno", "sales_to_fno", seed_sales_orders, change_sales_order_lines, ("accounts",)
    ),
    "orders-to-sales": Workload("orders-to-sales", "fno_to_sales", seed_fno_orders, change_fno_order_lines),
}
#: What `make bench` (no --template) measures: one template with lines in each direction.
DEFAULT_WORKLOADS: tuple[str, ...] = ("orders-to-fno", "orders-to-sales")


def available_workloads(names: list[str] | None = None) -> tuple[list[Workload], list[str]]:
    """(workloads whose mappings exist, names asked for or defaulted whose mapping does not exist)."""
    chosen = names or list(DEFAULT_WORKLOADS)
    ready = [WORKLOADS[n] for n in chosen if n in WORKLOADS and WORKLOADS[n].available()]
    missing = [n for n in chosen if n not in WORKLOADS or not WORKLOADS[n].available()]
    return ready, missing
