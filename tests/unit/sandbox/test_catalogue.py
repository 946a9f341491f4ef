"""Schema catalogue: generated files are current, complete for the templates, and self-consistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.catalogue import (
    DEFAULT_DIR,
    Catalogue,
    CatalogueError,
    check_finops_value,
    dataverse_column,
    dataverse_lookup_bind,
    dataverse_read_name,
    dataverse_table,
    dataverse_table_by_entity_set,
    finops_entity_set,
    finops_enum_members,
    finops_enum_name,
    finops_property,
    load_catalogue,
    load_catalogue_files,
)
from sandbox.dataverse.schema import build_tables
from sandbox.schemas import generate

LOOKUPS = {"Lookup", "Customer", "Owner"}


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


@pytest.fixture(scope="module")
def dv(catalogue: Catalogue) -> dict[str, Any]:
    return catalogue.dataverse


@pytest.fixture(scope="module")
def fo(catalogue: Catalogue) -> dict[str, Any]:
    return catalogue.finops


# ------------------------------------------------------------------------------ freshness


@pytest.mark.skipif(not generate.DEFAULT_REFERENCE.is_dir(), reason="reference schemas not available")
def test_committed_catalogue_matches_regeneration(tmp_path: Path) -> None:
    """A hand edit of the JSON or a generator change without regeneration fails here."""
    generate.generate(generate.DEFAULT_REFERENCE, tmp_path)
    for name in ("dataverse.json", "finops.json"):
        fresh = (tmp_path / name).read_text(encoding="utf-8")
        committed = (DEFAULT_DIR / name).read_text(encoding="utf-8")
        assert fresh == committed, f"{name} is stale: run `python -m sandbox.schemas.generate`"


def test_render_is_deterministic() -> None:
    one = generate.render({"b": 1, "a": {"d": 2, "c": 3}})
    assert one == generate.render({"a": {"c": 3, "d": 2}, "b": 1})


# ------------------------------------------------------------------------------ loader


def test_load_catalogue_files_returns_both_documents() -> None:
    dataverse, finops = load_catalogue_files()
    assert dataverse["service"] == "dataverse" and dataverse["sources"]
    assert finops["service"] == "finops" and finops["sources"]


def test_load_rejects_swapped_files(tmp_path: Path) -> None:
    (tmp_path / "dataverse.json").write_text(json.dumps({"service": "finops"}), encoding="utf-8")
    (tmp_path / "finops.json").write_text(json.dumps({"service": "finops"}), encoding="utf-8")
    with pytest.raises(ValueError, match="dataverse"):
        load_catalogue_files(tmp_path)


def test_load_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_catalogue_files(tmp_path / "nope")


def test_helpers_name_what_is_missing(dv: dict[str, Any], fo: dict[str, Any]) -> None:
    with pytest.raises(CatalogueError, match="'lead'"):
        dataverse_table(dv, "lead")
    with pytest.raises(CatalogueError, match="no column 'nmae'"):
        dataverse_column(dv, "account", "nmae")
    with pytest.raises(CatalogueError, match="'CustomerAcount'"):
        finops_property(fo, "CustomersV2", "CustomerAcount")
    with pytest.raises(CatalogueError, match="ContactPersonsV2"):
        finops_entity_set(fo, "ContactPersonsV2")
    with pytest.raises(CatalogueError):
        finops_enum_members(fo, "NotAnEnum")


def test_dataverse_helpers(dv: dict[str, Any]) -> None:
    assert dataverse_table_by_entity_set(dv, "transactioncurrencies")[0] == "transactioncurrency"
    assert dataverse_lookup_bind(dv, "contact", "parentcustomerid", "account") == "parentcustomerid_account"
    assert dataverse_lookup_bind(dv, "quote", "customerid", "contact") == "customerid_contact"
    assert dataverse_lookup_bind(dv, "salesorderdetail", "quotedetailid", "quotedetail") == "QuoteDetailId"
    assert dataverse_read_name(dv, "account", "transactioncurrencyid") == "_transactioncurrencyid_value"
    assert dataverse_read_name(dv, "account", "name") == "name"
    with pytest.raises(CatalogueError, match="targets"):
        dataverse_lookup_bind(dv, "contact", "parentcustomerid", "lead")


# ------------------------------------------------------------------------------ Dataverse content


DATAVERSE_TABLES = {
    "account": "accounts",
    "contact": "contacts",
    "product": "products",
    "quote": "quotes",
    "quotedetail": "quotedetails",
    "salesorder": "salesorders",
    "salesorderdetail": "salesorderdetails",
    "invoice": "invoices",
    "invoicedetail": "invoicedetails",
    "transactioncurrency": "transactioncurrencies",
    "uom": "uoms",
    "uomschedule": "uomschedules",
    "pricelevel": "pricelevels",
    "productpricelevel": "productpricelevels",
    "businessunit": "businessunits",
    "systemuser": "systemusers",
}


def test_all_tables_present_with_entity_sets(dv: dict[str, Any]) -> None:
    assert {k: v["entity_set"] for k, v in dv["tables"].items()} == DATAVERSE_TABLES
    for logical, table in dv["tables"].items():
        assert table["primary_id"] in table["columns"], logical
        assert table["primary_name"] is None or table["primary_name"] in table["columns"], logical


@pytest.mark.parametrize(
    ("logical", "column"),
    [
        ("account", "accountnumber"),
        ("contact", "msdynce_contactnumber"),
        ("product", "productnumber"),
        ("quote", "quotenumber"),
        ("salesorder", "ordernumber"),
        ("invoice", "invoicenumber"),
        ("transactioncurrency", "isocurrencycode"),
    ],
)
def test_p2c_alternate_keys(dv: dict[str, Any], logical: str, column: str) -> None:
    table = dataverse_table(dv, logical)
    assert table["alternate_keys"] == {column: [column]}
    assert table["columns"][column]["type"] == "String"


def test_line_tables_have_no_alternate_key(dv: dict[str, Any]) -> None:
    for logical in ("quotedetail", "salesorderdetail", "invoicedetail"):
        assert dataverse_table(dv, logical)["alternate_keys"] == {}


def test_every_lookup_has_targets_and_a_bind_per_target(dv: dict[str, Any]) -> None:
    for logical, table in dv["tables"].items():
        for name, col in table["columns"].items():
            if col["type"] in LOOKUPS:
                assert col["targets"], f"{logical}.{name}"
                assert set(col["bind"]) == set(col["targets"]), f"{logical}.{name}"


def test_choice_columns_have_options(dv: dict[str, Any]) -> None:
    for logical in ("account", "contact", "quote", "salesorder", "invoice"):
        for name in ("statecode", "statuscode"):
            options = dataverse_column(dv, logical, name)["options"]
            assert options and all(k.lstrip("-").isdigit() for k in options), f"{logical}.{name}"


def test_p2c_solution_columns(dv: dict[str, Any]) -> None:
    status = dataverse_column(dv, "salesorder", "msdynce_processingstatus")
    assert status["type"] == "Picklist"
    assert status["options"]["647390011"] == "Draft" and status["options"]["647390000"] == "Active"
    assert dataverse_column(dv, "quote", "statuscode")["options"]["647390000"] == "Submitted"
    assert dataverse_column(dv, "contact", "msdynce_contactnumber")["max_length"] == 20
    assert dataverse_column(dv, "account", "accountnumber")["max_length"] == 20
    assert dataverse_column(dv, "invoicedetail", "msdynce_invoicenumber")["max_length"] == 100
    for logical in ("product", "quote", "quotedetail", "salesorder", "salesorderdetail", "invoice"):
        assert dataverse_column(dv, logical, "msdynce_ismaintainedexternally")["type"] == "Boolean"


def test_string_columns_have_lengths(dv: dict[str, Any]) -> None:
    assert dataverse_column(dv, "account", "name")["max_length"] == 160
    for logical, table in dv["tables"].items():
        for name, col in table["columns"].items():
            if col["type"] in ("String", "Memo"):
                assert isinstance(col.get("max_length"), int), f"{logical}.{name}"


def test_required_columns_are_the_platform_enforced_ones(dv: dict[str, Any]) -> None:
    assert dataverse_column(dv, "quotedetail", "quoteid")["required"] is True
    # auto-numbered / defaulted by the platform or by the P2C plugin: not required of a client
    assert dataverse_column(dv, "quote", "quotenumber")["required"] is False
    assert dataverse_column(dv, "account", "accountnumber")["required"] is False
    assert dataverse_column(dv, "account", "accountid")["required"] is False


def test_bulk_support_flags(dv: dict[str, Any]) -> None:
    unsupported = {k for k, v in dv["tables"].items() if not v["supports_multiple"]}
    assert unsupported == {"quote", "invoice"}


def test_synthesized_tables_are_flagged(dv: dict[str, Any]) -> None:
    assert {k for k, v in dv["tables"].items() if v.get("synthesized")} == {"businessunit", "systemuser"}
    assert any("businessunit" in s for s in dv["sources"])


def test_sandbox_dataverse_schema_accepts_catalogue(catalogue: Catalogue) -> None:
    tables = build_tables(catalogue)
    account = tables["accounts"]
    assert account.alternate_keys == {"accountnumber": ["accountnumber"]}
    assert "_transactioncurrencyid_value" in account.readable_set
    assert tables["contacts"].binds["parentcustomerid_account"] == ("parentcustomerid", "account")


# ------------------------------------------------------------------------------ F&O content

# Template 1 (accounts → CustomersV2) targets, in the upper case of templates.md §1.
def _names(text: str) -> list[str]:
    return text.split()


ACCOUNTS_TEMPLATE_TARGETS = _names(
    "CREDITLIMIT CUSTOMERGROUPID PRIMARYCONTACTFAX ORGANIZATIONNUMBEROFEMPLOYEES SALESCURRENCYCODE "
    "CUSTOMERACCOUNT ADDRESSCITY ADDRESSCOUNTRYREGIONISOCODE SALESMEMO PRIMARYCONTACTEMAIL ADDRESSSTREET "
    "PARTYTYPE PRIMARYCONTACTPHONE ADDRESSZIPCODE ADDRESSSTATE PRIMARYCONTACTURL ADDRESSLOCATIONROLES "
    "ORGANIZATIONNAME SITEID WAREHOUSEID LANGUAGEID PARTYNUMBER ADDRESSDESCRIPTION ISEXTERNALLYMAINTAINED "
    "DELIVERYADDRESSSTREET DELIVERYADDRESSCITY DELIVERYADDRESSCOUNTRYREGIONISOCODE DELIVERYADDRESSZIPCODE "
    "DELIVERYADDRESSSTATE DELIVERYADDRESSDESCRIPTION PERSONFIRSTNAME PERSONMIDDLENAME PERSONLASTNAME"
)


def _by_upper(props: dict[str, Any]) -> dict[str, str]:
    return {name.upper(): name for name in props}


def test_accounts_template_targets_exist_on_customers_v2(fo: dict[str, Any]) -> None:
    props = finops_entity_set(fo, "CustomersV2")["properties"]
    upper = _by_upper(props)
    missing = [t for t in ACCOUNTS_TEMPLATE_TARGETS if t not in upper]
    assert not missing
    assert props["IsExternallyMaintained"]["type"] == "Microsoft.Dynamics.DataEntities.NoYes"


@pytest.mark.parametrize(
    ("name", "length"),
    [
        ("CustomerAccount", 20),
        ("OrganizationName", 100),
        ("AddressStreet", 250),
        ("AddressCity", 60),
        ("AddressZipCode", 10),
        ("AddressState", 10),
        ("PrimaryContactEmail", 255),
        ("PrimaryContactPhone", 255),
        ("dataAreaId", 4),
    ],
)
def test_customers_v2_string_lengths(fo: dict[str, Any], name: str, length: int) -> None:
    assert finops_property(fo, "CustomersV2", name)["max_length"] == length


def test_every_finops_string_has_a_length(fo: dict[str, Any]) -> None:
    for set_name, entity in fo["entity_sets"].items():
        for name, prop in entity["properties"].items():
            if prop["type"] == "Edm.String":
                assert isinstance(prop.get("max_length"), int), f"{set_name}.{name}"


@pytest.mark.parametrize(
    ("entity_set", "fields"),
    [
        (
            "CDSContactPersons",
            "EmploymentDepartment Notes PrimaryEmailAddress Gender GovernmentIdentificationNumber FirstName "
            "LastName ContactPersonPartyNumber PrimaryAddressCity "
            "PrimaryAddressCountryRegionISOCode MiddleName "
            "PrimaryAddressStreet ContactPersonPartyType PrimaryPhoneNumber PrimaryAddressZipCode "
            "PrimaryAddressStateId PrimaryURL MaritalStatus IsReceivingDirectMail "
            "EmploymentProfession IsInactive "
            "AssociatedPartyNumber IsContactPersonExternallyMaintained",
        ),
        ("SellableReleasedProducts", "CurrencyCode ProductDescription ProductName ProductNumber "
            "SalesUnitSymbol "
         "SalesPrice UnitCost IsStockedProduct ProductType SalesUnitDecimalPrecision"),
        (
            "CDSSalesQuotationHeaders",
            "RequestingCustomerAccountNumber DeliveryAddressCity "
            "DeliveryAddressCountryRegionISOCode CurrencyCode "
            "DeliveryAddressStreet DeliveryAddressStreetNumber DeliveryAddressZipCode SalesQuotationNumber "
            "DeliveryAddressStateId QuotationTotalAmount SalesQuotationName",
        ),
        ("CDSSalesQuotationLines", "ProductNumber RequestedSalesQuantity SalesQuotationNumber "
         "LineCreationSequenceNumber SalesUnitSymbol TotalDiscountAmount SalesPrice"),
        (
            "CDSSalesOrderHeaders",
            "OrderingCustomerAccountNumber SalesOrderNumber SalesOrderProcessingStatus OrderTotalAmount "
            "OrderTotalTaxAmount OrderTotalChargesAmount TotalDiscountAmount InvoiceAddressCountryRegionId "
            "OrderingCustomerIsExternallyMaintained InvoiceCustomerIsExternallyMaintained SalesOrderName",
        ),
        ("CDSSalesOrderLines", "ProductNumber OrderedSalesQuantity SalesOrderNumber "
            "LineCreationSequenceNumber "
         "SalesUnitSymbol TotalDiscountAmount SalesPrice LineAmount ProductName"),
        ("ExternallyMaintainedCustomerSalesInvoiceHeaders", "InvoiceCustomerAccountNumber InvoiceNumber "
         "InvoiceDate CurrencyCode SalesOrderNumber TotalInvoiceAmount TotalChargeAmount TotalTaxAmount"),
        ("ExternallyMaintainedCustomerSalesInvoiceLines", "LineCreationSequenceNumber InvoicedQuantity "
         "SalesUnitSymbol SalesPrice LineTotalDiscountAmount LineAmount LineTotalTaxAmount ProductNumber"),
    ],
)
def test_template_fields_exist(fo: dict[str, Any], entity_set: str, fields: str) -> None:
    props = finops_entity_set(fo, entity_set)["properties"]
    assert [f for f in fields.split() if f not in props] == []


def test_reference_entity_sets_present(fo: dict[str, Any]) -> None:
    names = ("CustomerGroups", "Currencies", "UnitsOfMeasure", "LegalEntities", "Companies", "CustomersV3")
    for name in names:
        finops_entity_set(fo, name)


def test_keys_are_properties_and_company_sets_carry_data_area(fo: dict[str, Any]) -> None:
    global_sets = {"Currencies", "UnitsOfMeasure", "LegalEntities", "Companies"}
    for name, entity in fo["entity_sets"].items():
        assert all(k in entity["properties"] for k in entity["keys"]), name
        assert all(entity["properties"][k]["nullable"] is False for k in entity["keys"]), name
        if name not in global_sets:
            assert entity["keys"][0] == "dataAreaId", name


def test_synthesized_entity_sets_are_flagged(fo: dict[str, Any]) -> None:
    synthesized = {k for k, v in fo["entity_sets"].items() if v.get("synthesized")}
    assert synthesized == {
        "SellableReleasedProducts",
        "ExternallyMaintainedCustomerSalesInvoiceHeaders",
        "ExternallyMaintainedCustomerSalesInvoiceLines",
    }
    assert all(any(name in s for s in fo["sources"]) for name in synthesized)


def test_every_enum_type_resolves(fo: dict[str, Any]) -> None:
    used = set()
    for entity in fo["entity_sets"].values():
        for prop in entity["properties"].values():
            enum = finops_enum_name(prop["type"])
            if enum is not None:
                used.add(enum)
                assert finops_enum_members(fo, prop["type"])
    assert "NoYes" in used
    assert set(fo["enum_types"]) == used  # nothing unused is carried
    assert fo["enum_types"]["NoYes"] == {"No": 0, "Yes": 1}


def test_check_finops_value(fo: dict[str, Any]) -> None:
    spec = finops_property(fo, "CustomersV2", "CustomerAccount")
    check_finops_value(fo, spec, "C-1")
    with pytest.raises(ValueError, match="maximum length 20"):
        check_finops_value(fo, spec, "X" * 21)
    with pytest.raises(ValueError, match="null"):
        check_finops_value(fo, spec, None)
    noyes = finops_property(fo, "CustomersV2", "IsExternallyMaintained")
    check_finops_value(fo, noyes, "Yes")
    with pytest.raises(ValueError, match="NoYes"):
        check_finops_value(fo, noyes, "Maybe")
    limit = finops_property(fo, "CustomersV2", "CreditLimit")
    check_finops_value(fo, limit, 10.5)
    with pytest.raises(ValueError):
        check_finops_value(fo, limit, True)
    employees = finops_property(fo, "CustomersV2", "OrganizationNumberOfEmployees")
    with pytest.raises(ValueError):
        check_finops_value(fo, employees, 1.5)
    date = finops_property(fo, "ExternallyMaintainedCustomerSalesInvoiceHeaders", "InvoiceDate")
    check_finops_value(fo, date, "2024-01-31T00:00:00Z")
    with pytest.raises(ValueError):
        check_finops_value(fo, date, "31/01/2024")
