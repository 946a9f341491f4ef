"""Secrets and injection (issue 5 §6).

1. The client secret (P2C_CLIENT_SECRET) never leaves the process: a run that logs at DEBUG on every
   logger, retries faults, fails records and finally fails authentication is captured whole (caplog,
   stdout/stderr at file-descriptor level), and the secret is in none of the logs, errors, run
   records, reports or RunOutcomes.
2. OData literal injection is inert: accounts whose keys and names carry quotes, escapes, brackets
   and boolean operators are written exactly (create, update, and the retry path's key filter), and
   no other customer is touched.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sandbox.datagen import generate
from shared.engine import RunOutcome, SyncEngine
from tests.chaos.helpers import COMPANY, by_account, customer_rows, duplicates
from tests.fixtures.product import Product

pytestmark = pytest.mark.integration


def _everything_stored(product: Product, outcomes: list[RunOutcome]) -> str:
    """All state a run leaves behind, as text: errors, run records, reports, outcomes."""
    parts: list[Any] = []
    for status in ("retrying", "parked", "resolved", None):
        parts += [e.as_dict() for e in product.state.errors.list("accounts", status=status, limit=1000)]
    runs = product.state.runs.list("accounts", limit=100)
    parts += [r.as_dict() for r in runs]
    for run in runs:
        parts += product.state.reports.read("accounts", run.run_id)
    for outcome in outcomes:
        parts.append(outcome.as_dict())
        parts.append(outcome.dry_run_changes)
    return json.dumps(parts, default=str)


def test_client_secret_never_appears_in_logs_errors_runs_reports_or_outcomes(
    product: Product, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = product.env["P2C_CLIENT_SECRET"]
    assert len(secret) >= 20
    product.sandbox.load(generate(size=40, seed=61))
    currency = product.sandbox.dataverse.rows("accounts")[0]["_transactioncurrencyid_value"]
    # a record that fails (its payload goes into an excerpt) ...
    product.sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": "ACC-99100-SECRT1",
            "name": "Secret Holder Ltd",
            "address1_stateorprovince": "Nordrhein-Westfalen",
            "_transactioncurrencyid_value": currency,
        },
    )
    caplog.set_level(logging.DEBUG)  # the root logger, restored by caplog
    # loggers with a level of their own (httpx, azure, msal, p2c.*) are opened up too, and restored
    levels = {
        name: logger.level
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    outcomes: list[RunOutcome] = []
    try:
        # ... retried faults of every kind that answers ...
        product.sandbox.faults.script(
            [("finops", "batch", "500"), ("dataverse", "read", "html"), ("finops", "batch", "nonjson")]
        )
        outcomes.append(product.run())
        outcomes.append(product.run(dry_run=True, mode="full"))
        # ... and a run whose token requests are refused (a secret rotated in Entra only)
        entra = product.sandbox.entra
        good = entra.client_secret
        entra.client_secret = "rotated-elsewhere"
        entra.expire_all_tokens()
        try:
            outcomes.append(SyncEngine(product.settings, product.state).run("accounts", trigger="cli"))
        finally:
            entra.client_secret = good
    finally:
        product.sandbox.faults.clear()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert [o.status for o in outcomes] == ["partial", "partial", "failed"], [
        (o.status, o.message) for o in outcomes
    ]
    assert len(caplog.records) > 20, "DEBUG capture is not working"
    captured = capfd.readouterr()
    logs = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records
    ) + caplog.text
    for where, text in {
        "logs": logs,
        "stdout": captured.out,
        "stderr": captured.err,
        "state": _everything_stored(product, outcomes),
        "messages": " ".join(o.message for o in outcomes),
    }.items():
        assert secret not in text, f"the client secret appears in {where}"
    assert "Secret Holder Ltd" in _everything_stored(product, outcomes)  # the excerpt check is live


INJECTIONS = [
    ("ACC-'Q1", "O'Reilly's ' Shop"),
    ("ACC-%27Q2", "Percent %27 Encoded %2527"),
    ("ACC-)Q3(", "Close ) Paren ( Open"),
    ("ACC- or Q4", "Alpha or Omega"),
    ("' or 1 eq 1 or '", "' or 1 eq 1 or '"),
    ("ACC-')&$Q6", "x') or CustomerAccount ne ('"),
]


def test_odata_literal_injection_is_inert(product: Product) -> None:
    product.sandbox.load(generate(size=12, seed=67))
    assert product.run().status == "succeeded"
    bystanders = by_account(customer_rows(product.sandbox, COMPANY))
    currency = product.sandbox.dataverse.rows("accounts")[0]["_transactioncurrencyid_value"]
    ids: dict[str, str] = {}
    for number, name in INJECTIONS:
        ids[number] = product.sandbox.dataverse.insert(
            "accounts", {"accountnumber": number, "name": name, "_transactioncurrencyid_value": currency}
        )
    # one injection account first fails, so the retry path fetches it by key with a $filter
    failing = INJECTIONS[4][0]
    too_long_state = {"address1_stateorprovince": "Far Too Long State"}
    product.sandbox.dataverse.update("accounts", ids[failing], too_long_state)

    created = product.run()
    assert created.status == "partial", created.message
    assert created.counts["written"] == len(INJECTIONS) - 1 and created.counts["failed"] == 1

    for number, _ in INJECTIONS:  # updates address the existing customers by key
        product.sandbox.dataverse.update("accounts", ids[number], {"telephone1": "+1 555 0100"})
    product.sandbox.dataverse.update("accounts", ids[failing], {"address1_stateorprovince": "WA"})
    later = datetime.now(UTC) + timedelta(hours=1)
    updated = SyncEngine(product.settings, product.state, clock=lambda: later).run("accounts", trigger="cli")
    assert updated.status == "succeeded", updated.message
    assert product.state.errors.counts("accounts").get("retrying", 0) == 0
    retried = SyncEngine(product.settings, product.state, clock=lambda: later + timedelta(hours=1)).run(
        "accounts", trigger="cli"
    )
    assert retried.counts.get("written", 0) == 0

    rows = customer_rows(product.sandbox, COMPANY)
    assert duplicates(rows) == []
    customers = by_account(rows)
    assert len(customers) == len(bystanders) + len(INJECTIONS)
    for number, name in INJECTIONS:
        assert customers[number]["OrganizationName"] == name
        assert customers[number]["PrimaryContactPhone"] == "+1 555 0100"
    assert customers[failing]["AddressState"] == "WA"
    for key, row in bystanders.items():
        assert customers[key] == row, f"bystander {key} was touched"
