"""Contacts and Contacts to Customer (Sales → F&O) end to end: production engine, sandbox, Azurite.

The golden expectations below are written by hand from `reference/templates.md` §2 and §3 (and the
choices documented in `mappings/README.md` where the template shows `Fn` without content),
not derived from the YAML files, so a wrong mapping fails here.
Run order (templates.md "Cross-template rules"): accounts → contacts / contacts-to-customers.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.datagen import LOOKUP_TARGET, generate
from shared.engine import RunOutcome, SyncEngine
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

COMPANY = "usmf"
CONTACT_PERSONS = "CDSContactPersons"
CUSTOMERS = "CustomersV2"

# F&O ISO 3166 alpha-2 codes; a blank country is the template's default United States [L-CON].
COUNTRY_ISO = {
    None: "US",
    "United States": "US",
    "Canada": "CA",
    "United Kingdom": "GB",
    "Germany": "DE",
    "France": "FR",
}
# Dataverse option values (dataverse.json `contact`) → F&O enum members (finops.json `enum_types`).
GENDER = {1: "Male", 2: "Female", None: "Unknown"}
MARITAL = {1: "Single", 2: "Married", 3: "Divorced", 4: "Widowhood", None: "None"}


def is_contact_person(contact: dict[str, Any]) -> bool:
    """§2 selection rule: not an active customer, and the company is an account."""
    return (
        contact.get("msdynce_isactivecustomer") is False
        and contact.get("msdynce_iscompanyanaccount") is True
    )


def is_person_customer(contact: dict[str, Any]) -> bool:
    """§3 selection rule: Is Active Customer = Yes."""
    return contact.get("msdynce_isactivecustomer") is True


def cut(value: str | None, length: int) -> str | None:
    return value.strip()[:length] if value else value


def expected_contact_person(contact: dict[str, Any], account_number_by_id: dict[str, str]) -> dict[str, Any]:
    """What templates.md §2 prescribes for one contact (all 23 rows)."""
    return {
        "dataAreaId": COMPANY,
        "EmploymentDepartment": cut(contact.get("department"), 60),  # 1
        "Notes": cut(contact.get("description"), 1000),  # 2
        "PrimaryEmailAddress": contact.get("emailaddress1"),  # 3
        "Gender": GENDER[contact.get("gendercode")],  # 4
        "GovernmentIdentificationNumber": contact.get("governmentid"),  # 5
        "FirstName": cut(contact.get("firstname"), 25),  # 6
        "LastName": cut(contact.get("lastname"), 25),  # 7
        "ContactPersonPartyNumber": contact["msdynce_contactnumber"],  # 8 (key)
        "PrimaryAddressCity": contact.get("address1_city"),  # 9
        "PrimaryAddressCountryRegionISOCode": COUNTRY_ISO[contact.get("address1_country")],  # 10
        "MiddleName": cut(contact.get("middlename"), 25),  # 11
        "PrimaryAddressStreet": contact.get("address1_line1"),  # 12
        "ContactPersonPartyType": "Person",  # 13
        "PrimaryPhoneNumber": contact.get("telephone1"),  # 14
        "PrimaryAddressZipCode": contact.get("address1_postalcode"),  # 15
        "PrimaryAddressStateId": contact.get("address1_stateorprovince"),  # 16
        "PrimaryURL": contact.get("websiteurl"),  # 17
        "MaritalStatus": MARITAL[contact.get("familystatuscode")],  # 18
        "IsReceivingDirectMail": "No" if contact.get("donotemail") else "Yes",  # 19 (inverted)
        "EmploymentProfession": cut(contact.get("jobtitle"), 60),  # 20
        "IsInactive": "Yes" if contact.get("statecode") == 1 else "No",  # 21
        "AssociatedPartyNumber": account_number_by_id[contact["_parentcustomerid_value"]],  # 22
        "IsContactPersonExternallyMaintained": "Yes",  # 23
    }


def expected_person_customer(contact: dict[str, Any], currency_by_id: dict[str, str]) -> dict[str, Any]:
    """What templates.md §3 prescribes for one active-customer contact (all 22 rows)."""
    return {
        "dataAreaId": COMPANY,
        "PersonFirstName": cut(contact.get("firstname"), 25),  # 1
        "PersonMiddleName": cut(contact.get("middlename"), 25),  # 2
        "PersonLastName": cut(contact.get("lastname"), 25),  # 3
        "CreditLimit": contact.get("creditlimit"),  # 4
        "CustomerGroupId": "10",  # 5
        "PrimaryContactFax": contact.get("fax"),  # 6
        # 7: the currency's ISO code; no currency -> USD (as for accounts)
        "SalesCurrencyCode": currency_by_id.get(contact.get("_transactioncurrencyid_value") or "", "USD"),
        "CustomerAccount": contact["msdynce_contactnumber"],  # 8 (key)
        "AddressCity": contact.get("address1_city"),  # 9
        "AddressCountryRegionISOCode": COUNTRY_ISO[contact.get("address1_country")],  # 10
        "SalesMemo": cut(contact.get("description"), 1000),  # 11
        "PrimaryContactEmail": contact.get("emailaddress1"),  # 12
        "AddressStreet": contact.get("address1_line1"),  # 13
        "PartyType": "Person",  # 14
        "PrimaryContactPhone": contact.get("telephone1"),  # 15
        "AddressZipCode": contact.get("address1_postalcode"),  # 16
        "AddressState": contact.get("address1_stateorprovince"),  # 17
        "PrimaryContactURL": contact.get("websiteurl"),  # 18
        "AddressDescription": cut(contact.get("fullname"), 60),  # 19
        "LanguageId": "en-us",  # 20
        "PartyNumber": contact["msdynce_contactnumber"],  # 21
        "IsExternallyMaintained": "Yes",  # 22
    }


def _same(actual: Any, wanted: Any) -> bool:
    if wanted is None:
        return actual in (None, "", 0)
    if isinstance(wanted, float | int) and not isinstance(wanted, bool):
        return actual is not None and float(actual) == float(wanted)
    return bool(actual == wanted)


def _compare(key: str, actual: dict[str, Any] | None, wanted: dict[str, Any], out: list[str]) -> None:
    if actual is None:
        out.append(f"{key}: not written")
        return
    for name, value in wanted.items():
        if not _same(actual.get(name), value):
            out.append(f"{key}.{name}: {actual.get(name)!r} != {value!r}")


def assert_contact_persons(product: Product, contacts: list[dict[str, Any]]) -> None:
    sb = product.sandbox
    account_number_by_id = {r["accountid"]: r["accountnumber"] for r in sb.dataverse.rows("accounts")}
    written = {r["ContactPersonPartyNumber"]: r for r in sb.finops.rows(CONTACT_PERSONS, company=COMPANY)}
    selected = [c for c in contacts if is_contact_person(c)]
    assert selected, "the data set has no contact persons"
    assert sorted(written) == sorted(c["msdynce_contactnumber"] for c in selected)
    mismatches: list[str] = []
    for contact in selected:
        number = contact["msdynce_contactnumber"]
        wanted = expected_contact_person(contact, account_number_by_id)
        _compare(number, written.get(number), wanted, mismatches)
    assert not mismatches, "\n".join(mismatches[:30])


def assert_person_customers(product: Product, contacts: list[dict[str, Any]]) -> None:
    sb = product.sandbox
    currency_by_id = {
        r["transactioncurrencyid"]: r["isocurrencycode"] for r in sb.dataverse.rows("transactioncurrencies")
    }
    written = {
        r["CustomerAccount"]: r
        for r in sb.finops.rows(CUSTOMERS, company=COMPANY)
        if r.get("PartyType") == "Person"
    }
    selected = [c for c in contacts if is_person_customer(c)]
    assert selected, "the data set has no active-customer contacts"
    assert sorted(written) == sorted(c["msdynce_contactnumber"] for c in selected)
    mismatches: list[str] = []
    for contact in selected:
        number = contact["msdynce_contactnumber"]
        _compare(number, written.get(number), expected_person_customer(contact, currency_by_id), mismatches)
    assert not mismatches, "\n".join(mismatches[:30])


def seed(product: Product, size: int, seed_no: int = 23) -> list[dict[str, Any]]:
    product.sandbox.load(generate(size=size, seed=seed_no, templates=("contacts", "contacts-to-customers")))
    return product.sandbox.dataverse.rows("contacts")


class Clock:
    """Real time plus an offset the test moves, so the retry store's "due in ~1 minute" can pass."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def engine_with_clock(product: Product) -> tuple[SyncEngine, Clock]:
    clock = Clock()
    return SyncEngine(product.settings, product.state, clock=clock), clock


