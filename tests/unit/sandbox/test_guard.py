"""Guard: limits window maths, fault scripting, latency, log, and the middleware in-process (no sockets)."""

from __future__ import annotations

import json
import time
import warnings
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sandbox.entra import Entra
from sandbox.guard import (
    FAULT_KINDS,
    Faults,
    Guard,
    Latency,
    LimitConfig,
    Limits,
    LogEntry,
    RequestLog,
    Throttle,
    classify,
    throttle_body,
)

warnings.filterwarnings("ignore", message="Using `httpx` with")
from starlette.testclient import TestClient  # noqa: E402

URL = "https://127.0.0.1:4443"
OTHER = "https://127.0.0.1:4444"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------------------------ limits
def test_request_limit_refuses_until_the_window_slides() -> None:
    clock = Clock()
    limits = Limits(clock)
    limits.configure("dataverse", requests=3, window_s=10, concurrent=100, execution_s=1000)
    for step in range(3):
        window, throttle = limits.admit("dataverse")
        assert throttle is None and window is not None
        limits.release(window, clock.now)
        clock.now += 1 if step < 2 else 0.5
    # requests at t=1000, 1001, 1002; now t=1002.5: the oldest leaves the window at t=1010
    _, throttle = limits.admit("dataverse")
    assert throttle == Throttle("requests", 8, LimitConfig(3, 10, 100, 1000))
    clock.now = 1009.9
    assert limits.admit("dataverse")[1] is not None
    clock.now = 1010.0
    window, throttle = limits.admit("dataverse")
    assert throttle is None and window is not None


def test_refused_requests_are_not_counted() -> None:
    clock = Clock()
    limits = Limits(clock)
    limits.configure("finops", requests=1, window_s=5, concurrent=10, execution_s=100)
    window, _ = limits.admit("finops")
    assert window is not None
    for _ in range(5):
        assert limits.admit("finops")[1] is not None
    clock.now += 5
    assert limits.admit("finops")[1] is None


def test_concurrency_limit_fails_immediately_and_frees_on_release() -> None:
    clock = Clock()
    limits = Limits(clock)
    limits.configure("dataverse", requests=100, window_s=300, concurrent=2, execution_s=1200)
    first, _ = limits.admit("dataverse")
    second, _ = limits.admit("dataverse")
    _, throttle = limits.admit("dataverse")
    assert throttle is not None and throttle.measure == "concurrent" and throttle.retry_after >= 1
    assert first is not None and second is not None
    limits.release(first, clock.now)
    assert limits.admit("dataverse")[1] is None


def test_execution_time_limit_and_retry_after() -> None:
    clock = Clock()
    limits = Limits(clock)
    limits.configure("dataverse", requests=100, window_s=60, concurrent=10, execution_s=10)
    for duration in (4.0, 4.0, 4.0):  # 12 s of execution; finished at +4, +8, +12
        window, _ = limits.admit("dataverse")
        assert window is not None
        started = clock.now
        clock.now += duration
        limits.release(window, started)
    _, throttle = limits.admit("dataverse")
    assert throttle is not None and throttle.measure == "execution"
    # 2 s over the limit: once the first 4 s request (finished at 1004) slides out, at 1064
    assert throttle.retry_after == 1064 - 1012
    clock.now = 1064.0
    assert limits.admit("dataverse")[1] is None


def test_unconfigured_service_and_clear_are_unlimited() -> None:
    limits = Limits(Clock())
    assert limits.admit("finops") == (None, None)
    limits.configure("finops", requests=1)
    limits.admit("finops")
    assert limits.admit("finops")[1] is not None
    limits.clear()
    assert limits.admit("finops") == (None, None)
    with pytest.raises(ValueError, match="unknown service"):
        limits.configure("crm")


def test_throttle_bodies_carry_documented_codes_and_configured_numbers() -> None:
    config = LimitConfig(6000, 300, 52, 1200)
    body = json.loads(throttle_body("dataverse", Throttle("requests", 5, config)))
    assert body == {"error": {"code": "0x80072322", "message": (
        "Number of requests exceeded the limit of 6000 over time window of 300 seconds.")}}
    body = json.loads(throttle_body("dataverse", Throttle("execution", 5, config)))
    assert body["error"]["code"] == "0x80072321"
    assert "limit of 1,200,000  milliseconds over time window of 300 seconds." in body["error"]["message"]
    body = json.loads(throttle_body("dataverse", Throttle("concurrent", 1, config)))
    assert body["error"] == {
        "code": "0x80072326", "message": "Number of concurrent requests exceeded the limit of 52."
    }
    body = json.loads(throttle_body("finops", Throttle("requests", 5, LimitConfig(7, 60, 52, 1200))))
    assert body["error"]["message"] == (
        "Number of requests exeeded the limit of 7 over the time window of 60 seconds."
    )


