"""mappings/products.yaml against the real schema catalogue, and realistic F&O product rows mapped.

Expectations are written from `reference/templates.md` §4 (rows 1-12) and the choices recorded in
`mappings/README.md`, not read back from the YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.ids import deterministic_id
from shared.mapping import (
    Catalogue,
    CompiledMapping,
    MapContext,
    MappedRecord,
    MappingFailure,
    ReferenceMissing,
    load_catalogue,
    load_mapping,
)
from tests.unit.mapping.helpers import FakeResolver

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE_DIR = ROOT / "sandbox" / "schemas"

CURRENCY = {
    "USD": "11111111-0000-0000-0000-000000000001",
    "EUR": "11111111-0000-0000-0000-000000000002",
    "JPY": "11111111-0000-0000-0000-000000000003",  # a Sales currency without a price list
}
UOM = {"Each": "22222222-0000-0000-0000-000000000001", "Hour": "22222222-0000-0000-0000-000000000002"}
GROUP = "33333333-0000-0000-0000-000000000001"
PRICE_LIST = {"CRM Service USA (sample)": "44444444-0000-0000-0000-000000000001"}
PRODUCT_ID = "55555555-0000-0000-0000-000000000001"


@pytest.fixture(scope="module")
def real_catalogue() -> Catalogue:
    if not (CATALOGUE_DIR / "dataverse.json").exists() or not (CATALOGUE_DIR / "finops.json").exists():
        pytest.skip("schema catalogue sandbox/schemas/*.json not generated yet")
    return load_catalogue(CATALOGUE_DIR)


def load(catalogue: Catalogue) -> CompiledMapping:
    """Loaded inside each test (not a fixture) so a load error is that test's failure."""
    return load_mapping(ROOT / "mappings" / "products.yaml", catalogue)


def resolver() -> FakeResolver:
    table: dict[tuple[str, str, Any], Any] = {}
    for code, cid in CURRENCY.items():
        table[("transactioncurrency", "isocurrencycode", code)] = cid
    for name, uid in UOM.items():
        table[("uom", "name", name)] = uid
    table[("uomschedule", "name", "Default Unit")] = GROUP
    for name, pid in PRICE_LIST.items():
        table[("pricelevel", "name", name)] = pid
    table[("synced:products", "source_key", "D00001")] = PRODUCT_ID
    return FakeResolver(table)


def fo_row(**changes: Any) -> dict[str, Any]:
    """A SellableReleasedProducts row as F&O returns it (all non-nullable properties present)."""
    row: dict[str, Any] = {
        "@odata.etag": 'W/"JzEsNTYzNzE0NDU3Njsn"',
        "dataAreaId": "usmf",
        "ProductNumber": "D00001",
        "ProductName": "Premium Speaker 1",
        "ProductDescription": "Premium speaker for home and business installations",
        "ProductType": "Item",
        "IsStockedProduct": "Yes",
        "IsSalesStopped": "No",
        "SalesUnitSymbol": "ea",
        "InventoryUnitSymbol": "ea",
        "SalesUnitDecimalPrecision": 0,
        "InventoryUnitDecimalPrecision": 0,
        "SalesPrice": 449.95,
        "UnitCost": 251.3,
        "CurrencyCode": "USD",
        "FieldServiceProductType": "Inventory",
    }
    row.update(changes)
    return row


def ctx() -> MapContext:
    return MapContext(company="usmf", resolver=resolver())


def test_products_yaml_loads_against_the_real_catalogue(real_catalogue: Catalogue) -> None:
    mapping = load(real_catalogue)
    assert mapping.template == "products"
    main, item = mapping.tasks
    assert (main.name, item.name) == ("main", "price_list_item")  # parent before child
    assert main.source.entity_set == item.source.entity_set == "SellableReleasedProducts"
    assert main.target.entity_set == "products" and item.target.entity_set == "productpricelevels"
    assert main.target_key_fields == ["productnumber"]
    assert item.target_key_fields == []  # no alternate key: deterministic id per product
    assert "synced:products" in item.parent_entities
    assert main.delete_policy == item.delete_policy == "ignore"


