"""Table entity-group transactions, framed by our own ``$batch`` codec.

Why not ``TableClient.submit_transaction``: azure-core frames and parses the multipart body with
the standard library's ``email`` package, which costs about 0.6 ms of CPU per entity, more than
everything else the engine does for a record (measured in ``docs/performance.md``: three crosswalk
rows per record made it the largest share of a run's CPU). The body format is the same OData
``multipart/mixed`` framing that :mod:`shared.odata.batch` already writes for Dataverse and F&O, so
this module builds it with that codec and sends it through the table client's own pipeline, which
keeps the SDK's authentication (shared key, SAS or Entra), retry policy and transport.

Only upserts are needed by the stores that write in bulk (crosswalk, checkpoints, the retry store);
the semantics are the service's: all operations of a transaction succeed or none does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient

from shared.odata.batch import BatchOperation, ChangeSet, decode_batch, encode_batch

#: The Table service's limit for one entity-group transaction.
MAX_OPERATIONS = 100
#: Methods azure-core's retry policy may repeat after the connection broke mid-request (its default
#: leaves out POST, since a POST may not be safe to repeat). A transaction here is only upserts, and
#: applying the same upserts twice leaves the same rows, so the `$batch` POST is safe to repeat.
#: Without it one reset connection (a keep-alive connection the server closed as it was reused)
#: failed the whole run: seen on a 200,000-record load.
RETRY_ON_METHODS = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "POST"})

_INT32 = range(-(2**31), 2**31)


class TransactionFailed(Exception):
    """The service rejected a transaction; nothing in it was applied.

    ``index`` is the operation the service named as the cause (the ``n:`` prefix of its message),
    when it named one.
    """

    def __init__(self, status: int, code: str, message: str, index: int | None) -> None:
        super().__init__(f"table transaction failed (HTTP {status} {code}): {message}")
        self.status = status
        self.code = code
        self.index = index


def _edm(name: str, value: Any, out: dict[str, Any]) -> None:
    """Add one property in the Table service's JSON format (type annotations where JSON is ambiguous)."""
    if value is None:
        return
    if isinstance(value, bool | str):
        out[name] = value
    elif isinstance(value, int):
        if value in _INT32:
            out[name] = value
        else:
            out[name] = str(value)
            out[f"{name}@odata.type"] = "Edm.Int64"
    elif isinstance(value, float):
        out[name] = value
        out[f"{name}@odata.type"] = "Edm.Double"
    elif isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"property {name!r}: naive datetimes are not stored (timezone unknown)")
        out[name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out[f"{name}@odata.type"] = "Edm.DateTime"
    else:
        raise TypeError(f"property {name!r}: {type(value).__name__} values are not supported here")


#: One encoder for every entity (`json.dumps` with options builds a new one per call); stateless.
_ENTITY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def entity_json(entity: Mapping[str, Any]) -> bytes:
    """The request body of one entity."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if type(value) is str or type(value) is bool:  # most properties: no annotation needed
            out[name] = value
        else:
            _edm(name, value, out)
    return _ENTITY_JSON.encode(out).encode("utf-8")


#: Characters `quote(…, safe="")` leaves as they are: most keys need no quoting at all.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
#: One character `quote(…, safe="")` would escape.
_RESERVED = re.compile(r"[^A-Za-z0-9_.~-]")
#: Status lines of the inner responses (a transaction answers one per operation when it succeeds).
_STATUS_LINE = re.compile(rb"(?:^|\n)HTTP/1\.[01] (\d{3})")


def protocol_headers(table: TableClient) -> dict[str, str]:
    """The Table service's version headers, for requests built here and in `queries`."""
    return {
        "x-ms-version": table.api_version,
        "DataServiceVersion": "3.0",
        "MaxDataServiceVersion": "3.0;NetFx",
    }


def _percent(match: re.Match[str]) -> str:
    return quote(match.group(), safe="")


def _key_literal(value: str) -> str:
    """A key as it appears quoted in an operation's URL: `quote(…, safe="")` of the OData literal,
    escaping only the characters that need it (keys are mostly plain, with a `|` or two)."""
    if _UNRESERVED.fullmatch(value):
        return value
    return _RESERVED.sub(_percent, value.replace("'", "''"))


def upsert_transaction(
    table: TableClient, entities: Sequence[Mapping[str, Any]], *, merge: bool = False
) -> None:
    """Upsert up to 100 entities of one partition atomically (replace, or merge when ``merge``).

    Raises :class:`TransactionFailed` when the service rejects the transaction and
    ``HttpResponseError`` when the request itself fails after the pipeline's retries.
    """
    if not entities:
        return
    if len(entities) > MAX_OPERATIONS:
        raise ValueError(
            f"a table transaction takes at most {MAX_OPERATIONS} operations, not {len(entities)}"
        )
    partition = entities[0]["PartitionKey"]
    if any(e["PartitionKey"] != partition for e in entities):
        raise ValueError("a table transaction covers one partition only")
    base = f"{table.url}/{table.table_name}"
    method = "MERGE" if merge else "PUT"
    headers = {"Content-Type": "application/json", "Accept": "application/json;odata=nometadata"}
    entity_url = f"{base}(PartitionKey='{_key_literal(partition)}',RowKey='"
    operations = [
        BatchOperation(
            method=method,
            url=f"{entity_url}{_key_literal(e['RowKey'])}')",
            headers=headers,
            body=entity_json(e),
            content_id=str(index),
        )
        for index, e in enumerate(entities)
    ]
    content_type, body = encode_batch([ChangeSet(operations)])
    request = HttpRequest(
        "POST",
        f"{table.url}/$batch",
        headers={**protocol_headers(table), "Content-Type": content_type, "Accept": "application/json"},
        content=body,
    )
    # `_client` is the SDK's generated service client: its pipeline signs and retries the request
    # as the SDK's own submit_transaction does, and also after a connection reset (RETRY_ON_METHODS).
    response = table._client.send_request(request, stream=True, retry_on_methods=RETRY_ON_METHODS)
    content = response.read()  # streamed (the SDK's content policy cannot decode multipart)
    if response.status_code != 202:
        raise HttpResponseError(response=response, message=f"table transaction: HTTP {response.status_code}")
    statuses = _STATUS_LINE.findall(content)
    if len(statuses) == len(entities) and all(status.startswith(b"2") for status in statuses):
        return  # the common case, without framing every part
    parts = decode_batch(response.headers.get("Content-Type", ""), content)
    for part in parts:
        if not part.ok:
            raise _failure(part.status, part.body)
    if len(parts) != len(entities):
        outcome = f"{len(parts)} outcomes for {len(entities)} operations"
        raise TransactionFailed(202, "IncompleteResponse", outcome, None)


def _failure(status: int, body: bytes) -> TransactionFailed:
    code, message = "", body.decode("utf-8", "replace")[:500]
    try:
        error = json.loads(body).get("odata.error", {})
        code = str(error.get("code", ""))
        message = str(error.get("message", {}).get("value", message))
    except (ValueError, AttributeError):
        pass
    index: int | None = None
    head, sep, rest = message.partition(":")
    if sep and head.isdigit():
        index, message = int(head), rest
    return TransactionFailed(status, code, message.split("\nRequestId:")[0].strip(), index)
