"""HTTP plumbing shared by the Dataverse and F&O clients: one retry loop, one place for limits.

``ServiceHttp.request`` is the only way the service clients talk to a service. Around each attempt it
checks the run's time budget, takes a slot from an adaptive concurrency limiter (halved on
throttling, grown back slowly), records metrics, and turns every failure into a typed ``SyncError``
via ``decode_error``. Throttling (``Retry-After`` honoured) and transient failures (5xx, network
errors, timeouts, truncated or non-JSON success bodies) are retried with exponential backoff and
jitter; everything else is raised for the caller to park the record or stop the run.

Retrying a POST is normally unsafe. It is accepted here because the callers only send idempotent
operations: Dataverse keyed upserts (PATCH to a key URL, UpsertMultiple with deterministic ids),
F&O creates whose replay fails with "already exists" and is then treated as an update, and ``$batch``
bodies made of those, whose replay converges to the same state.

The code is synchronous: the engine runs it from thread pools, so the limiter, budget and metrics are
thread-safe. Nothing here logs headers, bodies, tokens or query strings.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import quote, urlencode, urlsplit

import httpx

from shared.odata.errors import (
    REQUEST_COUNT_THROTTLE_CODES,
    BudgetExhausted,
    Fatal,
    SyncError,
    Throttled,
    Transient,
    decode_error,
)

__all__ = [
    "AdaptiveLimiter",
    "RequestMetrics",
    "RetryPolicy",
    "ServiceHttp",
    "TimeBudget",
    "build_client",
    "response_json",
]

log = logging.getLogger(__name__)

ServiceName = Literal["dataverse", "finops"]
REQUEST_KINDS = ("read", "bulk", "batch", "single", "lookup")
CONNECT_TIMEOUT_SECONDS = 10.0


class ClientSettings(Protocol):
    """The settings ``build_client`` reads (``shared.settings.Settings`` satisfies it)."""

    @property
    def http_timeout_seconds(self) -> float: ...

    @property
    def ca_bundle(self) -> str | None: ...

    @property
    def max_concurrency(self) -> int: ...


def build_client(settings: ClientSettings, auth: httpx.Auth, base_url: str) -> httpx.Client:
    """A keep-alive HTTP/1.1 client for one service root.

    ``base_url`` gets a trailing slash so relative URLs (``accounts(...)``) resolve under it, while
    absolute next/delta links are used as given. The pool allows twice the worker count so a slow
    response never starves the limiter's slots of connections. Redirects are not followed: neither
    service redirects API calls, and following one could send the bearer token elsewhere.
    """
    if settings.ca_bundle:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=settings.ca_bundle)
    else:
        verify = True
    pool = max(1, int(settings.max_concurrency) * 2)
    return httpx.Client(
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        auth=auth,
        timeout=httpx.Timeout(float(settings.http_timeout_seconds), connect=CONNECT_TIMEOUT_SECONDS),
        verify=verify,
        http1=True,
        http2=False,
        limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=60.0),
        headers={
            "OData-Version": "4.0",
            "OData-MaxVersion": "4.0",
            "Accept": "application/json",
            "User-Agent": "p2c-sync",
        },
        follow_redirects=False,
    )


@dataclass
class RetryPolicy:
    """How often and how long to wait between attempts; ``sleep`` and ``rng`` are injectable for tests."""

    max_retries: int = 8
    base_delay: float = 0.5
    max_delay: float = 60.0
    jitter: float = 0.25
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (0-based): exponential, capped, ± ``jitter`` fraction."""
        raw = min(self.max_delay, self.base_delay * (2.0 ** min(retry, 30)))
        spread = raw * self.jitter
        return max(0.0, min(self.max_delay, raw + self.rng.uniform(-spread, spread)))

    def delay_for(self, error: SyncError, retry: int) -> float:
        """The service's ``Retry-After`` when it sent one, else the backoff."""
        if error.retry_after is not None:
            return error.retry_after
        return self.backoff(retry)


