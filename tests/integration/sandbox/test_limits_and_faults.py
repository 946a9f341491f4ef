"""Service protection limits, latency, fault injection and the request log, on both services, over HTTPS.

The product's retry and resilience code is only as good as the failures it has been shown, so these
tests pin what the sandbox guard really puts on the wire: 429 + `Retry-After` with each service's
documented code and message when a configured limit (requests per sliding window, concurrent
requests, combined execution time; apis.md A6 / B3) is crossed under a thread-pool load; a latency
model a client can measure; every fault kind both scripted and drawn at random from a seed (same
seed, same fault sequence); and a request log that counts what happened and resets.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import msal
import pytest

from sandbox import Sandbox
from sandbox.guard import FAULT_KINDS

# Every fault a single read can get (batch_mismatch only changes `$batch` answers: own test below).
READ_FAULTS = ("429", "500", "503", "reset", "hang", "truncated", "html", "nonjson", "loop")

pytestmark = pytest.mark.integration

DV_PATH = "/api/data/v9.2/"
FO_PATH = "/data/"
SERVICES = ("dataverse", "finops")
# A trivial read per service (an empty or small entity set).
READ = {"dataverse": "accounts", "finops": "CustomersV3"}

DV_REQUESTS = "Number of requests exceeded the limit of {n} over time window of {w} seconds."
# "exeeded" (sic) is F&O's text, apis.md B3.
FO_REQUESTS = "Number of requests exeeded the limit of {n} over the time window of {w} seconds."
DV_EXECUTION = (
    "Combined execution time of incoming requests exceeded limit of {ms}  milliseconds over time window "
    "of {w} seconds. Decrease number of concurrent requests or reduce the duration of requests and try "
    "again later."
)
FO_EXECUTION = (
    "Combined execution time of incoming requests exceeded limit of {s} seconds over time window of {w} "
    "seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later."
)
CONCURRENT = "Number of concurrent requests exceeded the limit of {n}."


@pytest.fixture
def no_env_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (under MSAL) lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override `verify=`."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _client(sb: Sandbox, service: str, app: Any) -> httpx.Client:
    info = sb.info
    url = info.dataverse_url if service == "dataverse" else info.finops_url
    result = app.acquire_token_for_client(scopes=[f"{url}/.default"])
    assert "access_token" in result, result.get("error_description")
    headers = {"Authorization": f"Bearer {result['access_token']}", "Accept": "application/json"}
    base = url + (DV_PATH if service == "dataverse" else FO_PATH)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.Client(base_url=base, headers=headers, verify=info.ca_file, timeout=30, limits=limits)


@pytest.fixture
def clients(sandbox: Sandbox, no_env_ca_bundle: None) -> Iterator[dict[str, httpx.Client]]:
    """One httpx client per service, each with a token from MSAL's ConfidentialClientApplication."""
    info = sandbox.info
    app = msal.ConfidentialClientApplication(
        info.client_id,
        client_credential=info.client_secret,
        authority=f"{info.authority_url}/{info.tenant_id}",
        validate_authority=False,
        instance_discovery=False,
        verify=info.ca_file,
    )
    made = {service: _client(sandbox, service, app) for service in SERVICES}
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


