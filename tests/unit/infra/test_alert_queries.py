"""The alert rules query exactly what shared/telemetry.py emits, and the runbook covers each one.

Relied on (azure.md §6 + the installed azure-monitor-opentelemetry-exporter, checked in
tests/unit/test_telemetry.py): Python OTel log records land in AppTraces (Message = log body,
Properties = `extra=` dimensions as strings, plus logger_name); OTel metrics land in AppMetrics
(Name = instrument name, Sum = value, Properties = attributes). The rules are scoped to the Log
Analytics workspace, so the workspace table names (AppTraces/AppMetrics) apply.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args

import pytest

from shared import telemetry as tm
from tests.unit.infra.bicep_model import BICEP, MAIN, ROOT, load_text_paths, parse, resource_body, unquote

ALERTS_BICEP = BICEP / "modules" / "alerts.bicep"
RULE_TYPE = "Microsoft.Insights/scheduledQueryRules"
METRIC_NAMES = {*tm.COUNTER_METRICS, tm.METRIC_RUN_DURATION, tm.METRIC_CHECKPOINT_LAG,
                tm.METRIC_RECORD_ERRORS}
OPERATIONS_MD = ROOT / "docs" / "operations.md"


def _rules() -> dict[str, dict[str, Any]]:
    res = parse(ALERTS_BICEP)["resources"]
    return {n: resource_body(r) for n, r in res.items() if r["type"] == RULE_TYPE}


def _query_file(rule: dict[str, Any]) -> Path:
    (path,) = list(load_text_paths(rule["properties"]["criteria"]))
    return (ALERTS_BICEP.parent / path).resolve()


def _placeholders_replaced(rule: dict[str, Any]) -> list[str]:
    query = rule["properties"]["criteria"]["allOf"][0]["query"]
    found: list[str] = []
    while isinstance(query, dict) and query.get("function", {}).get("type") == "replace":
        params = query["function"]["parameters"]
        found.append(params["old_string"])
        query = params["original_string"]
    return found


def _rendered(rule: dict[str, Any]) -> str:
    """The KQL as Bicep renders it with the default parameters."""
    text = _query_file(rule).read_text(encoding="utf-8")
    stale = {unquote(k): v for k, v in parse(MAIN)["parameters"]["staleAfterMinutes"]["default"].items()}
    rows = ", ".join(f'"{k}", {v}' for k, v in sorted(stale.items()))
    min_requests = parse(ALERTS_BICEP)["parameters"]["throttledMinRequests"]["default"]
    return text.replace("__EXPECTED_TEMPLATES__", rows).replace("__MIN_REQUESTS__", str(min_requests))


RULES = _rules()


def test_the_four_alerts_exist() -> None:
    assert set(RULES) == {"runFailed", "recordsFailed", "stale", "throttled"}


@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_shape(name: str) -> None:
    rule = RULES[name]
    assert rule["kind"] == "LogAlert"
    props = rule["properties"]
    assert props["scopes"] == ["workspaceId"]  # workspace scope -> AppTraces/AppMetrics tables
    assert props["severity"] in range(5)
    assert props["enabled"] is True
    assert re.fullmatch(r"P(T\d+[MH]|\d+D)", props["evaluationFrequency"])
    assert props["actions"] == {"actionGroups": "actionGroups"}
    (criterion,) = props["criteria"]["allOf"]
    assert criterion["timeAggregation"] in {"Count", "Total", "Maximum", "Average"}
    assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}


@pytest.mark.parametrize("name", sorted(RULES))
def test_query_file_and_placeholders(name: str) -> None:
    rule = RULES[name]
    path = _query_file(rule)
    assert path.exists() and path.parent == BICEP / "alerts"
    text = path.read_text(encoding="utf-8")
    for placeholder in _placeholders_replaced(rule):
        assert placeholder in text
    rendered = _rendered(rule)
    assert not re.search(r"__[A-Z_]+__", rendered), "unreplaced placeholder"
    code = re.sub(r"//.*", "", rendered)
    assert code.count("(") == code.count(")") and code.count("[") == code.count("]")
    assert code.count('"') % 2 == 0


@pytest.mark.parametrize("name", sorted(RULES))
def test_query_uses_only_emitted_names(name: str) -> None:
    code = re.sub(r"//.*", "", _rendered(RULES[name]))
    tables = set(re.findall(
        r"\b(AppTraces|AppMetrics|AppEvents|AppRequests|AppExceptions|traces|customMetrics)\b", code))
    assert tables and tables <= {"AppTraces", "AppMetrics"}, tables
    properties = set(re.findall(r"Properties\.([A-Za-z_]+)", code))
    assert properties
    if "AppTraces" in tables:
        assert f'Message == "{tm.RUN_EVENT}"' in code
        assert properties <= set(tm.RUN_EVENT_DIMENSIONS), properties - set(tm.RUN_EVENT_DIMENSIONS)
    if "AppMetrics" in tables:
        names = set(re.findall(r'"(p2c\.[a-z.]+)"', code))
        assert names and names <= METRIC_NAMES, names - METRIC_NAMES
        assert properties <= set(tm.METRIC_DIMENSIONS)
    outcomes = set(re.findall(r'outcome\)\s*(?:==|in)\s*\(?"([a-z]+)"', code))
    outcomes |= set(re.findall(r'"(succeeded|partial|failed|skipped)"', code))
    assert outcomes <= set(get_args(tm.Outcome))


def test_expected_outcomes_per_rule() -> None:
    assert 'tostring(Properties.outcome) == "failed"' in _rendered(RULES["runFailed"])
    assert 'in ("succeeded", "partial")' in _rendered(RULES["stale"])
    assert '"p2c.requests.throttled"' in _rendered(RULES["throttled"])
    assert "Properties.parked" in _rendered(RULES["recordsFailed"])


@pytest.mark.parametrize("name", sorted(RULES))
def test_split_dimensions_and_measure_columns_are_query_columns(name: str) -> None:
    (criterion,) = RULES[name]["properties"]["criteria"]["allOf"]
    code = _rendered(RULES[name])
    columns = {d["name"] for d in criterion.get("dimensions", [])}
    if "metricMeasureColumn" in criterion:
        columns.add(criterion["metricMeasureColumn"])
        assert criterion["timeAggregation"] != "Count"
    for col in columns:
        assert re.search(rf"\b{col}\s*=|by\b[^|]*\b{col}\b|project\b[^|]*\b{col}\b", code), col


def test_stale_rule_covers_every_template_and_its_window() -> None:
    code = _rendered(RULES["stale"])
    try:
        from shared.templates import TEMPLATE_NAMES
    except ImportError:
        pytest.skip("template registry not importable")
    for name in TEMPLATE_NAMES:
        assert f'"{name}", ' in code
    stale = parse(MAIN)["parameters"]["staleAfterMinutes"]["default"]
    assert RULES["stale"]["properties"]["windowSize"] == "P1D"
    assert max(stale.values()) <= 24 * 60


def test_bicep_builds_the_stale_rows_like_the_test_renders_them() -> None:
    var = parse(ALERTS_BICEP)["variables"]["expectedRows"]["value"]["function"]
    assert var["type"] == "join"
    lam = var["parameters"]["input_array"]["function"]["parameters"]["arg_2"]["detail"]
    assert lam["expression"] == '"${t.key}", ${t.value}'


def test_runbook_documents_every_alert_and_name() -> None:
    text = OPERATIONS_MD.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for name, rule in RULES.items():
        (link,) = re.findall(r"docs/operations\.md#([a-z0-9-]+)", rule["properties"]["description"])
        assert link in anchors, f"{name}: #{link}"
    for metric in METRIC_NAMES:
        assert f"`{metric}`" in text, metric
    for dim in (*tm.RUN_EVENT_DIMENSIONS, *tm.RECORD_ERROR_DIMENSIONS):
        assert f"`{dim}`" in text, dim
    assert f"`{tm.RUN_EVENT}`" in text and f"`{tm.RECORD_ERROR_EVENT}`" in text