def run(engine: SyncEngine, template: str) -> RunOutcome:
    return engine.run(template, trigger="cli")


def ok(outcome: RunOutcome) -> RunOutcome:
    assert outcome.status == "succeeded", (outcome.template, outcome.message, outcome.counts)
    return outcome


# ------------------------------------------------------------------------------------------ tests


def test_golden_both_templates_then_idle(product: Product) -> None:
    contacts = seed(product, 200)
    persons = [c for c in contacts if is_contact_person(c)]
    customers = [c for c in contacts if is_person_customer(c)]
    neither = [c for c in contacts if not is_contact_person(c) and not is_person_customer(c)]
    assert persons and customers and neither  # the data set exercises both filters and their negation

    assert ok(product.run("accounts")).counts["written"] == 200
    first_persons = ok(product.run("contacts"))
    first_customers = ok(product.run("contacts-to-customers"))
    assert first_persons.counts["written"] == len(persons) == first_persons.counts["created"]
    assert first_persons.counts.get("deferred", 0) == 0
    assert first_customers.counts["written"] == len(customers) == first_customers.counts["created"]
    assert_contact_persons(product, contacts)
    assert_person_customers(product, contacts)
    # the accounts' customers are untouched by contacts-to-customers
    organisations = [
        r for r in product.sandbox.finops.rows(CUSTOMERS, company=COMPANY) if r.get("PartyType") != "Person"
    ]
    assert len(organisations) == 200

    product.sandbox.log.reset()
    for template in ("contacts", "contacts-to-customers"):
        again = ok(product.run(template))
        assert again.counts.get("written", 0) == 0, (template, again.counts)
    assert product.sandbox.log.count(service="finops", kind="batch") == 0