# ------------------------------------------------------------------------------------ faults
def test_script_fires_in_order_per_matching_service_and_kind() -> None:
    faults = Faults()
    faults.script([("finops", "batch", "503"), ("dataverse", "*", "reset"), ("finops", "batch", "429")])
    assert faults.pick("finops", "read") is None
    assert faults.pick("dataverse", "bulk") == "reset"
    assert faults.pick("finops", "batch") == "503"
    assert faults.pick("dataverse", "read") is None
    assert faults.pick("finops", "batch") == "429"
    assert faults.pick("finops", "batch") is None
    assert faults.pending() == []


def test_script_rejects_unknown_fault_or_service() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Faults().script([("finops", "*", "teapot")])
    with pytest.raises(ValueError, match="unknown service"):
        Faults().script([("sales", "*", "500")])


def test_random_faults_are_seeded_and_respect_services_and_probability() -> None:
    def draw(seed: int) -> list[str | None]:
        faults = Faults()
        faults.configure(probability=0.3, kinds=["500", "html"], seed=seed, services=("finops",))
        return [faults.pick("finops", "read") for _ in range(400)]

    first = draw(7)
    assert first == draw(7)
    hits = [f for f in first if f]
    assert set(hits) == {"500", "html"}
    assert 80 < len(hits) < 160
    faults = Faults()
    faults.configure(probability=1.0, kinds=["500"], seed=1, services=("finops",))
    assert faults.pick("dataverse", "read") is None
    faults.clear()
    assert faults.pick("finops", "read") is None
    with pytest.raises(ValueError):
        faults.configure(probability=1.5)


# ---------------------------------------------------------------------------- latency, log, kind
def test_latency_per_service_and_records() -> None:
    latency = Latency()
    latency.configure("finops", fixed_ms=25, per_record_ms=0.5)
    assert latency.delay_s("finops", 100) == pytest.approx(0.075)
    assert latency.delay_s("dataverse", 100) == 0.0
    latency.clear()
    assert latency.delay_s("finops", 100) == 0.0


def test_log_counts_and_reset() -> None:
    log = RequestLog()
    log.append(LogEntry("finops", "POST", "/data/$batch", "batch", 3, 200, False, None))
    log.append(LogEntry("finops", "GET", "/data/CustomersV3", "read", 10, 429, True, None))
    log.append(LogEntry("dataverse", "GET", "/api/data/v9.2/accounts", "read", 5, 200, False, None))
    assert log.count() == 3
    assert log.count(service="finops") == 2
    assert log.count(kind="read", status=200) == 1
    log.reset()
    assert log.entries() == []


def test_requests_in_flight_across_a_reset_are_not_logged() -> None:
    log = RequestLog()
    before = log.epoch
    log.reset()
    log.append(LogEntry("finops", "GET", "/data/x", "read", 0, 0, False, "hang"), before)
    assert log.count() == 0
    log.append(LogEntry("finops", "GET", "/data/x", "read", 0, 200, False, None), log.epoch)
    assert log.count() == 1


@pytest.mark.parametrize(
    ("method", "path", "kind"),
    [
        ("POST", "/data/$batch", "batch"),
        ("POST", "/api/data/v9.2/$batch", "batch"),
        ("GET", "/data/$metadata", "metadata"),
        ("POST", "/api/data/v9.2/accounts/Microsoft.Dynamics.CRM.UpsertMultiple", "bulk"),
        ("GET", "/api/data/v9.2/accounts", "read"),
        ("GET", "/data/CustomersV3(dataAreaId='usmf',CustomerAccount='US-001')", "single"),
        ("PATCH", "/api/data/v9.2/accounts(accountnumber='A1')", "single"),
    ],
)
def test_classify(method: str, path: str, kind: str) -> None:
    assert classify(method, path) == kind


# ------------------------------------------------------------------------- middleware in-process
@pytest.fixture
def parts() -> dict[str, Any]:
    entra = Entra(tenant_id="t", client_id="c", client_secret="s", audiences=[URL, OTHER])
    entra.set_authority("https://127.0.0.1:4000")
    return {"entra": entra, "limits": Limits(), "faults": Faults(), "latency": Latency(), "log": RequestLog()}


