"""The guard: ASGI middleware in front of each data-service stand-in.

Everything the real services do *around* the protocol lives here, so the Dataverse and F&O apps
stay pure protocol: bearer-token checks (signature, expiry, audience) with each service's 401,
service-protection throttling (429 + `Retry-After` with the documented codes and messages, see
apis.md A6 and B3), injected faults (for the chaos suite), artificial latency (for benchmarks) and
a request log the tests assert on.

The state objects (`RequestLog`, `Limits`, `Faults`, `Latency`) are plain thread-safe Python: the
test thread reconfigures them while the server threads' event loops read them. The per-request
path is a few dictionary look-ups and one short lock per object, because benchmarks push 100k+
requests through it.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from sandbox.entra import Entra, TokenError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVICES = ("dataverse", "finops")
FAULT_KINDS = (
    "429", "500", "503", "reset", "hang", "truncated", "html", "nonjson", "loop", "batch_mismatch",
)
#: Faults that let the app answer and then damage its answer (so a write may be committed).
BODY_FAULTS = frozenset({"truncated", "loop", "batch_mismatch"})
TRANSPORT_KEY = "sandbox.transport"  # set in the scope by the sandbox's uvicorn protocol (server.py)


def _check_service(service: str) -> str:
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}: expected one of {SERVICES}")
    return service


# ---------------------------------------------------------------------------------------- log
@dataclass(frozen=True, slots=True)
class LogEntry:
    """One request as the guard saw it. `kind`/`records` come from the app's `x-sandbox-*` headers."""

    service: str
    method: str
    path: str
    kind: str
    records: int
    status: int
    throttled: bool
    fault: str | None


class RequestLog:
    """Append-only request log; tests and benchmarks count requests by service, kind and status.

    `reset` starts a new epoch: a request that was already in flight (a hang, a slow read from the
    previous test) is not logged when it finishes, so counts after a reset only see new requests.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LogEntry] = []
        self.epoch = 0

    def append(self, entry: LogEntry, epoch: int | None = None) -> None:
        """Record `entry`; with `epoch` (read when the request arrived) only if no reset came since."""
        with self._lock:
            if epoch is None or epoch == self.epoch:
                self._entries.append(entry)

    def entries(self) -> list[LogEntry]:
        with self._lock:
            return list(self._entries)

    def reset(self) -> None:
        with self._lock:
            self._entries = []
            self.epoch += 1

    def count(self, service: str | None = None, kind: str | None = None, status: int | None = None) -> int:
        with self._lock:
            entries = self._entries
            return sum(
                1
                for e in entries
                if (service is None or e.service == service)
                and (kind is None or e.kind == kind)
                and (status is None or e.status == status)
            )


# ------------------------------------------------------------------------------------- limits
@dataclass(frozen=True)
class LimitConfig:
    """Service protection limits per user per web server (apis.md A6 / B3 defaults)."""

    requests: int = 6000
    window_s: float = 300.0
    concurrent: int = 52
    execution_s: float = 1200.0


@dataclass(frozen=True)
class Throttle:
    """A refusal: which limit was hit (`requests`, `execution`, `concurrent`) and the Retry-After seconds."""

    measure: str
    retry_after: int
    config: LimitConfig


class _Window:
    """Sliding-window counters for one service (all times from the `Limits` clock)."""

    __slots__ = ("config", "exec_total", "executions", "in_flight", "starts")

    def __init__(self, config: LimitConfig) -> None:
        self.config = config
        self.starts: deque[float] = deque()
        self.executions: deque[tuple[float, float]] = deque()  # (finished at, duration)
        self.exec_total = 0.0
        self.in_flight = 0

    def expire(self, now: float) -> None:
        horizon = now - self.config.window_s
        starts = self.starts
        while starts and starts[0] <= horizon:
            starts.popleft()
        executions = self.executions
        while executions and executions[0][0] <= horizon:
            self.exec_total -= executions.popleft()[1]
        if not executions:
            self.exec_total = 0.0  # no float drift once the window empties


def _retry(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class Limits:
    """Per-service request, execution-time and concurrency limits; unconfigured services are unlimited.

    Concurrency overruns fail at once; request-count and execution-time overruns fail while the
    sliding window is over its limit, with `Retry-After` = seconds until enough of the window has
    slid out. Refused requests are not counted (they did no work on the server).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, _Window] = {}

    def configure(
        self,
        service: str,
        requests: int = 6000,
        window_s: float = 300.0,
        concurrent: int = 52,
        execution_s: float = 1200.0,
    ) -> None:
        config = LimitConfig(requests, window_s, concurrent, execution_s)
        with self._lock:
            self._windows[_check_service(service)] = _Window(config)

    def clear(self) -> None:
        with self._lock:
            self._windows = {}

    def config(self, service: str) -> LimitConfig | None:
        window = self._windows.get(service)
        return window.config if window else None

    def admit(self, service: str) -> tuple[_Window | None, Throttle | None]:
        """Count one request in; returns (window to `release` later, or a Throttle to send instead)."""
        window = self._windows.get(service)
        if window is None:
            return None, None
        config = window.config
        with self._lock:
            now = self._clock()
            window.expire(now)
            if window.in_flight >= config.concurrent:
                return None, Throttle("concurrent", 1, config)
            if len(window.starts) >= config.requests:
                return None, Throttle("requests", _retry(window.starts[0] + config.window_s - now), config)
            if window.exec_total >= config.execution_s:
                excess = window.exec_total - config.execution_s
                freed = 0.0
                retry_at = now
                for finished, duration in window.executions:
                    freed += duration
                    retry_at = finished + config.window_s
                    if freed > excess:
                        break
                return None, Throttle("execution", _retry(retry_at - now), config)
            window.starts.append(now)
            window.in_flight += 1
        return window, None

    def release(self, window: _Window, started: float) -> None:
        """The admitted request finished: it leaves the concurrency count and adds its duration."""
        with self._lock:
            now = self._clock()
            window.in_flight -= 1
            duration = max(0.0, now - started)
            window.executions.append((now, duration))
            window.exec_total += duration

    def now(self) -> float:
        return self._clock()


