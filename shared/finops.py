"""Finance and Operations OData client for the sync engine (design.md §4, §7; apis.md Part B).

Reads are company-scoped snapshots: ``cross-company=true`` plus a ``dataAreaId`` filter, ordered by
the entity keys so ``$skip`` paging is stable, following the service's own ``@odata.nextLink`` when
it pages and stepping ``$skip`` itself when it does not.

F&O has no upsert and no delta on ``/data/``. Writes go as ``$batch`` requests with one change set
per record, so a failing record rolls back only itself. Create vs update comes from the crosswalk
(``FinOpsWrite.exists``); when the crosswalk is wrong the service says so ("already exists" on a
POST, "No resources were found" on a PATCH) and the record is re-sent the other way, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from shared.http import response_json
from shared.odata.batch import BatchOperation, BatchPartResponse, ChangeSet, decode_batch, encode_batch
from shared.odata.errors import (
    AuthFailed,
    BudgetExhausted,
    Conflict,
    Fatal,
    NotFound,
    SyncError,
    Transient,
    decode_error,
)
from shared.odata.filters import F, Filter
from shared.odata.literals import key_predicate
from shared.odata.pager import iter_pages
from shared.writes import WriteOutcome, match_parts, run_chunks

if TYPE_CHECKING:
    from shared.http import ServiceHttp

__all__ = ["ENTITY_KEYS", "FinOpsClient", "FinOpsWrite", "WriteOutcome"]

#: The service's ceiling for a page (apis.md B2).
MAX_PAGE_SIZE = 10000
#: Operations per `$batch`: the service allows 5000, but a batch is one request against the time
#: limits and one bad part slows the whole answer; 100 keeps failures cheap.
MAX_BATCH_SIZE = 5000

#: Key properties of the public collections used by Prospect to cash, as declared in a real
#: environment's $metadata (apis.md B5; reference schemas fo_odata_entity_sets). They order snapshot
#: reads so that `$skip` paging neither skips nor repeats rows.
ENTITY_KEYS: dict[str, tuple[str, ...]] = {
    "CustomersV3": ("dataAreaId", "CustomerAccount"),
    "CustomersV2": ("dataAreaId", "CustomerAccount"),
    "CustomerGroups": ("dataAreaId", "CustomerGroupId"),
    "ContactPersons": ("dataAreaId", "ContactPersonId"),
    "CDSContactPersons": ("dataAreaId", "ContactPersonPartyNumber", "AssociatedPartyNumber"),
    "CDSContactPersonsV2": (
        "dataAreaId",
        "ContactPersonPartyNumber",
        "AssociatedContactType",
        "AssociatedContactNumber",
    ),
    "CDSReleasedDistinctProducts": ("dataAreaId", "ProductNumber"),
    "ReleasedProductsV2": ("dataAreaId", "ItemNumber"),
    "CDSSalesQuotationHeaders": ("dataAreaId", "SalesQuotationNumber"),
    "CDSSalesQuotationLines": ("dataAreaId", "LineCreationSequenceNumber", "SalesQuotationNumber"),
    "SalesQuotationHeadersV2": ("dataAreaId", "SalesQuotationNumber"),
    "SalesQuotationLines": ("dataAreaId", "InventoryLotId"),
    "CDSSalesOrderHeaders": ("dataAreaId", "SalesOrderNumber"),
    "CDSSalesOrderLines": ("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber"),
    "CDSSalesOrderLinesV2": ("dataAreaId", "SalesOrderNumber", "LineCreationSequenceNumber"),
    "SalesOrderHeadersV2": ("dataAreaId", "SalesOrderNumber"),
    "SalesOrderLines": ("dataAreaId", "InventoryLotId"),
    "SalesInvoiceHeadersV2": ("dataAreaId", "InvoiceNumber", "InvoiceDate", "LedgerVoucher"),
    "SalesInvoiceV2Lines": (
        "dataAreaId",
        "InvoiceNumber",
        "LineCreationSequenceNumber",
        "InvoiceDate",
        "LedgerVoucher",
    ),
    "DeliveryModesV2": ("dataAreaId", "ModeCode"),
    "DeliveryTerms": ("dataAreaId", "TermsCode"),
    "OperationalSitesV2": ("dataAreaId", "SiteId"),
    "PaymentTerms": ("dataAreaId", "Name"),
    "Warehouses": ("dataAreaId", "WarehouseId"),
}

#: Errors that concern the run, not a record: they propagate instead of becoming per-record failures.
_RUN_LEVEL_ERRORS: tuple[type[SyncError], ...] = (AuthFailed, BudgetExhausted, Fatal)

_ODATA_HEADERS = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


@dataclass
class FinOpsWrite:
    """One create-or-update. ``key`` holds every key property including ``dataAreaId``."""

    source_key: str
    key: dict[str, Any]
    payload: dict[str, Any] = field(default_factory=dict)
    exists: bool = False


#: One encoder for every change set body (`json.dumps` with `default=` builds a new one per call,
#: and a run encodes one per record); it holds no state between calls.
_BODY_JSON = json.JSONEncoder(default=str)


def key_text(key: Mapping[str, Any]) -> str:
    """``{"dataAreaId": "usmf", "CustomerAccount": "C0001"}`` → ``"usmf|C0001"`` (company first)."""
    values = [key["dataAreaId"]] if "dataAreaId" in key else []
    values += [v for k, v in key.items() if k != "dataAreaId"]
    return "|".join(str(v) for v in values)


def is_already_exists(error: SyncError) -> bool:
    """A POST refused because the key is taken (X++ "The record already exists", often HTTP 500)."""
    return isinstance(error, Conflict) or "already exists" in (error.message or "").lower()


def is_not_found(error: SyncError) -> bool:
    """A PATCH refused because no row has the key ("No resources were found when selecting for update.").

    A bare ``NotFound`` is not enough: "Customer group 99 does not exist" is a bad reference inside the
    record, and re-sending it as a create would only bury that message under "already exists".
    """
    if "no resources were found" in (error.message or "").lower():
        return True
    return isinstance(error, NotFound) and error.status == 404


@dataclass
class _Attempt:
    """One record's request inside a batch; ``index`` is its position in the caller's list."""

    index: int
    record: FinOpsWrite
    create: bool


class FinOpsClient:
    """Reads and writes one F&O environment through a retrying :class:`ServiceHttp`."""

    def __init__(
        self, http: ServiceHttp, base_url: str, *, page_size: int = 10000, batch_size: int = 100
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}, got {page_size}")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.page_size = page_size
        self.batch_size = batch_size

    # ------------------------------------------------------------------ reads
    def read_company(
        self,
        entity_set: str,
        select: Sequence[str],
        company: str,
        filter: Filter | None = None,
        *,
        order_by: Sequence[str] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Rows of one company, one list per page.

        ``order_by`` defaults to the entity's keys from :data:`ENTITY_KEYS`; an entity not listed
        there is read in the service's order (stable in practice, not guaranteed).
        """
        condition: Filter = F.eq("dataAreaId", company)
        if filter is not None:
            condition = F.and_(condition, filter)
        keys = list(order_by) if order_by is not None else list(ENTITY_KEYS.get(entity_set, ()))
        url = self._query_url(entity_set, select, condition, keys, skip=0)

        def fetch(page_url: str) -> Mapping[str, Any]:
            body = self._get_json(page_url, kind="read")
            if "@odata.nextLink" in body:
                return body
            rows = body.get("value")
            if isinstance(rows, list) and len(rows) >= self.page_size:
                # A full page and no nextLink: the service does not page by itself, step $skip.
                skip = _skip_of(page_url) + len(rows)
                return {**body, "@odata.nextLink": self._query_url(entity_set, select, condition, keys, skip)}
            return body

        for page in iter_pages(fetch, url):
            yield [dict(row) for row in page.rows]

    def get(self, entity_set: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """One row by its full key, or None when it does not exist."""
        url = f"{self.base_url}/{entity_set}{key_predicate(key)}?cross-company=true"
        try:
            return dict(self._get_json(url, kind="lookup"))
        except NotFound:
            return None

    def delete(self, entity_set: str, key: Mapping[str, Any]) -> None:
        """Delete one row by its full key; a row that is already gone counts as deleted (replays)."""
        url = f"{self.base_url}/{entity_set}{key_predicate(key)}?cross-company=true"
        try:
            self.http.request("DELETE", url, kind="single", headers=dict(_ODATA_HEADERS))
        except NotFound:
            return

    def _query_url(
        self, entity_set: str, select: Sequence[str], condition: Filter, order: Sequence[str], skip: int
    ) -> str:
        parts = ["cross-company=true", "$filter=" + quote(condition.render("finops"), safe="'(),")]
        if select:
            parts.append("$select=" + quote(",".join(select), safe=","))
        if order:
            parts.append("$orderby=" + quote(",".join(order), safe=","))
        parts.append(f"$top={self.page_size}")
        if skip:
            parts.append(f"$skip={skip}")
        return f"{self.base_url}/{entity_set}?" + "&".join(parts)

    def _get_json(self, url: str, *, kind: str) -> Mapping[str, Any]:
        response = self.http.request("GET", url, kind=kind, headers=dict(_ODATA_HEADERS))
        body: Any = response_json(response)
        if not isinstance(body, Mapping):
            raise Fatal(
                f"GET {url} returned a JSON {type(body).__name__}, not an object", status=response.status_code
            )
        return body

    # ------------------------------------------------------------------ writes
    def write(self, entity_set: str, records: Sequence[FinOpsWrite]) -> list[WriteOutcome]:
        """Create or update each record; one outcome per record, in input order.

        The ``$batch`` requests of one call go out concurrently, up to the limiter's maximum (the
        limiter itself backs off on 429s), each followed by its own create/update fallback.
        """
        starts = list(range(0, len(records), self.batch_size))

        def one_batch(start: int) -> list[tuple[int, WriteOutcome]]:
            attempts = [
                _Attempt(start + offset, rec, create=not rec.exists)
                for offset, rec in enumerate(records[start : start + self.batch_size])
            ]
            done: list[tuple[int, WriteOutcome]] = []
            retry: list[_Attempt] = []
            for attempt, outcome in self._send(entity_set, attempts):
                error = outcome.error
                if error is not None and attempt.create and is_already_exists(error):
                    retry.append(_Attempt(attempt.index, attempt.record, create=False))
                elif error is not None and not attempt.create and is_not_found(error):
                    retry.append(_Attempt(attempt.index, attempt.record, create=True))
                else:
                    done.append((attempt.index, outcome))
            # The crosswalk was wrong for these: re-send the other way, once (no ping-pong).
            for attempt, outcome in self._send(entity_set, retry) if retry else ():
                done.append((attempt.index, outcome))
            return done

        outcomes: list[WriteOutcome | None] = [None] * len(records)
        for done in run_chunks(one_batch, starts, self._workers()):
            for index, outcome in done:
                outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _workers(self) -> int:
        limiter = getattr(self.http, "limiter", None)
        return int(getattr(limiter, "maximum", 1) or 1)

    def _operation(self, entity_set: str, attempt: _Attempt, content_id: str) -> BatchOperation:
        rec = attempt.record
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if attempt.create:
            body = {**rec.payload, **rec.key}
            url = f"{self.base_url}/{entity_set}"
            method = "POST"
        else:
            # Key fields cannot change through the key URL; leaving them out avoids a refusal.
            body = {k: v for k, v in rec.payload.items() if k not in rec.key}
            url = f"{self.base_url}/{entity_set}{key_predicate(rec.key)}"
            method = "PATCH"
        return BatchOperation(
            method=method,
            url=url,
            headers=headers,
            body=_BODY_JSON.encode(body).encode(),
            content_id=content_id,
        )

    def _send(self, entity_set: str, attempts: Sequence[_Attempt]) -> list[tuple[_Attempt, WriteOutcome]]:
        """One `$batch`, one change set per attempt; every attempt gets an outcome."""
        items = [
            ChangeSet(operations=[self._operation(entity_set, attempt, str(n + 1))])
            for n, attempt in enumerate(attempts)
        ]
        content_type, body = encode_batch(items)
        # Without continue-on-error a service may stop at the first failed change set and leave the
        # rest unanswered; those would only come back as transient failures.
        headers = {**_ODATA_HEADERS, "Content-Type": content_type, "Prefer": "odata.continue-on-error"}
        try:
            response = self.http.request(
                "POST", f"{self.base_url}/$batch", kind="batch", headers=headers, content=body
            )
        except _RUN_LEVEL_ERRORS:
            raise
        except SyncError as err:
            return [(a, self._outcome(a, None, err)) for a in attempts]
        try:
            parts = decode_batch(response.headers.get("content-type", ""), response.content)
        except Fatal as err:
            # A garbled (e.g. truncated) answer: nothing can be said about any record; retry them.
            failure = Transient(f"unreadable $batch response: {err.message}", status=response.status_code)
            return [(a, self._outcome(a, None, failure)) for a in attempts]
        matched = match_parts(parts, len(attempts))
        results: list[tuple[_Attempt, WriteOutcome]] = []
        for attempt, part in zip(attempts, matched, strict=True):
            if part is None:
                missing = Transient(
                    f"the $batch response ({len(parts)} parts for {len(attempts)} change sets) has no "
                    f"answer for record {attempt.record.source_key!r}; it will be retried",
                    status=response.status_code,
                )
                results.append((attempt, self._outcome(attempt, None, missing)))
            elif 200 <= part.status < 300:
                results.append((attempt, self._outcome(attempt, part, None)))
            else:
                error = decode_error(part.status, part.headers, part.body, "finops")
                results.append((attempt, self._outcome(attempt, part, error)))
        return results

    @staticmethod
    def _outcome(attempt: _Attempt, part: BatchPartResponse | None, error: SyncError | None) -> WriteOutcome:
        target = key_text(attempt.record.key)
        if error is not None:
            return WriteOutcome(attempt.record.source_key, False, target, None, error)
        return WriteOutcome(attempt.record.source_key, True, target, attempt.create, None)


def _skip_of(url: str) -> int:
    for name, value in parse_qsl(urlsplit(url).query):
        if name == "$skip" and value.isdigit():
            return int(value)
    return 0

