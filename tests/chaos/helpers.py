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
    templates: set[str] = field(default_factory=set)

    def add(self, outcome: RunOutcome) -> None:
        self.runs += 1
        self.templates.add(outcome.template)
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


# -- whole-store comparison (every template, both services) ---------------------------------------

#: Columns either stand-in stamps on every write; two runs writing the same data differ only here.
STORE_VOLATILE_FIELDS = VOLATILE_FIELDS | frozenset({"versionnumber", "modifiedon", "createdon"})
#: Dataverse line tables and the lookup naming their header: line counts per header are compared.
LINE_PARENTS = {
    "salesorderdetails": "_salesorderid_value",
    "quotedetails": "_quoteid_value",
    "invoicedetails": "_invoiceid_value",
}

#: One store's rows: "<service>:<entity set>" → primary key text → row without volatile columns.
StoreState = dict[str, dict[str, dict[str, Any]]]


def store_state(sandbox: Any) -> StoreState:
    """Every row of both stand-ins, keyed by entity set and primary key, volatile columns removed.

    Dataverse rows are keyed by their primary id: the product writes Sales rows under
    deterministic UUIDv5 ids, so a replayed create that got a new id shows up as lost + unexpected.
    F&O rows are keyed by their entity key (normalised as F&O compares keys).
    """
    out: StoreState = {}
    dv, fo = sandbox.dataverse, sandbox.finops
    for name in dv.snapshot()["tables"]:
        primary = dv.info(name).primary_id
        out[f"dataverse:{name}"] = {
            str(row[primary]): {k: v for k, v in row.items() if k not in STORE_VOLATILE_FIELDS}
            for row in dv.rows(name)
        }
    for name in fo.snapshot()["entity_sets"]:
        info = fo.table(name).info
        rows: dict[str, dict[str, Any]] = {}
        for row in fo.rows(name):
            key = "|".join(str(part) for part in fo.key_tuple(info, row))
            if key in rows:
                raise AssertionError(f"duplicate F&O key {name}({key})")
            rows[key] = {k: v for k, v in row.items() if k not in STORE_VOLATILE_FIELDS}
        out[f"finops:{name}"] = rows
    return {name: rows for name, rows in out.items() if rows}


def store_duplicates(sandbox: Any) -> list[str]:
    """Rows sharing a Dataverse alternate key (case-insensitive), as "<set>.<key>=<values> ×n"."""
    problems: list[str] = []
    dv = sandbox.dataverse
    for name in dv.snapshot()["tables"]:
        table = dv.table(name)
        for key_name in table.info.alternate_keys:
            counts = Counter(table.key_tuple(key_name, row) for row in dv.rows(name))
            counts.pop(None, None)
            problems += [f"{name}.{key_name}={k} x{n}" for k, n in counts.items() if n > 1]
    return problems


def lines_per_header(state: StoreState) -> dict[str, Counter[str]]:
    """Dataverse line counts per header id, for each line table present."""
    return {
        table: Counter(str(row.get(parent)) for row in state.get(f"dataverse:{table}", {}).values())
        for table, parent in LINE_PARENTS.items()
        if f"dataverse:{table}" in state
    }


def diff_states(actual: StoreState, expected: StoreState, limit: int = 40) -> list[str]:
    """Lost rows, unexpected rows (duplicates under another key) and per-field differences."""
    problems: list[str] = []
    for name in sorted(actual.keys() | expected.keys()):
        got, want = actual.get(name, {}), expected.get(name, {})
        lost = sorted(want.keys() - got.keys())
        extra = sorted(got.keys() - want.keys())
        if lost:
            problems.append(f"{name}: {len(lost)} lost, e.g. {lost[:3]}")
        if extra:
            problems.append(f"{name}: {len(extra)} unexpected (duplicates?), e.g. {extra[:3]}")
        for key in sorted(want.keys() & got.keys()):
            a, b = got[key], want[key]
            for column in sorted(a.keys() | b.keys()):
                if a.get(column) != b.get(column):
                    problems.append(f"{name}({key}).{column}: {a.get(column)!r} != {b.get(column)!r}")
            if len(problems) > limit:
                return problems
    for table, counts in lines_per_header(actual).items():
        ref = lines_per_header(expected).get(table, Counter())
        if counts != ref:
            problems.append(f"{table}: line counts per header differ: {dict(counts - ref)} extra")
    return problems


def written_rows(state: StoreState, before: StoreState) -> int:
    """Rows a run added or changed relative to `before` (to report the size of a scenario)."""
    total = 0
    for name, rows in state.items():
        old = before.get(name, {})
        total += sum(1 for key, row in rows.items() if old.get(key) != row)
    return total
