"""FinOpsClient against a scripted F&O OData service (httpx.MockTransport): reads, batch writes, fallbacks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import httpx
import pytest

from shared.finops import FinOpsClient, FinOpsWrite, key_text
from shared.http import AdaptiveLimiter, RequestMetrics, RetryPolicy, ServiceHttp, TimeBudget
from shared.odata.errors import AuthFailed, RecordRejected, Transient
from shared.odata.filters import F
from tests.unit.concurrency import InFlight

BASE = "https://contoso.operations.dynamics.com/data"
Handler = Callable[[httpx.Request], httpx.Response]


# --------------------------------------------------------------------------- test plumbing
class RecordingHttp(ServiceHttp):
    """The real ServiceHttp over an httpx.MockTransport, remembering the ``kind`` of every call.

    Retries are ServiceHttp's own business (tested with it); here they are off so call counts are exact.
    """

    def __init__(self, handler: Handler) -> None:
        super().__init__(
            httpx.Client(transport=httpx.MockTransport(handler)),
            service="finops",
            policy=RetryPolicy(max_retries=0, sleep=lambda _: None),
            budget=TimeBudget(60),
            limiter=AdaptiveLimiter(4),
            metrics=RequestMetrics(),
        )
        self.kinds: list[str] = []

    def request(self, method: str, url: str, *, kind: str, **kw: Any) -> httpx.Response:
        self.kinds.append(kind)
        return super().request(method, url, kind=kind, **kw)


def client_for(handler: Handler, **kw: Any) -> tuple[FinOpsClient, RecordingHttp]:
    http = RecordingHttp(handler)
    return FinOpsClient(http, BASE, **kw), http


def query_of(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}


def parse_batch_request(request: httpx.Request) -> list[dict[str, Any]]:
    """Operations of a `$batch` request with the change set each belongs to."""
    text = request.content.decode()
    ops = []
    for chunk in re.split(r"\r\n(?=--changeset_)", text):
        m = re.search(r"^(POST|PATCH|PUT|DELETE) (\S+) HTTP/1\.1\r$", chunk, re.MULTILINE)
        if not m:
            continue
        changeset = re.match(r"--(changeset_[^\r\n-]+(?:-[^\r\n-]+)*)", chunk)
        cid = re.search(r"^Content-ID: (\S+)\r$", chunk, re.MULTILINE)
        body = chunk[m.end():].split("\r\n\r\n", 1)[1].split("\r\n--", 1)[0]
        ops.append({
            "method": m.group(1),
            "url": m.group(2),
            "content_id": cid.group(1) if cid else None,
            "changeset": changeset.group(1) if changeset else None,
            "json": json.loads(body) if body.strip() else None,
        })
    return ops


def fo_error(message: str, inner: str = "") -> dict[str, Any]:
    body: dict[str, Any] = {"code": "", "message": message}
    if inner:
        body["innererror"] = {
            "message": inner,
            "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
            "stacktrace": "",
        }
    return {"error": body}


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            500: "Internal Server Error"}


def batch_response(parts: Sequence[tuple[int, Any, str | None]]) -> httpx.Response:
    """F&O answers every change set with a nested multipart holding its one response."""
    boundary = "batchresponse_7f2c"
    lines: list[str] = []
    for n, (status, body, cid) in enumerate(parts):
        cs = f"changesetresponse_{n}"
        lines += [f"--{boundary}", f"Content-Type: multipart/mixed; boundary={cs}", "", f"--{cs}",
                  "Content-Type: application/http", "Content-Transfer-Encoding: binary"]
        if cid is not None:
            lines.append(f"Content-ID: {cid}")
        lines += ["", f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        if body is not None:
            lines += ["Content-Type: application/json; odata.metadata=minimal", "", json.dumps(body)]
        else:
            lines += [""]
        lines.append(f"--{cs}--")
    lines.append(f"--{boundary}--")
    return httpx.Response(200, headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
                          content=("\r\n".join(lines) + "\r\n").encode())


def customer(account: str, *, exists: bool, name: str = "Contoso") -> FinOpsWrite:
    return FinOpsWrite(
        source_key=f"acc-{account}",
        key={"dataAreaId": "usmf", "CustomerAccount": account},
        payload={"OrganizationName": name, "CustomerGroupId": "10", "CustomerAccount": account},
        exists=exists,
    )


# --------------------------------------------------------------------------- reads
def test_read_company_filters_by_company_orders_by_keys_and_steps_skip() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query_of(request)
        seen.append(q)
        skip = int(q.get("$skip", "0"))
        rows = [{"CustomerAccount": f"C{n:04d}", "dataAreaId": "usmf"} for n in range(skip, min(skip + 2, 5))]
        return httpx.Response(200, json={"value": rows})

    client, http = client_for(handler, page_size=2)
    flt = F.eq("CustomerGroupId", "10")
    pages = list(client.read_company("CustomersV3", ["CustomerAccount", "dataAreaId"], "usmf", flt))

    assert [len(p) for p in pages] == [2, 2, 1]
    assert [p["CustomerAccount"] for page in pages for p in page] == [f"C{n:04d}" for n in range(5)]
    first = seen[0]
    assert first["cross-company"] == "true"
    assert unquote(first["$filter"]) == "dataAreaId eq 'usmf' and CustomerGroupId eq '10'"
    assert first["$orderby"] == "dataAreaId,CustomerAccount"
    assert first["$top"] == "2" and "$skip" not in first
    assert [q.get("$skip") for q in seen[1:]] == ["2", "4"]
    assert set(http.kinds) == {"read"}


def test_read_company_escapes_the_company_literal() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert unquote(query_of(request)["$filter"]) == "dataAreaId eq 'us''mf'"
        return httpx.Response(200, json={"value": []})

    client, _ = client_for(handler)
    assert list(client.read_company("CustomersV3", ["CustomerAccount"], "us'mf")) == [[]]


def test_read_company_follows_the_service_next_link() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        if len(calls) == 1:
            return httpx.Response(200, json={
                "value": [{"SalesOrderNumber": "SO-1"}],
                "@odata.nextLink": f"{BASE}/SalesOrderHeadersV2?cross-company=true&$skip=10000&$top=10000",
            })
        return httpx.Response(200, json={"value": [{"SalesOrderNumber": "SO-2"}]})

    client, _ = client_for(handler)
    pages = list(client.read_company("SalesOrderHeadersV2", ["SalesOrderNumber"], "usmf"))
    assert pages == [[{"SalesOrderNumber": "SO-1"}], [{"SalesOrderNumber": "SO-2"}]]
    assert calls[1] == f"{BASE}/SalesOrderHeadersV2?cross-company=true&$skip=10000&$top=10000"


def test_get_returns_none_for_a_missing_key() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/CustomersV3(dataAreaId='usmf',CustomerAccount='C1')")
        assert query_of(request)["cross-company"] == "true"
        return httpx.Response(404, json=fo_error("No resources were found."))

    client, http = client_for(handler)
    assert client.get("CustomersV3", {"dataAreaId": "usmf", "CustomerAccount": "C1"}) is None
    assert http.kinds == ["lookup"]


# --------------------------------------------------------------------------- writes
def test_write_sends_one_change_set_per_record_and_reports_created_flags() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        assert str(request.url) == f"{BASE}/$batch"
        return batch_response([(201, {"CustomerAccount": "C0001"}, "1"), (204, None, "2")])

    client, http = client_for(handler)
    out = client.write("CustomersV3", [customer("C0001", exists=False), customer("C0002", exists=True)])

    assert [(o.ok, o.created, o.target_id) for o in out] == [
        (True, True, "usmf|C0001"),
        (True, False, "usmf|C0002"),
    ]
    assert "odata.continue-on-error" in requests[0].headers["prefer"]
    ops = parse_batch_request(requests[0])
    assert [op["method"] for op in ops] == ["POST", "PATCH"]
    assert len({op["changeset"] for op in ops}) == 2  # isolated: one change set each
    assert ops[0]["url"] == f"{BASE}/CustomersV3"
    assert ops[0]["json"] == {
        "OrganizationName": "Contoso",
        "CustomerGroupId": "10",
        "CustomerAccount": "C0001",
        "dataAreaId": "usmf",
    }
    assert unquote(ops[1]["url"]) == f"{BASE}/CustomersV3(dataAreaId='usmf',CustomerAccount='C0002')"
    assert ops[1]["json"] == {"OrganizationName": "Contoso", "CustomerGroupId": "10"}  # no key fields
    assert http.kinds == ["batch"]


def test_write_chunks_by_batch_size() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ops = parse_batch_request(request)
        sizes.append(len(ops))
        return batch_response([(204, None, op["content_id"]) for op in ops])

    client, _ = client_for(handler, batch_size=2)
    out = client.write("CustomersV3", [customer(f"C{n}", exists=True) for n in range(5)])
    assert sorted(sizes) == [1, 2, 2]  # chunks may go out concurrently; outcomes keep input order
    assert [o.source_key for o in out] == [f"acc-C{n}" for n in range(5)]
    assert all(o.ok for o in out)


def test_post_answered_already_exists_is_resent_as_patch() -> None:
    batches: list[list[dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        ops = parse_batch_request(request)
        batches.append(ops)
        if len(batches) == 1:
            return batch_response([
                (500, fo_error("An error has occurred.",
                               "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Info: "
                               "Cannot create a record in Customers (CustTable). Customer account: "
                               "C0001.\nThe record already exists.."), "1"),
                (201, None, "2"),
            ])
        return batch_response([(204, None, "1")])

    client, http = client_for(handler)
    out = client.write("CustomersV3", [customer("C0001", exists=False), customer("C0002", exists=False)])

    assert [(o.ok, o.created) for o in out] == [(True, False), (True, True)]
    assert [op["method"] for op in batches[1]] == ["PATCH"]
    assert "CustomerAccount='C0001'" in unquote(batches[1][0]["url"])
    assert http.kinds == ["batch", "batch"]  # the fallback also goes as a $batch


def test_patch_answered_not_found_is_resent_as_post() -> None:
    batches: list[list[dict[str, Any]]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        batches.append(parse_batch_request(request))
        if len(batches) == 1:
            gone = fo_error("No resources were found when selecting for update.")
            return batch_response([(204, None, "1"), (400, gone, "2")])
        return batch_response([(201, None, "1")])

    client, _ = client_for(handler)
    out = client.write("CustomersV3", [customer("C0001", exists=True), customer("C0002", exists=True)])

    assert [(o.ok, o.created) for o in out] == [(True, False), (True, True)]
    [retry] = batches[1]
    assert retry["method"] == "POST" and retry["url"] == f"{BASE}/CustomersV3"
    assert retry["json"]["CustomerAccount"] == "C0002" and retry["json"]["dataAreaId"] == "usmf"


def test_fallback_happens_once_and_a_bad_record_does_not_fail_its_neighbours() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            return batch_response([
                (500, fo_error("An error has occurred.", "The record already exists."), "1"),
                (500, fo_error("An error has occurred.",
                               "Write failed for table row of type 'CustCustomerV3Entity'. Infolog: Error: "
                               "Customer group 99 does not exist."), "2"),
                (201, None, "3"),
            ])
        # The PATCH fallback of record 1 now says the row is gone: no second fallback.
        return batch_response([(404, fo_error("No resources were found when selecting for update."), "1")])

    client, _ = client_for(handler)
    out = client.write("CustomersV3", [customer(f"C{n}", exists=False) for n in range(3)])
    assert calls == 2
    assert [o.ok for o in out] == [False, False, True]
    assert out[1].error is not None and "Customer group 99" in out[1].error.message
    assert out[0].error is not None and "No resources were found" in out[0].error.message


def test_mismatched_batch_parts_mark_unanswered_records_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        # Three change sets sent, two answers without Content-IDs: none can be pinned safely.
        return batch_response([(204, None, None), (204, None, None)])

    client, _ = client_for(handler)
    out = client.write("CustomersV3", [customer(f"C{n}", exists=True) for n in range(3)])
    assert [o.ok for o in out] == [False, False, False]
    assert all(isinstance(o.error, Transient) for o in out)
    assert "no answer" in str(out[0].error)


def test_batch_level_failures() -> None:
    def unavailable(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="Service Unavailable")

    client, _ = client_for(unavailable)
    out = client.write("CustomersV3", [customer("C1", exists=True)])
    assert not out[0].ok and isinstance(out[0].error, Transient)

    def denied(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "", "message": "Unauthorized"}})

    client, _ = client_for(denied)
    with pytest.raises(AuthFailed):
        client.write("CustomersV3", [customer("C1", exists=True)])


def test_key_text_puts_the_company_first() -> None:
    assert key_text({"SalesOrderNumber": "SO-1", "dataAreaId": "usmf", "LineCreationSequenceNumber": 3}) == (
        "usmf|SO-1|3"
    )


def test_patch_failing_on_a_bad_reference_is_not_resent_as_post() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return batch_response([(500, fo_error("An error has occurred.",
                                              "Write failed for table row of type 'CustCustomerV3Entity'. "
                                              "Infolog: Error: Customer group 99 does not exist."), "1")])

    client, _ = client_for(handler)
    out = client.write("CustomersV3", [customer("C1", exists=True)])
    assert calls == 1
    assert not out[0].ok and out[0].error is not None and "Customer group 99" in out[0].error.message


def test_validation_error_is_reported_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return batch_response([(400, fo_error("Invalid value for property 'CreditLimit'."), "1")])

    client, _ = client_for(handler)
    out = client.write("CustomersV3", [customer("C1", exists=False)])
    assert isinstance(out[0].error, RecordRejected) and not out[0].ok


def test_write_sends_batches_concurrently_and_a_run_level_error_stops_the_write() -> None:
    service = InFlight()

    def handler(request: httpx.Request) -> httpx.Response:
        with service.serving():
            return batch_response([(204, None, op["content_id"]) for op in parse_batch_request(request)])

    client, http = client_for(handler, batch_size=1)
    records = [customer(f"C{n}", exists=True) for n in range(10)]
    out = client.write("CustomersV3", records)
    assert [o.source_key for o in out] == [r.source_key for r in records]
    assert all(o.ok for o in out) and http.kinds == ["batch"] * 10
    assert 2 <= service.peak <= 4

    def denied(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"Message": "Authorization has been denied for this request."})

    client, _ = client_for(denied, batch_size=1)
    with pytest.raises(AuthFailed):
        client.write("CustomersV3", records)
