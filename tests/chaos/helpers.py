"""Shared pieces of the reliability suites: target snapshots, comparisons and the run summary.

The chaos, bad-input and service-fault tests all judge a run the same way: the F&O rows the run
left behind are compared field by field with rows a fault-free run produced, and the request
metrics of every run are summed into one line a human can read in the test output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.engine import RunOutcome

COMPANY = "usmf"
CUSTOMERS = "CustomersV2"

#: Columns the F&O stand-in stamps itself (row versions, timestamps); they differ between two
#: otherwise identical runs and say nothing about what the product wrote.
VOLATILE_FIELDS = frozenset({"@odata.etag", "ModifiedDateTime", "CreatedDateTime", "RecVersion"})


def customer_rows(sandbox: Any, company: str = COMPANY) -> list[dict[str, Any]]:
    """All customers of `company` in the F&O stand-in, volatile columns removed."""
    return [
        {k: v for k, v in row.items() if k not in VOLATILE_FIELDS}
        for row in sandbox.finops.rows(CUSTOMERS, company=company)
    ]


def by_account(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows keyed by CustomerAccount; raises on a duplicate key so a duplicate can never hide."""
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["CustomerAccount"]
        if key in out:
            raise AssertionError(f"duplicate customer {key!r} in the target")
        out[key] = row
    return out


def duplicates(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Customer accounts present more than once (case-insensitively, as F&O keys compare)."""
    counts = Counter(str(r["CustomerAccount"]).upper() for r in rows)
    return sorted(k for k, n in counts.items() if n > 1)


def diff_rows(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> list[str]:
    """Human-readable differences (missing, extra, per-field); empty when equal."""
    problems = [f"duplicate {k}" for k in duplicates(actual)]
    got, want = by_account(actual), by_account(expected)
    problems += [f"lost {k}" for k in sorted(want.keys() - got.keys())]
    problems += [f"unexpected {k}" for k in sorted(got.keys() - want.keys())]
    for key in sorted(want.keys() & got.keys()):
        for name in sorted(want[key].keys() | got[key].keys()):
            if want[key].get(name) != got[key].get(name):
                problems.append(f"{key}.{name}: {got[key].get(name)!r} != {want[key].get(name)!r}")
    return problems


@dataclass
class RunTally:
    """Requests, retries, throttles and time summed over several runs (one chaos scenario)."""

    runs: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    seconds: float = 0.0
    statuses: list[str] = field(default_factory=list)

    def add(self, outcome: RunOutcome) -> None:
        self.runs += 1
        self.statuses.append(outcome.status)
        self.seconds += outcome.duration_s
        for metrics in outcome.requests.values():
            self.requests += int(metrics.get("requests", 0))
            self.retries += int(metrics.get("retries", 0))
            self.throttled += int(metrics.get("throttled", 0))

    def line(self, label: str, faults: int, records: int) -> str:
        return (
            f"[chaos] {label}: records={records} runs={self.runs} statuses={','.join(self.statuses)} "
            f"requests={self.requests} faults_injected={faults} retries={self.retries} "
            f"throttled={self.throttled} time={self.seconds:.1f}s"
        )


def faults_injected(sandbox: Any) -> Counter[str]:
    """Injected faults by kind, from the sandbox's request log."""
    return Counter(e.fault for e in sandbox.log.entries() if e.fault is not None)
