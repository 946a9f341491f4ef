"""The benchmark's two workloads with lines, through the harness's own functions, at a tiny size.

`bench_product` seeds the sandbox, runs the workload's prerequisites (accounts before
orders-to-fno) and then the measured scenarios, each in a fresh child process, exactly as
`python -m bench` does. What must hold for the figures to mean anything: every record the
template selects is written (none deferred: the seed names only parents that exist), the idle run
and the unchanged full snapshot write nothing, and the write-request target is computed per task.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.run import (
    Context,
    bench_product,
    read_minimum,
    source_reads,
    task_endpoints,
    write_minimum,
    write_requests,
)
from bench.workloads import WORKLOADS
from sandbox.product_env import product_env
from shared.settings import Settings

pytestmark = pytest.mark.integration

SIZE = 40


@pytest.mark.parametrize("name", ["orders-to-fno", "orders-to-sales"])
def test_workload_writes_everything_it_selects_and_idles_without_writes(
    sandbox: Any, azurite_connection_string: str, name: str
) -> None:
    env = product_env(sandbox.info, azurite_connection_string)
    ctx = Context(sandbox, azurite_connection_string, env, None)
    workload = WORKLOADS[name]
    result = bench_product(ctx, workload, SIZE)

    assert [s["template"] for s in result["setup"]] == list(workload.prerequisites)
    runs = result["scenarios"]
    initial = runs["initial"]
    assert initial["status"] == "succeeded", initial["message"]
    counts = initial["counts"]
    assert counts["deferred"] == 0 and counts["failed"] == 0, counts
    assert counts["written"] > 0
    per_task = [t["counts"] for t in initial["tasks"]]
    # every record read was written or left out by a selection rule (skipped), nothing else
    assert sum(c["written"] + c["skipped"] for c in per_task) == counts["read"]
    assert runs["incremental"]["counts"]["written"] == runs["incremental"]["changed"] > 0
    for scenario in ("incremental", "idle", "full"):
        assert runs[scenario]["counts"]["deferred"] == 0, (scenario, runs[scenario]["counts"])
    assert write_requests(runs["idle"]["log"]) == 0
    assert write_requests(runs["full"]["log"]) == 0

    endpoints = task_endpoints(env, name)
    settings = Settings.from_env(env)
    batch = {"finops": settings.finops_batch_size, "dataverse": settings.dataverse_bulk_size}
    minimum, _ = write_minimum(initial["tasks"], endpoints, batch, counts["written"])
    assert write_requests(initial["log"]) <= minimum
    min_reads, _ = read_minimum(initial, endpoints)
    assert source_reads(runs["idle"]["log"], endpoints) <= min_reads