def test_sample_product_maps_every_template_row(real_catalogue: Catalogue) -> None:
    main = load(real_catalogue).task("main")
    record = main.map(fo_row(), ctx())
    assert isinstance(record, MappedRecord), record
    assert record.payload == {
        "productnumber": "D00001",  # 4
        "name": "Premium Speaker 1",  # 3
        "description": "Premium speaker for home and business installations",  # 2
        "price": 449.95,  # 6
        "currentcost": 251.3,  # 7
        "transactioncurrencyid@odata.bind": f"transactioncurrencies({CURRENCY['USD']})",  # 1
        "defaultuomid@odata.bind": f"uoms({UOM['Each']})",  # 5: ea -> Each
        "defaultuomscheduleid@odata.bind": f"uomschedules({GROUP})",  # 10
        "pricelevelid@odata.bind": f"pricelevels({PRICE_LIST['CRM Service USA (sample)']})",
        "isstockitem": True,  # 8
        "producttypecode": 1,  # 9: Item -> Sales Inventory
        "quantitydecimal": 0,  # 12
        "msdynce_ismaintainedexternally": True,  # 11
    }
    assert record.source_key == "D00001"
    assert record.target_key == {"productnumber": "D00001"}
    assert record.target_id == deterministic_id("product", "usmf", "D00001")


def test_service_product_and_fractional_unit(real_catalogue: Catalogue) -> None:
    main = load(real_catalogue).task("main")
    row = fo_row(
        ProductNumber="S00002",
        ProductType="Service",
        IsStockedProduct="No",
        SalesUnitSymbol="h",
        SalesUnitDecimalPrecision=2,
    )
    record = main.map(row, ctx())
    assert isinstance(record, MappedRecord), record
    assert record.payload["producttypecode"] == 3  # Services
    assert record.payload["isstockitem"] is False
    assert record.payload["quantitydecimal"] == 2
    assert record.payload["defaultuomid@odata.bind"] == f"uoms({UOM['Hour']})"


def test_price_list_item_carries_the_sales_price(real_catalogue: Catalogue) -> None:
    item = load(real_catalogue).task("price_list_item")
    record = item.map(fo_row(), ctx())
    assert isinstance(record, MappedRecord), record
    assert record.payload == {
        "productid@odata.bind": f"products({PRODUCT_ID})",
        "pricelevelid@odata.bind": f"pricelevels({PRICE_LIST['CRM Service USA (sample)']})",
        "uomid@odata.bind": f"uoms({UOM['Each']})",
        "uomscheduleid@odata.bind": f"uomschedules({GROUP})",
        "transactioncurrencyid@odata.bind": f"transactioncurrencies({CURRENCY['USD']})",
        "amount": 449.95,
        "pricingmethodcode": 1,  # Currency Amount
        "quantitysellingcode": 2,  # Whole: the unit has no decimals
    }
    assert record.target_id == deterministic_id("productpricelevel", "usmf", "D00001")
    fractional = item.map(fo_row(SalesUnitSymbol="h", SalesUnitDecimalPrecision=2), ctx())
    assert isinstance(fractional, MappedRecord), fractional
    assert fractional.payload["quantitysellingcode"] == 1  # No Control


def test_price_list_item_of_an_unsynced_product_waits_for_it(real_catalogue: Catalogue) -> None:
    item = load(real_catalogue).task("price_list_item")
    with pytest.raises(ReferenceMissing) as missing:
        item.map(fo_row(ProductNumber="D00099"), ctx())
    assert missing.value.entity == "synced:products"  # a parent: the engine defers, not fails


def test_unknown_unit_fails_the_record_naming_unit_and_value_map(real_catalogue: Catalogue) -> None:
    main = load(real_catalogue).task("main")
    failure = main.map(fo_row(SalesUnitSymbol="yd"), ctx())
    assert isinstance(failure, MappingFailure)
    assert failure.source_key == "D00001" and failure.field == "defaultuomid"
    assert "'yd'" in failure.reason and "sales_unit_names" in failure.reason


def test_currency_without_price_list_fails_the_record(real_catalogue: Catalogue) -> None:
    """P2C: 'product sync fails if no price list with that currency exists' (templates.md §4)."""
    main = load(real_catalogue).task("main")
    failure = main.map(fo_row(CurrencyCode="JPY"), ctx())
    assert isinstance(failure, MappingFailure)
    assert failure.field == "pricelevelid" and "price_lists" in failure.reason


def test_only_the_product_company_is_read(real_catalogue: Catalogue) -> None:
    """One Sales product per number: the product company (P2C_DEFAULT_COMPANY) masters it; runs read
    no other company (README.md, "Companies")."""
    mapping = load(real_catalogue)
    assert mapping.spec.companies == "default"
    for task in mapping.tasks:
        assert all(c.field != "dataAreaId" for c in task.source.filter)