def error_of(resp: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = resp.json()["error"]
    return error


def burst(client: httpx.Client, path: str, count: int, workers: int = 8) -> list[httpx.Response]:
    """`count` GETs released together from a thread pool (a barrier lines the workers up)."""
    gate = threading.Barrier(min(workers, count))

    def one(i: int) -> httpx.Response:
        if i < gate.parties:
            gate.wait()
        return client.get(path)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def settle(sb: Sandbox, count: int, timeout_s: float = 3.0) -> None:
    """Wait until the log holds `count` entries.

    The guard appends an entry after the response's last byte is sent, so a client can hold a
    response whose entry is not logged yet (and entries of the two services, served by two server
    threads, can land in either order)."""
    deadline = time.monotonic() + timeout_s
    while sb.log.count() < count:
        assert time.monotonic() < deadline, f"log has {sb.log.count()} entries, expected {count}"
        time.sleep(0.005)


def both(fn: Callable[[str], None]) -> None:
    """Run a per-service scenario for Dataverse and F&O at once (halves the wall time of slow ones)."""
    with ThreadPoolExecutor(2) as pool:
        for future in [pool.submit(fn, s) for s in SERVICES]:
            future.result()


# ------------------------------------------------------------------------------------------ limits
@pytest.mark.parametrize("service", SERVICES)
def test_request_limit_under_load(sandbox: Sandbox, clients: dict[str, httpx.Client], service: str) -> None:
    sandbox.limits.configure(service, requests=10, window_s=300)
    responses = burst(clients[service], READ[service], 25)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 10 + [429] * 15
    expected = (DV_REQUESTS if service == "dataverse" else FO_REQUESTS).format(n=10, w=300)
    for resp in responses:
        if resp.status_code == 429:
            assert 1 <= int(resp.headers["Retry-After"]) <= 300
            code = "0x80072322" if service == "dataverse" else ""
            assert error_of(resp) == {"code": code, "message": expected}
    other = "finops" if service == "dataverse" else "dataverse"
    assert clients[other].get(READ[other]).status_code == 200  # limits are per service
    settle(sandbox, 26)
    assert sandbox.log.count(service=service, status=429) == 15
    assert sum(e.throttled for e in sandbox.log.entries()) == 15


def test_sliding_window_frees_up_after_retry_after(
    sandbox: Sandbox, clients: dict[str, httpx.Client]
) -> None:
    def scenario(service: str) -> None:
        client = clients[service]
        sandbox.limits.configure(service, requests=2, window_s=1.0)
        assert [client.get(READ[service]).status_code for _ in range(3)] == [200, 200, 429]
        refused = client.get(READ[service])
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
        time.sleep(float(refused.headers["Retry-After"]) + 0.05)
        assert client.get(READ[service]).status_code == 200  # the refusals did not count

    both(scenario)


def test_concurrency_limit_fails_at_once(sandbox: Sandbox, clients: dict[str, httpx.Client]) -> None:
    def scenario(service: str) -> None:
        sandbox.limits.configure(service, concurrent=2)
        sandbox.latency.configure(service, fixed_ms=800)  # keeps the admitted two in flight
        started = time.perf_counter()
        responses = burst(clients[service], READ[service], 6, workers=6)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 200, 429, 429, 429, 429], statuses
        for resp in responses:
            if resp.status_code == 429:
                assert resp.headers["Retry-After"] == "1"
                assert error_of(resp)["message"] == CONCURRENT.format(n=2)
                if service == "dataverse":
                    assert error_of(resp)["code"] == "0x80072326"
        assert time.perf_counter() - started < 5

    both(scenario)


def test_execution_time_limit(sandbox: Sandbox, clients: dict[str, httpx.Client]) -> None:
    def scenario(service: str) -> None:
        client = clients[service]
        sandbox.limits.configure(service, execution_s=1.0, window_s=300)
        sandbox.latency.configure(service, fixed_ms=520)
        assert [client.get(READ[service]).status_code for _ in range(2)] == [200, 200]  # 1.04 s used
        resp = client.get(READ[service])
        assert resp.status_code == 429
        assert 1 <= int(resp.headers["Retry-After"]) <= 300
        if service == "dataverse":
            assert error_of(resp) == {"code": "0x80072321", "message": DV_EXECUTION.format(ms="1,000", w=300)}
        else:
            assert error_of(resp) == {"code": "", "message": FO_EXECUTION.format(s=1, w=300)}

    both(scenario)


def test_default_limits_are_the_documented_ones(sandbox: Sandbox) -> None:
    sandbox.limits.configure("finops")
    config = sandbox.limits.config("finops")
    assert config is not None
    assert (config.requests, config.window_s, config.concurrent, config.execution_s) == (6000, 300, 52, 1200)
    assert sandbox.limits.config("dataverse") is None  # unconfigured = unlimited


