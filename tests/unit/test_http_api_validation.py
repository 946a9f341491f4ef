"""Input validation of the HTTP API: every bad request is a 400 with a JSON error naming the problem.

Pure: each request below is refused before any setting is read or any storage is touched (the
environment has no P2C_* settings, so a handler that got further would answer 500, not 400).
"""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

from functions import http_api


@pytest.fixture(autouse=True)
def _no_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("P2C_"):
            monkeypatch.delenv(name)


def request(
    method: str,
    route: str,
    route_params: dict[str, str],
    body: bytes = b"",
    params: dict[str, str] | None = None,
) -> func.HttpRequest:
    return func.HttpRequest(
        method=method,
        url=f"http://localhost/api/{route}",
        headers={"Content-Type": "application/json"},
        params=params or {},
        route_params=route_params,
        body=body,
    )


def answer(response: func.HttpResponse) -> tuple[int, dict[str, Any]]:
    assert response.mimetype == "application/json"
    return response.status_code, json.loads(response.get_body())


def test_unknown_template_is_named() -> None:
    status, body = answer(http_api.http_sync(request("POST", "sync/nope", {"template": "nope"})))
    assert status == 400
    assert "unknown template 'nope'" in body["error"]["message"]
    assert body["error"]["field"] == "template"
    assert "accounts" in body["error"]["known_templates"] and "all" in body["error"]["known_templates"]
    # `all` is only a target of POST /sync
    status, body = answer(http_api.http_runs(request("GET", "runs/all", {"template": "all"})))
    assert status == 400 and "all" not in body["error"]["known_templates"]


@pytest.mark.parametrize(
    ("body", "params"),
    [(b'{"mode": "sometimes"}', None), (b"", {"mode": "sometimes"})],
)
def test_bad_mode_in_body_or_query(body: bytes, params: dict[str, str] | None) -> None:
    status, answer_body = answer(
        http_api.http_sync(request("POST", "sync/accounts", {"template": "accounts"}, body, params))
    )
    assert status == 400
    assert answer_body["error"]["problems"][0]["field"] == "mode"
    assert "mode" in answer_body["error"]["message"]


def test_oversized_body() -> None:
    big = json.dumps({"mode": "full", "pad": "x" * (http_api.MAX_BODY_BYTES + 1)}).encode()
    status, body = answer(http_api.http_sync(request("POST", "sync/accounts", {"template": "accounts"}, big)))
    assert status == 400
    assert "too large" in body["error"]["message"] and body["error"]["field"] == "body"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"mode": "full", "extra": 1}', "extra"),
        (b'{"dry_run": "perhaps"}', "dry_run"),
    ],
)
def test_malformed_sync_bodies(raw: bytes, expected: str) -> None:
    status, body = answer(http_api.http_sync(request("POST", "sync/all", {"template": "all"}, raw)))
    assert status == 400
    assert expected in json.dumps(body)


def test_unknown_query_parameter_and_bad_flags() -> None:
    status, body = answer(
        http_api.http_sync(request("POST", "sync/accounts", {"template": "accounts"}, params={"force": "1"}))
    )
    assert status == 400 and "force" in body["error"]["message"]
    status, body = answer(
        http_api.http_sync(
            request("POST", "sync/accounts", {"template": "accounts"}, params={"dry_run": "maybe"})
        )
    )
    assert status == 400 and body["error"]["field"] == "dry_run"


@pytest.mark.parametrize("limit", ["0", "-1", "abc", str(http_api.MAX_LIST + 1)])
def test_bad_limit(limit: str) -> None:
    status, body = answer(
        http_api.http_runs(request("GET", "runs/accounts", {"template": "accounts"}, params={"limit": limit}))
    )
    assert status == 400 and body["error"]["field"] == "limit"


def test_bad_error_status_and_run_id() -> None:
    status, body = answer(
        http_api.http_errors(
            request("GET", "errors/accounts", {"template": "accounts"}, params={"status": "lost"})
        )
    )
    assert status == 400 and body["error"]["field"] == "status"
    status, body = answer(
        http_api.http_run(
            request("GET", "runs/accounts/x", {"template": "accounts", "run_id": "../../etc/passwd"})
        )
    )
    assert status == 400 and body["error"]["field"] == "run_id"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (json.dumps({"keys": []}).encode(), "keys"),
        (json.dumps({"keys": [""]}).encode(), "keys.0"),
        (json.dumps({"keys": ["k"] * (http_api.MAX_REPLAY_KEYS + 1)}).encode(), "keys"),
        (json.dumps({"keys": "C-1"}).encode(), "keys"),
        (json.dumps({"run": "later"}).encode(), "run"),
    ],
)
def test_bad_replay_bodies(raw: bytes, field: str) -> None:
    status, body = answer(
        http_api.http_replay(request("POST", "errors/accounts/replay", {"template": "accounts"}, raw))
    )
    assert status == 400
    assert [p["field"] for p in body["error"]["problems"]] == [field]


def test_valid_request_without_settings_is_500_naming_settings_not_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("P2C_CLIENT_SECRET", "s3cr3t-value")
    status, body = answer(http_api.http_sync(request("POST", "sync/accounts", {"template": "accounts"})))
    assert status == 500
    assert "P2C_DATAVERSE_URL" in body["error"]["settings"]
    assert "s3cr3t-value" not in json.dumps(body)


def test_health_reports_invalid_settings_without_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2C_CLIENT_SECRET", "s3cr3t-value")
    monkeypatch.setenv("P2C_DATAVERSE_URL", "not a url s3cr3t-value")
    status, body = answer(http_api.http_health(request("GET", "health", {})))
    assert status == 503 and body["status"] == "unhealthy"
    assert "P2C_DATAVERSE_URL" in body["checks"]["settings"]["settings"]
    assert "s3cr3t-value" not in json.dumps(body)


def test_malformed_queue_message_is_dropped_before_any_setting_is_read() -> None:
    from functions import queues

    for body in (b'{"template": "nope"}', b"not json", b'{"template": "accounts", "run_id": "../x"}'):
        queues.queue_run(func.QueueMessage(id="m1", body=body))  # no settings: would raise if it got further


def test_run_request_ids() -> None:
    from pydantic import ValidationError

    from shared.runqueue import RunRequest

    one = RunRequest(template="accounts")
    assert one.run_id_of("accounts") == one.run_id
    every = RunRequest(template="all", run_id="20260101T000000-abcdef12")
    assert every.run_id_of("contacts") == "20260101T000000-abcdef12-contacts"
    with pytest.raises(ValidationError):
        RunRequest(template="accounts", run_id="a b")
    with pytest.raises(ValidationError):
        RunRequest(template="accounts", mode="sometimes")  # type: ignore[arg-type]


def test_template_without_mapping_is_refused_before_queueing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    settings = {
        "P2C_DATAVERSE_URL": "https://contoso.crm.dynamics.com",
        "P2C_FINOPS_URL": "https://contoso.operations.dynamics.com",
        "P2C_TENANT_ID": "contoso.onmicrosoft.com",
        "P2C_CLIENT_ID": "app",
        "P2C_CLIENT_SECRET": "secret",
        "P2C_STATE_STORAGE_ACCOUNT": "stp2c",
        "P2C_MAPPINGS_DIR": str(tmp_path),  # empty: no template is deployed
        "P2C_SCHEMA_CATALOGUE_DIR": str(root / "sandbox" / "schemas"),
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    status, body = answer(http_api.http_sync(request("POST", "sync/invoices", {"template": "invoices"})))
    assert status == 400 and body["error"]["field"] == "template"
    assert "no mapping deployed (invoices.yaml)" in body["error"]["message"]
