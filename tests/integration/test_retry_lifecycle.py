"""The retry store seen through real runs: growing back-off, parking after N attempts, replay, resolution.

The engine's clock is driven by the test, so "a later run" is minutes or hours later without
waiting; the store, the sandbox and the engine are the production ones.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sandbox.datagen import generate
from shared.engine import SyncEngine
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

BAD = "ACC-77001-RETRY1"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def test_backoff_park_replay_resolve(product: Product) -> None:
    product.sandbox.load(generate(size=5, seed=12))
    currency = product.sandbox.dataverse.rows("accounts")[0]["_transactioncurrencyid_value"]
    bad_id = product.sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": BAD,
            "name": "Retry Me Ltd",
            "address1_stateorprovince": "Schleswig-Holstein",  # F&O state ids are 10 characters at most
            "_transactioncurrencyid_value": currency,
        },
    )
    configured = product.with_settings(P2C_PARK_AFTER_ATTEMPTS="3")
    clock = Clock()
    engine = SyncEngine(configured.settings, configured.state, clock=clock)

    first = engine.run("accounts", trigger="cli")
    assert first.status == "partial" and first.counts["failed"] == 1
    [rec] = configured.state.errors.list("accounts")
    assert rec.attempts == 1 and rec.status == "retrying" and rec.field == "AddressState"
    first_gap = rec.next_due - clock.now if rec.next_due else None

    # not due yet: a run a few seconds later leaves it alone
    clock.advance(timedelta(seconds=5))
    assert engine.run("accounts", trigger="cli").counts.get("retried", 0) == 0

    # due: retried by the next run, fails again, waits longer
    clock.advance(timedelta(hours=1))
    second = engine.run("accounts", trigger="cli")
    assert second.counts["retried"] == 1 and second.counts["failed"] == 1
    [rec] = configured.state.errors.list("accounts")
    assert rec.attempts == 2 and rec.status == "retrying"
    assert first_gap is not None and rec.next_due is not None
    assert rec.next_due - clock.now > first_gap  # growing back-off

    # third failure: parked (P2C_PARK_AFTER_ATTEMPTS=3), counted for the alerts, no more retries
    clock.advance(timedelta(hours=2))
    third = engine.run("accounts", trigger="cli")
    assert third.counts["parked"] == 1
    assert configured.state.errors.counts("accounts")["parked"] == 1
    clock.advance(timedelta(days=2))
    assert engine.run("accounts", trigger="cli").counts.get("retried", 0) == 0

    # the operator fixes the record in Sales and replays it: it is written and resolved
    product.sandbox.dataverse.update("accounts", bad_id, {"address1_stateorprovince": "SH"})
    assert configured.state.errors.requeue("accounts", keys=[BAD]) == 1
    replayed = engine.run("accounts", trigger="cli")
    assert replayed.status == "succeeded", replayed.message
    assert replayed.counts["resolved"] == 1 and replayed.counts["written"] == 1
    assert configured.state.errors.counts("accounts").get("parked", 0) == 0
    customers = {r["CustomerAccount"]: r for r in product.sandbox.finops.rows("CustomersV2", company="usmf")}
    assert customers[BAD]["AddressState"] == "SH"


def test_a_later_success_resolves_the_error_without_replay(product: Product) -> None:
    product.sandbox.load(generate(size=3, seed=13))
    currency = product.sandbox.dataverse.rows("accounts")[0]["_transactioncurrencyid_value"]
    bad_id = product.sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": BAD,
            "name": "Fix Me",
            "address1_postalcode": "1234567890-123",
            "_transactioncurrencyid_value": currency,
        },
    )
    assert product.run().counts["failed"] == 1
    product.sandbox.dataverse.update("accounts", bad_id, {"address1_postalcode": "12345"})
    fixed = product.run()  # the change itself arrives through change tracking
    assert fixed.status == "succeeded" and fixed.counts["resolved"] == 1
    assert product.state.errors.counts("accounts").get("retrying", 0) == 0