def test_changed_contact_is_updated_in_both_targets(product: Product) -> None:
    contacts = seed(product, 30)
    for template in ("accounts", "contacts", "contacts-to-customers"):
        ok(product.run(template))
    person = next(c for c in contacts if is_contact_person(c))
    customer = next(c for c in contacts if is_person_customer(c))
    for row in (person, customer):
        product.sandbox.dataverse.update(
            "contacts", row["contactid"], {"telephone1": "+1 425 555 0142", "statecode": 1, "statuscode": 2}
        )
    updated_persons = ok(product.run("contacts"))
    updated_customers = ok(product.run("contacts-to-customers"))
    assert updated_persons.counts["written"] == 1 and updated_persons.counts["updated"] == 1
    assert updated_customers.counts["written"] == 1 and updated_customers.counts["updated"] == 1
    contacts = product.sandbox.dataverse.rows("contacts")
    assert_contact_persons(product, contacts)
    assert_person_customers(product, contacts)
    written = {r["ContactPersonPartyNumber"]: r for r in product.sandbox.finops.rows(CONTACT_PERSONS)}
    assert written[person["msdynce_contactnumber"]]["IsInactive"] == "Yes"


def test_contact_before_its_account_is_deferred_then_written(product: Product) -> None:
    contacts = seed(product, 12, seed_no=5)
    persons = [c for c in contacts if is_contact_person(c)]
    assert persons
    engine, clock = engine_with_clock(product)

    early = ok(run(engine, "contacts"))  # accounts have not run: every contact person waits
    assert early.counts.get("written", 0) == 0
    assert early.counts["deferred"] == len(persons)
    assert product.sandbox.finops.rows(CONTACT_PERSONS) == []
    deferred = {e.source_key: e for e in product.state.errors.list("contacts")}
    assert sorted(deferred) == sorted(c["msdynce_contactnumber"] for c in persons)
    for contact in persons:
        error = deferred[contact["msdynce_contactnumber"]]
        assert error.kind == "deferred"
        # the missing parent is named: the accounts template, matched by the account's Dataverse id
        assert error.missing_reference is not None
        assert "synced:accounts" in error.missing_reference
        assert contact["_parentcustomerid_value"] in error.missing_reference

    # a run before the retry is due and before the parent exists changes nothing
    assert ok(run(engine, "contacts")).counts.get("written", 0) == 0

    ok(run(engine, "accounts"))
    clock.offset = timedelta(minutes=5)  # the retry store's back-off has passed
    later = ok(run(engine, "contacts"))
    assert later.counts["written"] == len(persons) and later.counts["created"] == len(persons)
    assert later.counts.get("deferred", 0) == 0
    assert_contact_persons(product, contacts)
    assert product.state.errors.list("contacts", status="retrying") == []

    clock.offset = timedelta(minutes=30)
    assert ok(run(engine, "contacts")).counts.get("written", 0) == 0


