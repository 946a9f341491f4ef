"""Table queries as plain JSON pages, for the crosswalk's look-ups and scans.

Why not ``TableClient.query_entities``: the crosswalk sends hundreds of small queries per page of
records, and the SDK's pager turns every row into a ``TableEntity`` through its generated
deserializer and Edm conversions. The crosswalk reads strings, booleans and one datetime (which
:func:`shared.state._props.read_dt` parses from text), so asking for ``odata=nometadata`` and
``json.loads`` is all a row needs. The request still goes through the table client's own pipeline
(authentication, retries, transport), like :mod:`shared.state.transactions`.

Pages come back in the service's order (PartitionKey, then RowKey) with continuation headers; a
page may be empty and still have a continuation, so callers go on until there is none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from shared.state.transactions import protocol_headers

#: The service's largest page.
MAX_PAGE = 1000

_NEXT = ("NextPartitionKey", "NextRowKey")


class Page(NamedTuple):
    """One page of rows, and whether the service has more after it."""

    rows: list[dict[str, Any]]
    more: bool


def string_literal(value: str) -> str:
    """An OData string literal (single quotes doubled)."""
    return "'" + value.replace("'", "''") + "'"


def keys_filter(partition: str, row_keys: Sequence[str]) -> str:
    """``PartitionKey eq … and (RowKey eq … or …)``: a look-up inside one partition."""
    rows = " or ".join(f"RowKey eq {string_literal(rk)}" for rk in row_keys)
    return f"PartitionKey eq {string_literal(partition)} and ({rows})"


def row_range_filter(partition: str, low: str, high: str) -> str:
    """Rows of one partition whose RowKey is from ``low`` to ``high`` (inclusive)."""
    return (
        f"PartitionKey eq {string_literal(partition)} and RowKey ge {string_literal(low)} "
        f"and RowKey le {string_literal(high)}"
    )


def range_filter(low: str, high: str) -> str:
    """Every row of the partitions from ``low`` to ``high`` (inclusive)."""
    return f"PartitionKey ge {string_literal(low)} and PartitionKey le {string_literal(high)}"


def query_pages(
    table: TableClient, where: str, *, select: Sequence[str] | None = None, per_page: int = MAX_PAGE
) -> Iterator[Page]:
    """The rows matching ``where``, one :class:`Page` per page the service returns.

    Raises ``ResourceNotFoundError`` when the table does not exist and ``HttpResponseError`` for any
    other refusal (after the pipeline's retries).
    """
    query = f"$filter={quote(where, safe='')}&$top={min(per_page, MAX_PAGE)}"
    if select:
        query += "&$select=" + quote(",".join(select), safe=",")
    headers = {**protocol_headers(table), "Accept": "application/json;odata=nometadata"}
    base = f"{table.url}/{quote(table.table_name)}()?{query}"
    continuation = ""
    while True:
        request = HttpRequest("GET", base + continuation, headers=headers)
        # `_client` is the SDK's generated service client: its pipeline signs and retries.
        response = table._client.send_request(request)
        if response.status_code != 200:
            error = ResourceNotFoundError if response.status_code == 404 else HttpResponseError
            raise error(response=response, message=f"table query on {table.table_name}: {_reason(response)}")
        rows = json.loads(response.content)["value"]
        tokens = [(name, response.headers.get(f"x-ms-continuation-{name}")) for name in _NEXT]
        more = bool(tokens[0][1])
        yield Page(rows, more)
        if not more:
            return
        continuation = "".join(f"&{name}={quote(value, safe='')}" for name, value in tokens if value)


def _reason(response: Any) -> str:
    try:
        error = json.loads(response.content).get("odata.error", {})
        message = error.get("message", {}).get("value", "")
        return f"HTTP {response.status_code} {error.get('code', '')}: {message}"
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
