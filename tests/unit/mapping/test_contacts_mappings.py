"""mappings/contacts.yaml and contacts-to-customers.yaml against the real schema catalogue.

Expected payloads are written from reference/templates.md §2 and §3 (and mappings/README.md
for the `Fn` contents the template does not show), not read back from the YAML.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.engine.filters import compile_filter
from shared.mapping import (
    Catalogue,
    MapContext,
    MappedRecord,
    MappingFailure,
    ReferenceMissing,
    TaskMapping,
    load_catalogue,
    load_mapping,
)
from tests.unit.mapping.helpers import FakeResolver

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE_DIR = ROOT / "sandbox" / "schemas"
CURRENCY_ID = "b2a6b689-9a39-e611-80d2-00155db44581"
ACCOUNT_ID = "7d577253-3ef0-e311-b278-6c3be5a8c0f0"


@pytest.fixture(scope="module")
def real_catalogue() -> Catalogue:
    if not (CATALOGUE_DIR / "dataverse.json").exists() or not (CATALOGUE_DIR / "finops.json").exists():
        pytest.skip("schema catalogue sandbox/schemas/*.json not generated yet")
    return load_catalogue(CATALOGUE_DIR)


def _task(catalogue: Catalogue, template: str) -> TaskMapping:
    mapping = load_mapping(ROOT / "mappings" / f"{template}.yaml", catalogue)
    assert mapping.template == template
    assert [t.name for t in mapping.tasks] == ["main"]
    return mapping.tasks[0]


@pytest.fixture(scope="module")
def persons(real_catalogue: Catalogue) -> TaskMapping:
    return _task(real_catalogue, "contacts")


@pytest.fixture(scope="module")
def customers(real_catalogue: Catalogue) -> TaskMapping:
    return _task(real_catalogue, "contacts-to-customers")


def contact_row(**changes: Any) -> dict[str, Any]:
    """A contact as the Web API returns it (lookups as `_x_value`, options as integers)."""
    row: dict[str, Any] = {
        "@odata.etag": 'W/"771204"',
        "contactid": "0e8b1c7c-2f5e-e911-a812-000d3a1a7a9b",
        "msdynce_contactnumber": "CON-01000-BVRCPS",
        "firstname": " Yvonne ",
        "middlename": "Marie",
        "lastname": "McKay",
        "fullname": "Yvonne Marie McKay",
        "department": "Purchasing",
        "jobtitle": "Purchasing manager",
        "description": "Met at the Contoso trade fair",
        "emailaddress1": "yvonne.mckay@example.com",
        "telephone1": "+1 425 555 0101",
        "fax": "+1 425 555 0199",
        "websiteurl": "https://www.mckay.example.com",
        "governmentid": "123-45-6789",
        "gendercode": 2,
        "familystatuscode": 4,
        "donotemail": True,
        "statecode": 0,
        "statuscode": 1,
        "creditlimit": 2500.0,
        "_transactioncurrencyid_value": CURRENCY_ID,
        "address1_line1": "1 Microsoft Way",
        "address1_city": "Redmond",
        "address1_stateorprovince": "WA",
        "address1_postalcode": "98052",
        "address1_country": "United States",
        "msdynce_isactivecustomer": False,
        "msdynce_iscompanyanaccount": True,
        "_parentcustomerid_value": ACCOUNT_ID,
        "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
    }
    row.update(changes)
    return row


def resolver(account_synced: bool = True) -> FakeResolver:
    table: dict[tuple[str, str, Any], Any] = {
        ("transactioncurrency", "transactioncurrencyid", CURRENCY_ID): "USD",
    }
    if account_synced:
        table[("synced:accounts", "origin", ACCOUNT_ID)] = "ACC-01000-QWERTY"
    return FakeResolver(table)


def map_row(task: TaskMapping, row: dict[str, Any], account_synced: bool = True) -> MappedRecord:
    result = task.map(row, MapContext(company="usmf", resolver=resolver(account_synced)))
    assert isinstance(result, MappedRecord), result
    return result


# ------------------------------------------------------------------------------------ contacts


def test_contacts_yaml_shape(persons: TaskMapping) -> None:
    assert (persons.source.service, persons.source.entity_set) == ("dataverse", "contacts")
    assert persons.source.key == "msdynce_contactnumber"
    assert (persons.target.service, persons.target.entity_set) == ("finops", "CDSContactPersons")
    # the V1 entity's OData key, which carries the parent (row 22)
    assert persons.target_key_fields == ["ContactPersonPartyNumber", "AssociatedPartyNumber"]
    assert persons.delete_policy == "ignore"
    assert persons.parent_entities == ["synced:accounts"]
    assert "_parentcustomerid_value" in persons.source.select


def test_contacts_filter_selects_contact_persons_only(persons: TaskMapping) -> None:
    selects = compile_filter(persons.source.filter)
    assert selects(contact_row())
    assert not selects(contact_row(msdynce_isactivecustomer=True))
    assert not selects(contact_row(msdynce_iscompanyanaccount=False))
    assert not selects(contact_row(msdynce_isactivecustomer=True, msdynce_iscompanyanaccount=False))


def test_contact_person_payload(persons: TaskMapping) -> None:
    record = map_row(persons, contact_row())
    assert record.source_key == "CON-01000-BVRCPS"
    assert record.target_key == {
        "dataAreaId": "usmf",
        "ContactPersonPartyNumber": "CON-01000-BVRCPS",
        "AssociatedPartyNumber": "ACC-01000-QWERTY",
    }
    assert record.payload == {
        "EmploymentDepartment": "Purchasing",
        "Notes": "Met at the Contoso trade fair",
        "PrimaryEmailAddress": "yvonne.mckay@example.com",
        "Gender": "Female",
        "GovernmentIdentificationNumber": "123-45-6789",
        "FirstName": "Yvonne",
        "LastName": "McKay",
        "ContactPersonPartyNumber": "CON-01000-BVRCPS",
        "PrimaryAddressCity": "Redmond",
        "PrimaryAddressCountryRegionISOCode": "US",
        "MiddleName": "Marie",
        "PrimaryAddressStreet": "1 Microsoft Way",
        "ContactPersonPartyType": "Person",
        "PrimaryPhoneNumber": "+1 425 555 0101",
        "PrimaryAddressZipCode": "98052",
        "PrimaryAddressStateId": "WA",
        "PrimaryURL": "https://www.mckay.example.com",
        "MaritalStatus": "Widowhood",
        "IsReceivingDirectMail": "No",
        "EmploymentProfession": "Purchasing manager",
        "IsInactive": "No",
        "AssociatedPartyNumber": "ACC-01000-QWERTY",
        "IsContactPersonExternallyMaintained": "Yes",
    }


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"gendercode": 1}, {"Gender": "Male"}),
        ({"gendercode": None}, {"Gender": "Unknown"}),
        ({"gendercode": 999}, {"Gender": "Unknown"}),  # a custom option F&O has no member for
        ({"familystatuscode": 1}, {"MaritalStatus": "Single"}),
        ({"familystatuscode": 2}, {"MaritalStatus": "Married"}),
        ({"familystatuscode": 3}, {"MaritalStatus": "Divorced"}),
        ({"familystatuscode": None}, {"MaritalStatus": "None"}),
        ({"donotemail": False}, {"IsReceivingDirectMail": "Yes"}),
        ({"donotemail": None}, {"IsReceivingDirectMail": "Yes"}),
        ({"statecode": 1, "statuscode": 2}, {"IsInactive": "Yes"}),
        ({"address1_country": None}, {"PrimaryAddressCountryRegionISOCode": "US"}),
        ({"address1_country": "Deutschland"}, {"PrimaryAddressCountryRegionISOCode": "DE"}),
    ],
)
def test_contact_person_value_maps(
    persons: TaskMapping, changes: dict[str, Any], expected: dict[str, Any]
) -> None:
    payload = map_row(persons, contact_row(**changes)).payload
    assert {name: payload.get(name) for name in expected} == expected


def test_contact_person_long_names_are_cut_and_blanks_left_out(persons: TaskMapping) -> None:
    long_last = "Vandenberghe-Oppenheimer-Smythe"
    row = contact_row(lastname=long_last, middlename=None, jobtitle="", websiteurl=None)
    payload = map_row(persons, row).payload
    assert payload["LastName"] == "Vandenberghe-Oppenheimer-"  # F&O holds 25 characters
    assert not {"MiddleName", "EmploymentProfession", "PrimaryURL"} & set(payload)


def test_contact_person_too_long_identifier_fails_the_record(persons: TaskMapping) -> None:
    result = persons.map(
        contact_row(governmentid="DE 1234 5678 9012 3456 78"),
        MapContext(company="usmf", resolver=resolver()),
    )
    assert isinstance(result, MappingFailure)
    assert result.field == "GovernmentIdentificationNumber" and "20" in result.reason


def test_contact_person_without_synced_account_raises_a_parent_reference(persons: TaskMapping) -> None:
    with pytest.raises(ReferenceMissing) as caught:
        persons.map(contact_row(), MapContext(company="usmf", resolver=resolver(account_synced=False)))
    assert caught.value.entity == "synced:accounts"  # listed in parent_entities: the engine defers
    assert caught.value.value == ACCOUNT_ID


# ----------------------------------------------------------------------- contacts-to-customers


def test_contacts_to_customers_yaml_shape(customers: TaskMapping) -> None:
    assert (customers.source.service, customers.source.entity_set) == ("dataverse", "contacts")
    assert customers.source.key == "msdynce_contactnumber"
    assert (customers.target.service, customers.target.entity_set) == ("finops", "CustomersV2")
    assert customers.target_key_fields == ["CustomerAccount"]
    assert customers.delete_policy == "ignore"
    assert customers.parent_entities == []
    selects = compile_filter(customers.source.filter)
    assert selects(contact_row(msdynce_isactivecustomer=True))
    assert selects(contact_row(msdynce_isactivecustomer=True, msdynce_iscompanyanaccount=False))
    assert not selects(contact_row())


def test_person_customer_payload(customers: TaskMapping) -> None:
    record = map_row(customers, contact_row(msdynce_isactivecustomer=True), account_synced=False)
    assert record.target_key == {"dataAreaId": "usmf", "CustomerAccount": "CON-01000-BVRCPS"}
    assert record.payload == {
        "PersonFirstName": "Yvonne",
        "PersonMiddleName": "Marie",
        "PersonLastName": "McKay",
        "CreditLimit": 2500.0,
        "CustomerGroupId": "10",
        "PrimaryContactFax": "+1 425 555 0199",
        "SalesCurrencyCode": "USD",
        "CustomerAccount": "CON-01000-BVRCPS",
        "AddressCity": "Redmond",
        "AddressCountryRegionISOCode": "US",
        "SalesMemo": "Met at the Contoso trade fair",
        "PrimaryContactEmail": "yvonne.mckay@example.com",
        "AddressStreet": "1 Microsoft Way",
        "PartyType": "Person",
        "PrimaryContactPhone": "+1 425 555 0101",
        "AddressZipCode": "98052",
        "AddressState": "WA",
        "PrimaryContactURL": "https://www.mckay.example.com",
        "AddressDescription": "Yvonne Marie McKay",
        "LanguageId": "en-us",
        "PartyNumber": "CON-01000-BVRCPS",
        "IsExternallyMaintained": "Yes",
    }


def test_person_customer_defaults(customers: TaskMapping) -> None:
    payload = map_row(
        customers,
        contact_row(
            msdynce_isactivecustomer=True,
            _transactioncurrencyid_value=None,
            address1_country="  ",
            creditlimit=None,
            fullname="Maximilian Vandenberghe-Oppenheimer-Smythe of the Very Long Family Name Ltd.",
        ),
    ).payload
    assert payload["SalesCurrencyCode"] == "USD"
    assert payload["AddressCountryRegionISOCode"] == "US"
    assert "CreditLimit" not in payload
    assert len(payload["AddressDescription"]) == 60


def test_contact_person_without_parent_fails_on_the_empty_key(persons: TaskMapping) -> None:
    """Flags say "company is an account" but no parent is set: nothing to wait for, the record fails."""
    result = persons.map(
        contact_row(_parentcustomerid_value=None), MapContext(company="usmf", resolver=resolver())
    )
    assert isinstance(result, MappingFailure)
    assert result.field == "AssociatedPartyNumber" and "empty" in result.reason
