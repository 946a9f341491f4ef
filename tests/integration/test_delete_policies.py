"""Delete and deselect policies, per task: ignore and record (default), deactivate, or delete.

The policy is a line in the mapping file, so these tests run the accounts template from a copy of
`mappings/accounts.yaml` with the policy changed — the way an integrator would configure it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.datagen import generate
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
COMPANY = "usmf"


def _with_policy(product: Product, tmp_path: Path, lines: str) -> Product:
    text = (ROOT / "mappings" / "accounts.yaml").read_text()
    assert "    delete_policy: ignore\n" in text
    (tmp_path / "accounts.yaml").write_text(text.replace("    delete_policy: ignore\n", lines))
    return product.with_settings(P2C_MAPPINGS_DIR=str(tmp_path))


def _customers(product: Product) -> dict[str, dict[str, object]]:
    return {r["CustomerAccount"]: r for r in product.sandbox.finops.rows("CustomersV2", company=COMPANY)}


def test_delete_policy_delete_removes_the_customer(product: Product, tmp_path: Path) -> None:
    product.sandbox.load(generate(size=15, seed=8))
    configured = _with_policy(product, tmp_path, "    delete_policy: delete\n")
    assert configured.run().status == "succeeded"
    victim = product.sandbox.dataverse.rows("accounts")[2]
    product.sandbox.dataverse.delete("accounts", victim["accountid"])

    outcome = configured.run()
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["deleted"] == 1 and outcome.counts["retired"] == 1
    customers = _customers(product)
    assert victim["accountnumber"] not in customers and len(customers) == 14
    entry = configured.state.crosswalk.get("accounts>CustomersV2", COMPANY, victim["accountnumber"])
    assert entry is not None and entry.deleted
    report = configured.state.reports.read("accounts", outcome.run_id)
    assert [line["outcome"] for line in report] == ["target_deleted"]
    # replaying the same delete (e.g. after a crash) is harmless
    assert configured.run().counts.get("retired", 0) == 0


def test_delete_policy_deactivate_puts_the_customer_on_hold(product: Product, tmp_path: Path) -> None:
    product.sandbox.load(generate(size=10, seed=9))
    configured = _with_policy(
        product, tmp_path, "    delete_policy: deactivate\n    deactivate: {OnHoldStatus: All}\n"
    )
    assert configured.run().status == "succeeded"
    victim = product.sandbox.dataverse.rows("accounts")[0]
    product.sandbox.dataverse.delete("accounts", victim["accountid"])
    outcome = configured.run()
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["retired"] == 1
    customers = _customers(product)
    assert customers[victim["accountnumber"]]["OnHoldStatus"] == "All"
    assert sum(1 for c in customers.values() if c.get("OnHoldStatus") == "All") == 1


def test_deselect_policy_acts_when_a_record_leaves_the_selection(product: Product, tmp_path: Path) -> None:
    """An account that stops matching the filter (here: deactivated in Sales) is put on hold in F&O."""
    product.sandbox.load(generate(size=10, seed=10))
    configured = _with_policy(
        product,
        tmp_path,
        "    delete_policy: ignore\n"
        "    deselect_policy: deactivate\n"
        "    deactivate: {OnHoldStatus: All}\n",
    )
    text = (tmp_path / "accounts.yaml").read_text()
    text = text.replace(
        "      key: accountnumber\n",
        "      key: accountnumber\n      filter: [{field: statecode, op: eq, value: 0}]\n",
        1,
    )
    (tmp_path / "accounts.yaml").write_text(text)
    assert configured.run().counts["written"] == 10
    leaving = product.sandbox.dataverse.rows("accounts")[4]
    product.sandbox.dataverse.update("accounts", leaving["accountid"], {"statecode": 1, "statuscode": 2})
    outcome = configured.run()
    assert outcome.status == "succeeded", outcome.message
    assert outcome.counts["retired"] == 1 and outcome.counts.get("written", 0) == 0
    assert _customers(product)[leaving["accountnumber"]]["OnHoldStatus"] == "All"


def test_deactivate_without_payload_is_refused_at_load_time(product: Product, tmp_path: Path) -> None:
    product.sandbox.load(generate(size=3, seed=11))
    configured = _with_policy(product, tmp_path, "    delete_policy: deactivate\n")
    outcome = configured.run()
    assert outcome.status == "failed"
    assert "deactivate" in outcome.message and "payload" in outcome.message
