"""Bad input at record level (issue 5 §3): one bad account fails alone, with a clear stored reason.

Each case inserts a few good accounts and one bad one straight into the Dataverse stand-in (as a
user, a plug-in or a data import could), runs the accounts template once and checks that

* the good accounts are all written (the run ends "partial", not "failed"),
* the bad account is not written, and an error is stored for it in the retry store with its
  source key, the F&O field at fault, a reason naming the problem, and a payload excerpt that
  shows the offending value,
* nothing is written twice on the next run.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from sandbox.datagen import generate
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

COMPANY = "usmf"
GOOD = 6
BAD_KEY = "ACC-99001-BADIN1"
MISSING_CURRENCY = "3f0d7a3e-0000-4000-8000-00000000dead"


@dataclass(frozen=True)
class Case:
    """One bad record: columns to set on a new account and what its stored error must say."""

    name: str
    columns: dict[str, Any]
    field: str | None
    reason: tuple[str, ...]  # every word must appear (case-insensitive) in the error message
    excerpt: str  # must appear in the payload excerpt


CASES = [
    Case("zip-too-long", {"address1_postalcode": "98052-6399-0001-X"}, "AddressZipCode", ("10",),
         "98052-6399-0001-X"),
    Case("state-too-long", {"address1_stateorprovince": "Rheinland-Pfalz"}, "AddressState", ("10",),
         "Rheinland-Pfalz"),
    pytest.param(
        Case("unknown-country", {"address1_country": "Atlantis"}, "AddressCountryRegionISOCode",
             ("ATLANTIS",), "Atlantis"),
        id="unknown-country",
    ),
    Case("malformed-decimal", {"creditlimit": "12,5O0.00"}, "CreditLimit", ("decimal",), "12,5O0.00"),
    Case("malformed-integer", {"numberofemployees": "lots"}, "OrganizationNumberOfEmployees", ("lots",),
         "lots"),
    pytest.param(
        Case("missing-name", {"name": None}, "OrganizationName", ("OrganizationName",), BAD_KEY),
        id="missing-name",
    ),
    pytest.param(
        Case("broken-currency-lookup", {"_transactioncurrencyid_value": MISSING_CURRENCY},
             "SalesCurrencyCode", ("transactioncurrency",), MISSING_CURRENCY),
        id="broken-currency-lookup",
    ),
]


def _seed(product: Product) -> tuple[list[dict[str, Any]], str]:
    product.sandbox.load(generate(size=GOOD, seed=41))
    accounts = product.sandbox.dataverse.rows("accounts")
    return accounts, accounts[0]["_transactioncurrencyid_value"]


def _customers(product: Product) -> dict[str, dict[str, Any]]:
    return {r["CustomerAccount"]: r for r in product.sandbox.finops.rows("CustomersV2", company=COMPANY)}


@pytest.mark.parametrize("case", CASES, ids=[c.name if isinstance(c, Case) else c.id for c in CASES])
def test_bad_record_fails_alone_with_a_clear_error(product: Product, case: Case) -> None:
    accounts, currency = _seed(product)
    row = {"accountnumber": BAD_KEY, "name": "Bad Input Ltd", "_transactioncurrencyid_value": currency}
    row.update(case.columns)
    product.sandbox.dataverse.insert("accounts", row)

    outcome = product.run()
    assert outcome.status == "partial", (outcome.status, outcome.message)
    assert outcome.counts["written"] == GOOD and outcome.counts["failed"] == 1, outcome.counts
    customers = _customers(product)
    assert sorted(customers) == sorted(a["accountnumber"] for a in accounts)
    [error] = product.state.errors.list("accounts", status="retrying")
    assert error.source_key == BAD_KEY
    assert error.field == case.field, (error.field, error.message)
    for word in case.reason:
        assert word.lower() in error.message.lower(), error.message
    assert case.excerpt in error.payload_excerpt, error.payload_excerpt
    report = product.state.reports.read("accounts", outcome.run_id)
    assert [line["outcome"] for line in report if line.get("key") == BAD_KEY] == ["failed"], report

    again = product.run()
    assert again.counts.get("written", 0) == 0
    assert len(_customers(product)) == GOOD


def test_duplicate_natural_key_in_source_writes_the_first_and_reports_the_second(product: Product) -> None:
    """Two Sales accounts with one accountnumber (the alternate key was bypassed, e.g. by an import)."""
    _, currency = _seed(product)
    dv = product.sandbox.dataverse
    first = dv.insert("accounts", {"accountnumber": BAD_KEY, "name": "Original Ltd",
                                   "_transactioncurrencyid_value": currency})
    second = dv.insert("accounts", {"accountnumber": "ACC-TMP", "name": "Impostor Ltd",
                                    "_transactioncurrencyid_value": currency})
    # rename behind the store's alternate-key index, as a broken import would leave it
    table = product.sandbox.dataverse.table("accounts")
    with product.sandbox.dataverse.lock:
        table.rows[second]["accountnumber"] = BAD_KEY

    outcome = product.run()
    assert outcome.status == "partial", outcome.message
    assert outcome.counts["written"] == GOOD + 1 and outcome.counts["failed"] == 1, outcome.counts
    customers = _customers(product)
    assert len(customers) == GOOD + 1
    survivor = customers[BAD_KEY]["OrganizationName"]
    errors = product.state.errors.list("accounts")
    assert [(e.source_key, e.status) for e in errors] == [(BAD_KEY, "retrying")], errors
    [error] = errors
    assert error.source_key == BAD_KEY and error.error_class == "DuplicateSourceKey"
    assert first in error.message and second in error.message
    loser = "Impostor Ltd" if survivor == "Original Ltd" else "Original Ltd"
    assert loser in error.payload_excerpt
    # the next run does not flip the customer to the other account
    product.run()
    assert _customers(product)[BAD_KEY]["OrganizationName"] == survivor


def test_source_schema_drift_new_columns_are_ignored(product: Product) -> None:
    """New Dataverse columns (a solution update) appear in rows: the run is unaffected."""
    accounts, _ = _seed(product)
    table = product.sandbox.dataverse.table("accounts")
    with product.sandbox.dataverse.lock:
        for row in table.rows.values():
            row["cr5a1_loyaltytier"] = "gold"
            row["cr5a1_segment"] = {"nested": [1, 2, 3]}
    outcome = product.run()
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["written"] == GOOD
    customers = _customers(product)
    assert sorted(customers) == sorted(a["accountnumber"] for a in accounts)
    assert not any("loyalty" in str(c).lower() for c in customers.values())


def test_unknown_fields_in_a_changed_row_do_not_fail_it(product: Product) -> None:
    """A drifted column added to one row after the first sync: the update still flows."""
    accounts, _ = _seed(product)
    assert product.run().status == "succeeded"
    victim = accounts[2]
    product.sandbox.dataverse.update("accounts", victim["accountid"], {"telephone1": "+1 425 555 0199"})
    table = product.sandbox.dataverse.table("accounts")
    with product.sandbox.dataverse.lock:
        table.rows[victim["accountid"]]["new_" + uuid.uuid4().hex[:8]] = "drift"
    outcome = product.run()
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["written"] == 1
    assert _customers(product)[victim["accountnumber"]]["PrimaryContactPhone"] == "+1 425 555 0199"