def _app() -> Starlette:
    async def rows(request: Request) -> Response:
        body = json.dumps({"value": [{"n": i} for i in range(4)]}).encode()
        headers = {"x-sandbox-kind": "read", "x-sandbox-records": "4"}
        return Response(body, 200, headers=headers, media_type="application/json")

    return Starlette(routes=[Route("/{rest:path}", rows, methods=["GET", "POST"])])


def _token(parts: dict[str, Any], audience: str) -> str:
    form = {"grant_type": "client_credentials", "client_id": "c", "client_secret": "s"}
    return str(parts["entra"].token("t", {**form, "scope": f"{audience}/.default"})["access_token"])


def _client(parts: dict[str, Any], service: str) -> tuple[TestClient, dict[str, str]]:
    guard = Guard(_app(), service=service, audience=URL, **parts)
    token = _token(parts, URL)
    return TestClient(guard, base_url=URL), {"Authorization": f"Bearer {token}"}


def test_guard_401_shapes_differ_per_service(parts: dict[str, Any]) -> None:
    client, _ = _client(parts, "dataverse")
    resp = client.get("/api/data/v9.2/accounts")
    assert resp.status_code == 401 and resp.content == b""
    assert resp.headers["www-authenticate"].startswith("Bearer authorization_uri=")
    assert f'resource_id="{URL}"' in resp.headers["www-authenticate"]
    client, _ = _client(parts, "finops")
    resp = client.get("/data/CustomersV3", headers={"Authorization": "Bearer nonsense"})
    assert resp.status_code == 401
    assert resp.json() == {"Message": "Authorization has been denied for this request."}
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_guard_rejects_token_for_the_other_service(parts: dict[str, Any]) -> None:
    token = _token(parts, OTHER)
    client, _ = _client(parts, "dataverse")
    resp = client.get("/api/data/v9.2/accounts", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401 and "audience" in resp.headers["www-authenticate"]


def test_guard_passes_logs_and_applies_latency(parts: dict[str, Any]) -> None:
    client, auth = _client(parts, "finops")
    parts["latency"].configure("finops", fixed_ms=30, per_record_ms=5)
    started = time.perf_counter()
    resp = client.get("/data/CustomersV3", headers=auth)
    assert time.perf_counter() - started >= 0.05
    assert resp.status_code == 200 and len(resp.json()["value"]) == 4
    expected = LogEntry("finops", "GET", "/data/CustomersV3", "read", 4, 200, False, None)
    assert parts["log"].entries()[-1] == expected


def test_guard_throttles_with_retry_after(parts: dict[str, Any]) -> None:
    client, auth = _client(parts, "dataverse")
    parts["limits"].configure("dataverse", requests=2, window_s=300)
    assert [client.get("/x", headers=auth).status_code for _ in range(2)] == [200, 200]
    resp = client.get("/x", headers=auth)
    assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 299
    assert resp.json()["error"]["code"] == "0x80072322"
    assert parts["log"].count(status=429) == 1
    assert parts["log"].entries()[-1].throttled


@pytest.mark.parametrize(
    "fault", [f for f in FAULT_KINDS if f not in ("reset", "hang", "loop", "batch_mismatch")]
)
def test_guard_injects_http_faults(parts: dict[str, Any], fault: str) -> None:
    client, auth = _client(parts, "finops")
    parts["faults"].script([("finops", "read", fault)])
    resp = client.get("/data/CustomersV3", headers=auth)
    expected = {"429": 429, "500": 500, "503": 503, "html": 502, "truncated": 200, "nonjson": 200}[fault]
    assert resp.status_code == expected
    if fault == "429":
        assert resp.headers["retry-after"] == "1"
    if fault in ("truncated", "nonjson", "html"):
        with pytest.raises(json.JSONDecodeError):
            json.loads(resp.content)
    assert parts["log"].entries()[-1].fault == fault
    assert client.get("/data/CustomersV3", headers=auth).status_code == 200  # script used up


@pytest.mark.parametrize("fault", ["reset", "hang"])
def test_guard_drops_connection(parts: dict[str, Any], fault: str) -> None:
    client, auth = _client(parts, "dataverse")
    parts["faults"].configure(probability=0.0, hang_s=0.01)
    parts["faults"].script([("dataverse", "*", fault)])
    with pytest.raises(ConnectionResetError):
        client.get("/api/data/v9.2/accounts", headers=auth)
    assert parts["log"].entries()[-1].fault == fault