def test_contact_becoming_an_active_customer_moves_templates(product: Product) -> None:
    """The contact leaves the contacts selection and enters contacts-to-customers.

    The F&O contact person written earlier stays (delete policy `ignore`, README.md): it is
    no longer updated, and the contact now also exists as a customer of party type Person.
    """
    contacts = seed(product, 30, seed_no=7)
    for template in ("accounts", "contacts", "contacts-to-customers"):
        ok(product.run(template))
    mover = next(c for c in contacts if is_contact_person(c))
    number = mover["msdynce_contactnumber"]
    product.sandbox.dataverse.update("contacts", mover["contactid"], {"msdynce_isactivecustomer": True})

    persons_run = ok(product.run("contacts"))
    assert persons_run.counts.get("written", 0) == 0
    customers_run = ok(product.run("contacts-to-customers"))
    assert customers_run.counts["written"] == 1 and customers_run.counts["created"] == 1

    contacts = product.sandbox.dataverse.rows("contacts")
    assert_person_customers(product, contacts)
    kept = [
        r for r in product.sandbox.finops.rows(CONTACT_PERSONS) if r["ContactPersonPartyNumber"] == number
    ]
    assert len(kept) == 1 and kept[0]["IsContactPersonExternallyMaintained"] == "Yes"
    assert ok(product.run("contacts-to-customers")).counts.get("written", 0) == 0


AWKWARD_NAMES = [
    # (contact number, first name, last name)
    ("CON-90001-QUOTE1", "Seán", "O'Brien & Sons"),
    ("CON-90002-HASH01", "Tom #1", "Jerry / Partner"),
    ("CON-90003-UNICD1", "Zoë", "Łukasiewicz 株式会社"),
    ("CON-90004-PCT001", "100%", "Real ? Question"),
]


