"""One deployment, several F&O companies: Sales records go to the company of their business unit.

`P2C_COMPANIES=usmf=Contoso US,demf=Contoso DE` names each legal entity's Sales business unit; an
account owned by "Contoso DE" becomes a demf customer and never a usmf one, its contact persons
follow it, and each company keeps its own checkpoint and crosswalk.
"""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.datagen import generate
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

TWO = {"P2C_COMPANIES": "usmf=Contoso US,demf=Contoso DE", "P2C_DEFAULT_COMPANY": "usmf"}


def _unit(product: Product, name: str) -> str:
    [row] = product.sandbox.dataverse.find("businessunits", name=name)
    return str(row["businessunitid"])


def _customers(product: Product, company: str) -> set[str]:
    return {r["CustomerAccount"] for r in product.sandbox.finops.rows("CustomersV2", company=company)}


def test_accounts_go_to_the_company_of_their_business_unit(product: Product) -> None:
    product.sandbox.load(generate(size=40, seed=5))
    two = product.with_settings(**TWO)
    accounts = sorted(product.sandbox.dataverse.rows("accounts"), key=lambda r: r["accountnumber"])
    german = accounts[:10]
    de_unit = _unit(product, "Contoso DE")
    for row in german:
        product.sandbox.dataverse.update("accounts", row["accountid"], {"_owningbusinessunit_value": de_unit})

    outcome = two.run("accounts")
    assert outcome.status == "succeeded", outcome.message
    de = {r["accountnumber"] for r in german}
    assert _customers(product, "demf") == de
    assert _customers(product, "usmf") == {r["accountnumber"] for r in accounts} - de
    assert {t["company"] for t in outcome.tasks} == {"usmf", "demf"}
    for company in ("usmf", "demf"):
        assert two.state.checkpoints.load("accounts", "main", company).cursor is not None

    # contact persons follow their account's company (parents are looked up per company)
    contacts = two.run("contacts")
    assert contacts.status == "succeeded", contacts.message
    persons: dict[str, Any] = {
        company: product.sandbox.finops.rows("CDSContactPersons", company=company)
        for company in ("usmf", "demf")
    }
    assert all(p["AssociatedPartyNumber"] in _customers(product, "usmf") for p in persons["usmf"])
    assert all(p["AssociatedPartyNumber"] in de for p in persons["demf"])

    # idle: nothing more to write in either company
    assert two.run("accounts").counts.get("written", 0) == 0


def test_single_company_deployment_ignores_business_units(product: Product) -> None:
    product.sandbox.load(generate(size=10, seed=6))
    de_unit = _unit(product, "Contoso DE")
    first = product.sandbox.dataverse.rows("accounts")[0]
    product.sandbox.dataverse.update("accounts", first["accountid"], {"_owningbusinessunit_value": de_unit})
    outcome = product.run("accounts")  # P2C_COMPANIES=usmf=Contoso US only
    assert outcome.status == "succeeded", outcome.message
    assert len(_customers(product, "usmf")) == 10 and _customers(product, "demf") == set()
