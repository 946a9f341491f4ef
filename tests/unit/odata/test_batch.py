"""$batch encoding and decoding: round trips through the sandbox codec and realistic service responses."""

from __future__ import annotations

import json

import pytest

from sandbox import multipart as server
from shared.odata.batch import BatchOperation, BatchPartResponse, ChangeSet, decode_batch, encode_batch
from shared.odata.errors import Conflict, Fatal, RecordRejected


def test_encode_format_is_crlf_multipart() -> None:
    ctype, body = encode_batch(
        [BatchOperation("GET", "accounts?$select=name", {"Accept": "application/json"})],
        boundary="batch_abc",
    )
    assert ctype == "multipart/mixed; boundary=batch_abc"
    text = body.decode()
    assert text == (
        "--batch_abc\r\n"
        "Content-Type: application/http\r\n"
        "Content-Transfer-Encoding: binary\r\n"
        "\r\n"
        "GET accounts?$select=name HTTP/1.1\r\n"
        "Accept: application/json\r\n"
        "\r\n"
        "\r\n"
        "--batch_abc--\r\n"
    )
    assert "\n" not in text.replace("\r\n", "")


def test_encode_is_parsed_by_the_sandbox_server() -> None:
    items: list[BatchOperation | ChangeSet] = [
        ChangeSet(
            [
                BatchOperation(
                    "POST",
                    "/data/CustomersV3",
                    {"Prefer": "return=representation"},
                    {"dataAreaId": "usmf", "CustomerAccount": "C-1", "OrganizationName": "Contoso é"},
                    content_id="1",
                )
            ]
        ),
        ChangeSet(
            [
                BatchOperation(
                    "PATCH",
                    "CustomersV3(dataAreaId='usmf',CustomerAccount='C-2')",
                    body={"OrganizationName": "Fabrikam"},
                    content_id="2",
                ),
                BatchOperation("PATCH", "$2", body={"CustomerGroupId": "10"}, content_id="3"),
            ]
        ),
        BatchOperation("GET", "CustomersV3?$top=1"),
    ]
    ctype, body = encode_batch(items)
    parts = server.parse_batch(body, ctype)
    assert len(parts) == 3
    first, second, third = parts
    assert isinstance(first, server.ChangeSet) and isinstance(second, server.ChangeSet)
    req = first.requests[0]
    assert (req.method, req.url, req.content_id) == ("POST", "/data/CustomersV3", "1")
    assert req.json() == {"dataAreaId": "usmf", "CustomerAccount": "C-1", "OrganizationName": "Contoso é"}
    assert req.headers.get("prefer") == "return=representation"
    assert req.headers.get("Content-Type") == "application/json; type=entry"
    assert [r.content_id for r in second.requests] == ["2", "3"]
    assert second.requests[1].url == "$2"
    assert isinstance(third, server.BatchRequest) and third.method == "GET" and third.body == b""


def test_sandbox_response_is_decoded_in_order() -> None:
    body, ctype = server.build_batch_response(
        [
            [
                server.PartResponse(
                    204, {"OData-EntityId": "https://x/data/CustomersV3(dataAreaId='usmf')"}, None, "1"
                ),
                server.PartResponse(201, {}, {"CustomerAccount": "C-2"}, "2"),
            ],
            server.PartResponse(200, {}, {"value": [{"a": 1}]}),
        ]
    )
    parts = decode_batch(ctype, body)
    assert [p.status for p in parts] == [204, 201, 200]
    assert [p.content_id for p in parts] == ["1", "2", None]
    assert parts[0].headers["odata-entityid"].endswith("(dataAreaId='usmf')")
    assert parts[0].json() is None
    assert parts[1].json() == {"CustomerAccount": "C-2"}
    assert parts[2].json() == {"value": [{"a": 1}]}


DATAVERSE_RESPONSE = (
    "--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\n"
    "Content-Type: multipart/mixed; boundary=changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc\r\n"
    "\r\n"
    "--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "Content-ID: 1\r\n"
    "\r\n"
    "HTTP/1.1 204 No Content\r\n"
    "OData-Version: 4.0\r\n"
    "Location: [Organization URI]/api/data/v9.2/tasks(a59c24f3-fafc-e411-80dd-00155d2a68cb)\r\n"
    "OData-EntityId: [Organization URI]/api/data/v9.2/tasks(a59c24f3-fafc-e411-80dd-00155d2a68cb)\r\n"
    "\r\n"
    "\r\n"
    "--changesetresponse_ff83b4f1-ab48-430c-b81c-926a2c596abc--\r\n"
    "--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\n"
    "Content-Type: application/http\r\n"
    "Content-Transfer-Encoding: binary\r\n"
    "\r\n"
    "HTTP/1.1 400 Bad Request\r\n"
    "REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026\r\n"
    "Content-Type: application/json; odata.metadata=minimal\r\n"
    "OData-Version: 4.0\r\n"
    "\r\n"
    '{"error":{"code":"0x80044331","message":"A validation error occurred.  The length of the \'subject\' '
    "attribute of the 'task' entity exceeded the maximum allowed length of '200'.\"}}\r\n"
    "--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f--\r\n"
)


