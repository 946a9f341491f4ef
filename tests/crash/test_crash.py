"""Crash consistency (issue 5 §2, `pytest -m crash`): SIGKILL a real `p2c run` at ≥ 20 points.

Each case runs one template as a child process (`python -m tests.crash.child`, i.e. the CLI with a
kill point planted, see `child.py`) against the session's sandbox and an Azurite of this module,
and kills it with SIGKILL at an exact point: while reading pages, before a write is sent, while a
write's answer is pending (applied, answer lost), between a write and its crosswalk record,
between the crosswalk and the checkpoint, after a checkpoint with other tasks still to go, after a
retry-store record. Two more cases are killed from outside by watching the sandbox's request log,
so they land at arbitrary moments.

Templates: accounts and orders-to-fno (Sales → F&O, the latter headers + lines) and products and
orders-to-sales (F&O → Sales, the latter headers + lines), two companies (usmf, demf).

After every kill:

1. the checkpoint is never ahead of what was written: a checkpoint the killed run saved covers
   only records that are in the crosswalk (written first) or in the retry store;
2. after breaking the dead run's lease, normal in-process runs (`SyncEngine`, at most 3, one timer
   interval apart as in the convergence rule of docs/reliability.md) converge: both stores equal
   the fault-free reference field by field, every row under the same key (Dataverse ids are
   deterministic), no Dataverse alternate key used twice, the same line count per header;
   so nothing is lost and nothing is duplicated.

The reference is computed once per module: the templates run fault-free in dependency order from
a generated dataset; before each crash template the stores (`snapshot`) and the state tables are
copied, and every case starts from that copy.

Size: `P2C_CRASH_SIZE` accounts (default 150, two companies; ~37 Sales and ~37 F&O orders).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sandbox.azurite import Azurite
from sandbox.datagen import generate
from sandbox.product_env import product_env
from shared.engine import RunOutcome, SyncEngine
from shared.mapping import load_mapping
from shared.settings import Settings
from shared.state import StateStore
from shared.templates import get_template
from tests.chaos.helpers import StoreState, diff_states, store_duplicates, store_state
from tests.crash.helpers import (
    TableCopy,
    TaskTarget,
    checkpoint_lag,
    copy_tables,
    restore_tables,
    task_targets,
)

pytestmark = [pytest.mark.integration, pytest.mark.crash]

ROOT = Path(__file__).resolve().parents[2]
SIZE = int(os.environ.get("P2C_CRASH_SIZE", "150"))
COMPANIES = "usmf=Contoso US,demf=Contoso DE"
#: Small pages and batches so every template makes several reads, writes and checkpoints to kill.
SETTINGS = {
    "P2C_COMPANIES": COMPANIES,
    "P2C_DEFAULT_COMPANY": "usmf",
    "P2C_DATAVERSE_PAGE_SIZE": "50",
    "P2C_FINOPS_PAGE_SIZE": "40",
    "P2C_FINOPS_BATCH_SIZE": "20",
    "P2C_MAX_CONCURRENCY": "2",
}
#: Templates in dependency order; the crash cases use four of them, the others are prerequisites.
SEQUENCE = ("products", "accounts", "contacts-to-customers", "orders-to-fno", "orders-to-sales")
RUN_INTERVAL = timedelta(minutes=15)
MAX_RUNS = 3
#: Latency on the target service for `write-inflight` kills: longer than the child's 0.15 s delay.
INFLIGHT_LATENCY_MS = 300
CHILD_TIMEOUT_S = 60.0

#: (template, kill point). `POINT:N` is planted in the child (tests/crash/child.py);
#: `log:N` is a kill from outside after the sandbox logged N F&O `$batch` requests.
CASES: list[tuple[str, str]] = [
    ("accounts", "read:2"),
    ("accounts", "write-before:1"),
    ("accounts", "write-inflight:2"),
    ("accounts", "write-after:2"),
    ("accounts", "write-before:3"),
    ("accounts", "crosswalk-after:3"),
    ("accounts", "checkpoint-before:1"),
    ("accounts", "checkpoint-after:1"),
    ("accounts", "log:2"),
    ("accounts", "log:5"),
    ("orders-to-fno", "read:3"),
    ("orders-to-fno", "write-inflight:2"),
    ("orders-to-fno", "write-after:1"),
    ("orders-to-fno", "crosswalk-after:2"),
    ("orders-to-fno", "checkpoint-before:2"),
    ("orders-to-fno", "checkpoint-after:3"),
    ("products", "read:1"),
    ("products", "write-inflight:1"),
    ("products", "write-after:2"),
    ("products", "crosswalk-after:1"),
    ("products", "checkpoint-before:1"),
    ("products", "checkpoint-after:2"),
    ("orders-to-sales", "read:5"),
    ("orders-to-sales", "write-before:4"),
    ("orders-to-sales", "write-inflight:2"),
    ("orders-to-sales", "write-after:6"),
    ("orders-to-sales", "crosswalk-after:6"),
    ("orders-to-sales", "checkpoint-before:3"),
    ("orders-to-sales", "checkpoint-after:5"),
    ("orders-to-sales", "error-after:2"),
]


@dataclass
class Stage:
    """Rollback point before one template, and the fault-free result of running it from there."""

    dataverse: dict[str, Any]
    finops: dict[str, Any]
    tables: TableCopy
    expected: StoreState = field(default_factory=dict)
    expected_tables: TableCopy = field(default_factory=dict)
    tasks: list[TaskTarget] = field(default_factory=list)


def _companies(world: World, template: str) -> list[str]:
    """Companies a template's runs serve: all of P2C_COMPANIES, or the default one
    (`companies: default`, e.g. products mastered once in Sales)."""
    spec = load_mapping(ROOT / "mappings" / f"{template}.yaml", world.catalogue).spec
    if spec.companies == "default":
        return [world.settings.default_company]
    return [c.id for c in world.settings.companies]


@dataclass
class World:
    sandbox: Any
    env: dict[str, str]
    settings: Settings
    state: StateStore
    settings_file: Path
    stages: dict[str, Stage]
    catalogue: Any
    summary: list[str] = field(default_factory=list)


def _clock(offset: timedelta) -> Callable[[], datetime]:
    return lambda: datetime.now(UTC) + offset


def run_until_quiet(
    settings: Settings, state: StateStore, template: str, catalogue: Any = None
) -> list[RunOutcome]:
    """Runs one timer interval apart until one leaves nothing waiting or writes nothing.

    A run that defers records (parent not synced yet) is followed by one a timer interval later,
    when they are due again; the reference and every converging run follow the same rule.
    """
    outcomes: list[RunOutcome] = []
    for n in range(MAX_RUNS):
        engine = SyncEngine(settings, state, catalogue=catalogue, clock=_clock(RUN_INTERVAL * n))
        outcome = engine.run(template, trigger="timer")
        outcomes.append(outcome)
        assert outcome.status in ("succeeded", "partial"), (template, outcome.status, outcome.message)
        waiting = outcome.counts.get("deferred", 0) + outcome.counts.get("failed", 0)
        if outcome.status == "succeeded" and (waiting == 0 or outcome.counts.get("written", 0) == 0):
            break
    return outcomes


@pytest.fixture(scope="module")
def world(sandbox_session: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The fault-free reference of every crash template, from one dataset, in an Azurite of its own."""
    sandbox = sandbox_session
    sandbox.reset()
    sandbox.load(generate(size=SIZE, seed=3, companies=("usmf", "demf")))
    with Azurite() as storage:
        env = product_env(sandbox.info, storage.connection_string, **SETTINGS)
        settings = Settings.from_env(env)
        state = StateStore.from_connection_string(storage.connection_string)
        state.ensure()
        settings_file = tmp_path_factory.mktemp("crash") / "local.settings.json"
        settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": env}))
        engine = SyncEngine(settings, state)
        stages: dict[str, Stage] = {}
        for template in SEQUENCE:
            stage = Stage(sandbox.dataverse.snapshot(), sandbox.finops.snapshot(), copy_tables(state))
            outcomes = run_until_quiet(settings, state, template, engine.catalogue)
            assert outcomes[0].counts.get("written", 0) > 0, (template, outcomes[0].counts)
            stage.expected = store_state(sandbox)
            stage.expected_tables = copy_tables(state)
            mapping_file = Path(settings.mappings_dir) / get_template(template).mapping_file
            stage.tasks = task_targets(load_mapping(mapping_file, engine.catalogue))
            stages[template] = stage
        w = World(sandbox, env, settings, state, settings_file, stages, engine.catalogue)
        yield w
        print("\n" + "\n".join(w.summary))
    sandbox.reset()


