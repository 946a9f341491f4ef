"""Server-side $batch codec: parse what the client sends, frame what the service answers."""

from __future__ import annotations

import json

import pytest

from sandbox.multipart import (
    BatchRequest,
    ChangeSet,
    MultipartError,
    PartResponse,
    boundary_of,
    build_batch_response,
    count_operations,
    parse_batch,
    relative_path,
    resolve_content_ids,
)

BODY = (
    "--batch_AAA\r\n"
    "Content-Type: multipart/mixed; boundary=changeset_BBB\r\n"
    "\r\n"
    "--changeset_BBB\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 1\r\n"
    "\r\n"
    "POST https://org.crm.dynamics.com/api/data/v9.2/accounts HTTP/1.1\r\n"
    "Content-Type: application/json; type=entry\r\n"
    "\r\n"
    '{"name":"A"}\r\n'
    "--changeset_BBB\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 2\r\n"
    "\r\n"
    "POST /api/data/v9.2/contacts HTTP/1.1\r\n"
    "Content-Type: application/json; type=entry\r\n"
    "\r\n"
    '{"lastname":"B","parentcustomerid_account@odata.bind":"$1"}\r\n'
    "--changeset_BBB--\r\n"
    "\r\n"
    "--batch_AAA\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "GET accounts?$select=name HTTP/1.1\r\n"
    "Accept: application/json\r\n"
    "\r\n"
    "\r\n"
    "--batch_AAA--\r\n"
)


def test_parse_nested_changeset_and_get() -> None:
    parts = parse_batch(BODY.encode(), 'multipart/mixed; boundary="batch_AAA"')
    assert len(parts) == 2
    cs = parts[0]
    assert isinstance(cs, ChangeSet)
    assert cs.boundary == "changeset_BBB"
    first, second = cs.requests
    assert (first.method, first.url, first.content_id) == (
        "POST",
        "https://org.crm.dynamics.com/api/data/v9.2/accounts",
        "1",
    )
    assert first.json() == {"name": "A"}
    assert first.headers["content-type"] == "application/json; type=entry"
    assert second.json()["parentcustomerid_account@odata.bind"] == "$1"
    get = parts[1]
    assert isinstance(get, BatchRequest)
    assert (get.method, get.url, get.json()) == ("GET", "accounts?$select=name", None)
    assert count_operations(parts) == 3


def test_parse_lf_only_and_no_http_version() -> None:
    body = BODY.replace("\r\n", "\n").replace(" HTTP/1.1", "").encode()
    parts = parse_batch(body, "multipart/mixed;boundary=batch_AAA")
    assert isinstance(parts[0], ChangeSet)
    assert parts[0].requests[1].json()["lastname"] == "B"


def test_boundary_errors() -> None:
    with pytest.raises(MultipartError):
        boundary_of("application/json")
    with pytest.raises(MultipartError):
        boundary_of("multipart/mixed")
    with pytest.raises(MultipartError, match="boundary"):
        parse_batch(BODY.encode(), "multipart/mixed; boundary=batch_ZZZ")
    with pytest.raises(MultipartError, match="terminated"):
        parse_batch(BODY.replace("--batch_AAA--", "").encode(), "multipart/mixed; boundary=batch_AAA")


def test_malformed_parts() -> None:
    bad_line = BODY.replace("GET accounts?$select=name HTTP/1.1", "nonsense")
    with pytest.raises(MultipartError, match="request line"):
        parse_batch(bad_line.encode(), "multipart/mixed; boundary=batch_AAA")
    get_in_cs = BODY.replace("POST /api/data/v9.2/contacts", "GET /api/data/v9.2/contacts")
    with pytest.raises(MultipartError, match="GET"):
        parse_batch(get_in_cs.encode(), "multipart/mixed; boundary=batch_AAA")
    parts = parse_batch(BODY.replace('{"name":"A"}', "{oops").encode(), "multipart/mixed; boundary=batch_AAA")
    assert isinstance(parts[0], ChangeSet)
    with pytest.raises(MultipartError, match="not JSON"):
        parts[0].requests[0].json()


def test_content_id_references() -> None:
    ids = {"1": "https://x/api/data/v9.2/accounts(1)"}
    assert resolve_content_ids("$1", ids) == ids["1"]
    assert resolve_content_ids("$1/primarycontactid/$ref", ids).endswith("accounts(1)/primarycontactid/$ref")
    assert resolve_content_ids("accounts?$select=name", ids) == "accounts?$select=name"
    with pytest.raises(MultipartError) as err:
        resolve_content_ids("$2", ids)
    assert err.value.message == "Content-ID Reference: '$2' does not exist in the batch context."


def test_relative_path() -> None:
    base = "/api/data/v9.2"
    assert relative_path("https://h/api/data/v9.2/accounts(1)?$select=a", base) == "accounts(1)?$select=a"
    assert relative_path("/api/data/v9.2/accounts", base) == "accounts"
    assert relative_path("accounts", base) == "accounts"


def test_build_response_round_trips_through_parser_framing() -> None:
    body, ctype = build_batch_response(
        [
            [
                PartResponse(204, {"OData-EntityId": "https://h/api/data/v9.2/accounts(1)"}, content_id="1"),
                PartResponse(204, [("Location", "x")], content_id="2"),
            ],
            PartResponse(200, {}, {"value": []}),
            PartResponse(400, {}, {"error": {"code": "0x80044331", "message": "bad"}}, reason="BadRequest"),
        ]
    )
    text = body.decode()
    assert ctype.startswith("multipart/mixed; boundary=batchresponse_")
    outer = ctype.split("boundary=")[1]
    assert text.startswith(f"--{outer}\r\n")
    assert text.endswith(f"--{outer}--\r\n")
    assert "boundary=changesetresponse_" in text
    assert "Content-ID: 1\r\n" in text and "Content-ID: 2\r\n" in text
    assert "HTTP/1.1 204 No Content\r\nOData-EntityId: https://h/api/data/v9.2/accounts(1)\r\n" in text
    assert "HTTP/1.1 400 BadRequest\r\n" in text
    assert '{"value":[]}' in text
    # our own parser can read the framing (requests and responses share it)
    outer_parts = text.split(f"--{outer}")
    assert len(outer_parts) == 5
    error_part = outer_parts[3]
    assert json.loads(error_part.split("\r\n\r\n", 2)[2].strip())["error"]["code"] == "0x80044331"
