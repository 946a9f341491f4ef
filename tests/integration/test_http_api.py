"""The HTTP API and the queue trigger end to end, invoked the way the Functions worker invokes them.

Each test gets its own Azurite (the functions read the default table and queue names from the app
settings, so sharing one would mix state) and the session's sandbox. HTTP functions are called with
`func.HttpRequest`s; a queued run is read back from the real Azurite queue and handed to the queue
function as a `func.QueueMessage`, exactly the text the queue trigger would deliver.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from functions import http_api, queues
from sandbox.azurite import Azurite
from sandbox.datagen import generate
from sandbox.product_env import product_env
from shared.runqueue import RunQueue

pytestmark = pytest.mark.integration

COMPANY = "usmf"
BAD_KEY = "ACC-90009-STATE1"


@pytest.fixture
def storage() -> Iterator[str]:
    with Azurite() as endpoints:
        yield endpoints.connection_string


@pytest.fixture
def app_env(sandbox: Any, storage: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = product_env(sandbox.info, storage, P2C_MAX_RETRIES="8")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def call(
    fn: Any,
    method: str,
    route: str,
    route_params: dict[str, str] | None = None,
    body: Any = None,
    params: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    req = func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{route}",
        headers={"Content-Type": "application/json"},
        params=params or {},
        route_params=route_params or {},
        body=b"" if body is None else json.dumps(body).encode(),
    )
    response: func.HttpResponse = fn(req)
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


def drain_queue(storage: str) -> list[str]:
    """Run every queued request through the queue function; returns the message texts processed."""
    queue = RunQueue.from_connection_string(storage)
    texts = []
    while (message := queue.receive()) is not None:
        texts.append(message.content)
        queues.queue_run(
            func.QueueMessage(
                id=message.id,
                body=message.content.encode(),
                pop_receipt=message.pop_receipt,
            )
        )
        queue.delete(message)
    return texts


def seed(sandbox: Any, size: int) -> list[dict[str, Any]]:
    sandbox.load(generate(size=size, seed=11))
    accounts: list[dict[str, Any]] = sandbox.dataverse.rows("accounts")
    currency = accounts[0]["_transactioncurrencyid_value"]
    # F&O's AddressState holds at most 10 characters: this record fails mapping
    sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": BAD_KEY,
            "name": "Bad State Ltd",
            "address1_stateorprovince": "Nordrhein-Westfalen",
            "_transactioncurrencyid_value": currency,
        },
    )
    return accounts


def test_queue_a_run_see_it_finish_list_errors_and_replay(sandbox: Any, app_env: dict[str, str]) -> None:
    storage = app_env["P2C_STATE_STORAGE_CONNECTION_STRING"]
    accounts = seed(sandbox, 20)

    status, body = call(http_api.http_health, "GET", "health")
    assert status == 200 and body["status"] == "healthy", body
    assert storage not in json.dumps(body) and app_env["P2C_CLIENT_SECRET"] not in json.dumps(body)

    status, body = call(
        http_api.http_sync, "POST", "sync/accounts", {"template": "accounts"}, {"mode": "full"}
    )
    assert status == 202, body
    run_id = body["run_id"]
    assert body["status"] == "queued" and body["mode"] == "full"
    # queued, not run: nothing reached F&O and the run is not known yet
    assert sandbox.finops.rows("CustomersV2", company=COMPANY) == []
    status, body = call(http_api.http_run, "GET", "runs", {"template": "accounts", "run_id": run_id})
    assert status == 404

    texts = drain_queue(storage)
    assert len(texts) == 1 and json.loads(texts[0])["run_id"] == run_id

    status, run = call(http_api.http_run, "GET", "runs", {"template": "accounts", "run_id": run_id})
    assert status == 200, run
    assert run["status"] == "partial" and run["trigger"] == "queue" and run["mode"] == "full"
    assert run["counts"]["written"] == len(accounts) and run["counts"]["failed"] == 1
    assert len(sandbox.finops.rows("CustomersV2", company=COMPANY)) == len(accounts)

    status, body = call(http_api.http_runs, "GET", "runs", {"template": "accounts"}, params={"limit": "5"})
    assert status == 200 and [r["run_id"] for r in body["runs"]] == [run_id]

    status, body = call(http_api.http_status, "GET", "status")
    assert status == 200
    rows = {row["template"]: row for row in body["templates"]}
    accounts_row = rows["accounts"]
    assert accounts_row["outcome"] == "partial" and accounts_row["last_run"]["run_id"] == run_id
    assert accounts_row["lag_s"] is not None and 0 <= accounts_row["lag_s"] < 120
    assert accounts_row["open"] == {"failed": 1, "deferred": 0, "parked": 0}
    assert accounts_row["errors"]["retrying"] == 1
    assert rows["orders-to-fno"]["last_run"] is None and rows["orders-to-fno"]["lag_s"] is None

    status, body = call(http_api.http_errors, "GET", "errors", {"template": "accounts"})
    assert status == 200
    [error] = body["errors"]
    assert error["source_key"] == BAD_KEY and error["status"] == "retrying" and error["company"] == COMPANY
    assert "AddressState" in json.dumps(error), error

    # fix the record in Sales, then replay only it
    [bad] = sandbox.dataverse.find("accounts", accountnumber=BAD_KEY)
    sandbox.dataverse.update("accounts", bad["accountid"], {"address1_stateorprovince": "NRW"})
    status, body = call(
        http_api.http_replay, "POST", "replay", {"template": "accounts"}, {"keys": [BAD_KEY, "ACC-NOT-THERE"]}
    )
    assert status == 202 and body["requeued"] == 1, body
    replay_run = body["run_id"]
    drain_queue(storage)

    status, run = call(http_api.http_run, "GET", "runs", {"template": "accounts", "run_id": replay_run})
    assert status == 200 and run["status"] == "succeeded", run
    status, body = call(
        http_api.http_errors, "GET", "errors", {"template": "accounts"}, params={"status": "resolved"}
    )
    assert [e["source_key"] for e in body["errors"]] == [BAD_KEY]
    assert body["counts"] == {"retrying": 0, "parked": 0, "resolved": 1}
    customers = {r["CustomerAccount"]: r for r in sandbox.finops.rows("CustomersV2", company=COMPANY)}
    assert customers[BAD_KEY]["AddressState"] == "NRW"

    # nothing left to replay: 200, no run queued
    status, body = call(http_api.http_replay, "POST", "replay", {"template": "accounts"}, {"run": True})
    assert status == 200 and body == {"template": "accounts", "requeued": 0, "run_id": None}
    assert drain_queue(storage) == []


def test_queue_all_and_dry_run_write_nothing(sandbox: Any, app_env: dict[str, str]) -> None:
    storage = app_env["P2C_STATE_STORAGE_CONNECTION_STRING"]
    seed(sandbox, 5)
    status, body = call(
        http_api.http_sync, "POST", "sync/all", {"template": "all"}, params={"dry_run": "true"}
    )
    assert status == 202 and body["dry_run"] is True, body
    sandbox.log.reset()
    drain_queue(storage)
    assert sandbox.finops.rows("CustomersV2", company=COMPANY) == []
    assert sandbox.log.count(service="finops", kind="batch") == 0
    # the run of each template carries the announced id, suffixed with the template
    status, run = call(
        http_api.http_run, "GET", "runs", {"template": "accounts", "run_id": f"{body['run_id']}-accounts"}
    )
    assert status == 200 and run["trigger"] == "queue", run
    assert run["counts"].get("written", 0) == 0


def test_health_reports_unreachable_storage(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.azurite import AzuriteEndpoints, free_port

    dead = AzuriteEndpoints(free_port(), free_port(), free_port()).connection_string
    for name, value in product_env(sandbox.info, dead).items():
        monkeypatch.setenv(name, value)
    started = time.monotonic()
    status, body = call(http_api.http_health, "GET", "health")
    assert time.monotonic() - started < 3  # a probe, not the SDK's full retry schedule
    assert status == 503 and body["checks"]["storage"]["status"] == "unreachable"
    assert body["checks"]["settings"] == {"status": "ok"}