# ----------------------------------------------------------------------------------------- latency
def test_latency_model_is_observable(sandbox: Sandbox, clients: dict[str, httpx.Client]) -> None:
    from sandbox.datagen import generate

    sandbox.load(generate(size=60, seed=3, templates=("accounts",)))
    dv = clients["dataverse"]
    baseline = min(_timed(dv, "accounts?$select=name&$top=1") for _ in range(3))
    sandbox.latency.configure("dataverse", fixed_ms=100, per_record_ms=4)
    one = _timed(dv, "accounts?$select=name&$top=1")
    sixty = _timed(dv, "accounts?$select=name")
    assert one >= 0.104 and sixty >= 0.100 + 0.004 * 60
    assert sixty - one >= 0.004 * 59 * 0.9
    assert sandbox.latency.delay_s("dataverse", 60) == pytest.approx(0.34)
    assert _timed(clients["finops"], "CustomersV3") < 0.1 + baseline  # other service unaffected
    sandbox.latency.clear()
    assert _timed(dv, "accounts?$select=name") < 0.2


def _timed(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    resp = client.get(url)
    assert resp.status_code == 200, resp.text
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------ faults
def _expect_fault(resp_or_exc: httpx.Response | Exception, fault: str, service: str) -> None:
    """What a client sees for each fault kind."""
    if fault in ("reset", "hang"):
        assert isinstance(resp_or_exc, httpx.TransportError), resp_or_exc
        if fault == "hang":
            assert isinstance(resp_or_exc, httpx.ReadTimeout)
        return
    assert isinstance(resp_or_exc, httpx.Response)
    resp = resp_or_exc
    if fault == "429":
        assert resp.status_code == 429 and resp.headers["Retry-After"].isdigit()
        assert "Number of requests" in error_of(resp)["message"]
    elif fault in ("500", "503"):
        assert resp.status_code == int(fault)
        assert set(error_of(resp)) >= {"code", "message"}
    elif fault == "html":
        assert resp.status_code == 502 and resp.headers["content-type"].startswith("text/html")
        assert b"502 - Web server received an invalid response" in resp.content
    elif fault == "nonjson":
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        with pytest.raises(json.JSONDecodeError):
            resp.json()
    elif fault == "loop":
        assert resp.status_code == 200
        assert resp.json()["@odata.nextLink"] == str(resp.request.url)  # the page points at itself
    elif fault == "truncated":
        assert resp.status_code == 200
        assert len(resp.content) == int(resp.headers["content-length"])
        with pytest.raises(json.JSONDecodeError):
            resp.json()
    else:  # pragma: no cover - a new fault kind needs an expectation here
        raise AssertionError(f"no expectation for fault {fault!r} on {service}")


def _get(client: httpx.Client, path: str, timeout: float = 5.0) -> httpx.Response | Exception:
    try:
        return client.get(path, timeout=timeout)
    except httpx.TransportError as exc:
        return exc


def test_every_fault_kind_is_covered() -> None:
    assert set(FAULT_KINDS) == {*READ_FAULTS, "batch_mismatch"}, "add the new fault kind to these tests"


@pytest.mark.parametrize("fault", READ_FAULTS)
@pytest.mark.parametrize("service", SERVICES)
def test_scripted_fault(sandbox: Sandbox, clients: dict[str, httpx.Client], service: str, fault: str) -> None:
    client, path = clients[service], READ[service]
    sandbox.load(_small_dataset())
    full = client.get(path)
    assert full.status_code == 200
    sandbox.faults.configure(probability=0.0, hang_s=0.6, retry_after_s=7)
    sandbox.faults.script([(service, "read", fault)])
    outcome = _get(client, path, timeout=0.25 if fault == "hang" else 5.0)
    _expect_fault(outcome, fault, service)
    if fault == "429":
        assert isinstance(outcome, httpx.Response) and outcome.headers["Retry-After"] == "7"
    if fault == "truncated":
        assert isinstance(outcome, httpx.Response) and full.content.startswith(outcome.content)
        assert 0 < len(outcome.content) < len(full.content)
    assert sandbox.faults.pending() == []
    after = client.get(path)  # one step, then normal traffic (the client reconnects after a reset)
    assert after.status_code == 200 and after.content == full.content
    settle(sandbox, 3)  # a hang is logged when the server gives up, after the follow-up request
    entries = [e for e in sandbox.log.entries() if e.service == service]
    assert [e.fault for e in entries] in ([None, fault, None], [None, None, fault])
    faulted = next(e for e in entries if e.fault == fault)
    expected_status = {"reset": 0, "hang": 0, "html": 502, "nonjson": 200, "truncated": 200, "loop": 200}.get(
        fault
    )
    assert faulted.status == (int(fault) if expected_status is None else expected_status)


BATCH_OF_TWO_GETS = {
    "dataverse": "/api/data/v9.2/accounts?$top=1",
    "finops": "/data/CustomersV3?$top=1",
}


@pytest.mark.parametrize("service", SERVICES)
def test_batch_mismatch_drops_the_last_part(
    sandbox: Sandbox, clients: dict[str, httpx.Client], service: str
) -> None:
    url = BATCH_OF_TWO_GETS[service]
    part = (
        "--b\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        f"GET {url} HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n"
    )
    body = (part * 2 + "--b--\r\n").encode()
    headers = {"Content-Type": "multipart/mixed; boundary=b"}
    client = clients[service]
    normal = client.post("$batch", content=body, headers=headers)
    assert normal.status_code == 200 and normal.text.count("HTTP/1.1 200") == 2, normal.text
    sandbox.faults.script([(service, "batch", "batch_mismatch")])
    broken = client.post("$batch", content=body, headers=headers)
    assert broken.status_code == 200
    assert broken.text.count("HTTP/1.1 200") == 1  # two requests, one answer
    assert len(broken.content) == int(broken.headers["content-length"])
    settle(sandbox, 2)
    assert [e.fault for e in sandbox.log.entries()] == [None, "batch_mismatch"]


def _small_dataset() -> Any:
    from sandbox.datagen import generate

    data = generate(size=3, seed=9, templates=("accounts",))
    data.finops["CustomersV3"] = [
        {"dataAreaId": "usmf", "CustomerAccount": f"C-{i}", "OrganizationName": f"Org {i}"} for i in range(3)
    ]
    return data


def test_script_steps_match_service_and_kind_in_order(
    sandbox: Sandbox, clients: dict[str, httpx.Client]
) -> None:
    dv, fo = clients["dataverse"], clients["finops"]
    sandbox.faults.script(
        [("finops", "batch", "500"), ("dataverse", "*", "503"), ("dataverse", "read", "429")]
    )
    assert fo.get("CustomersV3").status_code == 200  # a read does not take the batch step
    assert [dv.get("accounts").status_code for _ in range(3)] == [503, 429, 200]
    assert sandbox.faults.pending() == [("finops", "batch", "500")]
    resp = fo.post(
        "$batch", content=b"--b\r\n--b--\r\n", headers={"Content-Type": "multipart/mixed; boundary=b"}
    )
    assert resp.status_code == 500 and sandbox.faults.pending() == []
    with pytest.raises(ValueError):
        sandbox.faults.script([("finops", "*", "teapot")])


def _outcome(result: httpx.Response | Exception) -> str:
    """What the client saw, coarse enough to be exact: an exception type, or status + body kind."""
    if isinstance(result, Exception):
        return type(result).__name__
    try:
        result.json()
        body = "json"
    except ValueError:
        body = "html" if result.headers["content-type"].startswith("text/html") else "broken"
    return f"{result.status_code}:{body}"


def _random_run(
    sandbox: Sandbox, clients: dict[str, httpx.Client], seed: int
) -> tuple[list[str], dict[str, list[str | None]]]:
    """30 sequential requests alternating between the services under a seeded 40% fault rate:
    (client-side outcomes in order, logged faults per service in order)."""
    sandbox.log.reset()
    sandbox.faults.configure(
        probability=0.4, kinds=("429", "500", "503", "reset", "truncated", "html", "nonjson"), seed=seed
    )
    outcomes = []
    for i in range(30):
        service = SERVICES[i % 2]
        outcomes.append(_outcome(_get(clients[service], READ[service])))
    sandbox.faults.clear()
    settle(sandbox, 30)
    logged = {s: [e.fault for e in sandbox.log.entries() if e.service == s] for s in SERVICES}
    return outcomes, logged


def test_random_faults_are_seeded_and_replayable(sandbox: Sandbox, clients: dict[str, httpx.Client]) -> None:
    first, first_log = _random_run(sandbox, clients, seed=1234)
    again, again_log = _random_run(sandbox, clients, seed=1234)
    other, other_log = _random_run(sandbox, clients, seed=4321)
    assert first == again and first_log == again_log
    assert (first, first_log) != (other, other_log)
    faults = [f for s in SERVICES for f in first_log[s] if f is not None]
    assert 3 <= len(faults) <= 25  # 40% of 30, with room for chance, but neither none nor all
    assert len(set(faults)) >= 2
    assert all(any(f is not None for f in first_log[s]) for s in SERVICES)
    assert sum(o != "200:json" for o in first) == len(faults)  # every logged fault reached the client


def test_random_faults_respect_services_and_probability_bounds(
    sandbox: Sandbox, clients: dict[str, httpx.Client]
) -> None:
    sandbox.faults.configure(probability=1.0, kinds=["503"], seed=1, services=["dataverse"])
    assert clients["dataverse"].get("accounts").status_code == 503
    assert clients["finops"].get("CustomersV3").status_code == 200
    with pytest.raises(ValueError):
        sandbox.faults.configure(probability=1.5)
    with pytest.raises(ValueError):
        sandbox.faults.configure(probability=0.5, kinds=["teapot"])


# --------------------------------------------------------------------------------------------- log
def test_request_log_counts_and_reset(sandbox: Sandbox, clients: dict[str, httpx.Client]) -> None:
    sandbox.load(_small_dataset())
    dv, fo = clients["dataverse"], clients["finops"]
    assert dv.get("accounts?$select=name").status_code == 200
    assert dv.get("accounts?$select=name&$top=1").status_code == 200
    assert fo.get("CustomersV3(dataAreaId='usmf',CustomerAccount='C-1')").status_code == 200
    assert fo.get("CustomersV3?$filter=nosuch eq 1").status_code == 400
    sandbox.faults.script([("finops", "*", "503")])
    assert fo.get("CustomersV3").status_code == 503

    log = sandbox.log
    settle(sandbox, 5)
    assert log.count() == 5
    assert log.count(service="dataverse") == 2 and log.count(service="finops") == 3
    assert log.count(service="dataverse", kind="read", status=200) == 2
    assert log.count(service="finops", kind="single", status=200) == 1
    assert log.count(status=400) == 1 and log.count(status=503) == 1
    dv_entries = [e for e in log.entries() if e.service == "dataverse"]
    fo_entries = [e for e in log.entries() if e.service == "finops"]
    assert [e.records for e in dv_entries] == [3, 1] and fo_entries[0].records == 1
    assert dv_entries[0].path == DV_PATH + "accounts" and dv_entries[0].method == "GET"
    assert fo_entries[2].fault == "503" and not fo_entries[2].throttled

    log.reset()
    assert log.count() == 0 and log.entries() == []
    assert dv.get("accounts").status_code == 200
    settle(sandbox, 1)
    assert log.count() == 1
    sandbox.limits.configure("dataverse", requests=1)
    sandbox.faults.script([("finops", "*", "500")])
    sandbox.reset()  # stores, faults, limits, latency and the log, servers keep running
    assert log.count() == 0 and sandbox.faults.pending() == [] and sandbox.limits.config("dataverse") is None
    assert dv.get("accounts").json()["value"] == []
