"""The demo path (`make demo`) as a user runs it: a child process, real Azurite, real sandbox."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_and_reports(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--size", "60", "--report", str(report_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Round 1" in done.stdout and "Round 2" in done.stdout
    report = json.loads(report_path.read_text())
    rounds = {r["round"]: r for r in report["rounds"]}
    first = {o["template"]: o for o in rounds[1]["runs"]}
    second = {o["template"]: o for o in rounds[2]["runs"]}
    third = {o["template"]: o for o in rounds[3]["runs"]}
    assert first["accounts"]["counts"]["written"] >= 60
    # round 2 changed 5 accounts and created one: exactly those are written
    assert second["accounts"]["counts"]["written"] == 6
    assert third["accounts"]["counts"].get("written", 0) == 0
    assert all(o["status"] in ("succeeded", "partial") for o in first.values())