def _rollback(world: World, stage: Stage, template: str) -> None:
    world.sandbox.faults.clear()
    world.sandbox.latency.clear()
    world.sandbox.dataverse.restore(stage.dataverse)
    world.sandbox.finops.restore(stage.finops)
    world.state.lock(template).break_lease()
    restore_tables(world.state, stage.tables)
    world.sandbox.log.reset()


def _kill_from_log(child: subprocess.Popen[bytes], sandbox: Any, batches: int) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline and child.poll() is None:
        if sandbox.log.count(service="finops", kind="batch") >= batches:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    try:
        child.wait(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _run_child(world: World, template: str, kill_at: str) -> int:
    """Start the child run, kill it at `kill_at`; returns its exit status (-9 when killed)."""
    point = kill_at.split(":", maxsplit=1)[0]
    if point == "write-inflight":
        service = "finops" if get_template(template).direction == "sales_to_fno" else "dataverse"
        world.sandbox.latency.configure(service, fixed_ms=INFLIGHT_LATENCY_MS)
    elif point == "log":
        # slow writes a little so the outside observer kills mid-run, not after it
        world.sandbox.latency.configure("finops", fixed_ms=15)
    child_kill = "checkpoint-after:999999" if point == "log" else kill_at
    child = subprocess.Popen(
        [
            sys.executable, "-m", "tests.crash.child", "--settings", str(world.settings_file),
            "--template", template, "--kill-at", child_kill,
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        if point == "log":
            _kill_from_log(child, world.sandbox, int(kill_at.split(":")[1]))
        else:
            child.wait(timeout=CHILD_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        world.sandbox.latency.clear()
    if child.returncode != -signal.SIGKILL and child.stderr is not None:
        sys.stderr.write(child.stderr.read().decode(errors="replace")[-3000:])
    if child.stderr is not None:
        child.stderr.close()
    return child.returncode


@pytest.mark.parametrize(("template", "kill_at"), CASES, ids=[f"{t}-{k}" for t, k in CASES])
def test_sigkill_then_normal_run_converges(world: World, template: str, kill_at: str) -> None:
    stage = world.stages[template]
    _rollback(world, stage, template)
    t0 = time.monotonic()

    status = _run_child(world, template, kill_at)
    assert status == -signal.SIGKILL, f"the run ended ({status}) before reaching kill point {kill_at}"
    requests_before_kill = len(world.sandbox.log.entries())
    state, companies = world.state, _companies(world, template)

    # 1. the checkpoint is never ahead of the writes
    lag = checkpoint_lag(state, template, stage.tasks, companies, stage.expected_tables)
    assert not lag, "\n".join(lag)
    saved = sum(
        1 for t in stage.tasks for c in companies if state.checkpoints.load(template, t.task, c).cursor
    )

    # 2. the dead run's lease (it would expire within 60 s) is broken; normal runs converge
    state.lock(template).break_lease()
    outcomes = run_until_quiet(world.settings, state, template, world.catalogue)
    actual = store_state(world.sandbox)
    problems = diff_states(actual, stage.expected)
    assert not problems, "\n".join(problems)
    assert store_duplicates(world.sandbox) == []
    for t in stage.tasks:
        for c in companies:
            assert state.checkpoints.load(template, t.task, c).cursor is not None, (t.task, c)
    written = sum(o.counts.get("written", 0) for o in outcomes)
    world.summary.append(
        f"[crash] {template} kill at {kill_at}: requests before kill={requests_before_kill} "
        f"checkpoints saved by the killed run={saved} converging runs={len(outcomes)} "
        f"({','.join(o.status for o in outcomes)}) rewritten={written} lost=0 duplicates=0 "
        f"time={time.monotonic() - t0:.1f}s"
    )


def test_the_checks_can_fail(world: World) -> None:
    """The two judges of this suite flag what they must: a checkpoint ahead, a lost or extra row.

    Without this, a comparison that silently saw nothing (an empty reference, a wrong key) would
    let every crash case pass.
    """
    template = "accounts"
    stage = world.stages[template]
    _rollback(world, stage, template)
    state, companies = world.state, _companies(world, template)
    # a checkpoint saved before anything was written is "ahead"
    first = stage.tasks[0]
    cp = state.checkpoints.load(template, first.task, companies[0])
    cp.cursor = "ahead-of-the-writes"
    state.checkpoints.save(cp)
    lag = checkpoint_lag(state, template, stage.tasks, companies, stage.expected_tables)
    assert len(lag) == 1 and "neither written nor in the retry store" in lag[0], lag
    # the reference has rows this state has not: all of them are reported lost
    problems = diff_states(store_state(world.sandbox), stage.expected)
    assert any("lost" in p for p in problems), problems
    # an extra row under another key is reported as unexpected, a changed field by name
    state.lock(template).break_lease()
    restore_tables(state, stage.tables)
    run_until_quiet(world.settings, state, template, world.catalogue)
    assert diff_states(store_state(world.sandbox), stage.expected) == []
    customer = world.sandbox.finops.rows("CustomersV2", company="usmf")[0]
    world.sandbox.finops.insert("CustomersV2", {**customer, "CustomerAccount": "CRASH-DUP"})
    world.sandbox.finops.update(
        "CustomersV2", {"dataAreaId": "usmf", "CustomerAccount": customer["CustomerAccount"]},
        {"OrganizationName": "changed"},
    )
    problems = diff_states(store_state(world.sandbox), stage.expected)
    assert any("unexpected" in p and "crash-dup" in p.lower() for p in problems), problems
    changed = ".OrganizationName: 'changed' != " + repr(customer["OrganizationName"])
    assert any(p.endswith(changed) for p in problems), problems
