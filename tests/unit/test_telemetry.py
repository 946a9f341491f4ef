"""What shared/telemetry.py emits — the names the Bicep alert queries (bicep/alerts/*.kql) rely on.

Three levels: the Python log record (``extra=`` dimensions), the OpenTelemetry SDK (in-memory
metric reader and log exporter) and the Azure Monitor exporter's envelope conversion (what
Application Insights stores in AppTraces.Properties / AppMetrics).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared import telemetry as tm
from shared.telemetry import RecordErrorEvent, RunEvent, Telemetry

SECRET = "s3cr3t-Value-0123456789"


def _event(**kw: Any) -> RunEvent:
    base: dict[str, Any] = dict(
        template="accounts", company="usmf", run_id="r-1", trigger="timer", mode="incremental",
        outcome="partial", read=10, written=6, unchanged=1, failed=2, deferred=1, parked=1,
        requests=20, throttled=3, retries=4, duration_s=12.5, checkpoint_lag_s=90.0, message="2 rejected",
    )
    base.update(kw)
    return RunEvent(**base)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture() -> Iterator[_Capture]:
    handler = _Capture()
    loggers = [logging.getLogger(tm.RUN_EVENT), logging.getLogger(tm.RECORD_ERROR_EVENT)]
    for lg in loggers:
        lg.addHandler(handler)
    yield handler
    for lg in loggers:
        lg.removeHandler(handler)


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def tel(reader: InMemoryMetricReader) -> Telemetry:
    meter = MeterProvider(metric_readers=[reader]).get_meter("test")
    return Telemetry(None, meter=meter)


def _points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_run_event_is_one_log_record_with_every_field_as_a_dimension(
        tel: Telemetry, capture: _Capture) -> None:
    tel.emit_run(_event())
    assert len(capture.records) == 1
    rec = capture.records[0]
    assert rec.name == "p2c.run" and rec.getMessage() == "p2c.run"
    assert rec.levelno == logging.WARNING  # partial
    for dim in tm.RUN_EVENT_DIMENSIONS:
        assert hasattr(rec, dim), dim
    assert rec.template == "accounts" and rec.company == "usmf" and rec.outcome == "partial"  # type: ignore[attr-defined]
    assert rec.trigger == "timer" and rec.mode == "incremental"  # type: ignore[attr-defined]
    assert (rec.failed, rec.parked, rec.requests, rec.throttled) == (2, 1, 20, 3)  # type: ignore[attr-defined]
    assert rec.run_message == "2 rejected"  # type: ignore[attr-defined]


def test_dimension_names_cover_every_run_event_field() -> None:
    fields = set(RunEvent.__dataclass_fields__)
    assert set(tm.RUN_EVENT_DIMENSIONS) == (fields - {"message"}) | {"run_message"}


@pytest.mark.parametrize(("outcome", "level"), [("succeeded", logging.INFO), ("skipped", logging.INFO),
                                                  ("partial", logging.WARNING), ("failed", logging.ERROR)])
def test_level_follows_outcome(tel: Telemetry, capture: _Capture, outcome: str, level: int) -> None:
    tel.emit_run(_event(outcome=outcome))
    assert capture.records[-1].levelno == level


def test_unknown_checkpoint_lag_is_omitted_not_none(tel: Telemetry, capture: _Capture,
                                                     reader: InMemoryMetricReader) -> None:
    tel.emit_run(_event(checkpoint_lag_s=None))
    assert not hasattr(capture.records[0], "checkpoint_lag_s")
    assert "p2c.checkpoint.lag" not in _points(reader)


def test_metrics_carry_template_company_outcome_trigger(tel: Telemetry, reader: InMemoryMetricReader) -> None:
    tel.emit_run(_event())
    tel.emit_run(_event(run_id="r-2", read=5, failed=0, throttled=1, outcome="succeeded"))
    pts = _points(reader)
    for name in tm.COUNTER_METRICS:
        assert name in pts, name
    for name, points in pts.items():
        for p in points:
            assert set(p.attributes) == set(tm.METRIC_DIMENSIONS), name
            assert p.attributes["template"] == "accounts" and p.attributes["trigger"] == "timer"
    read = {p.attributes["outcome"]: p.value for p in pts["p2c.records.read"]}
    assert read == {"partial": 10, "succeeded": 5}
    throttled = sum(p.value for p in pts["p2c.requests.throttled"])
    requests = sum(p.value for p in pts["p2c.requests"])
    assert (throttled, requests) == (4, 40)
    (dur,) = [p for p in pts["p2c.run.duration"] if p.attributes["outcome"] == "partial"]
    assert dur.count == 1 and dur.sum == 12.5
    lag = {p.attributes["outcome"]: p.value for p in pts["p2c.checkpoint.lag"]}
    assert lag["partial"] == 90.0


def test_record_error_event(tel: Telemetry, capture: _Capture, reader: InMemoryMetricReader) -> None:
    tel.emit_record_error(RecordErrorEvent(
        template="accounts", company="usmf", run_id="r-1", source_key="A-1", error="RecordRejected",
        status="parked", attempts=5, field="CustomerGroupId", code="400", message="bad group"))
    rec = capture.records[0]
    assert rec.name == "p2c.record_error" and rec.getMessage() == "p2c.record_error"
    assert rec.levelno == logging.ERROR
    for dim in tm.RECORD_ERROR_DIMENSIONS:
        assert hasattr(rec, dim), dim
    (p,) = _points(reader)["p2c.records.errors"]
    assert dict(p.attributes) == {"template": "accounts", "company": "usmf", "status": "parked",
                                  "error": "RecordRejected"}


@pytest.mark.parametrize("bad", [{"trigger": "cron"}, {"outcome": "ok"}, {"mode": "delta"}, {"read": -1},
                                 {"template": ""}])
def test_invalid_values_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _event(**bad)


@pytest.mark.parametrize("text", [
    f"client_secret={SECRET}", f"P2C_CLIENT_SECRET: {SECRET}", f"Authorization: Bearer {SECRET}",
    f"https://x.blob.core.windows.net/c?sv=2024&sig={SECRET}", f"AccountKey={SECRET};",
    f"token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.{SECRET}", f"https://f/api/x?code={SECRET}",
])
def test_no_secret_leaves_the_process(tel: Telemetry, capture: _Capture, text: str) -> None:
    tel.emit_run(_event(message=f"failed: {text}"))
    tel.emit_record_error(RecordErrorEvent(template="accounts", company="usmf", run_id="r", source_key="k",
                                           error="AuthFailed", status="failed", message=text))
    for rec in capture.records:
        assert SECRET not in repr(rec.__dict__)


def test_message_is_capped_and_scrubbed_in_linear_time() -> None:
    import time

    started = time.perf_counter()
    for text in ("x" * 100_000, "a=" * 50_000, "secret" * 20_000):
        assert len(_event(message=text).dimensions()["run_message"]) <= 2000  # type: ignore[arg-type]
    assert time.perf_counter() - started < 0.5


# --- configuration of the Azure Monitor distro -------------------------------------------------

@pytest.fixture
def fresh_process() -> Iterator[None]:
    tm._reset_process_state_for_tests()
    yield
    tm._reset_process_state_for_tests()


def test_configures_once_per_process_lazily_and_only_with_a_connection_string(
        fresh_process: None, reader: InMemoryMetricReader) -> None:
    calls: list[dict[str, Any]] = []
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    none = Telemetry(None, meter=meter, worker_managed=False, configure=lambda **kw: calls.append(kw))
    none.emit_run(_event())
    assert calls == []
    a = Telemetry("InstrumentationKey=00000000-0000-0000-0000-000000000000", meter=meter,
                  worker_managed=False, configure=lambda **kw: calls.append(kw))
    assert calls == []  # lazily: not at construction
    a.emit_run(_event())
    a.emit_run(_event())
    b = Telemetry("InstrumentationKey=1", meter=meter, worker_managed=False,
                  configure=lambda **kw: calls.append(kw))
    b.emit_run(_event())
    assert calls == [{"connection_string": "InstrumentationKey=00000000-0000-0000-0000-000000000000"}]


@pytest.mark.parametrize("setting", [
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "PYTHON_ENABLE_OPENTELEMETRY"])
def test_never_configures_when_the_functions_worker_owns_telemetry(
        fresh_process: None, reader: InMemoryMetricReader, setting: str) -> None:
    calls: list[dict[str, Any]] = []
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    env = {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=1", setting: "true"}
    t = Telemetry.from_env(env, meter=meter, configure=lambda **kw: calls.append(kw))
    t.emit_run(_event())
    assert calls == [] and t.exporting


def test_default_detects_the_worker_from_the_process_environment(
        fresh_process: None, reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch) -> None:
    """functions/runtime.py builds ``Telemetry(connection_string)``: inside the worker that must not
    configure Azure Monitor a second time."""
    calls: list[dict[str, Any]] = []
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    monkeypatch.setenv("PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY", "true")
    Telemetry("InstrumentationKey=3", meter=meter, configure=lambda **kw: calls.append(kw)).emit_run(_event())
    assert calls == []


def test_from_env_outside_the_worker_configures(fresh_process: None, reader: InMemoryMetricReader) -> None:
    calls: list[dict[str, Any]] = []
    meter = MeterProvider(metric_readers=[reader]).get_meter("t")
    t = Telemetry.from_env({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=2"}, meter=meter,
                           configure=lambda **kw: calls.append(kw))
    t.emit_run(_event())
    assert calls == [{"connection_string": "InstrumentationKey=2"}]


# --- what Application Insights stores ----------------------------------------------------------

def test_otel_log_record_and_app_insights_envelope(tel: Telemetry) -> None:
    """Through the OTel LoggingHandler and the Azure Monitor exporter's conversion: AppTraces.Message
    is ``p2c.run`` and AppTraces.Properties holds every dimension the alert queries read."""
    from azure.monitor.opentelemetry.exporter.export.logs._exporter import _convert_log_to_envelope

    exporter = InMemoryLogExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.NOTSET, logger_provider=provider)
    run_logger = logging.getLogger(tm.RUN_EVENT)
    run_logger.addHandler(handler)
    try:
        tel.emit_run(_event(outcome="failed", message=f"boom secret={SECRET}"))
    finally:
        run_logger.removeHandler(handler)
    (log,) = exporter.get_finished_logs()
    envelope = _convert_log_to_envelope(log)
    data = envelope.data.base_data  # type: ignore[union-attr]
    assert envelope.data.base_type == "MessageData"  # type: ignore[union-attr]  # -> AppTraces
    assert data.message == "p2c.run"
    props = data.properties
    assert props["logger_name"] == "p2c.run"
    for dim in tm.RUN_EVENT_DIMENSIONS:
        assert dim in props, dim
    assert props["outcome"] == "failed" and props["failed"] == "2" and props["parked"] == "1"
    assert SECRET not in str(props)


def test_metric_envelopes_use_the_instrument_names(tel: Telemetry, reader: InMemoryMetricReader) -> None:
    """AppMetrics.Name is the instrument name; Properties carry the dimensions; counters are deltas."""
    from azure.monitor.opentelemetry.exporter.export.metrics._exporter import (
        APPLICATION_INSIGHTS_METRIC_TEMPORALITIES,
        _convert_point_to_envelope,
    )
    from opentelemetry.sdk.metrics import Counter
    from opentelemetry.sdk.metrics.export import AggregationTemporality

    assert APPLICATION_INSIGHTS_METRIC_TEMPORALITIES[Counter] == AggregationTemporality.DELTA
    tel.emit_run(_event())
    for name, points in _points(reader).items():
        env = _convert_point_to_envelope(points[0], name)
        data = env.data.base_data  # type: ignore[union-attr]
        assert data.metrics[0].name == name
        assert set(data.properties) == set(tm.METRIC_DIMENSIONS)
