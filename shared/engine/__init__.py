"""The sync loop: read delta → map → resolve references → write → record → checkpoint."""

from shared.engine.runner import RunOutcome, SyncEngine

__all__ = ["RunOutcome", "SyncEngine"]
