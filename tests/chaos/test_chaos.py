"""Chaos suite (issue 5 §1): the accounts template synced while the sandbox fails requests.

Every fault kind the guard can inject is in play — 429 with Retry-After, 500, 503, connection
resets, responses that hang past the client timeout, truncated bodies, HTML and non-JSON bodies —
on both Dataverse reads and F&O `$batch` writes. A "truncated" fault is the nastiest one: the
write *was* applied and only the answer is lost, so the retry must be idempotent.

Guarantee under test: the F&O customers after the chaos runs equal, field by field, those of a
fault-free run of the same data (run first into the same sandbox with its own state, then rolled
back with `finops.snapshot/restore`), with zero duplicates and zero lost records.

Convergence rule (documented in docs/reliability.md): with at most 10 % of requests failing, a
chaos run may end "partial" (records whose retries ran out wait in the retry store), but at most
3 runs — faults still on, each run a timer interval after the previous one — reach "succeeded"
with the target equal to the reference, and a further fault-free run writes nothing.

Size: `P2C_CHAOS_SIZE` (default 300 accounts, ~30 s on 2 cores); e.g. `P2C_CHAOS_SIZE=5000`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.datagen import generate
from shared.engine import RunOutcome, SyncEngine
from shared.state import StateStore
from tests.chaos.helpers import RunTally, customer_rows, diff_rows, duplicates, faults_injected
from tests.fixtures.product import Product

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SIZE = int(os.environ.get("P2C_CHAOS_SIZE", "300"))
MAX_RUNS = 3
#: Small pages and batches so a few hundred records still make a few dozen requests to fault.
CHAOS_SETTINGS = {
    "P2C_HTTP_TIMEOUT_SECONDS": "2",
    "P2C_DATAVERSE_PAGE_SIZE": "50",
    "P2C_FINOPS_BATCH_SIZE": "10",
    "P2C_MAX_RETRIES": "6",
}
#: Each later run happens one timer interval later, past the retry store's first backoffs.
RUN_INTERVAL = timedelta(minutes=15)
ALL_FAULTS = ["429", "500", "503", "reset", "hang", "truncated", "html", "nonjson"]


def _shifted_clock(offset: timedelta) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + offset


def _reference(product: Product, connection_string: str, prefix: str) -> list[dict[str, Any]]:
    """Customers a fault-free run produces; the F&O store is rolled back afterwards."""
    before = product.sandbox.finops.snapshot()
    state = StateStore.from_connection_string(connection_string, prefix=prefix)
    state.ensure()
    outcome = SyncEngine(product.settings, state).run("accounts", trigger="cli")
    assert outcome.status == "succeeded", outcome.message
    rows = customer_rows(product.sandbox)
    product.sandbox.finops.restore(before)
    assert customer_rows(product.sandbox) == []
    return rows


def _open_errors(product: Product) -> int:
    counts = product.state.errors.counts("accounts")
    return int(counts.get("retrying", 0)) + int(counts.get("parked", 0))


def _converge(product: Product, tally: RunTally) -> list[RunOutcome]:
    """Run up to MAX_RUNS times (faults as configured) until a run succeeds with no open error.

    Run n happens n timer intervals after the scenario's first run (`tally.runs` so far), so
    records in the retry store are due again, as they would be on a real timer.
    """
    outcomes: list[RunOutcome] = []
    for _ in range(MAX_RUNS):
        clock = _shifted_clock(RUN_INTERVAL * tally.runs)
        outcome = SyncEngine(product.settings, product.state, clock=clock).run("accounts", trigger="timer")
        tally.add(outcome)
        outcomes.append(outcome)
        assert outcome.status in ("succeeded", "partial"), outcome.message
        if outcome.status == "succeeded" and _open_errors(product) == 0:
            break
    return outcomes


@pytest.mark.parametrize(
    ("label", "probability", "kinds", "seed"),
    [
        ("all-kinds", 0.10, ALL_FAULTS, 7),
        ("bodies-and-resets", 0.08, ["truncated", "nonjson", "html", "reset"], 21),
    ],
)
def test_chaos_run_equals_fault_free_run(
    product: Product,
    azurite_connection_string: str,
    unique_name: str,
    label: str,
    probability: float,
    kinds: list[str],
    seed: int,
) -> None:
    product.sandbox.load(generate(size=SIZE, seed=17))
    chaos = product.with_settings(**CHAOS_SETTINGS)
    expected = _reference(chaos, azurite_connection_string, f"r{unique_name}")
    assert len(expected) == SIZE

    product.sandbox.log.reset()
    product.sandbox.faults.configure(probability=probability, kinds=kinds, seed=seed, hang_s=3)
    # random draws depend on thread timing: script one of each kind first so every kind surely fires
    product.sandbox.faults.script(
        [("finops" if i % 2 else "dataverse", "*", kind) for i, kind in enumerate(kinds)]
    )
    tally = RunTally()
    try:
        outcomes = _converge(chaos, tally)
    finally:
        product.sandbox.faults.clear()
    injected = faults_injected(product.sandbox)
    total_requests = len(product.sandbox.log.entries())
    print(tally.line(label, sum(injected.values()), SIZE), dict(injected))

    assert outcomes[-1].status == "succeeded", [(o.status, o.message) for o in outcomes]
    assert set(injected) == set(kinds), injected
    # the faults really were ≥ 5 % of the data-service requests
    assert sum(injected.values()) >= 0.05 * total_requests, (injected, total_requests)
    actual = customer_rows(product.sandbox)
    assert duplicates(actual) == []
    problems = diff_rows(actual, expected)
    assert not problems, "\n".join(problems[:30])
    # converged: a fault-free run afterwards has nothing left to write
    assert _open_errors(product) == 0
    after = SyncEngine(chaos.settings, chaos.state, clock=_shifted_clock(RUN_INTERVAL * tally.runs)).run(
        "accounts", trigger="timer"
    )
    assert after.status == "succeeded", after.message
    assert after.counts.get("written", 0) == 0


def test_partial_run_converges_with_faults_on(product: Product) -> None:
    """Retries set to 0 make every fault a record failure: runs end "partial", later runs converge."""
    product.sandbox.load(generate(size=min(SIZE, 200), seed=29))
    accounts = {a["accountnumber"] for a in product.sandbox.dataverse.rows("accounts")}
    harsh = product.with_settings(**{**CHAOS_SETTINGS, "P2C_MAX_RETRIES": "0"})
    product.sandbox.faults.configure(
        probability=0.10, kinds=["500", "503", "429"], seed=3, services=["finops"], retry_after_s=1
    )
    tally = RunTally()
    try:
        first = harsh.run()
        tally.add(first)
        assert first.status in ("partial", "failed"), "10 % faults without retries leave something behind"
        # convergence under continuing faults, with the normal retry budget
        outcomes = _converge(product.with_settings(**CHAOS_SETTINGS), tally)
    finally:
        product.sandbox.faults.clear()
    print(tally.line("partial-then-converge", sum(faults_injected(product.sandbox).values()), len(accounts)))
    assert outcomes[-1].status == "succeeded", [(o.status, o.message) for o in outcomes]
    assert _open_errors(product) == 0
    rows = customer_rows(product.sandbox)
    assert duplicates(rows) == []
    assert {r["CustomerAccount"] for r in rows} == accounts
