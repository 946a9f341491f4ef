"""Checkpoints: where each task of a template stopped reading its source, per company.

One row per (template, task, company): partition = template, row = task|company. The row is
ETag-guarded so a run that lost its lock (or two racing writers) can never move a cursor that
someone else has already moved: the loser gets :class:`CheckpointConflict` instead of silently
rewinding or skipping data. ``schema_version`` lets a later layout migrate old rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.state._props import etag_of, get_json, get_text, put_json, put_text, read_dt, utc
from shared.state.keys import compose_key

CURRENT_SCHEMA_VERSION = 1
_CURSOR_PARTS = 20  # 327,680 characters: far beyond any delta link, well inside 1 MiB
_DATA_PARTS = 4


class CheckpointConflict(Exception):
    """The checkpoint changed (or vanished) since it was loaded; reload and re-run the task."""


@dataclass
class Checkpoint:
    """A task's position in its source; ``etag`` is None until it has been stored once."""

    template: str
    task: str
    company: str
    cursor: str | None = None
    etag: str | None = None
    schema_version: int = CURRENT_SCHEMA_VERSION
    updated_at: datetime | None = None
    data: dict[str, Any] = field(default_factory=dict)


class CheckpointStore:
    """The ``checkpoints`` table."""

    def __init__(self, table: TableClient) -> None:
        self.table = table

    @staticmethod
    def _keys(template: str, task: str, company: str) -> tuple[str, str]:
        return compose_key(template), compose_key(task, company)

    def load(self, template: str, task: str, company: str) -> Checkpoint:
        """The stored checkpoint, or a new empty one (etag None) when the task never completed."""
        pk, rk = self._keys(template, task, company)
        try:
            entity = self.table.get_entity(pk, rk)
        except ResourceNotFoundError:
            return Checkpoint(template=template, task=task, company=company)
        return self._from_entity(entity)

    def save(self, cp: Checkpoint) -> None:
        """Insert (etag None) or replace only if unchanged since load; updates ``cp.etag``."""
        if cp.updated_at is None:
            cp.updated_at = datetime.now(UTC)
        entity = self._to_entity(cp)
        try:
            if cp.etag is None:
                meta = self.table.create_entity(entity)
            else:
                meta = self.table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=cp.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except ResourceExistsError as exc:
            raise CheckpointConflict(
                f"checkpoint {cp.template}/{cp.task}/{cp.company} was created by another writer"
            ) from exc
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise CheckpointConflict(
                f"checkpoint {cp.template}/{cp.task}/{cp.company} changed or was reset since it was loaded"
            ) from exc
        cp.etag = str(meta["etag"])

    def list(self, template: str) -> list[Checkpoint]:
        """All checkpoints of a template (one partition)."""
        entities = self.table.query_entities("PartitionKey eq @pk", parameters={"pk": compose_key(template)})
        return [self._from_entity(e) for e in entities]

    def delete(self, template: str) -> int:
        """Remove every checkpoint of a template (full reset); returns how many were removed."""
        pk = compose_key(template)
        rows = list(
            self.table.query_entities("PartitionKey eq @pk", parameters={"pk": pk}, select=["RowKey"])
        )
        for start in range(0, len(rows), 100):
            ops: list[Any] = [
                ("delete", {"PartitionKey": pk, "RowKey": row["RowKey"]}) for row in rows[start : start + 100]
            ]
            self.table.submit_transaction(ops)
        return len(rows)

    # -- mapping --------------------------------------------------------------------------------

    @staticmethod
    def _to_entity(cp: Checkpoint) -> dict[str, Any]:
        pk, rk = CheckpointStore._keys(cp.template, cp.task, cp.company)
        entity: dict[str, Any] = {
            "PartitionKey": pk,
            "RowKey": rk,
            "Template": cp.template,
            "Task": cp.task,
            "Company": cp.company,
            "SchemaVersion": cp.schema_version,
        }
        if cp.updated_at is not None:
            entity["UpdatedAt"] = utc(cp.updated_at)
        put_text(entity, "Cursor", cp.cursor, max_parts=_CURSOR_PARTS)
        put_text(entity, "Data", put_json(cp.data), max_parts=_DATA_PARTS)
        return entity

    @staticmethod
    def _from_entity(entity: Any) -> Checkpoint:
        data_text = get_text(entity, "Data")
        return Checkpoint(
            template=str(entity["Template"]),
            task=str(entity["Task"]),
            company=str(entity["Company"]),
            cursor=get_text(entity, "Cursor"),
            etag=etag_of(entity),
            schema_version=int(entity.get("SchemaVersion", CURRENT_SCHEMA_VERSION)),
            updated_at=read_dt(entity, "UpdatedAt"),
            data=get_json({"d": data_text}, "d", {}),
        )
