"""Dataverse Web API client for the sync engine (design.md §4, §7; apis.md Part A).

Reads use change tracking: the first read is a full tracked read (``Prefer: odata.track-changes``)
whose last page carries the delta link the engine stores as its checkpoint; later reads GET that
link and receive changed rows plus ``$deletedEntity`` rows. An expired token
(ExpiredVersionStamp) restarts a full tracked read, flagged so the engine compares by hash instead of
blindly rewriting everything.

Writes are keyed upserts by deterministic primary id: ``UpsertMultiple`` where the table supports it
(one transaction, all-or-nothing), replayed as a ``$batch`` with ``odata.continue-on-error`` when a
record-level error rolls the call back, so one bad record never fails its neighbours.

Everything streams page by page; no method holds a whole table in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from shared.http import response_json
from shared.odata.batch import BatchOperation, decode_batch, encode_batch
from shared.odata.errors import (
    AuthFailed,
    BudgetExhausted,
    ChangeTokenExpired,
    Conflict,
    Fatal,
    NotFound,
    RecordRejected,
    SyncError,
    Transient,
    decode_error,
)
from shared.odata.filters import F, Filter
from shared.odata.pager import iter_pages
from shared.writes import WriteOutcome, match_parts, run_chunks

if TYPE_CHECKING:
    from shared.http import ServiceHttp

__all__ = ["DataverseClient", "DataverseWrite", "DeltaPage", "WriteOutcome"]

#: Dataverse's own ceiling for odata.maxpagesize and for operations in one `$batch` (apis.md A2, A5).
MAX_PAGE_SIZE = 5000
MAX_BATCH_OPERATIONS = 1000
#: Values per `In` filter in match_existing: keeps URLs well under the 32 KB GET limit.
MATCH_CHUNK = 100

#: ExpiredVersionStamp, hex and decimal forms (apis.md A3, A6).
_EXPIRED_CODES = frozenset({"0x80044352", "-2147204270"})
_EXPIRED_TEXT = "version stamp associated with the client has expired"

#: Errors that concern the run, not a record: they propagate instead of becoming per-record failures.
_RUN_LEVEL_ERRORS: tuple[type[SyncError], ...] = (AuthFailed, BudgetExhausted, Fatal)

_ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


@dataclass
class DeltaPage:
    """One page of a tracked read.

    ``delta_link`` is set only on the last page (the service puts it there); ``restarted`` marks pages
    of a full re-read that replaced an expired delta link.
    """

    rows: list[dict[str, Any]]
    deleted_ids: list[str]
    delta_link: str | None
    restarted: bool = False


@dataclass
class DataverseWrite:
    """One keyed upsert: ``target_id`` is the row's primary id (deterministic UUIDv5 or matched)."""

    source_key: str
    target_id: str
    payload: dict[str, Any] = field(default_factory=dict)


def is_expired_token(error: SyncError) -> bool:
    """True for ExpiredVersionStamp, whichever exception class the status mapped to."""
    if isinstance(error, ChangeTokenExpired):
        return True
    code = (error.code or "").strip().lower()
    return code in _EXPIRED_CODES or _EXPIRED_TEXT in (error.message or "").lower()


def _is_deleted_row(row: Mapping[str, Any]) -> bool:
    context = row.get("@odata.context")
    if isinstance(context, str) and "$deletedEntity" in context:
        return True
    return row.get("reason") == "deleted" or "@removed" in row


def _deleted_id(row: Mapping[str, Any]) -> str | None:
    """The id of a `$deletedEntity` row; also reads the OData 4.01 `@removed`/`@id` form defensively."""
    rid = row.get("id")
    if isinstance(rid, str) and rid:
        return rid.lower()
    ref = row.get("@id")
    if isinstance(ref, str) and "(" in ref and ref.endswith(")"):
        return ref[ref.rindex("(") + 1 : -1].lower()
    return None


