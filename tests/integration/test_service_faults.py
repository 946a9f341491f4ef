"""Bad input at service level (issue 5 §4): the services misbehave, the run stays correct.

Expired delta tokens, HTML error pages, invalid JSON, looping next links, mismatched `$batch`
answers, a 401 after a token expiry mid-run (with and without a working token endpoint) and a lost
run lock. Each test ends by checking the F&O customers: none lost, none duplicated.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.datagen import generate
from tests.chaos.helpers import COMPANY, customer_rows, duplicates
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration

SMALL_PAGES = {
    "P2C_DATAVERSE_PAGE_SIZE": "20",
    "P2C_FINOPS_BATCH_SIZE": "10",
    "P2C_HTTP_TIMEOUT_SECONDS": "2",
}


def _seed(product: Product, size: int, seed_no: int = 53) -> set[str]:
    product.sandbox.load(generate(size=size, seed=seed_no))
    return {a["accountnumber"] for a in product.sandbox.dataverse.rows("accounts")}


def _assert_exactly(product: Product, accounts: set[str]) -> None:
    rows = customer_rows(product.sandbox, COMPANY)
    assert duplicates(rows) == []
    assert {r["CustomerAccount"] for r in rows} == accounts


def _retries(outcome: Any) -> int:
    return sum(int(m.get("retries", 0)) for m in outcome.requests.values())


class _When:
    """Runs `action` once, from another thread, as soon as `condition()` holds (polled)."""

    def __init__(self, condition: Callable[[], bool], action: Callable[[], None]) -> None:
        self.fired = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(condition, action), daemon=True)

    def _loop(self, condition: Callable[[], bool], action: Callable[[], None]) -> None:
        while not self._stop.is_set():
            if condition():
                action()
                self.fired.set()
                return
            time.sleep(0.002)

    def __enter__(self) -> _When:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _after_batches(product: Product, n: int) -> Callable[[], bool]:
    return lambda: product.sandbox.log.count(service="finops", kind="batch") >= n


@pytest.fixture
def slow_finops(product: Product) -> Iterator[None]:
    """F&O answers take 20 ms, so a watcher thread can act between two `$batch` writes."""
    product.sandbox.latency.configure("finops", fixed_ms=20, per_record_ms=0.0)
    yield
    product.sandbox.latency.clear()


def test_expired_delta_token_full_reread_without_duplicate_writes(product: Product) -> None:
    accounts = _seed(product, 60)
    sized = product.with_settings(**SMALL_PAGES)
    assert sized.run().status == "succeeded"
    rows = product.sandbox.dataverse.rows("accounts")
    for row in rows[:3]:
        product.sandbox.dataverse.update("accounts", row["accountid"], {"telephone1": "+1 206 555 0100"})
    product.sandbox.dataverse.expire_change_tokens()
    product.sandbox.log.reset()
    outcome = sized.run()
    assert outcome.status == "succeeded", outcome.message
    assert any(t["restarted"] for t in outcome.tasks), outcome.tasks
    # the full re-read compares by hash: only the three changed accounts are written
    assert outcome.counts["written"] == 3 and outcome.counts.get("created", 0) == 0, outcome.counts
    assert outcome.counts.get("unchanged", 0) == 57
    _assert_exactly(product, accounts)
    assert sized.run().counts.get("written", 0) == 0


@pytest.mark.parametrize(
    "steps",
    [
        [("dataverse", "read", "html"), ("dataverse", "read", "nonjson")],
        [("finops", "batch", "html"), ("finops", "batch", "nonjson"), ("finops", "batch", "truncated")],
        [("dataverse", "read", "truncated"), ("finops", "batch", "truncated")] * 2,
    ],
    ids=["dataverse-html-nonjson", "finops-html-nonjson-truncated", "truncated-both"],
)
def test_html_and_invalid_json_bodies_are_retried(
    product: Product, steps: list[tuple[str, str, str]]
) -> None:
    accounts = _seed(product, 80)
    product.sandbox.faults.script(steps)
    outcome = product.with_settings(**SMALL_PAGES).run()
    assert product.sandbox.faults.pending() == [], "every scripted fault must have fired"
    assert outcome.status == "succeeded", outcome.message
    assert _retries(outcome) >= len(steps)
    _assert_exactly(product, accounts)


def test_looping_next_link_stops_the_run_cleanly(product: Product) -> None:
    _seed(product, 50)
    product.sandbox.faults.script([("dataverse", "read", "loop")])
    outcome = product.with_settings(**SMALL_PAGES).run()
    assert outcome.status == "failed" and "next" in outcome.message.lower(), outcome.message
    assert product.state.checkpoints.load("accounts", "main", COMPANY).cursor is None


def test_batch_response_with_mismatched_parts(product: Product) -> None:
    accounts = _seed(product, 40)
    product.sandbox.faults.script([("finops", "batch", "batch_mismatch")])
    outcome = product.with_settings(**SMALL_PAGES).run()
    assert outcome.status in ("succeeded", "partial"), outcome.message
    _assert_exactly(product, accounts)


def test_401_after_token_expiry_mid_run_refreshes_and_continues(product: Product, slow_finops: None) -> None:
    accounts = _seed(product, 200)
    with _When(_after_batches(product, 3), product.sandbox.entra.expire_all_tokens) as when:
        outcome = product.with_settings(**SMALL_PAGES).run()
    assert when.fired.is_set(), "the run ended before the tokens could be expired"
    assert outcome.status == "succeeded", outcome.message
    assert product.sandbox.log.count(service="finops", status=401) >= 1
    _assert_exactly(product, accounts)


def test_token_endpoint_down_after_expiry_fails_the_run_cleanly(product: Product, slow_finops: None) -> None:
    accounts = _seed(product, 200)
    entra = product.sandbox.entra
    good_secret = entra.client_secret

    def rotate() -> None:
        entra.client_secret = "rotated-" + good_secret[::-1]  # the app's secret no longer works
        entra.expire_all_tokens()

    try:
        with _When(_after_batches(product, 3), rotate) as when:
            outcome = product.with_settings(**SMALL_PAGES).run()
    finally:
        entra.client_secret = good_secret
    assert when.fired.is_set(), "the run ended before the secret could be rotated"
    assert outcome.status == "failed", outcome.message
    assert "auth" in outcome.message.lower() or "token" in outcome.message.lower(), outcome.message
    assert product.state.checkpoints.load("accounts", "main", COMPANY).cursor is None
    assert product.state.runs.latest("accounts").status == "failed"
    written = customer_rows(product.sandbox, COMPANY)
    assert duplicates(written) == [] and len(written) < len(accounts)
    # with the secret back, the next run converges
    again = product.with_settings(**SMALL_PAGES).run()
    assert again.status == "succeeded", again.message
    _assert_exactly(product, accounts)


def test_lost_lease_stops_writing_and_fails_the_run(product: Product, slow_finops: None) -> None:
    accounts = _seed(product, 400)
    batches_at_break: list[int] = []

    def steal() -> None:
        batches_at_break.append(product.sandbox.log.count(service="finops", kind="batch"))
        product.state.lock("accounts").break_lease()

    with _When(_after_batches(product, 3), steal) as when:
        outcome = product.with_settings(**SMALL_PAGES, P2C_MAX_CONCURRENCY="1").run()
    assert when.fired.is_set()
    batches_after = product.sandbox.log.count(service="finops", kind="batch") - batches_at_break[0]
    assert outcome.status == "failed", (outcome.status, outcome.message)
    assert "lock" in outcome.message.lower()
    assert batches_after <= 2, f"{batches_after} batches written after the lease was lost"
    assert product.state.checkpoints.load("accounts", "main", COMPANY).cursor is None
    assert len(customer_rows(product.sandbox, COMPANY)) < len(accounts)