# ------------------------------------------------------------------------------------- faults
class Faults:
    """Random and scripted fault injection on data-service requests.

    `configure` sets a probability of a random fault (drawn from `kinds`, seeded, so a chaos run
    is reproducible); `script` queues exact faults: each request takes the first queued step
    matching its service and kind (`"*"` matches any kind), so steps fire in order, then traffic
    is normal again. Scripted steps win over random faults.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._script: list[tuple[str, str, str]] = []
        self._probability = 0.0
        self._kinds: tuple[str, ...] = FAULT_KINDS
        self._services: frozenset[str] = frozenset(SERVICES)
        self._rng = random.Random(0)
        self.hang_s = 30.0
        self.retry_after_s = 1
        self._active = False

    def configure(
        self,
        probability: float,
        kinds: Iterable[str] = FAULT_KINDS,
        seed: int | None = None,
        services: Iterable[str] = SERVICES,
        hang_s: float = 30.0,
        retry_after_s: int = 1,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        chosen = tuple(kinds)
        for kind in chosen:
            _check_fault(kind)
        if probability > 0 and not chosen:
            raise ValueError("kinds must not be empty when probability > 0")
        with self._lock:
            self._probability = probability
            self._kinds = chosen
            self._services = frozenset(_check_service(s) for s in services)
            self._rng = random.Random(seed)
            self.hang_s = hang_s
            self.retry_after_s = retry_after_s
            self._active = bool(self._script) or probability > 0

    def script(self, steps: Iterable[tuple[str, str, str]]) -> None:
        """Queue (service, request kind or "*", fault kind) steps after any already queued."""
        checked = [(_check_service(s), k, _check_fault(f)) for s, k, f in steps]
        with self._lock:
            self._script.extend(checked)
            self._active = True

    def pending(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._script)

    def clear(self) -> None:
        with self._lock:
            self._script = []
            self._probability = 0.0
            self._kinds = FAULT_KINDS
            self._services = frozenset(SERVICES)
            self.hang_s = 30.0
            self.retry_after_s = 1
            self._active = False

    def pick(self, service: str, kind: str) -> str | None:
        """The fault to inject on this request, if any (consumes a scripted step)."""
        if not self._active:
            return None
        with self._lock:
            for i, (s, k, fault) in enumerate(self._script):
                if s == service and k in ("*", kind):
                    del self._script[i]
                    self._active = bool(self._script) or self._probability > 0
                    return fault
            if self._probability > 0 and service in self._services and self._rng.random() < self._probability:
                return self._rng.choice(self._kinds)
        return None


def _check_fault(kind: str) -> str:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}: expected one of {FAULT_KINDS}")
    return kind


# ------------------------------------------------------------------------------------ latency
class Latency:
    """Artificial server time per service: `fixed_ms + per_record_ms * records` per response."""

    def __init__(self) -> None:
        self._settings: dict[str, tuple[float, float]] = {}

    def configure(self, service: str, fixed_ms: float = 0.0, per_record_ms: float = 0.0) -> None:
        settings = dict(self._settings)
        settings[_check_service(service)] = (fixed_ms, per_record_ms)
        self._settings = settings  # swap whole dict: readers never see a half-updated one

    def clear(self) -> None:
        self._settings = {}

    def delay_s(self, service: str, records: int) -> float:
        setting = self._settings.get(service)
        if setting is None:
            return 0.0
        return (setting[0] + setting[1] * records) / 1000.0


# ------------------------------------------------------------------------------ classification
def classify(method: str, path: str) -> str:
    """Predict the request kind before the app runs (fault scripts match on it).

    Uses the app vocabulary (`read`, `single`, `batch`, `bulk`, `metadata`); the log records the
    app's own `x-sandbox-kind` when it answers.
    """
    if path.endswith("$batch"):
        return "batch"
    if path.endswith("$metadata"):
        return "metadata"
    if method == "POST" and path.endswith(("CreateMultiple", "UpdateMultiple", "UpsertMultiple")):
        return "bulk"
    if method == "GET":
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return "single" if last.endswith(")") else "read"
    return "single"


# ------------------------------------------------------------------------------------- bodies
_JSON = b"application/json; charset=utf-8"

DATAVERSE_THROTTLE = {
    "requests": (
        "0x80072322",
        "Number of requests exceeded the limit of {requests} over time window of {window} seconds.",
    ),
    "execution": (
        "0x80072321",
        "Combined execution time of incoming requests exceeded limit of {execution_ms}  milliseconds over "
        "time window of {window} seconds. Decrease number of concurrent requests or reduce the duration of "
        "requests and try again later.",
    ),
    "concurrent": ("0x80072326", "Number of concurrent requests exceeded the limit of {concurrent}."),
}
FINOPS_THROTTLE = {
    "requests": (
        "Number of requests exeeded the limit of {requests} over the time window of {window} seconds."
    ),
    "execution": (
        "Combined execution time of incoming requests exceeded limit of {execution_s} seconds over time "
        "window of {window} seconds. Decrease number of concurrent requests or reduce the duration of "
        "requests and try again later."
    ),
    "concurrent": "Number of concurrent requests exceeded the limit of {concurrent}.",
}
HTML_502 = (
    b"<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" "
    b"\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\r\n<html xmlns=\"http://www.w3.org/1999/xhtml\">"
    b"<head><title>502 - Web server received an invalid response while acting as a gateway or proxy server."
    b"</title></head><body><div id=\"header\"><h1>Server Error</h1></div><div id=\"content\">"
    b"<fieldset><h2>502 - Web server received an invalid response while acting as a gateway or proxy server."
    b"</h2><h3>There is a problem with the page you are looking for, and it cannot be displayed. When the "
    b"Web server (while acting as a gateway or proxy) contacted the upstream content server, it received an "
    b"invalid response from the content server.</h3></fieldset></div></body></html>"
)
HTML_SIGN_IN = (
    b"<!DOCTYPE html><html dir=\"ltr\" lang=\"en\"><head><title>Sign in to your account</title></head>"
    b"<body><form name=\"f1\" method=\"post\" action=\"https://login.microsoftonline.com/\"></form></body></html>"
)


def _fmt_int(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def throttle_body(service: str, throttle: Throttle) -> bytes:
    """The service's 429 body for a limit, with the configured numbers in the documented messages."""
    c = throttle.config
    values = {
        "requests": c.requests,
        "window": _fmt_int(c.window_s),
        "concurrent": c.concurrent,
        "execution_s": _fmt_int(c.execution_s),
        "execution_ms": f"{round(c.execution_s * 1000):,}",
    }
    if service == "dataverse":
        code, template = DATAVERSE_THROTTLE[throttle.measure]
        return json.dumps({"error": {"code": code, "message": template.format(**values)}}).encode()
    message = FINOPS_THROTTLE[throttle.measure].format(**values)
    return json.dumps({"error": {"code": "", "message": message}}).encode()


