"""sandbox.datagen: deterministic, catalogue-valid, cross-referenced sample data for every template."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import pytest

from sandbox import datagen
from sandbox.catalogue import (
    CHOICE_TYPES,
    LOOKUP_TYPES,
    check_finops_value,
    dataverse_table_by_entity_set,
    finops_entity_set,
    load_catalogue_files,
)
from sandbox.datagen import Dataset, generate

AS_OF = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)
ANNOTATION = datagen.LOOKUP_TARGET


@cache
def catalogues() -> tuple[dict[str, Any], dict[str, Any]]:
    return load_catalogue_files()


@cache
def sample(size: int = 120, seed: int = 4) -> Dataset:
    return generate(size, seed, as_of=AS_OF)


def _digest(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# ------------------------------------------------------------------------------ stability


def test_accounts_and_currencies_are_exactly_those_of_the_first_version() -> None:
    # Digests of generate(50, 1) taken before the module grew (integration tests rely on them).
    data = generate(50, 1)
    assert _digest(data.dataverse["accounts"]) == (
        "8af44597cc42e40e04ab3af7f358aa06785d51c75b9b3369e2ec228e2243e89d"
    )
    assert _digest(data.dataverse["transactioncurrencies"]) == (
        "92d108f0782c12875eb1d536b074422c23a902ae65ba129d8caed6744171b152"
    )


def test_same_seed_same_rows_and_other_seed_other_rows() -> None:
    first, again, other = (generate(80, s, as_of=AS_OF) for s in (9, 9, 10))
    assert first == again
    for side in ("dataverse", "finops"):
        for entity_set, rows in getattr(first, side).items():
            if entity_set in {"accounts", "contacts", "quotes", "salesorders", "CDSSalesOrderHeaders"}:
                assert rows != getattr(other, side)[entity_set], entity_set


def test_one_template_does_not_change_the_rows_of_another() -> None:
    full = sample()
    only_contacts = generate(120, 4, as_of=AS_OF, templates=["contacts"])
    assert only_contacts.dataverse["contacts"] == full.dataverse["contacts"]
    assert only_contacts.dataverse["accounts"] == full.dataverse["accounts"]
    assert "quotes" not in only_contacts.dataverse and "SellableReleasedProducts" not in only_contacts.finops
    only_usmf = generate(120, 4, as_of=AS_OF, companies=("usmf",), templates=["products"])
    assert "accounts" not in only_usmf.dataverse
    assert only_usmf.dataverse["products"] == full.dataverse["products"]


def test_as_of_only_matters_by_day() -> None:
    same_day = generate(60, 2, as_of=AS_OF.replace(hour=23))
    assert same_day == generate(60, 2, as_of=AS_OF)
    next_day = generate(60, 2, as_of=AS_OF + timedelta(days=1))
    assert next_day.finops["CDSSalesOrderHeaders"] != same_day.finops["CDSSalesOrderHeaders"]
    assert next_day.dataverse == same_day.dataverse


def test_template_names_match_the_product_registry() -> None:
    from shared.templates import TEMPLATE_NAMES

    assert set(datagen.TEMPLATE_NAMES) == set(TEMPLATE_NAMES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"templates": ["nope"]}, "unknown template"),
        ({"companies": ()}, "at least one company"),
        ({"companies": ("usmf", "usmf")}, "duplicate"),
        ({"companies": ("toolong",)}, "company id"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate(10, 1, **kwargs)


# -------------------------------------------------------------------------------- scaling


def test_sizes_scale_with_size() -> None:
    small, large = (generate(n, 3, as_of=AS_OF).counts() for n in (40, 400))
    assert small["dataverse.accounts"] == 40 and large["dataverse.accounts"] == 400
    assert small["dataverse.contacts"] == 40 and large["dataverse.contacts"] == 400
    # products: size/2 (min 10) per company, two companies by default
    assert small["finops.SellableReleasedProducts"] == 2 * 20
    assert large["finops.SellableReleasedProducts"] == 2 * 200
    assert generate(4, 3, as_of=AS_OF).counts()["finops.SellableReleasedProducts"] == 2 * 10
    for name in ("dataverse.quotes", "dataverse.salesorders", "finops.CDSSalesOrderHeaders"):
        assert small[name] == 10 and large[name] == 100, name
    for name in ("dataverse.quotedetails", "dataverse.salesorderdetails", "finops.CDSSalesOrderLines"):
        assert 100 <= large[name] <= 5 * 100, name  # 1-5 lines per document
    assert 0 < large["finops.ExternallyMaintainedCustomerSalesInvoiceHeaders"] < 100
    assert generate(0, 3, as_of=AS_OF).counts()["dataverse.accounts"] == 0


def test_twenty_thousand_accounts_generate_quickly() -> None:
    started = time.perf_counter()
    data = generate(20_000, 1, as_of=AS_OF)
    elapsed = time.perf_counter() - started
    assert data.counts()["dataverse.accounts"] == 20_000
    assert elapsed < 10, f"generate(20000) took {elapsed:.1f}s"


def test_streams_continue_where_a_chunk_left_off() -> None:
    data = sample()
    currencies = data.dataverse["transactioncurrencies"]
    currency_ids = {r["isocurrencycode"]: r["transactioncurrencyid"] for r in currencies}
    chunk = list(datagen.iter_contacts(5, 4, data.dataverse["accounts"], currency_ids, start=100))
    assert [r["msdynce_contactnumber"][:9] for r in chunk] == [f"CON-0{1100 + i}" for i in range(5)]
    masters = list(datagen.iter_product_masters(3, 4, start=7))
    assert [m.number[1:] for m in masters] == ["00008", "00009", "00010"]


# ------------------------------------------------------------------- validity per catalogue


def _check_dataverse_row(table: dict[str, Any], entity_set: str, row: dict[str, Any]) -> None:
    columns = table["columns"]
    for name, value in row.items():
        if "@" in name:
            assert name.endswith(ANNOTATION), (entity_set, name)
            column = name[: -len(ANNOTATION)][1:-6]
            assert value in columns[column]["targets"], (entity_set, name, value)
            continue
        if name.startswith("_") and name.endswith("_value"):
            column = name[1:-6]
            assert column in columns, f"{entity_set}: no lookup column {column}"
            assert columns[column]["type"] in LOOKUP_TYPES, (entity_set, name)
            continue
        assert name in columns, f"{entity_set}: no column {name}"
        spec = columns[name]
        if value is None:
            continue
        kind = spec["type"]
        if kind in CHOICE_TYPES or kind == "Picklist":
            assert str(value) in spec["options"], (entity_set, name, value)
        elif kind in ("String", "Memo"):
            assert isinstance(value, str) and len(value) <= spec.get("max_length", 10**9), (entity_set, name)
        elif kind == "Boolean":
            assert isinstance(value, bool), (entity_set, name)
        elif kind in ("Integer", "BigInt"):
            assert isinstance(value, int) and not isinstance(value, bool), (entity_set, name)
        elif kind in ("Money", "Decimal", "Double"):
            assert isinstance(value, int | float) and not isinstance(value, bool), (entity_set, name)
        elif kind == "Uniqueidentifier":
            assert isinstance(value, str) and len(value) == 36, (entity_set, name)
        elif kind == "DateOnly":
            assert datetime.strptime(value, "%Y-%m-%d"), (entity_set, name)
        if "min" in spec:
            assert value >= spec["min"], (entity_set, name, value)
        if "max" in spec:
            assert value <= spec["max"], (entity_set, name, value)
    for name, spec in columns.items():
        if spec.get("required") and name != table["primary_id"]:
            read = f"_{name}_value" if spec["type"] in LOOKUP_TYPES else name
            assert row.get(read) is not None, f"{entity_set}: required {name} missing"


def test_every_dataverse_row_fits_the_catalogue() -> None:
    dataverse, _ = catalogues()
    data = sample()
    assert set(data.dataverse) >= {
        "accounts", "contacts", "products", "productpricelevels", "pricelevels", "uoms", "uomschedules",
        "businessunits", "transactioncurrencies", "quotes", "quotedetails", "salesorders",
        "salesorderdetails",
    }  # fmt: skip
    for entity_set, rows in data.dataverse.items():
        _logical, table = dataverse_table_by_entity_set(dataverse, entity_set)
        assert rows, entity_set
        for row in rows:
            _check_dataverse_row(table, entity_set, row)


def test_every_finops_row_fits_the_catalogue() -> None:
    _, finops = catalogues()
    data = sample()
    for entity_set, rows in data.finops.items():
        spec = finops_entity_set(finops, entity_set)
        props = spec["properties"]
        required = {n for n, p in props.items() if not p.get("nullable", True)}
        for row in rows:
            for name, value in row.items():
                assert name in props, f"{entity_set}: no property {name}"
                try:
                    check_finops_value(finops, props[name], value)
                except ValueError as exc:  # pragma: no cover - message for the failure
                    raise AssertionError(f"{entity_set}.{name} = {value!r}: {exc}") from exc
            assert required <= set(row), (entity_set, sorted(required - set(row)))


def test_keys_are_unique() -> None:
    dataverse, finops = catalogues()
    data = sample()
    for entity_set, rows in data.dataverse.items():
        _logical, table = dataverse_table_by_entity_set(dataverse, entity_set)
        ids = [row[table["primary_id"]] for row in rows]
        assert len(ids) == len(set(ids)), entity_set
        for columns in table["alternate_keys"].values():
            values = [tuple(row[c] for c in columns) for row in rows]
            assert len(values) == len(set(values)), (entity_set, columns)
    for entity_set, rows in data.finops.items():
        keys = finops_entity_set(finops, entity_set)["keys"]
        values = [tuple(str(row[k]).lower() for k in keys) for row in rows]
        assert len(values) == len(set(values)), entity_set
    # line keys the templates use on the Sales side: (parent, sequencenumber)
    for lines, parent in (("quotedetails", "_quoteid_value"), ("salesorderdetails", "_salesorderid_value")):
        pairs = [(row[parent], row["sequencenumber"]) for row in data.dataverse[lines]]
        assert len(pairs) == len(set(pairs)), lines
    # Sales order numbers are one global key: F&O numbers of all companies must not collide
    numbers = [row["SalesOrderNumber"] for row in data.finops["CDSSalesOrderHeaders"]]
    numbers += [row["ordernumber"] for row in data.dataverse["salesorders"]]
    assert len(numbers) == len(set(numbers))


def test_lookups_point_at_generated_rows() -> None:
    dataverse, _ = catalogues()
    data = sample()
    ids_by_logical: dict[str, set[str]] = {}
    for entity_set, rows in data.dataverse.items():
        logical, table = dataverse_table_by_entity_set(dataverse, entity_set)
        ids_by_logical[logical] = {row[table["primary_id"]] for row in rows}
    checked = 0
    for entity_set, rows in data.dataverse.items():
        _logical, table = dataverse_table_by_entity_set(dataverse, entity_set)
        for row in rows:
            for name, value in row.items():
                if value is None or "@" in name or not (name.startswith("_") and name.endswith("_value")):
                    continue
                column = name[1:-6]
                targets = table["columns"][column]["targets"]
                if len(targets) > 1:
                    assert row.get(name + ANNOTATION) in targets, (entity_set, name)
                    targets = [row[name + ANNOTATION]]
                assert any(value in ids_by_logical.get(t, ()) for t in targets), (entity_set, name, value)
                checked += 1
    assert checked > 1000


# ------------------------------------------------------------------------- content shape


def test_both_companies_and_template_defaults_exist() -> None:
    data = sample()
    for entity_set in (
        "CustomerGroups", "PaymentTerms", "DeliveryTerms", "DeliveryModesV2", "OperationalSitesV2",
        "Warehouses", "SellableReleasedProducts", "CDSSalesOrderHeaders", "CDSSalesOrderLines",
        "ExternallyMaintainedCustomerSalesInvoiceHeaders", "ExternallyMaintainedCustomerSalesInvoiceLines",
    ):  # fmt: skip
        assert {row["dataAreaId"] for row in data.finops[entity_set]} == {"usmf", "demf"}, entity_set
    for company in ("usmf", "demf"):
        assert {"dataAreaId": company, "CustomerGroupId": "10"}.items() <= next(
            r
            for r in data.finops["CustomerGroups"]
            if r["dataAreaId"] == company and r["CustomerGroupId"] == "10"
        ).items()
        assert any(
            r["dataAreaId"] == company and r["SiteId"] == "1" for r in data.finops["OperationalSitesV2"]
        )
        assert any(r["dataAreaId"] == company and r["WarehouseId"] == "13" for r in data.finops["Warehouses"])
    assert {r["LegalEntityId"] for r in data.finops["LegalEntities"]} == {"usmf", "demf"}
    assert {r["DataArea"] for r in data.finops["Companies"]} == {"usmf", "demf"}
    assert {r["name"] for r in data.dataverse["businessunits"]} >= {"Contoso US", "Contoso DE"}
    assert {r["name"] for r in data.dataverse["uomschedules"]} == {datagen.UNIT_GROUP}
    assert {r["UnitSymbol"] for r in data.finops["UnitsOfMeasure"]} == set(datagen.SALES_UNIT_NAMES)
    assert {r["name"] for r in data.dataverse["uoms"]} >= set(datagen.SALES_UNIT_NAMES.values())
    by_currency = {r["_transactioncurrencyid_value"] for r in data.dataverse["pricelevels"]}
    assert by_currency == {r["transactioncurrencyid"] for r in data.dataverse["transactioncurrencies"]}
    demf_currency = {
        r["CurrencyCode"] for r in data.finops["SellableReleasedProducts"] if r["dataAreaId"] == "demf"
    }
    assert demf_currency == {"EUR"}


def test_contacts_cover_each_contact_template() -> None:
    contacts = sample().dataverse["contacts"]
    account_ids = {a["accountid"] for a in sample().dataverse["accounts"]}
    active = [c for c in contacts if c["msdynce_isactivecustomer"]]
    persons = [c for c in contacts if not c["msdynce_isactivecustomer"] and c["msdynce_iscompanyanaccount"]]
    neither = [
        c for c in contacts if not c["msdynce_isactivecustomer"] and not c["msdynce_iscompanyanaccount"]
    ]
    assert len(active) > 10 and len(persons) > 10 and 0 < len(neither) < len(contacts) // 4
    assert all(c["_parentcustomerid_value"] in account_ids for c in persons)
    assert all(c["msdynce_contactnumber"].startswith("CON-") for c in contacts)
    assert all(len(c["msdynce_contactnumber"]) <= 20 for c in contacts)


def test_pre_synced_products_match_their_finops_source() -> None:
    data = sample()
    usmf = {
        r["ProductNumber"]: r for r in data.finops["SellableReleasedProducts"] if r["dataAreaId"] == "usmf"
    }
    products = data.dataverse["products"]
    assert 0 < len(products) < len(usmf)
    for product in products:
        source = usmf[product["productnumber"]]
        assert int(product["productnumber"][1:]) % 2 == 1  # index 0, 2, ... = numbers 00001, 00003, ...
        assert product["msdynce_ismaintainedexternally"] is True
        assert product["price"] == source["SalesPrice"] and product["name"] == source["ProductName"]
        assert source["IsSalesStopped"] == "No"
    items = {i["_productid_value"]: i for i in data.dataverse["productpricelevels"]}
    assert {p["productid"] for p in products} == set(items)


def test_quotes_and_sales_orders_mix_selected_and_unselected_states() -> None:
    data = sample(400, 8)
    quotes = data.dataverse["quotes"]
    states = Counter((q["statecode"], q["statuscode"]) for q in quotes)
    assert states[(1, 2)] > 0 and states[(3, 647390000)] > 0 and states[(0, 1)] > 0
    assert any(not q["msdynce_hasexternallymaintainedproductsonly"] for q in quotes)
    synced = {p["productid"] for p in data.dataverse["products"]}
    for line in data.dataverse["quotedetails"] + data.dataverse["salesorderdetails"]:
        assert line["_productid_value"] is None or line["_productid_value"] in synced
        assert line["_productid_value"] is not None or line["isproductoverridden"]
    orders = data.dataverse["salesorders"]
    status = Counter(o["msdynce_processingstatus"] for o in orders)
    assert status[647390000] > 0 and status[647390011] > 0
    submitted = {o["salesorderid"] for o in orders if o["msdynce_processingstatus"] == 647390000}
    for line in data.dataverse["salesorderdetails"]:
        assert line["msdynce_orderissubmitted"] == (line["_salesorderid_value"] in submitted)
    totals: Counter[str] = Counter()
    for line in data.dataverse["quotedetails"]:
        totals[line["_quoteid_value"]] += line["extendedamount"]
    assert all(abs(q["totalamount"] - totals[q["quoteid"]]) < 0.011 for q in quotes)
    customers = Counter(q[f"_customerid_value{ANNOTATION}"] for q in quotes + orders)
    assert customers["account"] > 0 and customers["contact"] > 0


def test_finops_orders_and_invoices_are_consistent() -> None:
    data = sample(400, 8)
    account_numbers = {a["accountnumber"] for a in data.dataverse["accounts"]}
    headers = data.finops["CDSSalesOrderHeaders"]
    statuses = Counter(h["SalesOrderProcessingStatus"] for h in headers)
    assert statuses["Confirmed"] > 0 and statuses["Invoiced"] > 0 and statuses["Active"] > 0
    for header in headers:
        external = header["OrderingCustomerIsExternallyMaintained"] == "Yes"
        assert (header["OrderingCustomerAccountNumber"] in account_numbers) == external
    lines = data.finops["CDSSalesOrderLines"]
    products = {(r["dataAreaId"], r["ProductNumber"]) for r in data.finops["SellableReleasedProducts"]}
    assert all((line["dataAreaId"], line["ProductNumber"]) in products for line in lines)
    by_order = {(h["dataAreaId"], h["SalesOrderNumber"]): h for h in headers}
    assert all((line["dataAreaId"], line["SalesOrderNumber"]) in by_order for line in lines)
    invoices = data.finops["ExternallyMaintainedCustomerSalesInvoiceHeaders"]
    earliest = AS_OF.replace(hour=0, minute=0) - timedelta(days=9)
    for invoice in invoices:
        order = by_order[(invoice["dataAreaId"], invoice["SalesOrderNumber"])]
        assert order["SalesOrderProcessingStatus"] in datagen.INVOICED_STATES
        assert invoice["InvoiceCustomerAccountNumber"] in account_numbers
        moment = datetime.strptime(invoice["InvoiceDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert earliest <= moment <= AS_OF
    dates = {i["InvoiceDate"] for i in invoices}
    assert len(dates) > 5  # spread over the 10 days
    invoice_keys = {(i["dataAreaId"], i["InvoiceNumber"]) for i in invoices}
    invoice_lines = data.finops["ExternallyMaintainedCustomerSalesInvoiceLines"]
    assert {(line["dataAreaId"], line["InvoiceNumber"]) for line in invoice_lines} == invoice_keys


def test_dataset_loads_into_the_sandbox_stores() -> None:
    from sandbox.dataverse import DataverseStore
    from sandbox.finops import FinOpsStore

    dataverse, finops = catalogues()
    data = generate(60, 6, as_of=AS_OF)
    dv_store = DataverseStore(dataverse)
    for entity_set, rows in data.dataverse.items():
        dv_store.load_rows(entity_set, rows)
    fo_store = FinOpsStore(finops)
    for entity_set, rows in data.finops.items():
        assert fo_store.load_rows(entity_set, rows) == len(rows)
    assert dv_store.count("contacts") == 60
    assert fo_store.count("SellableReleasedProducts", "demf") == 30
