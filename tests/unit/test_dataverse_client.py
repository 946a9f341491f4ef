"""DataverseClient against a scripted Web API (httpx.MockTransport): paging, change tracking, writes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from shared.dataverse import DataverseClient, DataverseWrite, DeltaPage
from shared.http import AdaptiveLimiter, RequestMetrics, RetryPolicy, ServiceHttp, TimeBudget
from shared.odata.errors import AuthFailed, RecordRejected, SyncError, Transient
from tests.unit.concurrency import InFlight

BASE = "https://org.crm.dynamics.com/api/data/v9.2"
Handler = Callable[[httpx.Request], httpx.Response]


# --------------------------------------------------------------------------- test plumbing
class RecordingHttp(ServiceHttp):
    """The real ServiceHttp over an httpx.MockTransport, remembering the ``kind`` of every call.

    Retries are ServiceHttp's own business (tested with it); here they are off so call counts are exact.
    """

    def __init__(self, handler: Handler) -> None:
        super().__init__(
            httpx.Client(transport=httpx.MockTransport(handler)),
            service="dataverse",
            policy=RetryPolicy(max_retries=0, sleep=lambda _: None),
            budget=TimeBudget(60),
            limiter=AdaptiveLimiter(4),
            metrics=RequestMetrics(),
        )
        self.kinds: list[str] = []

    def request(self, method: str, url: str, *, kind: str, **kw: Any) -> httpx.Response:
        self.kinds.append(kind)
        return super().request(method, url, kind=kind, **kw)


def client_for(handler: Handler, **kw: Any) -> tuple[DataverseClient, RecordingHttp]:
    http = RecordingHttp(handler)
    return DataverseClient(http, BASE, **kw), http


def query_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def error_json(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_body(code: str, message: str) -> bytes:
    return json.dumps(error_json(code, message)).encode()


def parse_batch_request(request: httpx.Request) -> list[dict[str, Any]]:
    """The operations of a multipart `$batch` request: method, url, content_id, headers, json."""
    text = request.content.decode()
    operations = []
    for chunk in re.split(r"\r?\n--[^\r\n]+", "\n" + text):
        m = re.search(r"^(GET|POST|PATCH|PUT|DELETE) (\S+) HTTP/1\.1\r?$", chunk, re.MULTILINE)
        if not m:
            continue
        cid = re.search(r"^Content-ID:\s*(\S+)", chunk[: m.start()], re.MULTILINE | re.IGNORECASE)
        head, _, body = chunk[m.end() :].partition("\r\n\r\n") if "\r\n\r\n" in chunk[m.end() :] else (
            chunk[m.end() :].partition("\n\n")
        )
        headers = dict(
            (k.strip().lower(), v.strip())
            for k, _, v in (line.partition(":") for line in head.strip().splitlines())
            if k
        )
        operations.append(
            {
                "method": m.group(1),
                "url": m.group(2),
                "content_id": cid.group(1) if cid else None,
                "headers": headers,
                "json": json.loads(body) if body.strip() else None,
            }
        )
    return operations


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            412: "Precondition Failed", 500: "Internal Server Error"}


def batch_response(
    parts: Sequence[tuple[int, Any, str | None]], *, changesets: bool = False
) -> httpx.Response:
    """A `multipart/mixed` `$batch` answer: (status, JSON body or None, Content-ID) per part."""
    boundary = "batchresponse_1d6d2b0e"
    lines: list[str] = []
    for n, (status, body, cid) in enumerate(parts):
        inner: list[str] = ["Content-Type: application/http", "Content-Transfer-Encoding: binary"]
        if cid is not None:
            inner.append(f"Content-ID: {cid}")
        inner += ["", f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        if body is not None:
            inner += ["Content-Type: application/json; odata.metadata=minimal", "OData-Version: 4.0", "",
                      json.dumps(body)]
        else:
            inner += ["OData-Version: 4.0", ""]
        lines.append(f"--{boundary}")
        if changesets:
            cs = f"changesetresponse_{n}"
            lines += [f"Content-Type: multipart/mixed; boundary={cs}", "", f"--{cs}", *inner, f"--{cs}--"]
        else:
            lines += inner
    lines.append(f"--{boundary}--")
    return httpx.Response(
        200,
        headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
        content=("\r\n".join(lines) + "\r\n").encode(),
    )


def collect(pages: Iterator[DeltaPage]) -> list[DeltaPage]:
    return list(pages)


# --------------------------------------------------------------------------- change tracking
def test_initial_tracked_read_pages_and_puts_the_delta_link_on_the_last_page() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        q = query_of(request)
        if "$skiptoken" not in q:
            return httpx.Response(200, json={
                "value": [{"accountid": "a1", "name": "Alpha"}, {"accountid": "a2", "name": "Beta"}],
                "@odata.nextLink": f"{BASE}/accounts?$select=name,accountid"
                "&$skiptoken=%3Ccookie%20pagenumber=%222%22%20/%3E",
            })
        return httpx.Response(200, json={
            "value": [{"accountid": "a3", "name": "Gamma"}],
            "@odata.deltaLink": f"{BASE}/accounts?$select=name,accountid&$deltatoken=919042%2108%2f22%2f2017",
        })

    client, http = client_for(handler, page_size=2)
    pages = collect(client.read_changes("accounts", ["name", "accountid"], None))

    assert [[r["accountid"] for r in p.rows] for p in pages] == [["a1", "a2"], ["a3"]]
    assert pages[0].delta_link is None
    assert pages[1].delta_link is not None and "$deltatoken=" in pages[1].delta_link
    assert not any(p.restarted for p in pages)
    first = seen[0]
    prefer = first.headers["prefer"]
    assert "odata.track-changes" in prefer and "odata.maxpagesize=2" in prefer
    q = query_of(first)
    assert q["$select"] == "name,accountid"
    assert not {"$filter", "$orderby", "$top", "$expand"} & set(q)  # refused while tracking
    assert "odata.track-changes" in seen[1].headers["prefer"]  # preferences resent on every page
    assert http.kinds == ["read", "read"]


def test_delta_read_separates_deleted_rows() -> None:
    link = f"{BASE}/accounts?$select=name&$deltatoken=1000%2101%2f01%2f2026"

    def handler(request: httpx.Request) -> httpx.Response:
        assert str(request.url).startswith(f"{BASE}/accounts?") and "deltatoken" in str(request.url)
        return httpx.Response(200, json={
            "@odata.context": f"{BASE}/$metadata#accounts(name)/$delta",
            "value": [
                {"@odata.etag": 'W/"1"', "name": "Changed", "accountid": "a1"},
                {"@odata.context": f"{BASE}/$metadata#accounts/$deletedEntity",
                 "id": "2E451703-C686-E711-80E5-00155DB19E6D", "reason": "deleted"},
                {"id": "0b3f0a4e-0000-0000-0000-000000000001", "reason": "deleted"},
            ],
            "@odata.deltaLink": f"{BASE}/accounts?$select=name&$deltatoken=1001%2101%2f02%2f2026",
        })

    client, _ = client_for(handler)
    [page] = collect(client.read_changes("accounts", ["name"], link))
    assert page.rows == [{"@odata.etag": 'W/"1"', "name": "Changed", "accountid": "a1"}]
    assert page.deleted_ids == [
        "2e451703-c686-e711-80e5-00155db19e6d",  # lower-cased
        "0b3f0a4e-0000-0000-0000-000000000001",
    ]
    assert page.delta_link is not None and "1001" in page.delta_link
    assert page.restarted is False


def test_expired_token_restarts_a_full_tracked_read() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if "deltatoken" in str(request.url):
            return httpx.Response(400, content=error_body(
                "0x80044352",
                "Version stamp associated with the client has expired. Please perform a full sync.",
            ))
        assert "odata.track-changes" in request.headers["prefer"]
        return httpx.Response(200, json={
            "value": [{"accountid": "a1", "name": "Alpha"}],
            "@odata.deltaLink": f"{BASE}/accounts?$select=name&$deltatoken=5%2101%2f03%2f2026",
        })

    client, _ = client_for(handler)
    old_link = f"{BASE}/accounts?$select=name&$deltatoken=1%21x"
    pages = collect(client.read_changes("accounts", ["name"], old_link))
    assert len(calls) == 2 and "deltatoken" not in calls[1]
    assert [p.restarted for p in pages] == [True]
    assert pages[0].rows[0]["accountid"] == "a1"
    assert pages[0].delta_link is not None and "$deltatoken=5" in pages[0].delta_link


def test_other_errors_on_a_delta_read_propagate() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, content=error_body("0x80040220", "Principal user is missing prvRead"))

    client, _ = client_for(handler)
    with pytest.raises(AuthFailed):
        collect(client.read_changes("accounts", ["name"], f"{BASE}/accounts?$deltatoken=1"))


def test_query_sends_filter_and_orderby_and_streams_pages() -> None:
    from shared.odata.filters import F

    def handler(request: httpx.Request) -> httpx.Response:
        q = query_of(request)
        if "$skiptoken" in q:
            return httpx.Response(200, json={"value": [{"productid": "p2"}]})
        assert q["$filter"] == "statecode eq 0"
        assert q["$orderby"] == "productnumber asc"
        assert request.headers["prefer"] == "odata.maxpagesize=1"
        return httpx.Response(200, json={"value": [{"productid": "p1"}],
                                         "@odata.nextLink": f"{BASE}/products?$skiptoken=2"})

    client, _ = client_for(handler, page_size=1)
    pages = list(client.query("products", ["productid"], F.eq("statecode", 0), "productnumber asc"))
    assert pages == [[{"productid": "p1"}], [{"productid": "p2"}]]


# --------------------------------------------------------------------------- writes
def writes(n: int) -> list[DataverseWrite]:
    return [
        DataverseWrite(source_key=f"usmf|C{i:04d}", target_id=f"00000000-0000-0000-0000-{i:012d}",
                       payload={"name": f"Customer {i}", "accountnumber": f"C{i:04d}"})
        for i in range(1, n + 1)
    ]


def test_upsert_multiple_happy_path() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert str(request.url) == f"{BASE}/accounts/Microsoft.Dynamics.CRM.UpsertMultiple"
        bodies.append(json.loads(request.content))
        return httpx.Response(204)

    client, http = client_for(handler, bulk_size=2)
    out = client.upsert_many("account", "accounts", writes(3), supports_multiple=True)

    assert [o.source_key for o in out] == ["usmf|C0001", "usmf|C0002", "usmf|C0003"]
    assert all(o.ok and o.created is None and o.error is None for o in out)
    assert [o.target_id for o in out] == [w.target_id for w in writes(3)]
    # chunks of bulk_size, possibly sent side by side
    assert sorted(len(b["Targets"]) for b in bodies) == [1, 2]
    target = next(b for b in bodies if len(b["Targets"]) == 2)["Targets"][0]
    assert target["@odata.type"] == "Microsoft.Dynamics.CRM.account"
    assert target["accountid"] == "00000000-0000-0000-0000-000000000001"
    assert target["name"] == "Customer 1"
    assert http.kinds == ["bulk", "bulk"]


def test_rolled_back_upsert_multiple_is_replayed_as_batch_isolating_the_bad_record() -> None:
    batches: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("UpsertMultiple"):
            return httpx.Response(400, content=error_body(
                "0x80044331", "A validation error occurred. The length of the 'name' attribute of the "
                "'account' entity exceeded the maximum allowed length of '160'."))
        assert request.url.path.endswith("/$batch")
        batches.append(request)
        return batch_response([(201, {"accountid": "x"}, None),
                               (400, error_json("0x80044331", "A validation error occurred."), None),
                               (200, {"accountid": "y"}, None)])

    client, http = client_for(handler)
    out = client.upsert_many("account", "accounts", writes(3), supports_multiple=True)

    assert [o.ok for o in out] == [True, False, True]
    assert [o.created for o in out] == [True, None, False]
    assert isinstance(out[1].error, RecordRejected)
    assert out[1].source_key == "usmf|C0002"
    assert http.kinds == ["bulk", "batch"]
    [request] = batches
    assert "odata.continue-on-error" in request.headers["prefer"]
    ops = parse_batch_request(request)
    assert [op["method"] for op in ops] == ["PATCH"] * 3
    assert ops[0]["url"].startswith(f"{BASE}/accounts(00000000-0000-0000-0000-000000000001)")
    assert ops[0]["json"] == {"name": "Customer 1", "accountnumber": "C0001"}
    assert "if-match" not in ops[0]["headers"] and "if-none-match" not in ops[0]["headers"]  # true upsert


def test_batch_gives_per_record_outcomes_201_204_400() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/$batch")
        ops = parse_batch_request(request)
        assert len(ops) == 3
        return batch_response([
            (201, None, "1"),
            (204, None, "2"),
            (400, {"error": {"code": "0x80040203", "message": "Invalid property 'bogus' was found"}}, "3"),
        ])

    client, http = client_for(handler)
    out = client.upsert_many("contact", "contacts", writes(3), supports_multiple=False)
    assert [(o.ok, o.created) for o in out] == [(True, True), (True, False), (False, None)]
    assert isinstance(out[2].error, SyncError) and out[2].error.status == 400
    assert http.kinds == ["batch"]


def test_batch_parts_are_matched_by_content_id_not_position() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return batch_response([(400, {"error": {"code": "", "message": "bad"}}, "2"), (201, None, "1")])

    client, _ = client_for(handler)
    out = client.upsert_many("contact", "contacts", writes(2), supports_multiple=False)
    assert [o.ok for o in out] == [True, False]


def test_missing_batch_parts_fail_only_the_unanswered_records_as_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return batch_response([(204, None, "1")])

    client, _ = client_for(handler)
    out = client.upsert_many("contact", "contacts", writes(3), supports_multiple=False)
    assert out[0].ok
    assert [type(o.error) for o in out[1:]] == [Transient, Transient]
    assert all(not o.ok for o in out[1:])


def test_whole_request_failures_fail_each_record_but_auth_failures_stop_the_run() -> None:
    def transient(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, content=error_body("", "Service unavailable"))

    client, _ = client_for(transient)
    out = client.upsert_many("account", "accounts", writes(2), supports_multiple=True)
    assert [o.ok for o in out] == [False, False]
    assert all(isinstance(o.error, Transient) for o in out)

    def denied(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, content=error_body("", "Bearer token expired"))

    client, _ = client_for(denied)
    with pytest.raises(AuthFailed):
        client.upsert_many("account", "accounts", writes(1), supports_multiple=False)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "The 'UpsertMultiple' method does not support entities of type 'quote'."),
        (404, "Resource not found for the segment 'Microsoft.Dynamics.CRM.UpsertMultiple'."),
    ],
)
def test_unsupported_upsert_multiple_falls_back_to_batch(status: int, message: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("UpsertMultiple"):
            return httpx.Response(status, content=error_body("0x80040800", message))
        return batch_response([(201, None, None)])

    client, http = client_for(handler)
    out = client.upsert_many("quote", "quotes", writes(1), supports_multiple=True)
    assert out[0].ok and out[0].created is True
    assert http.kinds == ["bulk", "batch"]


# --------------------------------------------------------------------------- look-ups and deletes
def test_match_existing_chunks_values_and_maps_case_insensitively() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        flt = unquote(query_of(request)["$filter"])
        assert flt.startswith("Microsoft.Dynamics.CRM.In(PropertyName='accountnumber'")
        values = re.findall(r"'(C\d+)'", flt, re.IGNORECASE)
        rows = [{"accountnumber": v.lower(), "accountid": f"id-{v}"} for v in values if v.endswith("7")]
        return httpx.Response(200, json={"value": rows})

    client, http = client_for(handler)
    values = [f"C{i:04d}" for i in range(250)] + ["C0007"]  # duplicate value asked once
    found = client.match_existing("accounts", "accountnumber", values, "accountid")

    assert len(requests) == 3  # 100 + 100 + 50
    assert set(http.kinds) == {"lookup"}
    assert query_of(requests[0])["$select"] == "accountnumber,accountid"
    assert found["C0007"] == "id-C0007"  # caller's spelling, service's id
    assert len(found) == 25


def test_delete_treats_a_missing_row_as_deleted() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "DELETE"
        return httpx.Response(404, content=error_body("0x80040217", "account With Id = x Does Not Exist"))

    client, http = client_for(handler)
    client.delete("accounts", "00000000-0000-0000-0000-000000000001")
    assert http.kinds == ["single"]


def test_a_delta_link_on_a_page_that_is_not_the_last_is_not_checkpointed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "$skiptoken" not in str(request.url):
            return httpx.Response(200, json={
                "value": [{"accountid": "a1"}],
                "@odata.nextLink": f"{BASE}/accounts?$skiptoken=2",
                "@odata.deltaLink": f"{BASE}/accounts?$deltatoken=early",
            })
        final = f"{BASE}/accounts?$deltatoken=final"
        return httpx.Response(200, json={"value": [], "@odata.deltaLink": final})

    client, _ = client_for(handler)
    pages = collect(client.read_changes("accounts", ["accountid"], None))
    assert [p.delta_link for p in pages] == [None, f"{BASE}/accounts?$deltatoken=final"]


def test_upsert_many_sends_chunks_concurrently_up_to_the_limiter_maximum() -> None:
    service = InFlight()

    def handler(request: httpx.Request) -> httpx.Response:
        with service.serving():
            return httpx.Response(204)

    client, http = client_for(handler, bulk_size=1)
    out = client.upsert_many("account", "accounts", writes(12), supports_multiple=True)
    assert [o.source_key for o in out] == [w.source_key for w in writes(12)]  # input order kept
    assert all(o.ok for o in out)
    assert http.kinds == ["bulk"] * 12
    assert 2 <= service.peak <= 4  # concurrent, but never beyond AdaptiveLimiter(4)