def error_body(service: str, status: int) -> bytes:
    """Generic 500/503 bodies in each service's error shape."""
    if service == "dataverse":
        message = "An unexpected error occurred." if status == 500 else "The service is unavailable."
        code = "0x80040216" if status == 500 else ""
        return json.dumps({"error": {"code": code, "message": message}}).encode()
    message = "An error has occurred." if status == 500 else "The service is unavailable."
    return json.dumps({"error": {"code": "", "message": message}}).encode()


def unauthorized(
    service: str, entra: Entra, audience: str, err: TokenError | None
) -> tuple[list[Any], bytes]:
    """401 headers and body. Dataverse answers with an empty body and the challenge header; F&O
    (an ASP.NET Web API host) with its JSON `Message` body. Both carry `WWW-Authenticate`."""
    challenge = (
        f'Bearer authorization_uri="{entra.authority_url}/{entra.tenant_id}/oauth2/authorize", '
        f'resource_id="{audience}"'
    )
    if err is not None:
        description = err.reason.replace('"', "'")
        challenge = f'Bearer error="invalid_token", error_description="{description}", ' + challenge[7:]
    headers: list[Any] = [(b"www-authenticate", challenge.encode())]
    if service == "dataverse":
        return headers, b""
    return headers, json.dumps({"Message": "Authorization has been denied for this request."}).encode()


