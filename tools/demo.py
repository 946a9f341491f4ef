"""`make demo`: the whole product on real parts, locally.

Starts Azurite and the sandbox (HTTPS stand-ins for Dataverse, F&O and Entra ID) with Contoso-style
sample data for two companies (usmf, demf), runs every template that has a mapping in dependency
order the way the timers do, changes records on both sides (Sales: renames, a new and a deleted
account, a quote line; F&O: a price, an order confirmed with its totals, a new invoice), runs
again to show the deltas, runs a third time to show that nothing is written twice, and prints one
table per round (one row per template) plus the failed and deferred records with their reasons.
The same summary is written to `.demo/report.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sandbox import Sandbox, SandboxConfig
from sandbox.azurite import Azurite
from sandbox.datagen import (
    FO_INVOICE_HEADERS,
    FO_INVOICE_LINES,
    FO_ORDER_HEADERS,
    FO_ORDER_LINES,
    generate,
)
from sandbox.product_env import product_env
from shared.engine import RunOutcome, SyncEngine
from shared.settings import Settings
from shared.state import StateStore
from shared.telemetry import Telemetry
from shared.templates import run_order

ROOT = Path(__file__).resolve().parent.parent
DEMO_COMPANIES = ("usmf", "demf")
#: The product company (mappings/products.yaml filters on it): where the demo changes a price.
PRODUCT_COMPANY = "usmf"
RENAMED_ACCOUNTS = 5
#: How far the engine's clock moves between rounds: one timer period of the default schedule.
ROUND_STEP = timedelta(minutes=15)
ERRORS_SHOWN = 25


def demo_settings(
    sb: Sandbox, storage_connection_string: str, extra: dict[str, str] | None = None
) -> Settings:
    env = product_env(
        sb.info,
        storage_connection_string,
        P2C_COMPANIES="usmf=Contoso US,demf=Contoso Europe",
        **(extra or {}),
    )
    return Settings.from_env(env)


class DemoClock:
    """Real time plus an offset the demo moves between rounds, as if the next timer tick came.

    Deferred records are due again a minute after they were deferred (retry store); moving the
    engine's clock 15 minutes (the default schedule) per round lets them catch up in the next
    round instead of the demo sleeping.
    """

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class Changes:
    """What the demo changed between two rounds, and what each template should write for it."""

    notes: list[str] = field(default_factory=list)
    expected_written: dict[str, int] = field(default_factory=dict)

    def expect(self, template: str, records: int) -> None:
        self.expected_written[template] = self.expected_written.get(template, 0) + records


def change_sales_side(sb: Sandbox, changes: Changes) -> None:
    """Edits a Sales user makes between two runs: renames, a new account, a deletion, a quote line."""
    accounts = sorted(sb.dataverse.rows("accounts"), key=lambda r: str(r.get("accountnumber")))
    for row in accounts[:RENAMED_ACCOUNTS]:
        sb.dataverse.update(
            "accounts",
            row["accountid"],
            {"telephone1": "+1 425 555 0199", "name": f"{row.get('name', '')} (renamed)"[:160]},
        )
        changes.notes.append(f"Sales: renamed account {row.get('accountnumber')}")
    changes.expect("accounts", RENAMED_ACCOUNTS)
    new_id = sb.dataverse.insert(
        "accounts",
        {
            "accountnumber": "ACC-99001-DEMO01",
            "name": "Fabrikam Demo & Söhne",
            "address1_city": "Redmond",
            "address1_country": "United States",
            "telephone1": "+1 425 555 0100",
            "_transactioncurrencyid_value": accounts[0].get("_transactioncurrencyid_value"),
        },
    )
    changes.notes.append(f"Sales: created account ACC-99001-DEMO01 ({new_id})")
    changes.expect("accounts", 1)
    if len(accounts) > RENAMED_ACCOUNTS + 1:
        victim = accounts[RENAMED_ACCOUNTS + 1]
        sb.dataverse.delete("accounts", victim["accountid"])
        changes.notes.append(
            f"Sales: deleted account {victim.get('accountnumber')} (policy: keep the F&O customer, record it)"
        )
    # a line of a quote that is in F&O: one line update
    quote_numbers = {r["SalesQuotationNumber"] for r in sb.finops.rows("CDSSalesQuotationLines")}
    quotes = {q["quoteid"]: q["quotenumber"] for q in sb.dataverse.rows("quotes")}
    line = next(
        (
            x
            for x in sb.dataverse.rows("quotedetails")
            if quotes.get(x.get("_quoteid_value")) in quote_numbers and x.get("_productid_value")
        ),
        None,
    )
    if line is not None:
        sb.dataverse.update(
            "quotedetails",
            line["quotedetailid"],
            {"quantity": float(line.get("quantity") or 0) + 2, "manualdiscountamount": 12.5},
        )
        changes.notes.append(
            f"Sales: changed quantity and discount of a line of quote {quotes[line['_quoteid_value']]}"
        )
        changes.expect("quotes", 1)


def confirm_order(sb: Sandbox, order: dict[str, Any], changes: Changes) -> None:
    """F&O confirms an order and updates its totals: Sales gets it with its lines (and invoices)."""
    fo = sb.finops
    number, company = order["SalesOrderNumber"], order["dataAreaId"]
    update: dict[str, Any] = {"AreTotalsUpdated": "Yes"}
    if order.get("SalesOrderProcessingStatus") in (None, "Active"):
        update["SalesOrderProcessingStatus"] = "Confirmed"
    fo.update(FO_ORDER_HEADERS, {"dataAreaId": company, "SalesOrderNumber": number}, update)
    lines = [x for x in fo.rows(FO_ORDER_LINES, company=company) if x["SalesOrderNumber"] == number]
    for line in lines:  # the lines carry the order's status and totals flag, as in F&O
        line_update = {"AreTotalsCalculated": "Yes", "AreSalesOrderTotalsUpdated": "Yes"}
        if "SalesOrderProcessingStatus" in update:
            line_update["SalesOrderProcessingStatus"] = update["SalesOrderProcessingStatus"]
        key = {k: line[k] for k in ("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber")}
        fo.update(FO_ORDER_LINES, key, line_update)
    freight_tax = 1 if float(order.get("OrderHeaderTaxAmount") or 0) > 0 else 0
    changes.notes.append(f"F&O: {company} order {number} confirmed, totals updated ({len(lines)} lines)")
    changes.expect("orders-to-sales", 1 + len(lines) + freight_tax)
    # its invoices, if any, waited for the order in Sales: they come with it
    for header in fo.rows(FO_INVOICE_HEADERS, company=company):
        if header["SalesOrderNumber"] == number:
            own = [
                x
                for x in fo.rows(FO_INVOICE_LINES, company=company)
                if x["InvoiceNumber"] == header["InvoiceNumber"]
            ]
            changes.expect("invoices", 1 + len(own))


def change_finops_side(sb: Sandbox, changes: Changes) -> None:
    """Edits in F&O between two runs: a price change, an order confirmed with its totals, an invoice."""
    fo, dv = sb.finops, sb.dataverse
    company = PRODUCT_COMPANY
    products = fo.rows("SellableReleasedProducts", company=company)
    synced = {r["productnumber"] for r in dv.rows("products")}
    product = next((p for p in products if p["ProductNumber"] in synced), None)
    if product is not None:
        price = round(float(product.get("SalesPrice") or 0) * 1.1 + 1, 2)
        fo.update(
            "SellableReleasedProducts",
            {"dataAreaId": company, "ProductNumber": product["ProductNumber"]},
            {"SalesPrice": price},
        )
        changes.notes.append(f"F&O: {company} price of product {product['ProductNumber']} is now {price}")
        changes.expect("products", 2)  # the Sales product and its price list item
    # an order Sales does not have yet (totals not updated, or not confirmed): F&O confirms it and
    # updates its totals; without one, F&O adds a freight charge to an order Sales already has
    orders = [
        h
        for h in fo.rows(FO_ORDER_HEADERS)
        if h.get("OrderingCustomerIsExternallyMaintained") == "Yes"
        and h.get("InvoiceCustomerIsExternallyMaintained") == "Yes"
        and h.get("SalesOrderOriginType") != "WorkOrderIntegration"
    ]
    waiting = [
        h
        for h in orders
        if h.get("AreTotalsUpdated") != "Yes" or h.get("SalesOrderProcessingStatus") in (None, "Active")
    ]
    if waiting:
        confirm_order(sb, waiting[0], changes)
    else:
        in_sales = {
            o["ordernumber"] for o in dv.rows("salesorders") if o.get("msdynce_ismaintainedexternally")
        }
        synced_order = next((h for h in orders if h["SalesOrderNumber"] in in_sales), None)
        if synced_order is not None:
            charges = round(float(synced_order.get("OrderTotalChargesAmount") or 0) + 10, 2)
            total = round(float(synced_order.get("OrderTotalAmount") or 0) + 10, 2)
            fo.update(
                FO_ORDER_HEADERS,
                {k: synced_order[k] for k in ("dataAreaId", "SalesOrderNumber")},
                {"OrderTotalChargesAmount": charges, "OrderTotalAmount": total},
            )
            changes.notes.append(
                f"F&O: {synced_order['dataAreaId']} order {synced_order['SalesOrderNumber']} totals changed "
                "(freight charge +10.00)"
            )
            changes.expect("orders-to-sales", 1)
    # a new invoice of an order that is in Sales
    in_sales = {o["ordernumber"] for o in dv.rows("salesorders")}
    invoice = next((h for h in fo.rows(FO_INVOICE_HEADERS) if h["SalesOrderNumber"] in in_sales), None)
    if invoice is not None:
        inv_company = invoice["dataAreaId"]
        new_number = f"{inv_company.upper()}-CIV9{len(fo.rows(FO_INVOICE_HEADERS)):05d}"
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        stamp = today.isoformat().replace("+00:00", "Z")
        voucher = f"{inv_company.upper()}-ARI9{len(fo.rows(FO_INVOICE_HEADERS)):05d}"
        fo.insert(
            FO_INVOICE_HEADERS,
            {**invoice, "InvoiceNumber": new_number, "InvoiceDate": stamp, "LedgerVoucher": voucher},
        )
        lines = [
            x
            for x in fo.rows(FO_INVOICE_LINES, company=inv_company)
            if x["InvoiceNumber"] == invoice["InvoiceNumber"]
        ]
        for line in lines:
            fo.insert(
                FO_INVOICE_LINES,
                {**line, "InvoiceNumber": new_number, "InvoiceDate": stamp, "LedgerVoucher": voucher},
            )
        changes.notes.append(
            f"F&O: {inv_company} new invoice {new_number} of order {invoice['SalesOrderNumber']} "
            f"({len(lines)} lines)"
        )
        changes.expect("invoices", 1 + len(lines))


COUNT_COLUMNS = ("read", "written", "created", "updated", "unchanged", "deleted", "failed", "deferred")
#: What every round of the report lists per template (issue 4: read / written / unchanged / failed /
#: deferred).
SUMMARY_COUNTS = ("read", "written", "unchanged", "failed", "deferred")


def summary_table(title: str, outcomes: list[RunOutcome]) -> Table:
    """One row per template: what it read, wrote, skipped as unchanged, failed and deferred."""
    table = Table(title=title, title_justify="left")
    for column in ("template", "status", *COUNT_COLUMNS, "requests", "seconds"):
        if column in ("template", "status"):
            table.add_column(column, justify="left", no_wrap=True)
        else:
            table.add_column(column, justify="right", no_wrap=True)
    for o in outcomes:
        requests = sum(int(m.get("requests", 0)) for m in o.requests.values())
        table.add_row(
            o.template,
            o.status,
            *(str(o.counts.get(k, 0)) for k in COUNT_COLUMNS),
            str(requests),
            f"{o.duration_s:.1f}",
        )
    return table


def open_errors(state: StateStore, templates: list[str]) -> list[dict[str, Any]]:
    """Records still failed or deferred (retrying or parked) after the last round, with reasons."""
    return [
        e.as_dict()
        for name in templates
        for e in state.errors.list(name, limit=500)
        if e.status in ("retrying", "parked")
    ]


def _reason(err: dict[str, Any]) -> str:
    reason = f"{err.get('error_class')}: {err.get('message')}"
    return reason + (f" (field {err['field']})" if err.get("field") else "")


def errors_table(errors: list[dict[str, Any]], limit: int = ERRORS_SHOWN) -> Table:
    """Failed records one by one; deferred ones grouped by what they wait for, with an example.

    A data set has many lines waiting for one unselected header (a draft quote): listing each would
    bury the few records an operator must act on.
    """
    table = Table(
        title=f"Failed or deferred records ({len(errors)}), each with its reason", title_justify="left"
    )
    for column in ("template", "company", "task", "kind", "status", "records", "example", "reason"):
        table.add_column(column, no_wrap=column not in ("reason", "example"), overflow="fold")
    failed = [e for e in errors if e.get("kind") == "failed"]
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for err in errors:
        if err.get("kind") == "failed":
            continue
        waits_for = str(err.get("missing_reference") or err.get("message") or "").split("=", 1)[0]
        key = (*(str(err.get(k)) for k in ("template", "company", "task", "kind", "status")), waits_for)
        groups.setdefault(key, []).append(err)
    rows = [([e], e) for e in failed] + [(group, group[0]) for group in groups.values()]
    for members, err in rows[:limit]:
        table.add_row(
            str(err.get("template")),
            str(err.get("company")),
            str(err.get("task")),
            str(err.get("kind")),
            str(err.get("status")),
            str(len(members)),
            str(err.get("source_key"))[:40],
            _reason(err)[:200],
        )
    if len(rows) > limit:
        table.caption = f"... and {len(rows) - limit} more rows in the report"
    return table


ROUNDS = (
    (1, "first run (initial load)"),
    (2, "second run (after changes on both sides)"),
    (3, "third run (nothing changed)"),
)


def run_demo(size: int, seed: int, report_path: Path, console: Console) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "size": size,
        "seed": seed,
        "rounds": [],
    }
    with Azurite() as storage, Sandbox(SandboxConfig(seed=seed)) as sb:
        t0 = time.monotonic()
        dataset = generate(size=size, seed=seed, companies=DEMO_COMPANIES)
        sb.load(dataset)
        counts = dataset.counts()
        seeded = {
            side: sum(n for k, n in counts.items() if k.startswith(side + "."))
            for side in ("dataverse", "finops")
        }
        console.print(
            f"[bold]sandbox[/] Dataverse {sb.info.dataverse_url}  F&O {sb.info.finops_url}  "
            f"(seeded {seeded['dataverse']} Sales rows, {seeded['finops']} F&O rows for "
            f"{', '.join(DEMO_COMPANIES)} in {time.monotonic() - t0:.1f}s)"
        )
        settings = demo_settings(sb, storage.connection_string)
        state = StateStore.from_settings(settings)
        state.ensure()
        clock = DemoClock()
        engine = SyncEngine(settings, state, telemetry=Telemetry(None), clock=clock)
        templates = [t.name for t in run_order() if (Path(settings.mappings_dir) / t.mapping_file).exists()]
        report["templates"] = templates
        for round_no, title in ROUNDS:
            changes = Changes()
            if round_no == 2:
                change_sales_side(sb, changes)
                change_finops_side(sb, changes)
                for note in changes.notes:
                    console.print(f"  [dim]change:[/] {note}")
            outcomes = [engine.run(name, trigger="demo") for name in templates]
            clock.offset += ROUND_STEP
            console.print(summary_table(f"Round {round_no}: {title}", outcomes))
            for o in outcomes:
                if o.message:
                    console.print(f"  [yellow]{o.template}[/]: {o.message}")
            report["rounds"].append(
                {
                    "round": round_no,
                    "title": title,
                    "changes": changes.notes,
                    "expected_written": changes.expected_written,
                    "summary": {
                        o.template: {k: int(o.counts.get(k, 0)) for k in SUMMARY_COUNTS} for o in outcomes
                    },
                    "runs": [o.as_dict() for o in outcomes],
                }
            )
        errors = open_errors(state, templates)
        report["errors"] = errors
        if errors:
            console.print(errors_table(errors))
        else:
            console.print("[green]no failed or deferred records[/]")
    report["finished_at"] = datetime.now(UTC).isoformat()
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"report written to {report_path} ({time.monotonic() - t0:.1f}s)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=200, help="number of Sales accounts to seed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=ROOT / ".demo" / "report.json")
    args = parser.parse_args(argv)
    report = run_demo(args.size, args.seed, args.report, Console(width=max(Console().width, 150)))
    failed_runs = [r for rnd in report["rounds"] for r in rnd["runs"] if r["status"] == "failed"]
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