def test_realistic_dataverse_response() -> None:
    parts = decode_batch(
        'multipart/mixed; boundary="batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f"',
        DATAVERSE_RESPONSE.encode(),
    )
    assert [p.status for p in parts] == [204, 400]
    ok, bad = parts
    assert ok.ok and ok.content_id == "1" and ok.body == b""
    assert ok.headers["odata-entityid"].endswith("tasks(a59c24f3-fafc-e411-80dd-00155d2a68cb)")
    assert ok.error("dataverse") is None
    err = bad.error("dataverse")
    assert isinstance(err, RecordRejected)
    assert err.field == "subject" and err.code == "0x80044331"
    assert bad.headers["req_id"] == "5ecd1cb3-1730-4ffc-909c-d44c22270026"


FO_ERROR = {
    "error": {
        "code": "",
        "message": "An error has occurred.",
        "innererror": {
            "message": "Write failed for table row of type 'CustCustomerGroupEntity'. "
            "Infolog: Info: Cannot create a record in Customer groups (CustGroup). Customer "
            "group: Batch2, Batch 2 Test group T1.\nThe record "
            "already exists..",
            "type": "Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException",
            "stacktrace": "   at Microsoft.Dynamics.Platform.Integration.Services.OData.Update."
            "UpdateProcessor.CreateEntity_Save(...)",
        },
    }
}


def test_realistic_finops_response_lf_only() -> None:
    """F&O answers 200 with per-change-set results; this copy uses bare LF and odd header case."""
    text = (
        "--batchresponse_8d3a\n"
        "content-type: multipart/mixed; boundary=changesetresponse_11\n"
        "\n"
        "--changesetresponse_11\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        "CONTENT-ID: 1\n"
        "\n"
        "HTTP/1.1 201 Created\n"
        "Content-Type: application/json; odata.metadata=minimal\n"
        'ETag: W/"JzAsMjI1NjU0MjExNzYn"\n'
        "\n"
        '{"@odata.etag":"W/\\"JzAsMjI1NjU0MjExNzYn\\"","dataAreaId":"usmf","CustomerGroupId":"T1"}\n'
        "--changesetresponse_11--\n"
        "--batchresponse_8d3a\n"
        "Content-Type: multipart/mixed; boundary=changesetresponse_22\n"
        "\n"
        "--changesetresponse_22\n"
        "Content-Type: application/http\n"
        "Content-Transfer-Encoding: binary\n"
        "\n"
        "HTTP/1.1 500 Internal Server Error\n"
        "Content-Type: application/json; odata.metadata=minimal\n"
        "\n" + json.dumps(FO_ERROR) + "\n"
        "--changesetresponse_22--\n"
        "--batchresponse_8d3a--\n"
    )
    parts = decode_batch("multipart/mixed; boundary=batchresponse_8d3a", text.encode())
    assert [p.status for p in parts] == [201, 500]
    assert parts[0].content_id == "1"
    assert parts[0].headers["etag"] == 'W/"JzAsMjI1NjU0MjExNzYn"'
    assert parts[0].json()["CustomerGroupId"] == "T1"
    assert parts[1].content_id is None
    assert isinstance(parts[1].error("finops"), Conflict)


@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b"{}"),
        ("multipart/mixed", b"--x\r\n"),
        ("multipart/mixed; boundary=x", b"no boundary here"),
        (
            "multipart/mixed; boundary=x",
            b"--x\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
        ),
        ("multipart/mixed; boundary=x", b"--x\r\nContent-Type: application/http\r\n\r\nGARBAGE\r\n--x--\r\n"),
        ("multipart/mixed; boundary=x", b"--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x--\r\n"),
    ],
)
def test_malformed_responses_are_fatal(ctype: str, body: bytes) -> None:
    with pytest.raises(Fatal):
        decode_batch(ctype, body)


def test_part_json_error_is_fatal() -> None:
    with pytest.raises(Fatal):
        BatchPartResponse(200, {}, b"{truncated").json()


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        encode_batch([])
    with pytest.raises(ValueError):
        encode_batch([ChangeSet([BatchOperation("GET", "accounts")])])
    with pytest.raises(ValueError):
        encode_batch([BatchOperation("PATCH", "accounts(1) HTTP/1.1\r\nX-Evil: 1")])
    with pytest.raises(ValueError):
        encode_batch([BatchOperation("PATCH", "accounts(1)", {"X": "a\r\nB: c"})])
    with pytest.raises(ValueError):
        encode_batch(
            [
                ChangeSet(
                    [BatchOperation("POST", "a", content_id="1"), BatchOperation("POST", "b", content_id="1")]
                )
            ]
        )
    with pytest.raises(ValueError):
        encode_batch([ChangeSet([])])


def test_boundary_text_inside_a_line_does_not_split_a_part() -> None:
    from shared.odata.batch import decode_batch

    body = (
        b"--b1\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n\r\n{\"note\": \"x --b1 y\"}\r\n"
        b"--b1 \t\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
        b"--b1--"
    )
    parts = decode_batch("multipart/mixed; boundary=b1", body)
    assert [p.status for p in parts] == [200, 204]
    assert parts[0].body == b'{"note": "x --b1 y"}'
