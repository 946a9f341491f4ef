"""Target arithmetic of the benchmark: write minimum per task and company, idle-read minimum."""

from __future__ import annotations

from typing import Any

from bench.run import entity_set_of, read_minimum, source_reads, write_minimum

BATCH = {"finops": 100, "dataverse": 1000}
TO_SALES = {
    "header": {
        "source_service": "finops",
        "source_set": "CDSSalesOrderHeaders",
        "target_service": "dataverse",
    },
    "line": {"source_service": "finops", "source_set": "CDSSalesOrderLines", "target_service": "dataverse"},
    "freight_tax": {
        "source_service": "finops",
        "source_set": "CDSSalesOrderHeaders",
        "target_service": "dataverse",
    },
}
TO_FNO = {
    "header": {"source_service": "dataverse", "source_set": "salesorders", "target_service": "finops"},
    "lines": {"source_service": "dataverse", "source_set": "salesorderdetails", "target_service": "finops"},
}


def task(name: str, company: str, written: int) -> dict[str, Any]:
    return {"task": name, "company": company, "counts": {"read": written, "written": written}}


def test_write_minimum_is_summed_per_task_and_company() -> None:
    tasks = [task("header", "usmf", 250), task("lines", "usmf", 101), task("header", "demf", 1)]
    minimum, note = write_minimum(tasks, TO_FNO, BATCH, 352)
    # ceil(250/100) + ceil(101/100) + ceil(1/100), not ceil(352/100) = 4
    assert minimum == 3 + 2 + 1
    assert "header/usmf ceil(250/100)=3" in note and "header/demf" in note


def test_write_minimum_uses_the_bulk_size_of_each_task_target() -> None:
    tasks = [task("header", "usmf", 700), task("line", "usmf", 2100), task("freight_tax", "usmf", 0)]
    minimum, note = write_minimum(tasks, TO_SALES, BATCH, 2800)
    assert minimum == 1 + 3
    assert "freight_tax" not in note  # wrote nothing, needs no request


def test_write_minimum_without_per_task_counts_falls_back_to_the_total() -> None:
    minimum, note = write_minimum([{"task": "header", "company": "usmf"}], TO_FNO, BATCH, 250)
    assert minimum == 3 and "no per-task counts" in note


def test_idle_minimum_dataverse_source_is_one_read_per_task() -> None:
    initial = {
        "tasks": [task("header", "usmf", 10), task("lines", "usmf", 30)],
        "log": {"reads_by_set": {"dataverse:salesorders": 1, "dataverse:products": 1}},
    }
    minimum, note = read_minimum(initial, TO_FNO)
    assert minimum == 2 and "change tracking" in note


def test_idle_minimum_fno_source_is_the_initial_snapshot_pages() -> None:
    initial = {
        "tasks": [task("header", "usmf", 700), task("line", "usmf", 2100), task("freight_tax", "usmf", 200)],
        # header and freight_tax both read the header snapshot; reference reads are on Dataverse
        "log": {
            "reads_by_set": {
                "finops:CDSSalesOrderHeaders": 2,
                "finops:CDSSalesOrderLines": 3,
                "dataverse:uoms": 1,
            }
        },
    }
    minimum, note = read_minimum(initial, TO_SALES)
    assert minimum == 5
    assert "per page per company per task" in note


def test_source_reads_leave_reference_reads_out() -> None:
    log = {
        "reads_by_set": {"dataverse:salesorders": 1, "dataverse:salesorderdetails": 1, "dataverse:uoms": 4}
    }
    assert source_reads(log, TO_FNO) == 2


def test_entity_set_of_paths() -> None:
    assert entity_set_of("/api/data/v9.2/salesorders") == "salesorders"
    assert entity_set_of("/api/data/v9.2/accounts(1f0e7c7e-0000-0000-0000-000000000000)") == "accounts"
    assert entity_set_of("/data/CDSSalesOrderLines") == "CDSSalesOrderLines"