def _awkward_rows(make: Callable[[str, str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    return [make(number, first, last) for number, first, last in AWKWARD_NAMES]


def test_awkward_values_are_written_exactly(product: Product) -> None:
    contacts = seed(product, 5, seed_no=3)
    account = product.sandbox.dataverse.rows("accounts")[0]
    currency = contacts[0]["_transactioncurrencyid_value"]

    def person(number: str, first: str, last: str) -> dict[str, Any]:
        return {
            "msdynce_contactnumber": number,
            "firstname": first,
            "lastname": last,
            "fullname": f"{first} {last}",
            "address1_city": "Montréal",
            "address1_country": "Canada",
            "msdynce_isactivecustomer": False,
            "msdynce_iscompanyanaccount": True,
            "_parentcustomerid_value": account["accountid"],
            "_parentcustomerid_value" + LOOKUP_TARGET: "account",
            "_transactioncurrencyid_value": currency,
            "donotemail": False,
            "statecode": 0,
            "statuscode": 1,
        }

    def customer(number: str, first: str, last: str) -> dict[str, Any]:
        return {
            **person(number.replace("CON-9", "CON-8"), first, last),
            "msdynce_isactivecustomer": True,
            "msdynce_iscompanyanaccount": False,
            "_parentcustomerid_value": None,
        }

    long_last = "Vandenberghe-Oppenheimer-Smythe"  # 31 characters; F&O names hold 25: cut
    rows = [
        *_awkward_rows(person),
        *_awkward_rows(customer),
        person("CON-90008-LONG01", "Maximilian", long_last),
        customer("CON-80008-LONG01", "Maximilian", long_last),
    ]
    for row in rows:
        product.sandbox.dataverse.insert("contacts", row)
    ok(product.run("accounts"))
    persons_run = ok(product.run("contacts"))
    customers_run = ok(product.run("contacts-to-customers"))
    all_contacts = product.sandbox.dataverse.rows("contacts")
    assert persons_run.counts["written"] == sum(1 for c in all_contacts if is_contact_person(c))
    assert customers_run.counts["written"] == sum(1 for c in all_contacts if is_person_customer(c))
    assert_contact_persons(product, all_contacts)
    assert_person_customers(product, all_contacts)

    persons = {r["ContactPersonPartyNumber"]: r for r in product.sandbox.finops.rows(CONTACT_PERSONS)}
    customers = {r["CustomerAccount"]: r for r in product.sandbox.finops.rows(CUSTOMERS, company=COMPANY)}
    for number, first, last in AWKWARD_NAMES:
        assert (persons[number]["FirstName"], persons[number]["LastName"]) == (first, last)
        assert persons[number]["AssociatedPartyNumber"] == account["accountnumber"]
        twin = customers[number.replace("CON-9", "CON-8")]
        assert (twin["PersonFirstName"], twin["PersonLastName"]) == (first, last)
        assert twin["AddressDescription"] == f"{first} {last}"
    assert persons["CON-90008-LONG01"]["LastName"] == long_last[:25]
    assert customers["CON-80008-LONG01"]["PersonLastName"] == long_last[:25]
    assert customers["CON-80008-LONG01"]["AddressDescription"] == f"Maximilian {long_last}"
    for template in ("contacts", "contacts-to-customers"):
        assert ok(product.run(template)).counts.get("written", 0) == 0


AWKWARD_ACCOUNT = "ACC/90005#KEY'"
AWKWARD_PERSON = "CON/90005#KEY'"
AWKWARD_CUSTOMER = "CON/80005#KEY'"


def seed_awkward_keys(product: Product) -> tuple[str, str]:
    """An account and two contacts whose natural keys hold ' / # (legal in Sales, 20 characters max)."""
    seed(product, 3, seed_no=9)
    account_id = product.sandbox.dataverse.insert(
        "accounts", {"accountnumber": AWKWARD_ACCOUNT, "name": "Slash Hash Quote Key"}
    )
    base = {
        "firstname": "Ana",
        "lastname": "D'Souza",
        "statecode": 0,  # Dataverse always sets state and status; the sandbox insert does not
        "statuscode": 1,
        "msdynce_isactivecustomer": False,
        "msdynce_iscompanyanaccount": True,
        "_parentcustomerid_value": account_id,
        "_parentcustomerid_value" + LOOKUP_TARGET: "account",
    }
    person = {**base, "msdynce_contactnumber": AWKWARD_PERSON}
    person_id = product.sandbox.dataverse.insert("contacts", person)
    customer_id = product.sandbox.dataverse.insert(
        "contacts",
        {
            **base,
            "msdynce_contactnumber": AWKWARD_CUSTOMER,
            "msdynce_isactivecustomer": True,
            "msdynce_iscompanyanaccount": False,
            "_parentcustomerid_value": None,
        },
    )
    for template in ("accounts", "contacts", "contacts-to-customers"):
        ok(product.run(template))
    return person_id, customer_id


def test_awkward_keys_are_created_exactly(product: Product) -> None:
    """Keys with ' / # reach F&O intact in the composite key of a create (POST body)."""
    seed_awkward_keys(product)
    contacts = product.sandbox.dataverse.rows("contacts")
    assert_contact_persons(product, contacts)
    assert_person_customers(product, contacts)
    persons = {r["ContactPersonPartyNumber"]: r for r in product.sandbox.finops.rows(CONTACT_PERSONS)}
    assert persons[AWKWARD_PERSON]["AssociatedPartyNumber"] == AWKWARD_ACCOUNT


def test_awkward_keys_are_updated_through_the_key_url(product: Product) -> None:
    """An update addresses the record by its key in the URL: ' / # must be encoded and decoded once."""
    person_id, customer_id = seed_awkward_keys(product)
    for row_id in (person_id, customer_id):
        product.sandbox.dataverse.update(
            "contacts", row_id, {"jobtitle": "Buyer", "telephone1": "+1 425 555 0100"}
        )
    assert ok(product.run("contacts")).counts["updated"] == 1
    assert ok(product.run("contacts-to-customers")).counts["updated"] == 1
    contacts = product.sandbox.dataverse.rows("contacts")
    assert_contact_persons(product, contacts)
    assert_person_customers(product, contacts)
    persons = {r["ContactPersonPartyNumber"]: r for r in product.sandbox.finops.rows(CONTACT_PERSONS)}
    assert persons[AWKWARD_PERSON]["EmploymentProfession"] == "Buyer"


def test_contact_moved_to_another_account_gets_a_second_contact_person(product: Product) -> None:
    """AssociatedPartyNumber is part of the CDSContactPersons key, so a new parent is a new F&O record.

    The update to the new key finds nothing (404) and the client creates it; the contact person under
    the old account stays (delete policy `ignore`; documented in README.md).
    """
    contacts = seed(product, 20, seed_no=13)
    for template in ("accounts", "contacts"):
        ok(product.run(template))
    accounts = product.sandbox.dataverse.rows("accounts")
    number_by_id = {a["accountid"]: a["accountnumber"] for a in accounts}
    mover = next(c for c in contacts if is_contact_person(c))
    old_parent = mover["_parentcustomerid_value"]
    new_parent = next(a["accountid"] for a in accounts if a["accountid"] != old_parent)
    product.sandbox.dataverse.update(
        "contacts",
        mover["contactid"],
        {"_parentcustomerid_value": new_parent, "_parentcustomerid_value" + LOOKUP_TARGET: "account"},
    )
    moved = ok(product.run("contacts"))
    assert moved.counts["written"] == 1
    rows = [
        r
        for r in product.sandbox.finops.rows(CONTACT_PERSONS, company=COMPANY)
        if r["ContactPersonPartyNumber"] == mover["msdynce_contactnumber"]
    ]
    assert sorted(r["AssociatedPartyNumber"] for r in rows) == sorted(
        [number_by_id[old_parent], number_by_id[new_parent]]
    )
    assert ok(product.run("contacts")).counts.get("written", 0) == 0
