"""Run reports: per-record outcomes of a run as NDJSON in ``reports/<template>/<run_id>.ndjson``.

An append blob lets a long run stream its report in blocks instead of holding every line in
memory; lines are buffered and flushed every ``flush_every`` lines (or ~1 MiB) and on close, so a
crash loses at most one buffer. Reports are for audit, never read back by the engine.
"""

from __future__ import annotations

import contextlib
import json
from types import TracebackType
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

FLUSH_EVERY_LINES = 500
#: Append blocks are limited to 4 MiB; flush well before that.
FLUSH_BYTES = 1024 * 1024
_MAX_LINE_BYTES = 256 * 1024

#: One encoder for every line (`json.dumps` with options builds a new one per call, and a run
#: writes a line per record); it holds no state between calls.
_LINE_JSON = json.JSONEncoder(ensure_ascii=False, default=str, separators=(",", ":"))


def report_blob_name(template: str, run_id: str) -> str:
    if "/" in run_id or "\\" in run_id or "/" in template or run_id in ("", ".", ".."):
        raise ValueError(f"invalid template/run id for a report name: {template!r}/{run_id!r}")
    return f"{template}/{run_id}.ndjson"


class ReportWriter:
    """Buffered NDJSON writer for one run's report."""

    def __init__(self, container: ContainerClient, template: str, run_id: str, *, flush_every: int) -> None:
        self.blob = container.get_blob_client(report_blob_name(template, run_id))
        self.container = container
        self.flush_every = max(1, flush_every)
        self._buffer: list[bytes] = []
        self._buffered_bytes = 0
        self._created = False
        self._closed = False
        self.lines_written = 0

    def write(self, line: dict[str, Any]) -> None:
        if self._closed:
            raise ValueError("report writer is closed")
        data = _LINE_JSON.encode(line).encode("utf-8")
        if len(data) > _MAX_LINE_BYTES:  # one runaway payload must not break the append-block limit
            data = json.dumps(
                {k: line[k] for k in ("outcome", "key", "task", "company") if k in line}
                | {"truncated": True},
                ensure_ascii=False,
                default=str,
            ).encode("utf-8")
        self._buffer.append(data + b"\n")
        self._buffered_bytes += len(data) + 1
        if len(self._buffer) >= self.flush_every or self._buffered_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Append the buffered lines as one block (creating the blob on first use)."""
        self._create()
        if not self._buffer:
            return
        payload = b"".join(self._buffer)
        self.blob.append_block(payload)
        self.lines_written += len(self._buffer)
        self._buffer.clear()
        self._buffered_bytes = 0

    def close(self) -> None:
        """Flush what is left; the blob exists afterwards even for a run with no lines."""
        if self._closed:
            return
        self.flush()
        self._closed = True

    def _create(self) -> None:
        if self._created:
            return
        settings = ContentSettings(content_type="application/x-ndjson")
        try:
            self.blob.create_append_blob(content_settings=settings, if_none_match="*")
        except ResourceNotFoundError:  # container missing: ensure() was not run yet
            with contextlib.suppress(ResourceExistsError):
                self.container.create_container()
            self.blob.create_append_blob(content_settings=settings, if_none_match="*")
        except (ResourceExistsError, ResourceModifiedError):  # same run id again: keep appending
            pass
        self._created = True

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ReportStore:
    """The ``reports`` container."""

    def __init__(self, container: ContainerClient, *, flush_every: int = FLUSH_EVERY_LINES) -> None:
        self.container = container
        self.flush_every = flush_every

    def writer(self, template: str, run_id: str) -> ReportWriter:
        return ReportWriter(self.container, template, run_id, flush_every=self.flush_every)

    def read(self, template: str, run_id: str) -> list[dict[str, Any]]:
        """Every line of a run's report ([] when the run wrote none)."""
        blob = self.container.get_blob_client(report_blob_name(template, run_id))
        try:
            data = blob.download_blob().readall()
        except ResourceNotFoundError:
            return []
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
