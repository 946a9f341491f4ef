"""The retry store: records that failed or were deferred, retried with back-off, parked after N tries.

Partition = template; row = ``company|task|source_key``, so one record has one row however often
it fails. ``record`` keeps ``first_seen`` and counts attempts; ``due`` hands the engine what to
retry now. Rows are kept when resolved (status ``resolved``) so the history of a record stays
visible through ``GET /api/errors``; a new failure of the same record re-opens the same row with a
fresh attempt count, so the table grows only with distinct failing records, never per attempt.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.state._props import etag_of, read_dt, truncate, utc
from shared.state.keys import compose_key
from shared.state.transactions import RETRY_ON_METHODS

ERROR_STATUSES = ("retrying", "parked", "resolved")
ERROR_KINDS = ("failed", "deferred")
#: Failed records back off 1, 2, 4 … minutes, capped at 6 hours.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=6)
#: A deferred record waits for its parent, which the next run of the parent template may bring:
#: it is due again on every later run rather than backing off.
DEFERRED_DELAY = timedelta(minutes=1)
MESSAGE_CHARS = 4_000
PAYLOAD_EXCERPT_CHARS = 8_000
_WRITE_ATTEMPTS = 5


def backoff(attempts: int, kind: str = "failed") -> timedelta:
    """Delay before the next retry after ``attempts`` failed attempts."""
    if kind == "deferred":
        return DEFERRED_DELAY
    exponent = max(0, attempts - 1)
    if exponent >= 20:  # 2**20 minutes is far past the cap; avoid huge timedelta arithmetic
        return BACKOFF_CAP
    delay: timedelta = BACKOFF_BASE * (2**exponent)
    return min(delay, BACKOFF_CAP)


@dataclass
class ErrorRecord:
    """One record in the retry store."""

    template: str
    source_key: str
    company: str
    task: str
    kind: str
    error_class: str
    message: str
    field: str | None = None
    payload_excerpt: str = ""
    missing_reference: str | None = None
    run_id: str = ""
    attempts: int = 0
    status: str = "retrying"
    next_due: datetime | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (ISO-8601 dates)."""

        def iso(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "template": self.template,
            "source_key": self.source_key,
            "company": self.company,
            "task": self.task,
            "kind": self.kind,
            "error_class": self.error_class,
            "message": self.message,
            "field": self.field,
            "payload_excerpt": self.payload_excerpt,
            "missing_reference": self.missing_reference,
            "run_id": self.run_id,
            "attempts": self.attempts,
            "status": self.status,
            "next_due": iso(self.next_due),
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
        }