class TimeBudget:
    """Wall-clock budget of one run (monotonic); shared by every request of the run."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = float(seconds)
        self._clock = clock
        self._start = clock()

    @property
    def spent(self) -> float:
        return max(0.0, self._clock() - self._start)

    def remaining(self) -> float:
        return max(0.0, self.seconds - self.spent)

    def check(self) -> None:
        """Raise ``BudgetExhausted`` once the budget is spent."""
        if self.remaining() <= 0:
            raise BudgetExhausted(f"Run time budget of {self.seconds:g} s is spent")


#: Once a paced rate has been throttled, the pace grows half as often ...
SETTLED_SLOWDOWN = 2
#: ... by a quarter of the step, after stepping back to this share of the rate that overshot. Each
#: overshoot costs a 429 and a whole-second Retry-After pause (20-30 requests at a typical allowed
#: rate), so a pace a few percent under the limit that rarely overshoots uses more of the limit than
#: one that hugs it: modelled on a sliding window, this pair keeps ~90% of the allowed rate.
SETTLED_GROWTH_DIVISOR = 4
SETTLED_STEP_BACK = 0.92


class AdaptiveLimiter:
    """Concurrency limit that halves on throttling and creeps back up by one after a run of successes,
    plus a request-rate pace learned from the throttling itself.

    Both services throttle per user and web server; backing off concurrency (not only sleeping) is
    what Microsoft's guidance asks for. Several requests in flight usually hit the limit together, so
    the limit is halved at most once per ``cooldown`` seconds.

    Concurrency alone cannot keep a request-count limit (6,000 per 5 minutes) from refusing requests:
    fast requests at concurrency 1 still exceed it. So a 429 also (a) pauses every new request until
    its ``Retry-After`` has passed, instead of letting each waiting thread discover the refusal, and
    (b) sets a pace: the requests that succeeded since the previous throttle, divided by the time they
    took plus ``Retry-After``, is the rate the service's window allowed. Requests are then spaced at
    that rate, which grows by ``rate_growth`` after every ``grow_after`` successes to probe for head
    room; a throttle while paced steps the rate back 8% and slows the probing down, so a run uses
    nearly the allowed rate with a throttle only now and then.
    """

    def __init__(
        self,
        maximum: int,
        minimum: int = 1,
        *,
        grow_after: int = 20,
        cooldown: float = 1.0,
        rate_growth: float = 0.02,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if maximum < 1 or minimum < 1 or minimum > maximum:
            raise ValueError("AdaptiveLimiter needs 1 <= minimum <= maximum")
        self.maximum = maximum
        self.minimum = minimum
        self.grow_after = max(1, grow_after)
        self.cooldown = cooldown
        self.rate_growth = max(0.0, rate_growth)
        self._clock = clock
        self._sleep = sleep
        self._limit = maximum
        self._in_flight = 0
        self._successes = 0
        self._last_shrink: float | None = None
        self._cond = threading.Condition()
        self._rate: float | None = None  # requests per second; None until a throttle teaches one
        self._next_start = 0.0
        self._resume_at = 0.0
        self._epoch_start: float | None = None  # first request start since the last throttle
        self._epoch_ok = 0
        self._rate_successes = 0
        self._settled = False

    @property
    def current(self) -> int:
        with self._cond:
            return self._limit

    @property
    def rate(self) -> float | None:
        """The learned pace in requests per second (None: not paced)."""
        with self._cond:
            return self._rate

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[None]:
        """Hold one slot for the duration of the block; waits for a free one and for the pace.

        ``timeout`` bounds the wait (the caller passes the remaining run budget); expiring raises
        ``BudgetExhausted``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._in_flight >= self._limit:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise BudgetExhausted("Run time budget spent while waiting for a request slot")
                self._cond.wait(left)
            self._in_flight += 1
            now = self._clock()
            start_at = max(now, self._resume_at)
            if self._epoch_start is None:
                self._epoch_start = start_at
            if self._rate is not None:
                start_at = max(start_at, self._next_start)
                self._next_start = start_at + 1.0 / self._rate
            wait = start_at - now
        try:
            if wait > 0:
                if deadline is not None and time.monotonic() + wait > deadline:
                    raise BudgetExhausted("Run time budget spent while waiting for the request pace")
                self._sleep(wait)
            yield
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def on_throttled(self, retry_after: float | None = None, *, count_limit: bool = False) -> None:
        """A 429: pause for ``retry_after`` and learn or lower the pace. ``count_limit``: the service
        said the request *count* was over (Dataverse 0x80072322); concurrency is then left alone,
        as halving it only slows a paced run down without sending fewer requests per window."""
        with self._cond:
            now = self._clock()
            self._successes = 0
            self._rate_successes = 0
            pause = retry_after if retry_after is not None and retry_after > 0 else 0.0
            if pause:
                self._resume_at = max(self._resume_at, now + pause)
            if self._last_shrink is not None and now - self._last_shrink < self.cooldown:
                return
            self._last_shrink = now
            if not count_limit:
                self._limit = max(self.minimum, self._limit // 2)
            if self._rate is None:
                if pause and self._epoch_ok >= 2 and self._epoch_start is not None:
                    # Retry-After is whole seconds, rounded up: the window frees half a second
                    # sooner on average, and counting the full figure under-estimates the rate
                    wait = pause - 0.5 if pause >= 1 and float(pause).is_integer() else pause
                    self._rate = self._epoch_ok / max(1e-3, (now - self._epoch_start) + wait)
            elif pause:
                # Throttled while paced: the probe went just past the limit. Step back a little and
                # probe more slowly from now on, so overshoots (and their 429s) stay rare.
                self._rate = max(0.1, self._rate * SETTLED_STEP_BACK)
                self._settled = True
            else:
                self._rate = max(0.1, self._rate / 2)
            self._epoch_start = None
            self._epoch_ok = 0

    def on_success(self) -> None:
        with self._cond:
            self._epoch_ok += 1
            if self._rate is not None and self.rate_growth > 0:
                self._rate_successes += 1
                every = self.grow_after * (SETTLED_SLOWDOWN if self._settled else 1)
                if self._rate_successes >= every:
                    self._rate_successes = 0
                    self._rate *= 1.0 + self.rate_growth / (SETTLED_GROWTH_DIVISOR if self._settled else 1)
            if self._limit >= self.maximum:
                self._successes = 0
                return
            self._successes += 1
            if self._successes >= self.grow_after:
                self._successes = 0
                self._limit += 1
                self._cond.notify_all()


class RequestMetrics:
    """Thread-safe per-attempt counters of one service in one run.

    ``requests`` counts attempts (retries included), ``throttled`` the throttled attempts,
    ``retries`` the attempts that were retries, ``errors`` attempts that failed for any reason other
    than throttling, and ``kind.<kind>`` attempts per request kind.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, kind: str, status: int | None, throttled: bool, retried: bool) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._counts[f"kind.{kind}"] += 1
            if throttled:
                self._counts["throttled"] += 1
            elif status is None or status >= 400:
                self._counts["errors"] += 1
            if retried:
                self._counts["retries"] += 1

    def record_error(self) -> None:
        """A failure found after the status was fine (e.g. a truncated body)."""
        with self._lock:
            self._counts["errors"] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            out = {"requests": 0, "throttled": 0, "retries": 0, "errors": 0}
            out.update(self._counts)
            return out


def _infer_service(client: httpx.Client) -> ServiceName:
    path = client.base_url.path.lower()
    return "dataverse" if "/api/data" in path else "finops"


# Timeouts (connect/read/write/pool), connection resets and peers closing mid-response.
_RETRYABLE_TRANSPORT_ERRORS = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
)


def with_query(url: str, params: Mapping[str, Any] | None) -> str:
    """Append query options percent-encoded with ``%20`` for spaces.

    httpx would form-encode (``+`` for a space); OData URI parsers built on ``Uri.UnescapeDataString``
    read ``+`` literally, so ``$filter=name eq 'a'`` must travel as ``name%20eq%20'a'``. A literal
    ``+`` in a value becomes ``%2B``. OData punctuation (``$ ' ( ) , : /``) stays readable.
    """
    if not params:
        return url
    query = urlencode([(str(k), str(v)) for k, v in params.items()], quote_via=quote, safe="$'(),:/@*")
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _safe_target(method: str, url: str) -> str:
    """Method and path only: query strings may carry filter values and skip tokens."""
    parts = urlsplit(url)
    return f"{method} {parts.path or url.split('?', 1)[0]}"


class ServiceHttp:
    """Retrying, budgeted, rate-adaptive requests to one service."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        service: ServiceName | None = None,
        policy: RetryPolicy | None = None,
        budget: TimeBudget,
        limiter: AdaptiveLimiter,
        metrics: RequestMetrics,
    ) -> None:
        self.client = client
        # Inferred from the base URL when not given: Dataverse roots are ``.../api/data/v9.x/``.
        self.service: ServiceName = service or _infer_service(client)
        self.policy = policy or RetryPolicy()
        self.budget = budget
        self.limiter = limiter
        self.metrics = metrics

    def request(
        self,
        method: str,
        url: str,
        *,
        kind: str,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        params: Mapping[str, Any] | None = None,
        ok_statuses: Container[int] = (200, 201, 204),
    ) -> httpx.Response:
        """Send one logical request, retrying throttled and transient failures.

        Returns the response when its status is in ``ok_statuses`` and its body is sound. Raises
        ``BudgetExhausted`` rather than start an attempt or a wait the budget cannot cover,
        ``AuthFailed`` on 401/403 (the auth flow has already refreshed its token once), and the
        decoded ``SyncError`` for anything else, or the last retryable error once retries run out.
        """
        if json is not None and content is not None:
            raise ValueError("Pass either json or content, not both")
        retry = 0
        target = _safe_target(method, url)
        full_url = with_query(url, params)
        while True:
            self.budget.check()
            status: int | None = None
            error: SyncError
            try:
                with self.limiter.slot(timeout=self.budget.remaining()):
                    response = self.client.request(
                        method,
                        full_url,
                        headers=dict(headers) if headers else None,
                        json=json,
                        content=content,
                        timeout=self._timeout(),
                    )
            except _RETRYABLE_TRANSPORT_ERRORS as exc:
                error = Transient(f"{type(exc).__name__} on {target}")
                error.__cause__ = exc
            except httpx.HTTPError as exc:
                # UnsupportedProtocol, LocalProtocolError, invalid URL...: our request is wrong.
                self.metrics.record(kind, None, throttled=False, retried=retry > 0)
                raise Fatal(f"{type(exc).__name__} on {target}") from exc
            else:
                status = response.status_code
                if status in ok_statuses:
                    body_error = _check_body(response)
                    if body_error is None:
                        self.metrics.record(kind, status, throttled=False, retried=retry > 0)
                        self.limiter.on_success()
                        return response
                    error = body_error
                else:
                    # 401 arrives here only after the auth flow's own refresh-and-resend; decode_error
                    # maps it (and 403) to AuthFailed with the service's reason.
                    error = decode_error(status, response.headers, response.content, self.service)

            throttled = isinstance(error, Throttled)
            self.metrics.record(kind, status, throttled=throttled, retried=retry > 0)
            if status is not None and status in ok_statuses:
                self.metrics.record_error()
            if throttled:
                self.limiter.on_throttled(
                    error.retry_after, count_limit=error.code in REQUEST_COUNT_THROTTLE_CODES
                )
            if not error.retryable or retry >= self.policy.max_retries:
                raise error
            delay = self.policy.delay_for(error, retry)
            remaining = self.budget.remaining()
            if delay >= remaining:
                raise BudgetExhausted(
                    f"Run time budget ends before the next attempt of {target} "
                    f"(wait {delay:.1f} s, {remaining:.1f} s left); last error: {error}"
                ) from error
            log.info(
                "Retrying %s on %s after %s (attempt %d of %d, waiting %.2f s)",
                target,
                self.service,
                type(error).__name__,
                retry + 1,
                self.policy.max_retries,
                delay,
            )
            self.policy.sleep(delay)
            retry += 1

    def _timeout(self) -> httpx.Timeout:
        """The client's timeouts, shortened so one attempt cannot outlive the run budget."""
        base = self.client.timeout
        left = max(0.001, self.budget.remaining())

        def cap(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=cap(base.connect), read=cap(base.read), write=cap(base.write), pool=cap(base.pool)
        )


_PARSED_JSON = "p2c.parsed_json"


def response_json(response: httpx.Response) -> Any:
    """The response's JSON body, parsed once: ``ServiceHttp`` already parsed it to check it is whole."""
    if _PARSED_JSON in response.extensions:
        return response.extensions[_PARSED_JSON]
    return response.json()


def _check_body(response: httpx.Response) -> SyncError | None:
    """A success status whose body is cut off or not what its Content-Type says is a transient fault.

    Gateways answer 200 with an HTML error page during maintenance, and a dropped connection can leave
    a JSON document or multipart body incomplete; retrying is the right response to both.
    """
    status = response.status_code
    body = response.content
    ctype = response.headers.get("content-type", "").lower()
    if status == 204 or not body.strip():
        return None
    if "text/html" in ctype:
        return Transient(f"HTTP {status} carried an HTML page instead of OData", status=status)
    if "json" in ctype:
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return Transient(f"HTTP {status} carried truncated or invalid JSON", status=status)
        # Keep the document: a 5,000-row page is the costliest thing a run parses, once is enough.
        response.extensions = {**response.extensions, _PARSED_JSON: parsed}
        return None
    if ctype.startswith("multipart/mixed"):
        from shared.odata.batch import boundary_of

        try:
            boundary = boundary_of(response.headers.get("content-type"))
        except SyncError:
            return Transient(f"HTTP {status} multipart body without a boundary", status=status)
        closing = b"--" + boundary.encode("utf-8") + b"--"
        if closing not in body[-(len(closing) + 256) :]:
            return Transient(f"HTTP {status} $batch response is truncated", status=status)
    return None
