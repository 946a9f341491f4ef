"""Manual runs go through a Storage queue so a long sync is never cut by the HTTP time limit.

`POST /api/sync/{template}` validates the request, enqueues a `RunRequest` and answers 202 with the
run id; the queue-triggered function executes it. The message is the whole contract between the
two, so it is a validated model.

This module also holds the operator's read model of a template (`template_status`), because the
HTTP API (`GET /api/status`) and the CLI (`p2c status`) must report the same figures.
"""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.templates import TEMPLATE_NAMES

if TYPE_CHECKING:
    from shared.state import StateStore

RUN_QUEUE = "p2c-runs"
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
#: How many retry-store rows `template_status` reads per template to count deferred records.
STATUS_SCAN_LIMIT = 50_000


def new_run_id(now: datetime | None = None) -> str:
    """The same shape as the engine's run ids: sortable timestamp plus a random suffix."""
    moment = now or datetime.now(UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


class RunRequest(BaseModel):
    """A queued manual run of one template, or of all of them in dependency order."""

    model_config = ConfigDict(extra="forbid")

    template: str
    mode: Literal["incremental", "full"] = "incremental"
    dry_run: bool = False
    run_id: str = Field(default_factory=new_run_id, pattern=RUN_ID_PATTERN)
    trigger: Literal["http", "queue", "cli", "timer", "demo"] = "http"

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        if value != "all" and value not in TEMPLATE_NAMES:
            raise ValueError(f"unknown template {value!r}; use one of: all, {', '.join(TEMPLATE_NAMES)}")
        return value

    def run_id_of(self, template: str) -> str:
        """The run id of one template's run: the request's own, or `<id>-<template>` for `all`.

        A run of `all` is several runs; deriving their ids from the queued one lets an operator find
        each of them from the 202 answer (`GET /api/runs/{template}/{run_id}-{template}`).
        """
        return self.run_id if self.template != "all" else f"{self.run_id}-{template}"


@dataclass(frozen=True)
class QueuedRequest:
    """A message taken off the queue: its id and pop receipt (to delete it) and the decoded text."""

    id: str
    pop_receipt: str
    content: str
    dequeue_count: int

    def request(self) -> RunRequest:
        return RunRequest.model_validate_json(self.content)


class RunQueue:
    """The queue of manual runs (identity-based in Azure, connection string locally).

    Messages are Base64 text: that is what the Functions queue trigger expects by default
    (`host.json` `messageEncoding: base64`), so the trigger hands the function the JSON text.
    """

    def __init__(self, client: QueueClient) -> None:
        self.client = client

    @classmethod
    def from_connection_string(cls, connection_string: str, name: str = RUN_QUEUE) -> RunQueue:
        client = QueueClient.from_connection_string(
            connection_string,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        return cls(client)

    @classmethod
    def from_account(cls, account: str, credential: Any, name: str = RUN_QUEUE) -> RunQueue:
        """Needs Storage Queue Data Message Sender (HTTP API) / Processor (trigger) on the account."""
        client = QueueClient(
            f"https://{account}.queue.core.windows.net",
            name,
            credential=credential,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )
        return cls(client)

    def ensure(self) -> None:
        """Create the queue if missing (Bicep creates it in Azure; Azurite starts empty)."""
        with contextlib.suppress(ResourceExistsError):
            self.client.create_queue()

    def enqueue(self, request: RunRequest) -> None:
        self.client.send_message(request.model_dump_json())

    def receive(self, visibility_timeout: int = 60) -> QueuedRequest | None:
        """Take the next message (invisible for `visibility_timeout` s) or None when the queue is empty."""
        for message in self.client.receive_messages(max_messages=1, visibility_timeout=visibility_timeout):
            return QueuedRequest(
                id=str(message.id),
                pop_receipt=str(message.pop_receipt),
                content=str(message.content),
                dequeue_count=int(message.dequeue_count or 0),
            )
        return None

    def delete(self, message: QueuedRequest) -> None:
        self.client.delete_message(message.id, message.pop_receipt)


def _lag_seconds(state: StateStore, template: str, now: datetime) -> float | None:
    """Seconds since any checkpoint of the template last advanced (None: it never completed a read)."""
    moments = [cp.updated_at for cp in state.checkpoints.list(template) if cp.updated_at is not None]
    if not moments:
        return None
    newest = max(moments)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    return round(max(0.0, (now - newest).total_seconds()), 1)


def _open_counts(state: StateStore, template: str) -> dict[str, int]:
    """Open retry-store rows by what they wait for: `failed` retrying, `deferred` retrying, parked."""
    counts = {"failed": 0, "deferred": 0, "parked": 0}
    for rec in state.errors.list(template, status="retrying", limit=STATUS_SCAN_LIMIT):
        counts["deferred" if rec.kind == "deferred" else "failed"] += 1
    counts["parked"] = state.errors.counts(template).get("parked", 0)
    return counts


def template_status(state: StateStore, template: str, now: datetime | None = None) -> dict[str, Any]:
    """Last run, outcome, checkpoint lag and retry-store counts of one template (JSON-ready)."""
    moment = now or datetime.now(UTC)
    last = state.runs.latest(template)
    return {
        "template": template,
        "last_run": None if last is None else last.as_dict(),
        "outcome": None if last is None else last.status,
        "lag_s": _lag_seconds(state, template, moment),
        "errors": state.errors.counts(template),
        "open": _open_counts(state, template),
    }