class ErrorStore:
    """The ``errors`` table."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    @staticmethod
    def _keys(template: str, company: str, task: str, source_key: str) -> tuple[str, str]:
        return compose_key(template), compose_key(company, task, source_key)

    def record(self, rec: ErrorRecord, *, park_after: int, now: datetime | None = None) -> ErrorRecord:
        """Count one more failed attempt of a record and schedule (or park) its next retry.

        A resolved row is re-opened with a fresh count. Writes are ETag-guarded and retried, so a
        concurrent ``requeue`` is never lost under a stale read.
        """
        if rec.kind not in ERROR_KINDS:
            raise ValueError(f"error kind {rec.kind!r} is not one of {', '.join(ERROR_KINDS)}")
        moment = utc(now or datetime.now(UTC))
        pk, rk = self._keys(rec.template, rec.company, rec.task, rec.source_key)
        for _ in range(_WRITE_ATTEMPTS):
            try:
                existing = self.table.get_entity(pk, rk)
            except ResourceNotFoundError:
                existing = None
            previous = None if existing is None else _record(existing)
            reopen = previous is None or previous.status == "resolved"
            attempts = 1 if reopen or previous is None else previous.attempts + 1
            first_seen = moment if reopen or previous is None else (previous.first_seen or moment)
            saved = ErrorRecord(
                template=rec.template,
                source_key=rec.source_key,
                company=rec.company,
                task=rec.task,
                kind=rec.kind,
                error_class=rec.error_class,
                message=truncate(rec.message, MESSAGE_CHARS),
                field=rec.field,
                payload_excerpt=truncate(rec.payload_excerpt, PAYLOAD_EXCERPT_CHARS),
                missing_reference=rec.missing_reference,
                run_id=rec.run_id,
                attempts=attempts,
                status="parked" if attempts >= park_after else "retrying",
                next_due=moment + backoff(attempts, rec.kind),
                first_seen=first_seen,
                last_seen=moment,
            )
            entity = _entity(pk, rk, saved)
            try:
                if existing is None:
                    self.table.create_entity(entity)
                else:
                    self.table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=etag_of(existing),
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue  # someone else wrote the row between our read and write: re-read
            return saved
        raise RuntimeError(f"retry-store row {rec.template}/{rec.source_key} kept changing; gave up")

    def due(self, template: str, now: datetime, limit: int = 1000) -> list[ErrorRecord]:
        """Records waiting for a retry whose time has come (parked ones never are)."""
        query = "PartitionKey eq @pk and Status eq @status and NextDue le @now"
        params = {"pk": compose_key(template), "status": "retrying", "now": utc(now)}
        return self._query(query, params, limit)

    def resolve(self, template: str, source_key: str, company: str) -> int:
        """Mark every open row of a record (any task) resolved; the row is kept as history."""
        rows = self._rows_of(template, company=company, source_keys=[source_key])
        ops = [
            {"PartitionKey": r["PartitionKey"], "RowKey": r["RowKey"], "Status": "resolved"}
            for r in rows
            if r.get("Status") != "resolved"
        ]
        self._merge(ops)
        return len(ops)

    def list(self, template: str, status: str | None = None, limit: int = 100) -> builtins.list[ErrorRecord]:
        if status is not None and status not in ERROR_STATUSES:
            raise ValueError(f"error status {status!r} is not one of {', '.join(ERROR_STATUSES)}")
        query = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": compose_key(template)}
        if status is not None:
            query += " and Status eq @status"
            params["status"] = status
        return self._query(query, params, limit)

    def counts(self, template: str) -> dict[str, int]:
        """Rows per status (every status present, zero when none)."""
        result = dict.fromkeys(ERROR_STATUSES, 0)
        entities = self.table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": compose_key(template)}, select=["Status"]
        )
        for entity in entities:
            status = str(entity.get("Status", ""))
            result[status] = result.get(status, 0) + 1
        return result

    def requeue(
        self, template: str, keys: Sequence[str] | None = None, *, now: datetime | None = None
    ) -> int:
        """Make parked/retrying records (all, or those with these source keys) due now, attempts 0."""
        moment = utc(now or datetime.now(UTC))
        rows = self._rows_of(template, company=None, source_keys=keys)
        ops = [
            {
                "PartitionKey": r["PartitionKey"],
                "RowKey": r["RowKey"],
                "Status": "retrying",
                "Attempts": 0,
                "NextDue": moment,
            }
            for r in rows
            if r.get("Status") in ("retrying", "parked")
        ]
        self._merge(ops)
        return len(ops)

    # -- internals ------------------------------------------------------------------------------

    def _query(self, query: str, params: dict[str, Any], limit: int) -> builtins.list[ErrorRecord]:
        out: builtins.list[ErrorRecord] = []
        if limit <= 0:
            return out
        for entity in self.table.query_entities(query, parameters=params, results_per_page=min(limit, 1000)):
            out.append(_record(entity))
            if len(out) >= limit:
                break
        return out

    def _rows_of(
        self, template: str, *, company: str | None, source_keys: Sequence[str] | None
    ) -> builtins.list[dict[str, Any]]:
        """Rows of a template, optionally narrowed to some source keys (filtered by the service)."""
        base = "PartitionKey eq @pk"
        params: dict[str, Any] = {"pk": compose_key(template)}
        if company is not None:
            base += " and Company eq @company"
            params["company"] = company
        select = ["PartitionKey", "RowKey", "Status", "SourceKey"]
        if source_keys is None:
            return [dict(e) for e in self.table.query_entities(base, parameters=params, select=select)]
        rows: builtins.list[dict[str, Any]] = []
        unique = list(dict.fromkeys(source_keys))
        # At most 15 comparisons per filter: PartitionKey, Company and up to 12 source keys.
        for start in range(0, len(unique), 12):
            chunk = unique[start : start + 12]
            chunk_params = dict(params)
            clauses = []
            for index, key in enumerate(chunk):
                chunk_params[f"k{index}"] = key
                clauses.append(f"SourceKey eq @k{index}")
            query = f"{base} and ( {' or '.join(clauses)} )"  # SDK needs spaces round @names
            found = self.table.query_entities(query, parameters=chunk_params, select=select)
            rows.extend(dict(e) for e in found)
        return rows

    def _merge(self, entities: builtins.list[dict[str, Any]]) -> None:
        """Merge small updates in transactions (one partition per template, ≤100 each)."""
        for start in range(0, len(entities), 100):
            chunk = entities[start : start + 100]
            ops: builtins.list[Any] = [("update", e, {"mode": UpdateMode.MERGE}) for e in chunk]
            # Merging the same values twice changes nothing, so a transaction whose connection was
            # reset is sent again (azure-core does not repeat a POST by itself).
            self.table.submit_transaction(ops, retry_on_methods=RETRY_ON_METHODS)


def _entity(pk: str, rk: str, rec: ErrorRecord) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": pk,
        "RowKey": rk,
        "Template": rec.template,
        "SourceKey": rec.source_key,
        "Company": rec.company,
        "Task": rec.task,
        "Kind": rec.kind,
        "ErrorClass": truncate(rec.error_class, 200),
        "Message": rec.message,
        "Field": rec.field,
        "PayloadExcerpt": rec.payload_excerpt,
        "MissingReference": rec.missing_reference,
        "RunId": rec.run_id,
        "Attempts": rec.attempts,
        "Status": rec.status,
    }
    dates = (("NextDue", rec.next_due), ("FirstSeen", rec.first_seen), ("LastSeen", rec.last_seen))
    for name, value in dates:
        if value is not None:
            entity[name] = utc(value)
    return {k: v for k, v in entity.items() if v is not None}


def _record(entity: Any) -> ErrorRecord:
    field = entity.get("Field")
    missing = entity.get("MissingReference")
    return ErrorRecord(
        template=str(entity["Template"]),
        source_key=str(entity["SourceKey"]),
        company=str(entity.get("Company", "")),
        task=str(entity.get("Task", "")),
        kind=str(entity.get("Kind", "failed")),
        error_class=str(entity.get("ErrorClass", "")),
        message=str(entity.get("Message", "")),
        field=None if field is None else str(field),
        payload_excerpt=str(entity.get("PayloadExcerpt", "")),
        missing_reference=None if missing is None else str(missing),
        run_id=str(entity.get("RunId", "")),
        attempts=int(entity.get("Attempts", 0)),
        status=str(entity.get("Status", "retrying")),
        next_due=read_dt(entity, "NextDue"),
        first_seen=read_dt(entity, "FirstSeen"),
        last_seen=read_dt(entity, "LastSeen"),
    )
