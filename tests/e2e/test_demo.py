"""The demo path (`make demo`) as a user runs it: a child process, real Azurite, real sandbox.

The demo runs once per module (a child process at a small size); the tests read its output and
`report.json`: every template in every round with its counts, round 2 writing exactly what the demo
changed on both sides, round 3 writing nothing, and the failed / deferred records with reasons.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.templates import TEMPLATE_NAMES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SIZE = 60
SUMMARY_COUNTS = ("read", "written", "unchanged", "failed", "deferred")
#: tools/demo.py renames this many accounts and creates one between rounds 1 and 2
RENAMED_ACCOUNTS = 5


@dataclass
class DemoRun:
    returncode: int
    stdout: str
    stderr: str
    report: dict[str, Any]

    def round(self, number: int) -> dict[str, Any]:
        rounds = {r["round"]: r for r in self.report["rounds"]}
        return dict(rounds[number])

    def written(self, number: int) -> dict[str, int]:
        return {name: int(c["written"]) for name, c in self.round(number)["summary"].items()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    report_path = tmp_path_factory.mktemp("demo") / "report.json"
    args = ["--size", str(SIZE), "--seed", "2", "--report", str(report_path)]
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return DemoRun(done.returncode, done.stdout, done.stderr, json.loads(report_path.read_text()))


def test_three_rounds_printed_as_tables(demo: DemoRun) -> None:
    for title in ("Round 1", "Round 2", "Round 3", "Failed or deferred records"):
        assert title in demo.stdout, demo.stdout[-2000:]
    for name in TEMPLATE_NAMES:
        assert demo.stdout.count(name) >= 3, f"{name} is not a row of every round's table"
    assert demo.report["size"] == SIZE and demo.report["seed"] == 2


def test_every_template_in_every_round_with_its_counts(demo: DemoRun) -> None:
    assert demo.report["templates"] == list(TEMPLATE_NAMES)  # all eight, in dependency order
    assert [r["round"] for r in demo.report["rounds"]] == [1, 2, 3]
    for rnd in demo.report["rounds"]:
        assert list(rnd["summary"]) == list(TEMPLATE_NAMES)
        for name, counts in rnd["summary"].items():
            assert set(SUMMARY_COUNTS) <= set(counts), (rnd["round"], name, counts)
            assert all(isinstance(counts[k], int) and counts[k] >= 0 for k in SUMMARY_COUNTS)
        assert [r["template"] for r in rnd["runs"]] == list(TEMPLATE_NAMES)
        for run in rnd["runs"]:
            assert run["status"] in ("succeeded", "partial"), (rnd["round"], run["template"], run["message"])


def test_first_round_loads_every_template(demo: DemoRun) -> None:
    written = demo.written(1)
    assert written["accounts"] >= SIZE
    assert all(written[name] > 0 for name in TEMPLATE_NAMES), written


def test_second_round_writes_exactly_what_changed_on_both_sides(demo: DemoRun) -> None:
    second = demo.round(2)
    notes = " ".join(second["changes"])
    for change in ("renamed account", "created account", "deleted account", "line of quote"):
        assert f"Sales: {change}" in notes or change in notes, (change, second["changes"])
    for change in ("price of product", "new invoice"):
        assert change in notes, (change, second["changes"])
    assert "confirmed, totals updated" in notes or "totals changed" in notes, second["changes"]
    expected = {name: 0 for name in TEMPLATE_NAMES} | second["expected_written"]
    # what is known without looking at the data: 5 renames + 1 new account, one quote line, the
    # product and its price list item, a new invoice header with at least one line, and the
    # order F&O confirmed (header and lines) or whose totals it changed (header)
    assert expected["accounts"] == RENAMED_ACCOUNTS + 1
    assert expected["quotes"] == 1
    assert expected["products"] == 2
    assert expected["invoices"] >= 2
    assert expected["orders-to-sales"] >= 1
    assert expected["contacts"] == expected["contacts-to-customers"] == expected["orders-to-fno"] == 0
    assert demo.written(2) == expected


def test_third_round_writes_nothing(demo: DemoRun) -> None:
    third = demo.round(3)
    assert third["changes"] == []
    assert demo.written(3) == {name: 0 for name in TEMPLATE_NAMES}
    assert all(c["failed"] == 0 for c in third["summary"].values())


def test_one_deleted_account_is_counted_once(demo: DemoRun) -> None:
    accounts = next(r for r in demo.round(2)["runs"] if r["template"] == "accounts")
    assert accounts["counts"]["deleted"] == 1


def test_failed_and_deferred_records_carry_their_reason(demo: DemoRun) -> None:
    errors = demo.report["errors"]
    for err in errors:
        assert err["status"] in ("retrying", "parked"), err
        assert err["kind"] in ("failed", "deferred") and err["error_class"] and err["message"], err
        assert err["template"] in TEMPLATE_NAMES
        if err["kind"] == "deferred":
            assert err["missing_reference"], err
