"""Accounts (Sales → F&O) end to end: production engine and clients, sandbox over HTTPS, Azurite.

The golden expectation below is written from `reference/templates.md` §1 by hand, not derived from
`mappings/accounts.yaml`, so a wrong mapping fails here.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from sandbox.datagen import generate
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

COMPANY = "usmf"

# F&O's AddressCountryRegionISOCode holds ISO 3166 alpha-2 codes; a blank primary country is the
# template's default United States (templates.md §1 row 8), a blank delivery country stays blank.
COUNTRY_ISO = {
    None: "US",
    "United States": "US",
    "Canada": "CA",
    "United Kingdom": "GB",
    "Germany": "DE",
    "France": "FR",
}


def expected_customer(account: dict[str, Any], currency_by_id: dict[str, str]) -> dict[str, Any]:
    """What templates.md §1 prescribes for one account (all 30 rows)."""
    has_delivery = any(
        account.get(c) for c in ("address2_line1", "address2_city", "address2_postalcode", "address2_country")
    )
    expected: dict[str, Any] = {
        "dataAreaId": COMPANY,
        "CustomerAccount": account["accountnumber"],
        "PartyNumber": account["accountnumber"],
        "CreditLimit": account.get("creditlimit"),
        "CustomerGroupId": "10",
        "PrimaryContactFax": account.get("fax"),
        "OrganizationNumberOfEmployees": account.get("numberofemployees"),
        "SalesCurrencyCode": currency_by_id.get(account.get("_transactioncurrencyid_value") or "", "USD"),
        "AddressCity": account.get("address1_city"),
        "AddressCountryRegionISOCode": COUNTRY_ISO[account.get("address1_country")],
        "SalesMemo": account.get("description"),
        "PrimaryContactEmail": account.get("emailaddress1"),
        "AddressStreet": account.get("address1_line1"),
        "PartyType": "Organization",
        "PrimaryContactPhone": account.get("telephone1"),
        "AddressZipCode": account.get("address1_postalcode"),
        "AddressState": account.get("address1_stateorprovince"),
        "PrimaryContactURL": account.get("websiteurl"),
        "OrganizationName": account["name"],
        "SiteId": "1",
        "WarehouseId": "13",
        "LanguageId": "en-us",
        "AddressDescription": account["name"],
        "IsExternallyMaintained": "Yes",
        "AddressLocationRoles": "Business",
    }
    if has_delivery:
        expected.update(
            {
                "DeliveryAddressStreet": account.get("address2_line1"),
                "DeliveryAddressCity": account.get("address2_city"),
                "DeliveryAddressCountryRegionISOCode": (
                    COUNTRY_ISO[account["address2_country"]] if account.get("address2_country") else None
                ),
                "DeliveryAddressZipCode": account.get("address2_postalcode"),
                "DeliveryAddressState": account.get("address2_stateorprovince"),
                "DeliveryAddressDescription": account["name"],
            }
        )
    return expected


def _same(actual: Any, wanted: Any) -> bool:
    if wanted is None:
        return actual in (None, "", 0)
    if isinstance(wanted, float | int) and not isinstance(wanted, bool):
        return actual is not None and float(actual) == float(wanted)
    return bool(actual == wanted)


def customer_mismatches(
    accounts: list[dict[str, Any]], customers: dict[str, dict[str, Any]], currency_by_id: dict[str, str]
) -> list[str]:
    """Every account without its customer, and every customer field that is not what the template
    writes for its account."""
    mismatches: list[str] = []
    for account in accounts:
        customer = customers.get(account["accountnumber"])
        if customer is None:
            mismatches.append(f"{account['accountnumber']}: no customer")
            continue
        for name, wanted in expected_customer(account, currency_by_id).items():
            if not _same(customer.get(name), wanted):
                mismatches.append(f"{account['accountnumber']}.{name}: {customer.get(name)!r} != {wanted!r}")
    return mismatches


def assert_golden(product: Product, accounts: list[dict[str, Any]]) -> None:
    sb = product.sandbox
    currency_by_id = {
        r["transactioncurrencyid"]: r["isocurrencycode"] for r in sb.dataverse.rows("transactioncurrencies")
    }
    customers = {r["CustomerAccount"]: r for r in sb.finops.rows("CustomersV2", company=COMPANY)}
    assert len(customers) == len(accounts)
    mismatches = customer_mismatches(accounts, customers, currency_by_id)
    assert not mismatches, "\n".join(mismatches[:30])


def seed(product: Product, size: int, seed_no: int = 11) -> list[dict[str, Any]]:
    product.sandbox.load(generate(size=size, seed=seed_no))
    return product.sandbox.dataverse.rows("accounts")


def test_initial_load_then_idle_then_ten_changes(product: Product) -> None:
    accounts = seed(product, 1000)
    first = product.run()
    assert first.status == "succeeded", first.message
    assert first.counts["written"] == 1000 and first.counts["created"] == 1000
    assert_golden(product, accounts)

    product.sandbox.log.reset()
    second = product.run()
    assert second.status == "succeeded", second.message
    assert second.counts.get("written", 0) == 0
    assert product.sandbox.log.count(service="finops", kind="batch") == 0
    assert product.sandbox.log.count(service="dataverse") == 1  # one delta read, nothing else

    changed = sorted(accounts, key=lambda r: r["accountnumber"])[100:110]
    for row in changed:
        product.sandbox.dataverse.update("accounts", row["accountid"], {"telephone1": "+1 425 555 0142"})
    third = product.run()
    assert third.status == "succeeded", third.message
    assert (
        third.counts["written"] == 10
        and third.counts["updated"] == 10
        and third.counts.get("created", 0) == 0
    )
    assert_golden(product, product.sandbox.dataverse.rows("accounts"))


def test_deleted_account_keeps_customer_and_is_reported(product: Product) -> None:
    """Delete policy `ignore` (mappings/README.md): F&O customers carry transactions and are not deleted."""
    accounts = seed(product, 20)
    assert product.run().status == "succeeded"
    victim = accounts[3]
    product.sandbox.dataverse.delete("accounts", victim["accountid"])
    outcome = product.run()
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts.get("deleted") == 1 and outcome.counts.get("written", 0) == 0
    customers = {r["CustomerAccount"] for r in product.sandbox.finops.rows("CustomersV2", company=COMPANY)}
    assert victim["accountnumber"] in customers
    report = product.state.reports.read("accounts", outcome.run_id)
    assert any(line["outcome"] == "source_deleted" for line in report)


AWKWARD = [
    ("ACC-90001-QUOTE1", "O'Brien & Sons"),
    ("ACC-90002-HASH01", "Tom #1 / Jerry's Ltd"),
    ("ACC-90003-UNICD1", "Société Générale Ünïcödé 株式会社"),
    ("ACC-90004-PCT001", "100% Real ? Question"),
    ("ACC/90005#KEY'", "Slash Hash Quote Key"),
]


def test_awkward_names_and_keys_are_written_exactly(product: Product) -> None:
    accounts = seed(product, 5)
    currency = accounts[0]["_transactioncurrencyid_value"]
    for number, name in AWKWARD:
        product.sandbox.dataverse.insert(
            "accounts", {"accountnumber": number, "name": name, "_transactioncurrencyid_value": currency}
        )
    # a name longer than F&O's 100 characters is cut (mappings/README.md: a shortened name beats no
    # customer); a state id longer than F&O's 10 characters cannot be cut safely and fails the record
    too_long = "Long Name " * 15
    product.sandbox.dataverse.insert(
        "accounts",
        {"accountnumber": "ACC-90008-LONG01", "name": too_long, "_transactioncurrencyid_value": currency},
    )
    product.sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": "ACC-90009-STATE1",
            "name": "Bad State Ltd",
            "address1_stateorprovince": "Nordrhein-Westfalen",
            "_transactioncurrencyid_value": currency,
        },
    )
    outcome = product.run()
    assert outcome.status == "partial", outcome.message
    assert outcome.counts["written"] == 5 + len(AWKWARD) + 1
    assert outcome.counts["failed"] == 1
    customers = {r["CustomerAccount"]: r for r in product.sandbox.finops.rows("CustomersV2", company=COMPANY)}
    for number, name in AWKWARD:
        assert customers[number]["OrganizationName"] == name
        assert customers[number]["AddressDescription"] == name
    assert customers["ACC-90008-LONG01"]["OrganizationName"] == too_long.strip()[:100]
    assert "ACC-90009-STATE1" not in customers
    [error] = product.state.errors.list("accounts", status="retrying")
    assert error.source_key == "ACC-90009-STATE1"
    assert error.field == "AddressState" and "10" in error.message
    assert "Nordrhein-Westfalen" in error.payload_excerpt
    # nothing is written twice: a run after the failure writes nothing new and keeps the error open
    again = product.run()
    assert again.counts.get("written", 0) == 0
    assert product.state.errors.counts("accounts")["retrying"] == 1


def test_second_concurrent_run_is_skipped(product: Product) -> None:
    seed(product, 50)
    holder = product.state.lock("accounts")
    assert holder.acquire()
    try:
        outcome = product.run()
    finally:
        holder.release()
    assert outcome.status == "skipped"
    assert "lock" in outcome.message and outcome.counts == {}
    assert product.sandbox.finops.rows("CustomersV2", company=COMPANY) == []
    assert product.state.runs.latest("accounts").status == "skipped"


def test_two_runs_started_together_one_runs_one_skips(product: Product) -> None:
    seed(product, 300)
    product.sandbox.latency.configure("finops", fixed_ms=20, per_record_ms=0.0)
    outcomes: list[Any] = []
    barrier = threading.Barrier(2)

    def go() -> None:
        barrier.wait()
        outcomes.append(product.run(trigger="timer"))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    statuses = sorted(o.status for o in outcomes)
    assert statuses == ["skipped", "succeeded"], [(o.status, o.message) for o in outcomes]
    assert len(product.sandbox.finops.rows("CustomersV2", company=COMPANY)) == 300


def test_429_storm_slows_the_run_but_loses_nothing(product: Product) -> None:
    accounts = seed(product, 400)
    fast = product.with_settings(P2C_FINOPS_BATCH_SIZE="20", P2C_MAX_RETRIES="12")
    product.sandbox.faults.configure(probability=0.3, kinds=["429"], seed=5)
    outcome = fast.run()
    product.sandbox.faults.clear()
    assert outcome.status == "succeeded", outcome.message
    throttled = sum(int(m.get("throttled", 0)) for m in outcome.requests.values())
    assert throttled > 0
    assert_golden(product, accounts)
    assert fast.run().counts.get("written", 0) == 0
