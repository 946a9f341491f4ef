"""Run history: one row per run of a template, newest first.

Partition = template; row key = inverted start timestamp + run id, so a plain partition query
returns the newest runs first and ``list(limit=20)`` reads one small page. Run ids are not
derivable from the row key, so a small pointer row (partition ``id|template``, row = run id)
makes ``get(template, run_id)`` two point reads instead of a partition scan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.state._props import get_json, put_json, read_dt, truncate, utc
from shared.state.keys import compose_key, encode_key

RUN_STATUSES = ("running", "succeeded", "partial", "failed", "skipped")
_INVERT_BASE = 10**17  # microseconds since the epoch stay below this until year 5138
_MESSAGE_CHARS = 8_000


@dataclass
class RunRecord:
    """One run of a template as shown by ``GET /api/runs`` and the CLI."""

    template: str
    run_id: str
    trigger: str
    mode: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    companies: list[str]
    message: str = ""
    requests: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (ISO-8601 dates)."""
        return {
            "template": self.template,
            "run_id": self.run_id,
            "trigger": self.trigger,
            "mode": self.mode,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": None if self.finished_at is None else self.finished_at.isoformat(),
            "duration_s": self.duration_s,
            "counts": dict(self.counts),
            "companies": list(self.companies),
            "message": self.message,
            "requests": {k: dict(v) for k, v in self.requests.items()},
        }


def _row_key(started_at: datetime, run_id: str) -> str:
    started = utc(started_at)
    micros = int(started.timestamp()) * 1_000_000 + started.microsecond
    return f"{_INVERT_BASE - micros:017d}-{encode_key(run_id, max_units=400)}"


class RunStore:
    """The ``runs`` table."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    def start(self, rec: RunRecord) -> None:
        """Record a run as it begins (status normally ``running``)."""
        self._write(rec)

    def finish(self, rec: RunRecord) -> None:
        """Record the final outcome; also used alone for runs that never started (``skipped``)."""
        self._write(rec)

    def _write(self, rec: RunRecord) -> None:
        if rec.status not in RUN_STATUSES:
            raise ValueError(f"run status {rec.status!r} is not one of {', '.join(RUN_STATUSES)}")
        rk = _row_key(rec.started_at, rec.run_id)
        entity: dict[str, Any] = {
            "PartitionKey": compose_key(rec.template),
            "RowKey": rk,
            "Template": rec.template,
            "RunId": rec.run_id,
            "Trigger": rec.trigger,
            "Mode": rec.mode,
            "Status": rec.status,
            "StartedAt": utc(rec.started_at),
            "Counts": put_json(rec.counts),
            "Companies": put_json(rec.companies),
            "Message": truncate(rec.message, _MESSAGE_CHARS),
            "Requests": put_json(rec.requests),
        }
        if rec.finished_at is not None:
            entity["FinishedAt"] = utc(rec.finished_at)
            entity["DurationS"] = float((utc(rec.finished_at) - utc(rec.started_at)).total_seconds())
        self.table.upsert_entity(entity, mode=UpdateMode.REPLACE)
        pointer = {
            "PartitionKey": compose_key("id", rec.template),
            "RowKey": encode_key(rec.run_id),
            "RunId": rec.run_id,
            "Ref": rk,
        }
        self.table.upsert_entity(pointer, mode=UpdateMode.REPLACE)

    def list(self, template: str, limit: int = 20) -> list[RunRecord]:
        """The newest ``limit`` runs, newest first."""
        if limit <= 0:
            return []
        entities = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": compose_key(template)}, results_per_page=min(limit, 1000)
        )
        out: list[RunRecord] = []
        for entity in entities:
            out.append(_record(entity))
            if len(out) >= limit:
                break
        return out

    def get(self, template: str, run_id: str) -> RunRecord | None:
        try:
            pointer = self.table.get_entity(compose_key("id", template), encode_key(run_id))
            if pointer.get("RunId") != run_id:
                return None
            return _record(self.table.get_entity(compose_key(template), str(pointer["Ref"])))
        except ResourceNotFoundError:
            return None

    def latest(self, template: str, status: str | None = None) -> RunRecord | None:
        """The newest run, optionally the newest with a given status (filtered by the service)."""
        query = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": compose_key(template)}
        if status is not None:
            query += " and Status eq @status"
            params["status"] = status
        for entity in self.table.query_entities(query, parameters=params, results_per_page=1):
            return _record(entity)
        return None


def _record(entity: Any) -> RunRecord:
    started = read_dt(entity, "StartedAt")
    if started is None:
        raise ValueError(f"run row {entity.get('RowKey')!r} has no StartedAt")
    return RunRecord(
        template=str(entity["Template"]),
        run_id=str(entity["RunId"]),
        trigger=str(entity.get("Trigger", "")),
        mode=str(entity.get("Mode", "")),
        status=str(entity.get("Status", "")),
        started_at=started,
        finished_at=read_dt(entity, "FinishedAt"),
        counts={str(k): int(v) for k, v in get_json(entity, "Counts", {}).items()},
        companies=[str(c) for c in get_json(entity, "Companies", [])],
        message=str(entity.get("Message", "")),
        requests={
            str(k): {str(kk): int(vv) for kk, vv in v.items()}
            for k, v in get_json(entity, "Requests", {}).items()
        },
    )
