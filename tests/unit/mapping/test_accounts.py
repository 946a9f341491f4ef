"""mappings/accounts.yaml against the real schema catalogue, and a realistic account mapped end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.mapping import (
    Catalogue,
    MapContext,
    MappedRecord,
    MappingFailure,
    TaskMapping,
    load_catalogue,
    load_mapping,
)
from tests.unit.mapping.helpers import FakeResolver

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE_DIR = ROOT / "sandbox" / "schemas"
EXAMPLES = (
    ROOT.parent
    / "shared"
    / "reference"
    / "schemas"
    / "examples"
    / "dataverse_webapi_response_examples.ms_docs.json"
)
CURRENCY_ID = "b2a6b689-9a39-e611-80d2-00155db44581"


@pytest.fixture(scope="module")
def real_catalogue() -> Catalogue:
    if not (CATALOGUE_DIR / "dataverse.json").exists() or not (CATALOGUE_DIR / "finops.json").exists():
        pytest.skip("schema catalogue sandbox/schemas/*.json not generated yet")
    return load_catalogue(CATALOGUE_DIR)


@pytest.fixture(scope="module")
def task(real_catalogue: Catalogue) -> TaskMapping:
    mapping = load_mapping(ROOT / "mappings" / "accounts.yaml", real_catalogue)
    assert mapping.template == "accounts"
    assert [t.name for t in mapping.tasks] == ["main"]
    return mapping.tasks[0]


def ms_docs_account() -> dict[str, Any]:
    """The account response from Microsoft's Web API docs when available (real wire shape), else its copy."""
    base: dict[str, Any] = {
        "@odata.etag": 'W/"502186"',
        "name": "A. Datum Corporation (sample)",
        "accountid": "00000000-0000-0000-0000-000000000001",
        "_transactioncurrencyid_value": CURRENCY_ID,
    }
    if EXAMPLES.exists():
        for example in json.loads(EXAMPLES.read_text(encoding="utf-8"))["examples"]:
            response = example.get("response", {})
            if "_transactioncurrencyid_value" in response and "accountid" in response:
                base = {k: v for k, v in response.items() if k != "@odata.context"}
                break
    return base


def account_row() -> dict[str, Any]:
    return {
        **ms_docs_account(),
        "accountnumber": "ACC-01000-BVRCPS",
        "creditlimit": 25000.5,
        "fax": "+1 425 555 0199",
        "numberofemployees": 120,
        "address1_line1": " 1 Microsoft Way ",
        "address1_city": "Redmond",
        "address1_stateorprovince": "WA",
        "address1_postalcode": "98052",
        "address1_country": "United States",
        "description": "Key account",
        "emailaddress1": "info@adatum.example.com",
        "telephone1": "+1 206 555 0100",
        "websiteurl": "https://www.adatum.example.com",
        "address2_line1": None,
        "address2_city": None,
        "address2_stateorprovince": None,
        "address2_postalcode": None,
        "address2_country": None,
        "_transactioncurrencyid_value@OData.Community.Display.V1.FormattedValue": "US Dollar",
    }


def resolver() -> FakeResolver:
    return FakeResolver({("transactioncurrency", "transactioncurrencyid", CURRENCY_ID): "USD"})


def test_accounts_yaml_shape(task: TaskMapping) -> None:
    assert task.source.service == "dataverse" and task.source.entity_set == "accounts"
    assert task.source.key == "accountnumber" and task.source.filter == []
    assert task.target.service == "finops" and task.target.entity_set == "CustomersV2"
    assert task.delete_policy == "ignore"
    assert task.target_key_fields == ["CustomerAccount"]
    assert "_transactioncurrencyid_value" in task.source.select
    assert "accountnumber" in task.source.select and "address2_country" in task.source.select


def test_realistic_account_becomes_the_expected_customer(task: TaskMapping) -> None:
    row = account_row()
    result = task.map(row, MapContext(company="usmf", resolver=resolver()))
    assert isinstance(result, MappedRecord), result
    name = row["name"]
    assert result.payload == {
        "CustomerAccount": "ACC-01000-BVRCPS",
        "PartyNumber": "ACC-01000-BVRCPS",
        "OrganizationName": name,
        "PartyType": "Organization",
        "IsExternallyMaintained": "Yes",
        "CustomerGroupId": "10",
        "SalesCurrencyCode": "USD",
        "SiteId": "1",
        "WarehouseId": "13",
        "LanguageId": "en-us",
        "CreditLimit": 25000.5,
        "OrganizationNumberOfEmployees": 120,
        "SalesMemo": "Key account",
        "PrimaryContactFax": "+1 425 555 0199",
        "PrimaryContactEmail": "info@adatum.example.com",
        "PrimaryContactPhone": "+1 206 555 0100",
        "PrimaryContactURL": "https://www.adatum.example.com",
        "AddressStreet": "1 Microsoft Way",
        "AddressCity": "Redmond",
        "AddressZipCode": "98052",
        "AddressState": "WA",
        "AddressCountryRegionISOCode": "US",
        "AddressDescription": name,
        "AddressLocationRoles": "Business",
        "DeliveryAddressDescription": name,  # the template maps it unconditionally (row 30)
    }
    assert result.source_key == "ACC-01000-BVRCPS"
    assert result.target_key == {"dataAreaId": "usmf", "CustomerAccount": "ACC-01000-BVRCPS"}
    assert result.target_key_text == "usmf|ACC-01000-BVRCPS"
    assert result.source_id == row["accountid"]
    again = task.map(account_row(), MapContext(company="usmf", resolver=resolver()))
    assert isinstance(again, MappedRecord) and again.hash == result.hash


def test_delivery_address_blank_country_and_long_names(task: TaskMapping) -> None:
    row = {
        **account_row(),
        "name": "Contoso " * 30,
        "address1_country": None,
        "address2_line1": "12 Dock Rd",
        "address2_city": "Hamburg",
        "address2_postalcode": "20095",
        "address2_country": "Deutschland",
        "_transactioncurrencyid_value": None,
    }
    result = task.map(row, MapContext(company="demf", resolver=resolver()))
    assert isinstance(result, MappedRecord), result
    payload = result.payload
    assert payload["AddressCountryRegionISOCode"] == "US"  # template default for a blank country
    assert payload["DeliveryAddressCountryRegionISOCode"] == "DE"
    assert payload["DeliveryAddressStreet"] == "12 Dock Rd" and payload["DeliveryAddressCity"] == "Hamburg"
    assert len(payload["OrganizationName"]) == 100 and len(payload["AddressDescription"]) == 60
    assert payload["SalesCurrencyCode"] == "USD"  # default when the account has no currency
    assert result.target_key_text == "demf|ACC-01000-BVRCPS"


def test_bad_values_fail_the_record_not_the_run(task: TaskMapping) -> None:
    ctx = MapContext(company="usmf", resolver=resolver())
    failure = task.map({**account_row(), "address1_stateorprovince": "Washington State"}, ctx)
    assert isinstance(failure, MappingFailure) and failure.field == "AddressState"
    failure = task.map({**account_row(), "accountnumber": None}, ctx)
    assert isinstance(failure, MappingFailure) and failure.field == "accountnumber"