def _prefer(*values: str) -> dict[str, str]:
    return {"Prefer": ",".join(v for v in values if v)}


class DataverseClient:
    """Reads and writes one Dataverse environment through a retrying :class:`ServiceHttp`."""

    def __init__(
        self, http: ServiceHttp, base_url: str, *, page_size: int = 5000, bulk_size: int = 1000
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        if not 1 <= bulk_size <= MAX_BATCH_OPERATIONS:
            raise ValueError(f"bulk_size must be 1..{MAX_BATCH_OPERATIONS}, got {bulk_size}")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.bulk_size = bulk_size

    # ------------------------------------------------------------------ URLs and plumbing
    def _collection_url(
        self,
        entity_set: str,
        select: Sequence[str],
        filter: Filter | None = None,
        orderby: str | None = None,
    ) -> str:
        parts: list[str] = []
        if select:
            parts.append("$select=" + quote(",".join(select), safe=","))
        if filter is not None:
            parts.append("$filter=" + quote(filter.render("dataverse"), safe="'(),"))
        if orderby:
            parts.append("$orderby=" + quote(orderby, safe=","))
        url = f"{self.base_url}/{entity_set}"
        return url + ("?" + "&".join(parts) if parts else "")

    def _row_url(self, entity_set: str, target_id: str) -> str:
        return f"{self.base_url}/{entity_set}({target_id})"

    def _get_json(self, url: str, *, kind: str, prefer: str) -> Mapping[str, Any]:
        headers = {**_ODATA_HEADERS, **_prefer(prefer)}
        response = self.http.request("GET", url, kind=kind, headers=headers)
        body: Any = response_json(response)
        if not isinstance(body, Mapping):
            raise Fatal(
                f"GET {url} returned a JSON {type(body).__name__}, not an object", status=response.status_code
            )
        return body

    def _pages(self, url: str, *, kind: str, prefer: str) -> Iterator[list[dict[str, Any]]]:
        def fetch(page_url: str) -> Mapping[str, Any]:
            return self._get_json(page_url, kind=kind, prefer=prefer)

        for page in iter_pages(fetch, url):
            yield [dict(row) for row in page.rows]

    # ------------------------------------------------------------------ reads
    def read_changes(
        self, entity_set: str, select: Sequence[str], delta_link: str | None
    ) -> Iterator[DeltaPage]:
        """Changed rows since ``delta_link`` (None → full tracked read), page by page.

        Only ``$select`` goes on a tracked read: the service refuses ``$filter``, ``$orderby``,
        ``$expand`` and ``$top`` while tracking, and annotations can make it drop the delta link.
        """
        prefer = f"odata.track-changes,odata.maxpagesize={self.page_size}"
        initial = self._collection_url(entity_set, select)
        if delta_link is None:
            yield from self._tracked(initial, prefer, restarted=False)
            return
        try:
            yield from self._tracked(delta_link, prefer, restarted=False)
        except SyncError as err:
            if not is_expired_token(err):
                raise
            # The token outlived Organization.ExpireChangeTrackingInDays: only a full re-read
            # (compared by hash downstream) gets us back in step.
            yield from self._tracked(initial, prefer, restarted=True)

    def _tracked(self, url: str, prefer: str, *, restarted: bool) -> Iterator[DeltaPage]:
        def fetch(page_url: str) -> Mapping[str, Any]:
            return self._get_json(page_url, kind="read", prefer=prefer)

        for page in iter_pages(fetch, url):
            rows: list[dict[str, Any]] = []
            deleted: list[str] = []
            for row in page.rows:
                if _is_deleted_row(row):
                    rid = _deleted_id(row)
                    if rid is not None:
                        deleted.append(rid)
                else:
                    rows.append(dict(row))
            # The delta link belongs to the last page only; never checkpoint a mid-stream link.
            link = page.delta_link if not page.next_link else None
            yield DeltaPage(rows=rows, deleted_ids=deleted, delta_link=link, restarted=restarted)

    def query(
        self,
        entity_set: str,
        select: Sequence[str],
        filter: Filter | None = None,
        orderby: str | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Untracked query, one list per page (``$skip`` does not exist here: paging is server-driven)."""
        url = self._collection_url(entity_set, select, filter, orderby)
        yield from self._pages(url, kind="read", prefer=f"odata.maxpagesize={self.page_size}")

    def match_existing(
        self, entity_set: str, key_column: str, values: Sequence[str], id_column: str
    ) -> dict[str, str]:
        """Map natural-key values to the ids of rows that already exist (before the first create).

        Dataverse compares strings case-insensitively, so results are mapped back to the caller's
        spelling. When several rows share a value the first one returned wins (the service orders
        them by primary id, so this is stable).
        """
        wanted: dict[str, str] = {}
        for value in values:
            if value:
                wanted.setdefault(value.casefold(), value)
        originals = list(wanted.values())
        found: dict[str, str] = {}
        for start in range(0, len(originals), MATCH_CHUNK):
            chunk = originals[start : start + MATCH_CHUNK]
            url = self._collection_url(entity_set, [key_column, id_column], F.in_(key_column, chunk))
            for rows in self._pages(url, kind="lookup", prefer=f"odata.maxpagesize={self.page_size}"):
                for row in rows:
                    got, rid = row.get(key_column), row.get(id_column)
                    if not isinstance(got, str) or not isinstance(rid, str):
                        continue
                    original = wanted.get(got.casefold())
                    if original is not None and original not in found:
                        found[original] = rid
        return found

    # ------------------------------------------------------------------ writes
    def upsert_many(
        self,
        table: str,
        entity_set: str,
        records: Sequence[DataverseWrite],
        *,
        supports_multiple: bool,
    ) -> list[WriteOutcome]:
        """Upsert by primary id; one outcome per record, in input order.

        Chunks of ``bulk_size`` go out concurrently, up to the limiter's maximum (which shrinks on
        429s); each chunk's fallback to ``$batch`` stays with its chunk.
        """
        chunks = [records[start : start + self.bulk_size] for start in range(0, len(records), self.bulk_size)]

        def one_chunk(chunk: Sequence[DataverseWrite]) -> list[WriteOutcome]:
            if supports_multiple:
                return self._upsert_multiple(table, entity_set, chunk)
            return self._upsert_batch(table, entity_set, chunk)

        limiter = getattr(self.http, "limiter", None)
        workers = int(getattr(limiter, "maximum", 1) or 1)
        return [outcome for done in run_chunks(one_chunk, chunks, workers) for outcome in done]

    def _upsert_multiple(
        self, table: str, entity_set: str, chunk: Sequence[DataverseWrite]
    ) -> list[WriteOutcome]:
        id_column = f"{table}id"
        targets = [
            {"@odata.type": f"Microsoft.Dynamics.CRM.{table}", **rec.payload, id_column: rec.target_id}
            for rec in chunk
        ]
        url = f"{self.base_url}/{entity_set}/Microsoft.Dynamics.CRM.UpsertMultiple"
        headers = {**_ODATA_HEADERS, "Content-Type": "application/json"}
        try:
            response = self.http.request(
                "POST", url, kind="bulk", headers=headers, json={"Targets": targets}, ok_statuses=(200, 204)
            )
        except (RecordRejected, Conflict, NotFound):
            # The whole transaction rolled back because of (at least) one record. Replaying each
            # record on its own tells us which ones are bad and lands the rest.
            return self._upsert_batch(table, entity_set, chunk)
        except Fatal as err:
            # "Resource not found for the segment 'Microsoft.Dynamics.CRM.UpsertMultiple'": the
            # environment lacks the message for this table. Keyed PATCH upserts still work.
            if err.status in (400, 404) and not isinstance(err, ChangeTokenExpired):
                return self._upsert_batch(table, entity_set, chunk)
            raise
        except _RUN_LEVEL_ERRORS:
            raise
        except SyncError as err:
            return [WriteOutcome(rec.source_key, False, rec.target_id, None, err) for rec in chunk]
        created = _created_flags(response.content, len(chunk))
        return [
            WriteOutcome(rec.source_key, True, rec.target_id, flag, None)
            for rec, flag in zip(chunk, created, strict=True)
        ]

    def _upsert_batch(
        self, table: str, entity_set: str, chunk: Sequence[DataverseWrite]
    ) -> list[WriteOutcome]:
        """Independent keyed PATCH upserts in one `$batch` that continues past failures.

        ``return=representation`` (with a one-column ``$select``) makes the service answer 201 for a
        create and 200 for an update; a bare upsert answers 204 for both.
        """
        id_column = f"{table}id"
        operations = [
            BatchOperation(
                method="PATCH",
                url=f"{self._row_url(entity_set, rec.target_id)}?$select={id_column}",
                headers={
                    "Content-Type": "application/json",
                    "Prefer": "return=representation",
                },
                body=json.dumps({k: v for k, v in rec.payload.items() if k != id_column}).encode(),
                content_id=str(index + 1),
            )
            for index, rec in enumerate(chunk)
        ]
        content_type, body = encode_batch(operations)
        headers = {**_ODATA_HEADERS, "Content-Type": content_type, "Prefer": "odata.continue-on-error"}
        try:
            response = self.http.request(
                "POST", f"{self.base_url}/$batch", kind="batch", headers=headers, content=body
            )
        except _RUN_LEVEL_ERRORS:
            raise
        except SyncError as err:
            return [WriteOutcome(rec.source_key, False, rec.target_id, None, err) for rec in chunk]
        try:
            parts = decode_batch(response.headers.get("content-type", ""), response.content)
        except Fatal as err:
            # A garbled (e.g. truncated) answer: nothing can be said about any record; retry them.
            failure = Transient(f"unreadable $batch response: {err.message}", status=response.status_code)
            return [WriteOutcome(rec.source_key, False, rec.target_id, None, failure) for rec in chunk]
        matched = match_parts(parts, len(chunk))
        outcomes: list[WriteOutcome] = []
        for rec, part in zip(chunk, matched, strict=True):
            if part is None:
                missing = Transient(
                    f"the $batch response had no part for record {rec.source_key!r}; it will be retried",
                    status=response.status_code,
                )
                outcomes.append(WriteOutcome(rec.source_key, False, rec.target_id, None, missing))
            elif 200 <= part.status < 300:
                outcomes.append(WriteOutcome(rec.source_key, True, rec.target_id, part.status == 201, None))
            else:
                error = decode_error(part.status, part.headers, part.body, "dataverse")
                outcomes.append(WriteOutcome(rec.source_key, False, rec.target_id, None, error))
        return outcomes

    def delete(self, entity_set: str, target_id: str) -> None:
        """Delete one row; a row that is already gone counts as deleted (deletes are replayed)."""
        try:
            self.http.request(
                "DELETE", self._row_url(entity_set, target_id), kind="single", headers=dict(_ODATA_HEADERS)
            )
        except NotFound:
            return


def _created_flags(content: bytes, count: int) -> list[bool | None]:
    """``RecordCreated`` per target if the service returned an UpsertMultipleResponse, else unknown.

    The Web API answers 204 without a body (apis.md A5); the SDK shape (``Results`` with
    ``RecordCreated``) is honoured when present and complete.
    """
    unknown: list[bool | None] = [None] * count
    if not content:
        return unknown
    try:
        body = json.loads(content)
    except ValueError:
        return unknown
    results = body.get("Results") if isinstance(body, dict) else None
    if not isinstance(results, list) or len(results) != count:
        return unknown
    flags: list[bool | None] = []
    for item in results:
        flag = item.get("RecordCreated") if isinstance(item, dict) else None
        flags.append(flag if isinstance(flag, bool) else None)
    return flags
