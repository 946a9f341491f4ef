"""Structured run events and metrics for Application Insights (OpenTelemetry).

Why this module exists: the alert rules in ``bicep/alerts/*.kql`` query exactly the names written
here, so the names live in one place (the constants below) and ``docs/operations.md`` documents them.

What lands where (Azure Monitor OpenTelemetry exporter, workspace-based Application Insights):

* ``emit_run`` writes ONE log record per run on logger ``p2c.run`` with message ``p2c.run``; every
  field is a custom dimension (``extra=``) and becomes a string in ``AppTraces.Properties``
  (``traces.customDimensions`` in the classic schema). The exporter also adds
  ``Properties.logger_name`` (the OTel instrumentation scope = the Python logger name).
* counters, the histogram and the gauge become rows of ``AppMetrics`` (``Name``, ``Sum``,
  ``ItemCount``, ``Properties``) — counters are exported with DELTA temporality, so ``sum(Sum)``
  over a window is the total in that window.

Who configures the exporter: inside Azure Functions the Python worker calls
``configure_azure_monitor()`` itself when ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` (newer
workers) or ``PYTHON_ENABLE_OPENTELEMETRY`` (older workers) is ``true`` and host.json has
``"telemetryMode": "OpenTelemetry"``; configuring twice is unsupported. Outside the worker (CLI,
demo, bench) ``Telemetry`` configures it once per process, lazily, and only when a connection
string is given. Without a connection string and outside the worker, events still go to Python
logging and metrics to whatever ``MeterProvider`` is installed (the no-op one by default).

No secrets: only counts, names and ids are emitted; the free-text ``message`` is scrubbed of
anything that looks like a credential before it leaves the process.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal, get_args

from opentelemetry import metrics

__all__ = [
    "COUNTER_METRICS",
    "METRIC_CHECKPOINT_LAG",
    "METRIC_DIMENSIONS",
    "METRIC_RECORD_ERRORS",
    "METRIC_RUN_DURATION",
    "RECORD_ERROR_DIMENSIONS",
    "RECORD_ERROR_EVENT",
    "RUN_EVENT",
    "RUN_EVENT_DIMENSIONS",
    "Mode",
    "Outcome",
    "RecordErrorEvent",
    "RunEvent",
    "Telemetry",
    "Trigger",
    "scrub",
]

Trigger = Literal["timer", "http", "queue", "cli", "demo"]
Mode = Literal["incremental", "full"]
Outcome = Literal["succeeded", "partial", "failed", "skipped"]
RecordStatus = Literal["retrying", "parked", "failed"]

#: Logger name and message of the per-run event (AppTraces: ``Message == "p2c.run"``).
RUN_EVENT: Final = "p2c.run"
#: Logger name and message of the per-record error event.
RECORD_ERROR_EVENT: Final = "p2c.record_error"

#: ``RunEvent.message`` is exported under this dimension: ``message`` is a reserved attribute of
#: ``logging.LogRecord`` and cannot be passed through ``extra=``.
MESSAGE_DIMENSION: Final = "run_message"

#: Counter name -> ``RunEvent`` field it adds.
COUNTER_METRICS: Final[Mapping[str, str]] = {
    "p2c.records.read": "read",
    "p2c.records.written": "written",
    "p2c.records.unchanged": "unchanged",
    "p2c.records.failed": "failed",
    "p2c.records.deferred": "deferred",
    "p2c.records.parked": "parked",
    "p2c.requests": "requests",
    "p2c.requests.throttled": "throttled",
    "p2c.requests.retries": "retries",
}
METRIC_RUN_DURATION: Final = "p2c.run.duration"
METRIC_CHECKPOINT_LAG: Final = "p2c.checkpoint.lag"
METRIC_RECORD_ERRORS: Final = "p2c.records.errors"
#: Attributes on every run metric (bounded cardinality: never run ids or record keys).
METRIC_DIMENSIONS: Final = ("template", "company", "outcome", "trigger")

_SECRET_PATTERNS: Final = (
    # key=value / key: value pairs whose key names a credential
    re.compile(
        r"(?i)([A-Za-z0-9_.-]{0,40}(?:secret|password|passwd|pwd|token|accountkey|sharedaccesskey|"
        r"apikey|api[_-]key|functions-key))"
        r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s;&,]+)"
    ),
    re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"),
    # URL query credentials: SAS signatures, function keys
    re.compile(r"(?i)([?&](?:sig|code)=)[^&\s\"']+"),
    # JWTs (three base64url segments starting with eyJ)
    re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"),
)
_MAX_MESSAGE: Final = 2000


def scrub(text: str) -> str:
    """Remove anything that looks like a credential from free text and cap its length.

    The patterns are bounded (no nested or unbounded prefixes) so long texts scrub in linear time."""
    out = _SECRET_PATTERNS[0].sub(lambda m: f"{m.group(1)}{m.group(2)}***", text[: _MAX_MESSAGE * 4])
    out = _SECRET_PATTERNS[1].sub(lambda m: f"{m.group(1)} ***", out)
    out = _SECRET_PATTERNS[2].sub(lambda m: f"{m.group(1)}***", out)
    out = _SECRET_PATTERNS[3].sub("***", out)
    return out[:_MAX_MESSAGE]


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")


@dataclass(frozen=True)
class RunEvent:
    """What one sync run did — the payload of the ``p2c.run`` event and the run metrics."""

    template: str
    company: str
    run_id: str
    # typed str (callers carry plain strings); __post_init__ enforces the Trigger/Mode/Outcome values
    trigger: str
    mode: str
    outcome: str
    read: int = 0
    written: int = 0
    unchanged: int = 0
    failed: int = 0
    deferred: int = 0
    parked: int = 0
    requests: int = 0
    throttled: int = 0
    retries: int = 0
    duration_s: float = 0.0
    #: seconds between now and the newest source change the checkpoint covers (None: unknown)
    checkpoint_lag_s: float | None = None
    message: str = ""

    def __post_init__(self) -> None:
        if not self.template:
            raise ValueError("template is required")
        _check_choice("trigger", self.trigger, get_args(Trigger))
        _check_choice("mode", self.mode, get_args(Mode))
        _check_choice("outcome", self.outcome, get_args(Outcome))
        for name in (*COUNTER_METRICS.values(), "duration_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")

    def dimensions(self) -> dict[str, str | int | float]:
        """Custom dimensions of the log record: every field, ``message`` as ``run_message``."""
        dims: dict[str, str | int | float] = {}
        for key, value in asdict(self).items():
            if value is None:  # OTel drops None attributes with a warning; omit instead
                continue
            if key == "message":
                dims[MESSAGE_DIMENSION] = scrub(value)
            elif isinstance(value, float):
                dims[key] = round(value, 3)
            else:
                dims[key] = value
        return dims

    def metric_attributes(self) -> dict[str, str]:
        return {
            "template": self.template,
            "company": self.company,
            "outcome": self.outcome,
            "trigger": self.trigger,
        }


@dataclass(frozen=True)
class RecordErrorEvent:
    """One record that failed, was deferred again or was parked (``p2c.record_error``)."""

    template: str
    company: str
    run_id: str
    source_key: str
    error: str  # SyncError class name: RecordRejected, DependencyMissing, MappingError, ...
    status: str  # RecordStatus
    attempts: int = 1
    field: str = ""
    code: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        _check_choice("status", self.status, get_args(RecordStatus))

    def dimensions(self) -> dict[str, str | int | float]:
        return {
            "template": self.template,
            "company": self.company,
            "run_id": self.run_id,
            "source_key": self.source_key[:256],
            "error": self.error,
            "status": self.status,
            "attempts": self.attempts,
            "field": self.field,
            "code": self.code,
            "error_message": scrub(self.message),
        }


#: Dimension names of each event, as the alert queries and docs/operations.md use them.
RUN_EVENT_DIMENSIONS: Final = tuple(
    MESSAGE_DIMENSION if name == "message" else name for name in RunEvent.__dataclass_fields__
)
RECORD_ERROR_DIMENSIONS: Final = (
    "template",
    "company",
    "run_id",
    "source_key",
    "error",
    "status",
    "attempts",
    "field",
    "code",
    "error_message",
)

_configure_lock = threading.Lock()
_configured_process = False

ConfigureFn = Callable[..., None]


def _default_configure(**kwargs: Any) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    configure_azure_monitor(**kwargs)


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes"}


def _worker_owns_telemetry(env: Mapping[str, str]) -> bool:
    """The Functions Python worker calls configure_azure_monitor() itself when one of these is true
    (``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY`` since worker PR #1621, ``PYTHON_ENABLE_OPENTELEMETRY``
    before it)."""
    return _truthy(env.get("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY")) or _truthy(
        env.get("PYTHON_ENABLE_OPENTELEMETRY")
    )


def _sdk_meter_provider_installed() -> bool:
    """Someone (the worker, a test, the host app) already installed a real MeterProvider."""
    provider = metrics.get_meter_provider()
    return type(provider).__module__.startswith("opentelemetry.sdk")


class Telemetry:
    """Emits run events and metrics. Build one per process or per run and pass it in.

    ``meter`` and ``logger_factory`` are injectable for tests; ``configure`` replaces
    ``configure_azure_monitor`` (tests). ``worker_managed`` says the Functions worker already
    configured Azure Monitor, in which case this class never configures it again; ``None`` (the
    default) decides at first use from the process environment and from whether an SDK
    ``MeterProvider`` is already installed — so ``Telemetry(connection_string)`` built inside a
    function never double-instruments.
    """

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        meter: metrics.Meter | None = None,
        worker_managed: bool | None = None,
        configure: ConfigureFn | None = None,
        logger_factory: Callable[[str], logging.Logger] = logging.getLogger,
    ) -> None:
        self._connection_string = connection_string or None
        self._meter = meter
        self._worker_managed = worker_managed
        self._configure = configure or _default_configure
        self._run_log = logger_factory(RUN_EVENT)
        self._error_log = logger_factory(RECORD_ERROR_EVENT)
        self._lock = threading.Lock()
        self._instruments: dict[str, Any] | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        meter: metrics.Meter | None = None,
        configure: ConfigureFn | None = None,
    ) -> Telemetry:
        """Build from app settings: the connection string and whether the worker owns OTel."""
        return cls(
            env.get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
            meter=meter,
            worker_managed=_worker_owns_telemetry(env),
            configure=configure,
        )

    @property
    def exporting(self) -> bool:
        """True when events leave the process (the worker or this class configured Azure Monitor)."""
        return self._is_worker_managed() or self._connection_string is not None

    def _is_worker_managed(self) -> bool:
        if self._worker_managed is None:
            self._worker_managed = _worker_owns_telemetry(os.environ) or _sdk_meter_provider_installed()
        return self._worker_managed

    def _ensure(self) -> dict[str, Any]:
        if self._instruments is not None:
            return self._instruments
        with self._lock:
            if self._instruments is None:
                self._configure_once()
                for log in (self._run_log, self._error_log):
                    # events are INFO; a CLI root logger at WARNING must not swallow them
                    if log.getEffectiveLevel() > logging.INFO:
                        log.setLevel(logging.INFO)
                meter = self._meter or metrics.get_meter("p2c")
                inst: dict[str, Any] = {
                    name: meter.create_counter(
                        name,
                        unit="{record}" if "records" in name else "{request}",
                        description=f"RunEvent.{fld} summed over runs",
                    )
                    for name, fld in COUNTER_METRICS.items()
                }
                inst[METRIC_RUN_DURATION] = meter.create_histogram(
                    METRIC_RUN_DURATION, unit="s", description="duration of one sync run"
                )
                inst[METRIC_CHECKPOINT_LAG] = meter.create_gauge(
                    METRIC_CHECKPOINT_LAG,
                    unit="s",
                    description="age of the newest source change covered by the checkpoint",
                )
                inst[METRIC_RECORD_ERRORS] = meter.create_counter(
                    METRIC_RECORD_ERRORS, unit="{record}", description="record errors by status"
                )
                self._instruments = inst
        return self._instruments

    def _configure_once(self) -> None:
        global _configured_process  # noqa: PLW0603 - one exporter pipeline per process, by design
        if self._connection_string is None or self._is_worker_managed():
            return
        with _configure_lock:
            if _configured_process:
                return
            self._configure(connection_string=self._connection_string)
            _configured_process = True

    def emit_run(self, event: RunEvent) -> None:
        """One structured log record and the run metrics, with the same names the alerts query."""
        inst = self._ensure()
        level = {"failed": logging.ERROR, "partial": logging.WARNING}.get(event.outcome, logging.INFO)
        self._run_log.log(level, RUN_EVENT, extra=event.dimensions())
        attrs = event.metric_attributes()
        for name, fld in COUNTER_METRICS.items():
            inst[name].add(int(getattr(event, fld)), attrs)
        inst[METRIC_RUN_DURATION].record(float(event.duration_s), attrs)
        if event.checkpoint_lag_s is not None:
            inst[METRIC_CHECKPOINT_LAG].set(float(event.checkpoint_lag_s), attrs)

    def record_checkpoint_lag(
        self,
        template: str,
        company: str,
        lag_s: float,
        *,
        trigger: Trigger = "timer",
        outcome: Outcome = "succeeded",
    ) -> None:
        """Checkpoint lag outside a run event (e.g. a status probe)."""
        inst = self._ensure()
        inst[METRIC_CHECKPOINT_LAG].set(
            float(lag_s), {"template": template, "company": company, "outcome": outcome, "trigger": trigger}
        )

    def emit_record_error(self, event: RecordErrorEvent) -> None:
        """One log record per failed/parked record (``p2c.record_error``) and a counter."""
        inst = self._ensure()
        level = logging.ERROR if event.status == "parked" else logging.WARNING
        self._error_log.log(level, RECORD_ERROR_EVENT, extra=event.dimensions())
        inst[METRIC_RECORD_ERRORS].add(
            1,
            {
                "template": event.template,
                "company": event.company,
                "status": event.status,
                "error": event.error,
            },
        )


def _reset_process_state_for_tests() -> None:
    global _configured_process  # noqa: PLW0603
    with _configure_lock:
        _configured_process = False
