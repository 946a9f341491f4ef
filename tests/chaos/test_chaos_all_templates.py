"""Chaos over every template (issue 5 §1): `run all` while ≥ 5 % of data-service requests fail.

All eight templates (products, accounts, contacts, contacts-to-customers, quotes, orders-to-fno,
orders-to-sales, invoices) run in dependency order (`SyncEngine.run_all`, what `p2c run all` and
the timers do) over a generated two-company dataset (usmf + demf), with every fault kind the
sandbox can inject on both services: 429 with Retry-After, 500, 503, connection resets, answers
that hang past the client timeout, truncated, HTML and non-JSON bodies. One fault of each kind is
scripted first so every kind surely fires; the rest are drawn at random (seeded).

Guarantee under test: after the chaos rounds, both stores equal — every entity set, row by row,
field by field, volatile columns (ETags, timestamps, versionnumber) aside — those of a fault-free
`run all` of the same data; Dataverse rows carry the same (deterministic) ids; no Dataverse
alternate key is used twice and every header has the same number of lines; so zero duplicates and
zero lost records. A further fault-free round then writes nothing.

Rounds (the convergence rule of docs/reliability.md): the reference repeats `run all` one timer
interval apart until a round writes nothing (≤ 3 rounds: records deferred because their parent
was not synced yet are due again in the next round); the chaos side does the same with faults on,
in at most 4 rounds.

Size: `P2C_CHAOS_SIZE` accounts (default 80 here, inside `make test`'s budget; e.g.
`P2C_CHAOS_SIZE=1000 pytest -m chaos`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.datagen import generate
from shared.engine import RunOutcome, SyncEngine
from shared.mapping import Catalogue
from shared.settings import Settings
from shared.state import StateStore
from shared.templates import TEMPLATE_NAMES
from tests.chaos.helpers import (
    RunTally,
    StoreState,
    diff_states,
    faults_injected,
    store_duplicates,
    store_state,
    written_rows,
)
from tests.fixtures.product import Product

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

SIZE = int(os.environ.get("P2C_CHAOS_SIZE", "80"))
SETTINGS = {
    "P2C_COMPANIES": "usmf=Contoso US,demf=Contoso DE",
    "P2C_DEFAULT_COMPANY": "usmf",
    "P2C_HTTP_TIMEOUT_SECONDS": "2",
    "P2C_DATAVERSE_PAGE_SIZE": "50",
    "P2C_FINOPS_PAGE_SIZE": "50",
    "P2C_FINOPS_BATCH_SIZE": "10",
    "P2C_MAX_RETRIES": "6",
}
RUN_INTERVAL = timedelta(minutes=15)
REFERENCE_ROUNDS = 3
CHAOS_ROUNDS = 4
ALL_FAULTS = ["429", "500", "503", "reset", "hang", "truncated", "html", "nonjson"]


def _clock(offset: timedelta) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + offset


def _round(settings: Settings, state: StateStore, n: int, catalogue: Catalogue) -> list[RunOutcome]:
    """`run all` as timer n would: n intervals after the first round (retries come due)."""
    engine = SyncEngine(settings, state, catalogue=catalogue, clock=_clock(RUN_INTERVAL * n))
    return engine.run_all(trigger="timer")


def _quiet(outcomes: list[RunOutcome]) -> bool:
    """Every template succeeded and nothing was written or failed: more rounds change nothing."""
    return all(
        o.status == "succeeded" and o.counts.get("written", 0) == 0 and o.counts.get("failed", 0) == 0
        for o in outcomes
    )


def _converge(
    settings: Settings, state: StateStore, rounds: int, tally: RunTally, catalogue: Catalogue
) -> bool:
    for n in range(rounds):
        outcomes = _round(settings, state, n, catalogue)
        for o in outcomes:
            tally.add(o)
            assert o.status in ("succeeded", "partial"), (o.template, o.status, o.message)
        if _quiet(outcomes):
            return True
    return False


def test_run_all_under_chaos_equals_fault_free_run_all(
    product: Product, azurite_connection_string: str, unique_name: str
) -> None:
    sandbox = product.sandbox
    sandbox.load(generate(size=SIZE, seed=11, companies=("usmf", "demf")))
    chaos = product.with_settings(**SETTINGS)
    catalogue = chaos.engine.catalogue

    # fault-free reference into its own state, then both stores rolled back
    dv_before, fo_before = sandbox.dataverse.snapshot(), sandbox.finops.snapshot()
    before = store_state(sandbox)
    reference_state = StateStore.from_connection_string(azurite_connection_string, prefix=f"r{unique_name}")
    reference_state.ensure()
    reference = RunTally()
    assert _converge(chaos.settings, reference_state, REFERENCE_ROUNDS, reference, catalogue), (
        "the fault-free reference did not settle"
    )
    templates = sorted(reference.templates)
    expected: StoreState = store_state(sandbox)
    records = written_rows(expected, before)
    sandbox.dataverse.restore(dv_before)
    sandbox.finops.restore(fo_before)
    assert diff_states(store_state(sandbox), before) == []

    # chaos: every kind scripted once, then ~8 % random faults on both services
    sandbox.log.reset()
    sandbox.faults.configure(probability=0.08, kinds=ALL_FAULTS, seed=5, hang_s=3)
    sandbox.faults.script(
        [("finops" if i % 2 else "dataverse", "*", kind) for i, kind in enumerate(ALL_FAULTS)]
    )
    tally = RunTally()
    t0 = time.monotonic()
    try:
        settled = _converge(chaos.settings, chaos.state, CHAOS_ROUNDS, tally, catalogue)
    finally:
        sandbox.faults.clear()
    elapsed = time.monotonic() - t0
    injected = faults_injected(sandbox)
    total_requests = len(sandbox.log.entries())
    actual = store_state(sandbox)
    problems = diff_states(actual, expected)
    duplicates = store_duplicates(sandbox)
    outcome = "converged" if settled and not problems and not duplicates else "DIVERGED"
    print(
        f"\n[chaos] all-templates ({len(templates)} templates, 2 companies), p = 8 % + one scripted "
        f"fault of each kind: records={records} rounds={tally.runs // len(templates)} "
        f"requests={total_requests} faults_injected={sum(injected.values())} "
        f"{dict(sorted(injected.items()))} "
        f"retries={tally.retries} throttled={tally.throttled} time={elapsed:.1f}s "
        f"(reference {reference.seconds:.1f}s) outcome={outcome}"
    )

    assert settled, f"not quiet after {CHAOS_ROUNDS} rounds: {tally.statuses}"
    assert set(injected) == set(ALL_FAULTS), injected
    assert sum(injected.values()) >= 0.05 * total_requests, (injected, total_requests)
    assert len(templates) == len(TEMPLATE_NAMES), templates
    assert records > 0
    assert duplicates == []
    assert not problems, "\n".join(problems)
    # settled for good: a fault-free round afterwards writes nothing
    after = _round(chaos.settings, chaos.state, CHAOS_ROUNDS, catalogue)
    assert _quiet(after), [(o.template, o.status, o.counts) for o in after]