# -------------------------------------------------------------------------------------- guard
class Guard:
    """ASGI middleware for one data service; all collaborators are shared with the `Sandbox`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        service: str,
        audience: str,
        entra: Entra,
        limits: Limits,
        faults: Faults,
        latency: Latency,
        log: RequestLog,
    ) -> None:
        self.app = app
        self.service = _check_service(service)
        self.audience = audience.rstrip("/")
        self.entra = entra
        self.limits = limits
        self.faults = faults
        self.latency = latency
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        predicted = classify(method, path)
        epoch = self.log.epoch

        def log(kind: str, records: int, status: int, throttled: bool, fault: str | None) -> None:
            # Called *before* the last byte goes out, so a client that has its response always
            # finds the request in the log.
            entry = LogEntry(self.service, method, path, kind, records, status, throttled, fault)
            self.log.append(entry, epoch)

        token = _bearer(scope)
        try:
            if token is None:
                raise LookupError
            self.entra.validate(token, self.audience)
        except (LookupError, TokenError) as exc:
            err = exc if isinstance(exc, TokenError) else None
            headers, body = unauthorized(self.service, self.entra, self.audience, err)
            ctype = b"application/json; charset=utf-8" if body else b"text/plain"
            log(predicted, 0, 401, False, None)
            await _respond(send, 401, body, ctype, headers)
            return

        window, throttle = self.limits.admit(self.service)
        if throttle is not None:
            headers = [(b"retry-after", str(throttle.retry_after).encode())]
            log(predicted, 0, 429, True, None)
            await _respond(send, 429, throttle_body(self.service, throttle), _JSON, headers)
            return
        started = self.limits.now()
        try:
            fault = self.faults.pick(self.service, predicted)
            if fault is not None and fault not in BODY_FAULTS:
                chosen, throttled = fault, fault == "429"

                def log_fault(status: int) -> None:
                    log(predicted, 0, status, throttled, chosen)

                await self._inject(chosen, scope, send, log_fault)
                return
            await self._forward(scope, receive, send, predicted, fault, log)
        finally:
            if window is not None:
                self.limits.release(window, started)

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        predicted: str,
        fault: str | None,
        log: Callable[[str, int, int, bool, str | None], None],
    ) -> None:
        """Run the app, applying latency at response start; body faults rewrite the finished answer.

        "truncated" cuts the body in half, "loop" points `@odata.nextLink` back at the request
        itself, "batch_mismatch" drops the last part of a `$batch` answer.
        """
        state: dict[str, Any] = {"status": 500, "kind": predicted, "records": 0, "logged": False}
        held: list[Message] = []
        service, latency, truncate = self.service, self.latency, fault is not None

        def log_once() -> None:
            if not state["logged"]:
                state["logged"] = True
                log(state["kind"], state["records"], state["status"], False, fault)

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"x-sandbox-kind":
                        state["kind"] = value.decode("latin-1")
                    elif name == b"x-sandbox-records":
                        state["records"] = int(value or b"0")
                delay = latency.delay_s(service, state["records"])
                if delay > 0:
                    await asyncio.sleep(delay)
                if truncate:
                    held.append(message)
                    return
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                log_once()
                if truncate:
                    held.append(message)
                    await _send_rewritten(send, held, fault or "truncated", _request_url(scope))
                    return
            elif truncate:
                held.append(message)
                return
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            log_once()  # the app failed or the client went away before the last body message

    async def _inject(self, fault: str, scope: Scope, send: Send, log: Callable[[int], None]) -> None:
        """Send the fault instead of the app's answer; `log` gets the status (0: no response)."""
        if fault == "429":
            config = self.limits.config(self.service) or LimitConfig()
            body = throttle_body(self.service, Throttle("requests", self.faults.retry_after_s, config))
            headers = [(b"retry-after", str(self.faults.retry_after_s).encode())]
            log(429)
            await _respond(send, 429, body, _JSON, headers)
        elif fault in ("500", "503"):
            status = int(fault)
            log(status)
            await _respond(send, status, error_body(self.service, status), _JSON, [])
        elif fault == "html":
            log(502)
            await _respond(send, 502, HTML_502, b"text/html", [])
        elif fault == "nonjson":
            log(200)
            await _respond(send, 200, HTML_SIGN_IN, b"text/html; charset=utf-8", [])
        elif fault == "hang":
            try:
                await asyncio.sleep(self.faults.hang_s)
            finally:
                log(0)  # logged when the server gives up (or shuts down)
            await _abort(scope)
        else:  # "reset"
            log(0)
            await _abort(scope)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            text: str = value.decode("latin-1")
            if text[:7].lower() == "bearer ":
                return text[7:].strip() or None
            return None
    return None


