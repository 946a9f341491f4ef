"""State rollback and the "checkpoint never ahead" check of the crash suite.

Every kill case starts from the same point: the sandbox stores restored with `snapshot/restore`
and the state tables (checkpoints, crosswalk, runs, errors) restored to a copy taken before the
template's first run. The CLI child uses the default table names, so the suite has an Azurite of
its own and rolls its tables back instead of using a fresh prefix per case (which would also lose
the crosswalk of the prerequisite templates a document template needs).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from azure.data.tables import UpdateMode

from shared.engine.runner import task_pair
from shared.mapping import CompiledMapping
from shared.state import StateStore
from shared.state.crosswalk import forward_partitions

EntityKey = tuple[str, str]
#: Table transactions take at most 100 operations, all in one partition.
TRANSACTION_LIMIT = 100

TableCopy = dict[str, dict[EntityKey, dict[str, Any]]]


def _entities(state: StateStore, table: str) -> dict[EntityKey, dict[str, Any]]:
    client = state.tables.get_table_client(state.table_names[table])
    return {(e["PartitionKey"], e["RowKey"]): dict(e) for e in client.list_entities()}


def copy_tables(state: StateStore) -> TableCopy:
    """Every entity of the state tables (small test data; a rollback point)."""
    return {name: _entities(state, name) for name in state.table_names}


def restore_tables(state: StateStore, saved: TableCopy) -> None:
    """Make the state tables equal to `saved`: delete what is new, rewrite what changed.

    Operations go in table transactions (one partition, at most 100 each): a run of a few hundred
    records leaves ~3 crosswalk rows per record, and one request per row would dominate a case.
    """
    for name, wanted in saved.items():
        client = state.tables.get_table_client(state.table_names[name])
        current = _entities(state, name)
        ops: dict[str, list[Any]] = defaultdict(list)
        for key in current.keys() - wanted.keys():
            ops[key[0]].append(("delete", {"PartitionKey": key[0], "RowKey": key[1]}))
        for key, entity in wanted.items():
            if current.get(key) != entity:
                ops[key[0]].append(("upsert", entity, {"mode": UpdateMode.REPLACE}))
        for partition_ops in ops.values():
            for start in range(0, len(partition_ops), TRANSACTION_LIMIT):
                client.submit_transaction(partition_ops[start : start + TRANSACTION_LIMIT])


@dataclass(frozen=True)
class TaskTarget:
    """What one task of a template writes, in the terms the state uses."""

    task: str
    pair: str


def task_targets(mapping: CompiledMapping) -> list[TaskTarget]:
    return [TaskTarget(task.name, task_pair(task)) for task in mapping.tasks]


def checkpoint_lag(
    state: StateStore,
    template: str,
    tasks: Iterable[TaskTarget],
    companies: Iterable[str],
    reference: TableCopy,
) -> list[str]:
    """Tasks whose saved checkpoint covers changes that are neither recorded nor in the retry store.

    The killed run started from no checkpoint, so a checkpoint it saved covers every source change:
    every source key the fault-free reference recorded in the crosswalk for that task and company
    must then already be in the crosswalk (written, and the crosswalk is stored only after the
    write) or in the retry store. Anything else would be skipped by the next incremental run.
    """
    problems: list[str] = []
    crosswalk = _entities(state, "crosswalk")
    errors = {
        (str(e.get("Task")), str(e.get("Company")), str(e.get("SourceKey")))
        for e in _entities(state, "errors").values()
        if e.get("Template") == template and e.get("Status") in ("retrying", "parked")
    }
    companies = list(companies)
    for target in tasks:
        for company in companies:
            cp = state.checkpoints.load(template, target.task, company)
            if cp.cursor is None:
                continue
            forward = set(forward_partitions(target.pair, company))
            want = {str(e["SourceKey"]) for (p, _), e in reference["crosswalk"].items() if p in forward}
            have = {str(e["SourceKey"]) for (p, _), e in crosswalk.items() if p in forward}
            missing = sorted(k for k in want - have if (target.task, company, k) not in errors)
            if missing:
                problems.append(
                    f"{template}/{target.task}/{company}: checkpoint saved but {len(missing)} covered "
                    f"record(s) neither written nor in the retry store, e.g. {missing[:3]}"
                )
    return problems
