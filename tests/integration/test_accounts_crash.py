"""A run killed with SIGKILL mid-write converges on the next run: no duplicate, nothing lost.

The sync runs as a real child process (`p2c run accounts`, the CLI a user would run) against the
in-process sandbox; the test watches the sandbox's request log and kills the child after a number
of F&O `$batch` writes, so the kill lands between pages, mid-batch, or between a write and its
crosswalk record, depending on timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.azurite import Azurite
from sandbox.datagen import generate
from sandbox.product_env import product_env
from shared.engine import SyncEngine
from shared.settings import Settings
from shared.state import StateStore

pytestmark = [pytest.mark.integration, pytest.mark.crash]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def private_storage() -> Iterator[str]:
    """The CLI uses the default table names, so this test gets an Azurite of its own."""
    with Azurite() as endpoints:
        yield endpoints.connection_string


def _kill_after_batches(child: subprocess.Popen[bytes], sandbox: Any, batches: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        if sandbox.log.count(service="finops", kind="batch") >= batches:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
            return True
        time.sleep(0.005)
    child.kill()
    raise AssertionError("the child run did not reach the kill point in time")


@pytest.mark.parametrize("kill_after", [1, 7, 23])
def test_sigkill_mid_run_converges(
    sandbox: Any, private_storage: str, tmp_path: Path, kill_after: int
) -> None:
    sandbox.load(generate(size=600, seed=3))
    accounts = sandbox.dataverse.rows("accounts")
    env = product_env(sandbox.info, private_storage, P2C_FINOPS_BATCH_SIZE="20", P2C_MAX_CONCURRENCY="2")
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": env}))
    sandbox.latency.configure("finops", fixed_ms=15, per_record_ms=0.0)
    child = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", "accounts", "--settings", str(settings_file)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = _kill_after_batches(child, sandbox, kill_after, timeout=120)
    assert killed, "the run finished before it could be killed"
    sandbox.latency.clear()

    written_before = len(sandbox.finops.rows("CustomersV2", company="usmf"))
    assert 0 < written_before < len(accounts)
    settings = Settings.from_env(env)
    state = StateStore.from_connection_string(private_storage)
    # the checkpoint is never ahead of the writes: the killed run saved none
    assert state.checkpoints.load("accounts", "main", "usmf").cursor is None

    # the lease of the killed run expires (≤60 s); a manual break stands in for the wait
    state.lock("accounts").break_lease()
    outcome = SyncEngine(settings, state).run("accounts", trigger="cli")
    assert outcome.status == "succeeded", outcome.message
    customers = sandbox.finops.rows("CustomersV2", company="usmf")
    assert sorted(c["CustomerAccount"] for c in customers) == sorted(a["accountnumber"] for a in accounts)
    assert outcome.counts["written"] + outcome.counts.get("unchanged", 0) == len(accounts)
    assert state.checkpoints.load("accounts", "main", "usmf").cursor is not None
    # and then nothing more to do
    assert SyncEngine(settings, state).run("accounts", trigger="cli").counts.get("written", 0) == 0
