"""Manual runs go through a Storage queue so a long sync is never cut by the HTTP time limit.

`POST /api/sync/{template}` validates the request, enqueues a `RunRequest` and answers 202 with the
run id; the queue-triggered function executes it. The message is the whole contract between the
two, so it is a validated model.
"""

from __future__ import annotations

import contextlib

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.templates import TEMPLATE_NAMES

RUN_QUEUE = "p2c-runs"


class RunRequest(BaseModel):
    """A queued manual run of one template, or of all of them in dependency order."""

    model_config = ConfigDict(extra="forbid")

    template: str
    mode: Literal["incremental", "full"] = "incremental"
    dry_run: bool = False
    run_id: str = Field(
        default_factory=lambda: f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    )
    trigger: Literal["http", "queue", "cli", "timer", "demo"] = "http"

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str) -> str:
        if value != "all" and value not in TEMPLATE_NAMES:
            raise ValueError(f"unknown template {value!r}; use one of: all, {', '.join(TEMPLATE_NAMES)}")
        return value


class RunQueue:
    """The queue of manual runs (identity-based in Azure, connection string locally)."""

    def __init__(self, client: QueueClient) -> None:
        self.client = client

    @classmethod
    def from_connection_string(cls, connection_string: str, name: str = RUN_QUEUE) -> RunQueue:
        client = QueueClient.from_connection_string(
            connection_string, name, message_encode_policy=TextBase64EncodePolicy()
        )
        return cls(client)

    @classmethod
    def from_account(cls, account: str, credential: Any, name: str = RUN_QUEUE) -> RunQueue:
        client = QueueClient(
            f"https://{account}.queue.core.windows.net",
            name,
            credential=credential,
            message_encode_policy=TextBase64EncodePolicy(),
        )
        return cls(client)

    def ensure(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError):
            self.client.create_queue()

    def enqueue(self, request: RunRequest) -> None:
        self.client.send_message(request.model_dump_json())
