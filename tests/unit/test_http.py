"""ServiceHttp retry loop, budget, limiter and metrics against httpx.MockTransport."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import certifi
import httpx
import pytest

from shared.http import AdaptiveLimiter, RequestMetrics, RetryPolicy, ServiceHttp, TimeBudget, build_client
from shared.odata.errors import (
    AuthFailed,
    BudgetExhausted,
    Conflict,
    Fatal,
    RecordRejected,
    Throttled,
    Transient,
)

DV_ROOT = "https://contoso.crm.dynamics.com/api/data/v9.2/"
FO_ROOT = "https://contoso.operations.dynamics.com/data/"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJjb250b3NvIn0.c2lnbmF0dXJlc2ln"

Responder = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """A ServiceHttp over a scripted transport; sleeping advances the fake clock."""

    def __init__(
        self,
        script: list[Responder | httpx.Response | Exception],
        *,
        root: str = DV_ROOT,
        budget_seconds: float = 3600,
        max_retries: int = 8,
        service: str | None = "dataverse",
    ) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []
        self.clock = FakeClock()

        def handler(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            step = self.script.pop(0)
            if isinstance(step, Exception):
                raise step
            if isinstance(step, httpx.Response):
                return step
            return step(request)

        def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.clock.now += seconds

        self.client = httpx.Client(
            base_url=root,
            transport=httpx.MockTransport(handler),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        self.budget = TimeBudget(budget_seconds, clock=self.clock)
        self.limiter = AdaptiveLimiter(8, grow_after=2, cooldown=0.0, clock=self.clock)
        self.metrics = RequestMetrics()
        self.policy = RetryPolicy(
            max_retries=max_retries, base_delay=0.5, jitter=0.25, sleep=sleep, rng=random.Random(7)
        )
        self.http = ServiceHttp(
            self.client,
            service=service,  # type: ignore[arg-type]
            policy=self.policy,
            budget=self.budget,
            limiter=self.limiter,
            metrics=self.metrics,
        )


def ok_json(payload: object = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=payload if payload is not None else {"value": []})


def dv_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}}, headers=headers)


def test_success_first_time_and_metrics() -> None:
    h = Harness([ok_json({"value": [{"accountid": "1"}]})])
    resp = h.http.request("GET", "accounts", kind="read", params={"$select": "name"})
    assert resp.json() == {"value": [{"accountid": "1"}]}
    assert str(h.requests[0].url) == DV_ROOT + "accounts?$select=name"
    assert h.sleeps == []
    assert h.metrics.snapshot() == {"requests": 1, "throttled": 0, "retries": 0, "errors": 0, "kind.read": 1}


def test_transient_5xx_then_success_uses_exponential_backoff() -> None:
    h = Harness(
        [
            httpx.Response(503),
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(500),
            ok_json(),
        ]
    )
    h.http.request("PATCH", "accounts(1)", kind="single", json={"name": "x"})
    assert len(h.requests) == 4
    assert len(h.sleeps) == 3
    for i, delay in enumerate(h.sleeps):
        base = 0.5 * 2**i
        assert base * 0.75 <= delay <= base * 1.25
    snap = h.metrics.snapshot()
    assert snap["requests"] == 4 and snap["retries"] == 3 and snap["errors"] == 3 and snap["kind.single"] == 4
    # the JSON body is re-sent identically on every attempt
    assert {r.content for r in h.requests} == {b'{"name":"x"}'}


def test_retry_after_is_honoured_and_limiter_shrinks_on_a_concurrency_throttle() -> None:
    h = Harness(
        [
            dv_error(
                429,
                "0x80072322",
                "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
                {"Retry-After": "7"},
            ),
            dv_error(
                429,
                "0x80072326",
                "Number of concurrent requests exceeded the limit of 52.",
                {"Retry-After": "3"},
            ),
            ok_json(),
        ]
    )
    h.http.request("GET", "accounts", kind="read")
    assert h.sleeps == [7.0, 3.0]
    assert h.limiter.current == 4  # the request-count throttle paces; the concurrency one halves 8 -> 4
    snap = h.metrics.snapshot()
    assert snap["throttled"] == 2 and snap["errors"] == 0 and snap["retries"] == 2


def test_429_without_retry_after_backs_off() -> None:
    h = Harness([httpx.Response(429), ok_json()])
    h.http.request("GET", "accounts", kind="read")
    assert 0.375 <= h.sleeps[0] <= 0.625


def test_503_retry_after_http_date_honoured() -> None:
    h = Harness(
        [httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}), ok_json()],
        budget_seconds=10,
    )
    with pytest.raises(BudgetExhausted):
        h.http.request("GET", "accounts", kind="read")
    assert h.sleeps == []


def test_retries_run_out() -> None:
    h = Harness([httpx.Response(503)] * 4, max_retries=3)
    with pytest.raises(Transient):
        h.http.request("GET", "accounts", kind="read")
    assert len(h.requests) == 4 and len(h.sleeps) == 3


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed connection"),
        httpx.ReadError("reset"),
    ],
)
def test_network_errors_are_retried(exc: Exception) -> None:
    h = Harness([exc, ok_json()])
    assert h.http.request("GET", "accounts", kind="lookup").status_code == 200
    assert len(h.sleeps) == 1
    snap = h.metrics.snapshot()
    assert snap["errors"] == 1 and snap["kind.lookup"] == 2


def test_network_errors_exhausted_raise_transient() -> None:
    h = Harness([httpx.ConnectError("refused")] * 3, max_retries=2)
    with pytest.raises(Transient, match="ConnectError"):
        h.http.request("GET", "accounts", kind="read")


def test_unsupported_protocol_is_fatal() -> None:
    h = Harness([httpx.UnsupportedProtocol("ftp")])
    with pytest.raises(Fatal):
        h.http.request("GET", "accounts", kind="read")
    assert h.sleeps == []


@pytest.mark.parametrize(
    "bad",
    [
        httpx.Response(200, content=b'{"value": [{"a": 1}', headers={"Content-Type": "application/json"}),
        httpx.Response(
            200, content=b"<html><body>Maintenance</body></html>", headers={"Content-Type": "text/html"}
        ),
        httpx.Response(
            200,
            content=b"--batchresponse_1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n",
            headers={"Content-Type": "multipart/mixed; boundary=batchresponse_1"},
        ),
    ],
)
def test_bad_success_bodies_are_retried(bad: httpx.Response) -> None:
    h = Harness([bad, ok_json({"value": [{"a": 1}]})])
    resp = h.http.request("GET", "accounts", kind="read")
    assert resp.json() == {"value": [{"a": 1}]}
    assert len(h.sleeps) == 1
    assert h.metrics.snapshot()["errors"] == 1


def test_complete_multipart_and_204_are_accepted() -> None:
    body = b"--b1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--b1--\r\n"
    h = Harness(
        [
            httpx.Response(200, content=body, headers={"Content-Type": "multipart/mixed; boundary=b1"}),
            httpx.Response(204),
        ]
    )
    assert h.http.request("POST", "$batch", kind="batch", content=body).content == body
    assert h.http.request("PATCH", "accounts(1)", kind="single", json={}).status_code == 204
    assert h.sleeps == []


def test_401_is_auth_failed_without_retry() -> None:
    h = Harness([httpx.Response(401, text="")])
    with pytest.raises(AuthFailed):
        h.http.request("GET", "accounts", kind="read")
    assert len(h.requests) == 1 and h.sleeps == []


@pytest.mark.parametrize(
    ("response", "exc"),
    [
        (
            dv_error(
                400,
                "0x80060888",
                "Could not find a property named 'nme' on type 'Microsoft.Dynamics.CRM.account'.",
            ),
            RecordRejected,
        ),
        (dv_error(412, "", "A record with matching key values already exists."), Conflict),
        (
            httpx.Response(403, json={"error": {"code": "0x80040220", "message": "PrivilegeDenied"}}),
            AuthFailed,
        ),
    ],
)
def test_non_retryable_errors_are_raised(response: httpx.Response, exc: type[Exception]) -> None:
    h = Harness([response])
    with pytest.raises(exc):
        h.http.request("PATCH", "accounts(1)", kind="single", json={"nme": "x"})
    assert len(h.requests) == 1


def test_finops_error_decoding_uses_the_service() -> None:
    body = {
        "error": {
            "code": "",
            "message": "An error has occurred.",
            "innererror": {"message": "The record already exists.", "type": "AxODataWriteException"},
        }
    }
    h = Harness([httpx.Response(500, json=body)], root=FO_ROOT, service=None)
    assert h.http.service == "finops"
    with pytest.raises(Conflict):
        h.http.request("POST", "CustomersV3", kind="single", json={})


def test_ok_statuses_widen_success() -> None:
    h = Harness([httpx.Response(404, json={"error": {"code": "0x80040217", "message": "gone"}})])
    assert h.http.request("GET", "accounts(1)", kind="lookup", ok_statuses=(200, 404)).status_code == 404


def test_budget_checked_before_each_attempt() -> None:
    h = Harness([ok_json()], budget_seconds=5)
    h.clock.now += 6
    with pytest.raises(BudgetExhausted):
        h.http.request("GET", "accounts", kind="read")
    assert h.requests == []


def test_never_sleeps_past_the_budget() -> None:
    h = Harness([httpx.Response(429, headers={"Retry-After": "120"}), ok_json()], budget_seconds=60)
    with pytest.raises(BudgetExhausted) as info:
        h.http.request("GET", "accounts", kind="read")
    assert h.sleeps == []
    assert isinstance(info.value.__cause__, Throttled)


def test_attempt_timeout_capped_by_budget() -> None:
    seen: list[dict[str, float]] = []

    def capture(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return ok_json()

    h = Harness([capture], budget_seconds=3)
    h.client.timeout = httpx.Timeout(120, connect=10)
    h.http.request("GET", "accounts", kind="read")
    assert seen[0]["read"] == pytest.approx(3) and seen[0]["connect"] == pytest.approx(3)


def test_secrets_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h = Harness([httpx.Response(503), httpx.ConnectError("x"), ok_json()])
    h.http.request("GET", "accounts?$filter=name eq 'secret-value'", kind="read")
    text = " ".join(r.getMessage() for r in caplog.records if r.name == "shared.http")
    assert "Retrying GET" in text
    assert TOKEN not in text and "secret-value" not in text and "Bearer" not in text


def test_time_budget() -> None:
    clock = FakeClock()
    budget = TimeBudget(10, clock=clock)
    assert budget.remaining() == 10 and budget.spent == 0
    clock.now += 4
    assert budget.remaining() == 6 and budget.spent == 4
    budget.check()
    clock.now += 7
    assert budget.remaining() == 0
    with pytest.raises(BudgetExhausted):
        budget.check()


def test_limiter_shrinks_and_grows() -> None:
    clock = FakeClock()
    lim = AdaptiveLimiter(10, minimum=2, grow_after=3, cooldown=5.0, clock=clock)
    lim.on_throttled()
    assert lim.current == 5
    lim.on_throttled()  # within the cooldown: several in-flight 429s count once
    assert lim.current == 5
    clock.now += 6
    lim.on_throttled()
    assert lim.current == 2
    clock.now += 6
    lim.on_throttled()
    assert lim.current == 2  # not below minimum
    for _ in range(2):
        lim.on_success()
    assert lim.current == 2
    lim.on_success()
    assert lim.current == 3
    for _ in range(100):
        lim.on_success()
    assert lim.current == 10  # not above maximum


def test_limiter_blocks_beyond_current_limit() -> None:
    lim = AdaptiveLimiter(2)
    peak = 0
    active = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal peak, active
        with lim.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.01)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2
    assert lim.in_flight == 0


def test_limiter_slot_timeout() -> None:
    lim = AdaptiveLimiter(1)
    with lim.slot(), pytest.raises(BudgetExhausted), lim.slot(timeout=0.01):
        pass
    with lim.slot(timeout=0.01):
        assert lim.in_flight == 1


def test_limiter_validates() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimiter(1, minimum=2)


def test_metrics_thread_safe() -> None:
    m = RequestMetrics()

    def hammer() -> None:
        for _ in range(1000):
            m.record("bulk", 200, throttled=False, retried=False)
            m.record("batch", 429, throttled=True, retried=True)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert m.snapshot() == {
        "requests": 8000,
        "throttled": 4000,
        "retries": 4000,
        "errors": 0,
        "kind.bulk": 4000,
        "kind.batch": 4000,
    }


def test_retry_policy_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=5, jitter=0.5, rng=random.Random(1))
    assert all(0.5 <= policy.backoff(0) <= 1.5 for _ in range(50))
    assert all(policy.backoff(20) <= 5 for _ in range(50))


class _NoAuth(httpx.Auth):
    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        yield request


def test_build_client() -> None:
    settings = SimpleNamespace(http_timeout_seconds=90, ca_bundle=None, max_concurrency=4)
    client = build_client(settings, _NoAuth(), "https://contoso.crm.dynamics.com/api/data/v9.2")
    try:
        assert str(client.base_url) == DV_ROOT
        assert client.timeout.read == 90 and client.timeout.connect == 10
        assert client.headers["OData-Version"] == "4.0"
        assert client.headers["Accept"] == "application/json"
        assert client.follow_redirects is False
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 8
        assert pool._http2 is False
    finally:
        client.close()


def test_build_client_with_ca_bundle() -> None:
    settings = SimpleNamespace(http_timeout_seconds=30, ca_bundle=certifi.where(), max_concurrency=1)
    client = build_client(settings, _NoAuth(), FO_ROOT)
    try:
        assert str(client.base_url) == FO_ROOT
    finally:
        client.close()


def test_query_options_use_percent_20_and_keep_odata_punctuation() -> None:
    h = Harness([ok_json()])
    h.http.request(
        "GET",
        "accounts",
        kind="read",
        params={"$select": "name,accountnumber", "$filter": "name eq 'a+b&c=d'"},
    )
    assert h.requests[0].url.raw_path.decode() == (
        "/api/data/v9.2/accounts?$select=name,accountnumber&$filter=name%20eq%20'a%2Bb%26c%3Dd'"
    )
    assert h.requests[0].url.params["$filter"] == "name eq 'a+b&c=d'"


def test_response_json_reuses_the_document_parsed_by_the_body_check() -> None:
    from shared.http import response_json

    h = Harness([ok_json({"value": [{"accountid": "1"}]})])
    resp = h.http.request("GET", "accounts", kind="read")
    first = response_json(resp)
    assert first == {"value": [{"accountid": "1"}]}
    assert response_json(resp) is first  # parsed once, not per call
    # a response that did not go through ServiceHttp is parsed on demand
    assert response_json(httpx.Response(200, json={"a": 1})) == {"a": 1}


def test_limiter_learns_a_pace_from_throttling_and_pauses_for_retry_after() -> None:
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    lim = AdaptiveLimiter(8, grow_after=1000, cooldown=0.0, clock=clock, sleep=sleep)
    assert lim.rate is None
    clock.now += 5.0  # time before the first request (reading, mapping) is not part of the estimate
    for _ in range(30):  # a burst of 30 requests in 1 s, then the window is full
        with lim.slot():
            clock.now += 1 / 30
        lim.on_success()
    lim.on_throttled(retry_after=2.0)
    # 30 requests were allowed in (1 s burst + a wait of "2 s", i.e. 1.5 s on average after rounding
    # up to whole seconds): the window allows ~12 per second
    assert lim.rate == pytest.approx(12.0, rel=0.01)
    with lim.slot():
        pass
    assert sleeps == [pytest.approx(2.0)]  # nothing starts before Retry-After has passed
    for _ in range(5):
        with lim.slot():
            pass
    assert sleeps[1:] == [pytest.approx(1 / 12)] * 5  # then requests are spaced at the learned pace
    lim.on_throttled(retry_after=1.0)  # the paced rate overshot: step back 8%, probe more slowly
    assert lim.rate == pytest.approx(11.04, rel=0.01)
    lim.on_throttled(retry_after=None)  # throttled without a hint: halve the pace
    assert lim.rate == pytest.approx(5.52, rel=0.01)


def test_limiter_pace_grows_slowly_after_successes() -> None:
    clock = FakeClock()
    lim = AdaptiveLimiter(4, grow_after=10, cooldown=0.0, rate_growth=0.1, clock=clock, sleep=lambda s: None)
    for _ in range(4):
        with lim.slot():
            pass
        lim.on_success()
    clock.now += 1.0
    lim.on_throttled(retry_after=1.5)  # a fractional hint is taken as it is
    assert lim.rate == pytest.approx(1.6)
    for _ in range(10):
        lim.on_success()
    assert lim.rate == pytest.approx(1.76)
    lim.on_throttled(retry_after=1.0)
    assert lim.rate == pytest.approx(1.76 * 0.92)
    for _ in range(10):
        lim.on_success()
    assert lim.rate == pytest.approx(1.76 * 0.92)  # settled: grows half as often, by a quarter of the step
    for _ in range(10):
        lim.on_success()
    assert lim.rate == pytest.approx(1.76 * 0.92 * 1.025)


def test_a_request_count_throttle_paces_without_cutting_concurrency() -> None:
    clock = FakeClock()
    lim = AdaptiveLimiter(8, grow_after=1000, cooldown=0.0, clock=clock, sleep=lambda s: None)
    for _ in range(4):
        with lim.slot():
            pass
        lim.on_success()
    clock.now += 1.0
    lim.on_throttled(retry_after=1.5, count_limit=True)  # Dataverse 0x80072322: too many requests
    assert lim.current == 8 and lim.rate == pytest.approx(1.6)
    lim.on_throttled(retry_after=1.0)  # another limit (execution time, concurrency): fewer in flight
    assert lim.current == 4
