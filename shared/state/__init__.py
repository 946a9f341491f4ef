"""Sync state in Azure Storage: checkpoints, crosswalk, runs, retry store, run locks, reports."""

from shared.state.checkpoints import Checkpoint, CheckpointConflict, CheckpointStore
from shared.state.crosswalk import CrosswalkEntry, CrosswalkStore
from shared.state.errors import ErrorRecord, ErrorStore, backoff
from shared.state.lock import LeaseLost, RunLock
from shared.state.reports import ReportStore, ReportWriter
from shared.state.runs import RunRecord, RunStore
from shared.state.store import StateStore

__all__ = [
    "Checkpoint",
    "CheckpointConflict",
    "CheckpointStore",
    "CrosswalkEntry",
    "CrosswalkStore",
    "ErrorRecord",
    "ErrorStore",
    "LeaseLost",
    "ReportStore",
    "ReportWriter",
    "RunLock",
    "RunRecord",
    "RunStore",
    "StateStore",
    "backoff",
]