async def _respond(send: Send, status: int, body: bytes, ctype: bytes, headers: list[Any]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_rewritten(send: Send, held: list[Message], fault: str, url: str) -> None:
    start, bodies = held[0], held[1:]
    body = b"".join(m.get("body", b"") for m in bodies)
    ctype = b""
    for name, value in start.get("headers", ()):
        if name == b"content-type":
            ctype = value
    if fault == "loop":
        out = _looping(body, url)
    elif fault == "batch_mismatch":
        out = _drop_last_part(body, ctype.decode("latin-1"))
    else:
        out = body[: max(0, len(body) // 2 - 1)] if len(body) > 1 else b"{"
    headers = [(k, v) for k, v in start.get("headers", ()) if k != b"content-length"]
    headers.append((b"content-length", str(len(out)).encode()))
    await send({**start, "headers": headers})
    await send({"type": "http.response.body", "body": out})


def _request_url(scope: Scope) -> str:
    host = "127.0.0.1"
    for name, value in scope.get("headers", ()):
        if name == b"host":
            host = value.decode("latin-1")
    path = scope.get("raw_path") or scope.get("path", "").encode()
    query = scope.get("query_string", b"")
    text = f"https://{host}{path.decode('latin-1')}"
    return f"{text}?{query.decode('latin-1')}" if query else text


def _looping(body: bytes, url: str) -> bytes:
    """A page whose next link is the page itself (a server-side paging bug)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body
    if isinstance(doc, dict):
        doc.pop("@odata.deltaLink", None)
        doc["@odata.nextLink"] = url
        return json.dumps(doc).encode()
    return body


def _drop_last_part(body: bytes, content_type: str) -> bytes:
    """A `$batch` answer that lost its last part (parts no longer match the request)."""
    marker = "boundary="
    if marker not in content_type:
        return body
    boundary = content_type.split(marker, 1)[1].split(";", 1)[0].strip().strip('"').encode()
    delimiter = b"--" + boundary
    pieces = body.split(delimiter)
    # pieces: preamble, part1, ..., partN, closing "--\r\n"
    if len(pieces) <= 3:
        return body
    kept = [*pieces[:-2], pieces[-1]]
    return delimiter.join(kept)


async def _abort(scope: Scope) -> None:
    """Drop the connection without a response (a TCP reset as the client sees it)."""
    transport = scope.get(TRANSPORT_KEY)
    if transport is None:
        raise ConnectionResetError("sandbox fault: connection reset")
    transport.abort()
    # Let the server notice the disconnect so it does not try to send its own 500.
    for _ in range(3):
        await asyncio.sleep(0)
