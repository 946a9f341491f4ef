"""Benchmark workloads: one per template, named by the template (the harness takes it as a parameter).

A workload knows how to seed the sandbox with N source records without building them all at once,
how to change 1% of them, and where its source and target rows live (for the parse baseline). The
Sales → F&O workload is `accounts`; the F&O → Sales template with lines (`orders-to-sales`) is
added automatically once `mappings/orders-to-sales.yaml` exists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.datagen import FO_ORDER_HEADERS, generate, iter_accounts

ROOT = Path(__file__).resolve().parent.parent
SEED = 7


@dataclass(frozen=True)
class Workload:
    """One template under test; ``direction`` is ``sales_to_fno`` or ``fno_to_sales``."""

    template: str
    direction: str
    seed: Callable[[Any, int], None]
    change: Callable[[Any, float], int]

    def available(self) -> bool:
        return (ROOT / "mappings" / f"{self.template}.yaml").exists()


# -- accounts (Sales → F&O CustomersV2) -----------------------------------------------------------


def seed_accounts(sb: Any, size: int) -> None:
    """Reference data from `generate`, then `size` accounts streamed into the store in slices."""
    sb.load(generate(size=0, seed=SEED, templates=["accounts"]))
    currency_ids = {
        r["isocurrencycode"]: r["transactioncurrencyid"] for r in sb.dataverse.rows("transactioncurrencies")
    }
    rows = iter_accounts(size, SEED, currency_ids)
    while True:
        chunk = list(itertools.islice(rows, 10000))
        if not chunk:
            return
        sb.dataverse.load_rows("accounts", chunk)


def change_accounts(sb: Any, fraction: float) -> int:
    """Change the main phone of every (1/fraction)-th account; returns how many changed."""
    step = max(1, round(1 / fraction))
    changed = 0
    for index, row in enumerate(sb.dataverse.rows("accounts")):
        if index % step == 0:
            sb.dataverse.update(
                "accounts", row["accountid"], {"telephone1": f"+1 425 555 {index % 10000:04d}"}
            )
            changed += 1
    return changed


# -- orders-to-sales (F&O CDSSalesOrderHeaders/Lines → Sales salesorders/salesorderdetails) -------


def seed_orders(sb: Any, size: int) -> None:
    """`size` accounts' worth of F&O orders with lines (the generator sizes the documents)."""
    sb.load(generate(size=size, seed=SEED, templates=["orders-to-sales"]))


def change_orders(sb: Any, fraction: float) -> int:
    step = max(1, round(1 / fraction))
    changed = 0
    for company in ("usmf", "demf"):
        for index, row in enumerate(sb.finops.rows(FO_ORDER_HEADERS, company=company)):
            if index % step == 0:
                key = {"dataAreaId": row["dataAreaId"], "SalesOrderNumber": row["SalesOrderNumber"]}
                sb.finops.update(FO_ORDER_HEADERS, key, {"CustomerRequisitionNumber": f"BENCH-{index}"})
                changed += 1
    return changed


WORKLOADS: dict[str, Workload] = {
    "accounts": Workload("accounts", "sales_to_fno", seed_accounts, change_accounts),
    "orders-to-sales": Workload("orders-to-sales", "fno_to_sales", seed_orders, change_orders),
}


def available_workloads(names: list[str] | None = None) -> tuple[list[Workload], list[str]]:
    """(workloads whose mapping exists, names asked for or known whose mapping does not exist yet)."""
    chosen = names or list(WORKLOADS)
    ready = [WORKLOADS[n] for n in chosen if n in WORKLOADS and WORKLOADS[n].available()]
    missing = [n for n in chosen if n not in WORKLOADS or not WORKLOADS[n].available()]
    return ready, missing
