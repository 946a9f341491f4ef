"""Dataverse stand-in protocol tests (in-process, Starlette TestClient)."""

from __future__ import annotations

import json
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from sandbox.dataverse import DataverseService, DataverseStore, build_dataverse_app
from sandbox.multipart import parse_batch

warnings.filterwarnings("ignore", message="Using `httpx` with")
from starlette.testclient import TestClient  # noqa: E402

B = "/api/data/v9.2"
ROOT = "https://org.test" + B

CATALOGUE: dict[str, Any] = {
    "service": "dataverse",
    "tables": {
        "account": {
            "entity_set": "accounts",
            "primary_id": "accountid",
            "primary_name": "name",
            "alternate_keys": {"accountnumber": ["accountnumber"]},
            "supports_multiple": True,
            "columns": {
                "name": {"type": "String", "max_length": 160, "writable": True, "required": True},
                "accountnumber": {"type": "String", "max_length": 20, "writable": True},
                "creditlimit": {"type": "Money", "min": 0, "max": 1e14, "precision": 2, "writable": True},
                "numberofemployees": {"type": "Integer", "writable": True},
                "accountcategorycode": {
                    "type": "Picklist",
                    "options": {"1": "Preferred Customer", "2": "Standard"},
                    "writable": True,
                },
                "donotphone": {"type": "Boolean", "writable": True},
                "parentaccountid": {
                    "type": "Lookup",
                    "targets": ["account"],
                    "bind": {"account": "parentaccountid"},
                    "writable": True,
                },
                "createdon": {"type": "DateTime", "writable": False},
                "modifiedon": {"type": "DateTime", "writable": False},
            },
        },
        "contact": {
            "entity_set": "contacts",
            "primary_id": "contactid",
            "primary_name": "fullname",
            "alternate_keys": {"msdynce_contactnumber": ["msdynce_contactnumber"]},
            "supports_multiple": False,
            "columns": {
                "lastname": {"type": "String", "max_length": 50, "writable": True},
                "msdynce_contactnumber": {"type": "String", "max_length": 20, "writable": True},
                "parentcustomerid": {
                    "type": "Customer",
                    "targets": ["account", "contact"],
                    "bind": {"account": "parentcustomerid_account", "contact": "parentcustomerid_contact"},
                    "writable": True,
                },
            },
        },
    },
}


@pytest.fixture
def store() -> DataverseStore:
    return DataverseStore(CATALOGUE)


@pytest.fixture
def client(store: DataverseStore) -> Iterator[TestClient]:
    with TestClient(build_dataverse_app(store, CATALOGUE), base_url="https://org.test") as c:
        yield c


def err(resp: Any) -> tuple[int, str, str]:
    body = resp.json()["error"]
    return resp.status_code, body["code"], body["message"]


def seed(store: DataverseStore, n: int) -> list[str]:
    return store.load_rows(
        "accounts", ({"name": f"Account {i:05d}", "accountnumber": f"A-{i:05d}"} for i in range(n))
    )


# ----------------------------------------------------------------------------------------- reads


def test_paging_follows_next_links(client: TestClient, store: DataverseStore) -> None:
    ids = seed(store, 25)
    url = f"{B}/accounts?$select=name"
    seen: list[str] = []
    pages = 0
    while url:
        resp = client.get(url, headers={"Prefer": "odata.maxpagesize=10"})
        assert resp.status_code == 200
        assert resp.headers["Preference-Applied"] == "odata.maxpagesize=10"
        assert resp.headers["x-sandbox-kind"] == "read"
        body = resp.json()
        assert set(body["value"][0]) == {"@odata.etag", "name", "accountid"}
        seen += [r["accountid"] for r in body["value"]]
        url = body.get("@odata.nextLink", "")
        if url:
            assert "$skiptoken=%3Ccookie%20pagenumber=%22" in url
            assert "istracking=%22False%22" in url
        pages += 1
    assert pages == 3
    assert seen == sorted(ids)
    assert len(set(seen)) == 25


def test_filter_orderby_top_count(client: TestClient, store: DataverseStore) -> None:
    seed(store, 30)
    resp = client.get(
        f"{B}/accounts?$select=name,accountnumber&$filter=startswith(accountnumber,'a-0001')"
        "&$orderby=name desc&$count=true"
    )
    body = resp.json()
    assert body["@odata.count"] == 10
    assert [r["accountnumber"] for r in body["value"]][:2] == ["A-00019", "A-00018"]
    resp = client.get(f"{B}/accounts?$top=3&$orderby=accountnumber")
    assert [r["accountnumber"] for r in resp.json()["value"]] == ["A-00000", "A-00001", "A-00002"]
    assert "@odata.nextLink" not in resp.json()
    # orderby paging
    resp = client.get(f"{B}/accounts?$orderby=name desc", headers={"Prefer": "odata.maxpagesize=20"})
    nxt = resp.json()["@odata.nextLink"]
    second = client.get(nxt, headers={"Prefer": "odata.maxpagesize=20"}).json()
    assert second["value"][0]["name"] == "Account 00009"
    assert "@odata.nextLink" not in second


def test_query_errors(client: TestClient) -> None:
    assert err(client.get(f"{B}/accounts?$skip=5"))[0] == 400
    status, code, message = err(client.get(f"{B}/accounts?$select=name,nope"))
    assert (status, code) == (400, "0x80060888")
    assert message == "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.account'."
    assert err(client.get(f"{B}/accounts?$filter=name eq"))[0] == 400
    status, _, message = err(client.get(f"{B}/widgets"))
    assert status == 404 and "widgets" in message


def test_single_get_by_id_and_alternate_key_and_304(client: TestClient, store: DataverseStore) -> None:
    rid = store.insert("accounts", {"name": "O'Brien Ltd", "accountnumber": "A'1"})
    resp = client.get(f"{B}/accounts(accountnumber='A''1')?$select=name")
    assert resp.status_code == 200
    assert resp.json()["accountid"] == rid
    assert resp.json()["@odata.context"] == f"{ROOT}/$metadata#accounts(name,accountid)/$entity"
    etag = resp.headers["ETag"]
    assert etag == store.etag("accounts", rid)
    assert client.get(f"{B}/accounts({rid})", headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"{B}/accounts({rid})", headers={"If-None-Match": "null"}).status_code == 200
    store.update("accounts", rid, {"name": "Changed"})
    assert client.get(f"{B}/accounts({rid})", headers={"If-None-Match": etag}).status_code == 200
    assert client.get(f"{B}/accounts(accountid={rid})/name").json()["value"] == "Changed"
    status, code, message = err(client.get(f"{B}/accounts(name='x')"))
    assert (status, code) == (400, "0x80060888")
    assert message.startswith(
        "The key in the request URI is not valid for resource 'Microsoft.Dynamics.CRM.account'."
    )
    missing = str(uuid.uuid4())
    status, code, message = err(client.get(f"{B}/accounts({missing})"))
    assert (status, code, message) == (
        404,
        "0x80040217",
        f"Entity 'account' With Id = {missing} Does Not Exist",
    )


# ---------------------------------------------------------------------------------- change tracking


def test_change_tracking_pages_then_delta(client: TestClient, store: DataverseStore) -> None:
    ids = seed(store, 12)
    prefer = {"Prefer": "odata.track-changes,odata.maxpagesize=5"}
    url = f"{B}/accounts?$select=name"
    pages = []
    while True:
        body = client.get(url, headers=prefer).json()
        pages.append(body)
        if "@odata.nextLink" in body:
            assert "@odata.deltaLink" not in body
            assert "istracking=%22True%22" in body["@odata.nextLink"]
            url = body["@odata.nextLink"]
        else:
            break
    assert len(pages) == 3
    delta = pages[-1]["@odata.deltaLink"]
    token = delta.split("$deltatoken=")[1]
    assert "%21" in token  # <version>!<timestamp>

    store.update("accounts", ids[3], {"name": "Updated twice 1"})
    store.update("accounts", ids[3], {"name": "Updated twice 2"})
    new_id = store.insert("accounts", {"name": "New"})
    store.delete("accounts", ids[5])
    temp = store.insert("accounts", {"name": "Short-lived"})
    store.delete("accounts", temp)

    resp = client.get(delta, headers=prefer)
    body = resp.json()
    assert body["@odata.context"] == f"{ROOT}/$metadata#accounts(name,accountid)/$delta"
    values = body["value"]
    assert [v.get("accountid") for v in values[:2]] == [ids[3], new_id]
    assert values[0]["name"] == "Updated twice 2"  # latest state only
    assert values[2:] == [
        {"@odata.context": f"{ROOT}/$metadata#accounts/$deletedEntity", "id": ids[5], "reason": "deleted"},
        {"@odata.context": f"{ROOT}/$metadata#accounts/$deletedEntity", "id": temp, "reason": "deleted"},
    ]
    empty = client.get(body["@odata.deltaLink"], headers=prefer).json()
    assert empty["value"] == [] and "@odata.deltaLink" in empty


def test_tracking_refuses_filter_and_expired_token(client: TestClient, store: DataverseStore) -> None:
    seed(store, 2)
    prefer = {"Prefer": "odata.track-changes"}
    for option in ("$filter=name eq 'x'", "$orderby=name", "$top=1", "$expand=parentaccountid"):
        status, _, message = err(client.get(f"{B}/accounts?{option}", headers=prefer))
        name = option.split("=")[0]
        assert status == 400
        assert message == f'The "{name}" query parameter isn\'t supported when Change Tracking is enabled.'
    delta = client.get(f"{B}/accounts?$select=name", headers=prefer).json()["@odata.deltaLink"]
    store.expire_change_tokens()
    status, code, message = err(client.get(delta, headers=prefer))
    assert (status, code) == (400, "0x80044352")
    assert message == "Version stamp associated with the client has expired. Please perform a full sync."
    fresh = client.get(f"{B}/accounts?$select=name", headers=prefer).json()["@odata.deltaLink"]
    assert client.get(fresh, headers=prefer).status_code == 200


def test_delta_pages_large_change_sets(client: TestClient, store: DataverseStore) -> None:
    prefer = {"Prefer": "odata.track-changes,odata.maxpagesize=4"}
    delta = client.get(f"{B}/accounts?$select=name", headers=prefer).json()["@odata.deltaLink"]
    seed(store, 10)
    url, got = delta, []
    while True:
        body = client.get(url, headers=prefer).json()
        got += body["value"]
        if "@odata.nextLink" in body:
            url = body["@odata.nextLink"]
        else:
            break
    assert len(got) == 10


# ----------------------------------------------------------------------------------------- writes


def test_create_update_delete(client: TestClient, store: DataverseStore) -> None:
    resp = client.post(f"{B}/accounts", json={"name": "Contoso", "accountnumber": "A-1", "creditlimit": 5})
    assert resp.status_code == 204
    entity = resp.headers["OData-EntityId"]
    rid = entity.split("(")[1].rstrip(")")
    assert entity == f"{ROOT}/accounts({rid})"
    resp = client.post(
        f"{B}/accounts?$select=name", json={"name": "Fabrikam"}, headers={"Prefer": "return=representation"}
    )
    assert resp.status_code == 201
    assert set(resp.json()) == {"@odata.context", "@odata.etag", "name", "accountid"}
    assert "OData-EntityId" not in resp.headers
    assert client.patch(f"{B}/accounts({rid})", json={"creditlimit": 7}).status_code == 204
    assert store.get("accounts", rid)["creditlimit"] == 7
    assert client.delete(f"{B}/accounts({rid})").status_code == 204
    status, code, message = err(client.delete(f"{B}/accounts({rid})"))
    assert (status, code, message) == (404, "0x80040217", f"Entity 'account' With Id = {rid} Does Not Exist")


def test_upsert_create_vs_update(client: TestClient, store: DataverseStore) -> None:
    url = f"{B}/accounts(accountnumber='A-9')"
    resp = client.patch(url, json={"name": "First"})
    assert resp.status_code == 204
    assert resp.headers["OData-EntityId"] == f"{ROOT}/accounts(accountnumber='A-9')"
    (row,) = store.find("accounts", accountnumber="A-9")
    assert row["name"] == "First"
    resp = client.patch(url, json={"name": "Second", "accountnumber": "IGNORED"})
    assert resp.status_code == 204
    assert store.get("accounts", row["accountid"])["accountnumber"] == "A-9"  # key columns dropped
    rep = {"Prefer": "return=representation"}
    assert client.patch(url, json={"name": "Third"}, headers=rep).status_code == 200
    resp = client.patch(f"{B}/accounts(accountnumber='A-10')", json={"name": "Made"}, headers=rep)
    assert resp.status_code == 201
    assert resp.json()["accountnumber"] == "A-10"
    assert resp.headers["ETag"] == resp.json()["@odata.etag"]
    pk = str(uuid.uuid4())
    assert client.patch(f"{B}/accounts({pk})", json={"name": "By id"}, headers=rep).status_code == 201
    assert store.get("accounts", pk)["name"] == "By id"


def test_conditional_headers(client: TestClient, store: DataverseStore) -> None:
    rid = store.insert("accounts", {"name": "X", "accountnumber": "A-1"})
    status, code, message = err(
        client.patch(f"{B}/accounts(accountnumber='A-404')", json={"name": "n"}, headers={"If-Match": "*"})
    )
    assert (status, code) == (404, "0x80040217")
    assert (
        client.patch(f"{B}/accounts({rid})", json={"name": "u"}, headers={"If-Match": "*"}).status_code == 204
    )
    status, _, message = err(
        client.patch(f"{B}/accounts(accountnumber='A-1')", json={"name": "n"}, headers={"If-None-Match": "*"})
    )
    assert (status, message) == (412, "A record with matching key values already exists.")
    assert (
        client.patch(
            f"{B}/accounts(accountnumber='A-2')", json={"name": "n"}, headers={"If-None-Match": "*"}
        ).status_code
        == 204
    )
    etag = store.etag("accounts", rid)
    assert (
        client.patch(f"{B}/accounts({rid})", json={"name": "v"}, headers={"If-Match": etag}).status_code
        == 204
    )
    status, code, message = err(
        client.patch(f"{B}/accounts({rid})", json={"name": "w"}, headers={"If-Match": etag})
    )
    assert (status, code) == (412, "0x80060882")
    assert message == "The version of the existing record doesn't match the RowVersion property provided."
    assert err(client.delete(f"{B}/accounts({rid})", headers={"If-Match": etag}))[0] == 412


def test_validation_errors(client: TestClient, store: DataverseStore) -> None:
    status, code, message = err(client.post(f"{B}/accounts", json={"name": "x", "bogus": 1}))
    assert (status, code, message) == (
        400,
        "0x80060888",
        "Invalid property 'bogus' was found in entity 'Microsoft.Dynamics.CRM.account'.",
    )
    status, code, message = err(client.post(f"{B}/accounts", json={"name": "x" * 161}))
    assert (status, code) == (400, "0x80044331")
    assert message == (
        "A validation error occurred.  The length of the 'name' attribute of the 'account' entity "
        "exceeded the maximum allowed length of '160'."
    )
    assert err(client.post(f"{B}/accounts", json={"name": "x", "numberofemployees": "ten"}))[0] == 400
    assert err(client.post(f"{B}/accounts", json={"name": "x", "creditlimit": -1}))[0] == 400
    assert err(client.post(f"{B}/accounts", json={"name": "x", "accountcategorycode": 9}))[0] == 400
    assert err(client.post(f"{B}/accounts", json={"name": "x", "donotphone": "yes"}))[0] == 400
    assert err(client.post(f"{B}/accounts", json={"accountnumber": "R-1"}))[0] == 400  # required name
    assert client.patch(f"{B}/accounts(accountnumber='R-1')", json={"creditlimit": 1}).status_code == 400
    assert store.count("accounts") == 0
    store.insert("accounts", {"name": "D", "accountnumber": "DUP"})
    status, code, message = err(client.post(f"{B}/accounts", json={"name": "x", "accountnumber": "dup"}))
    assert (status, code) == (412, "0x80060892")
    assert message.startswith("Entity Key accountnumber violated.")


def test_bind_lookups(client: TestClient, store: DataverseStore) -> None:
    acc = store.insert("accounts", {"name": "P", "accountnumber": "P-1"})
    rep = {"Prefer": 'return=representation,odata.include-annotations="*"'}
    resp = client.post(
        f"{B}/contacts",
        json={"lastname": "L", "parentcustomerid_account@odata.bind": "/accounts(accountnumber='P-1')"},
        headers=rep,
    )
    assert resp.status_code == 201
    body = resp.json()
    assert body["_parentcustomerid_value"] == acc
    assert body["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] == "account"
    resp = client.post(
        f"{B}/accounts", json={"name": "C", "parentaccountid@odata.bind": f"{ROOT}/accounts({acc})"}
    )
    assert resp.status_code == 204
    missing = str(uuid.uuid4())
    status, code, message = err(
        client.post(
            f"{B}/contacts",
            json={"lastname": "L", "parentcustomerid_account@odata.bind": f"accounts({missing})"},
        )
    )
    assert (status, code) == (400, "0x80040217") and missing in message
    status, _, message = err(
        client.post(
            f"{B}/contacts", json={"lastname": "L", "parentcustomerid_account@odata.bind": "contacts(x='1')"}
        )
    )
    assert status == 400 and "contacts(x='1')" in message
    assert (
        err(client.post(f"{B}/contacts", json={"lastname": "L", "nope@odata.bind": "accounts(1)"}))[0] == 400
    )


# ----------------------------------------------------------------------------------------- $batch


def batch_body(parts: list[str | list[tuple[str, str]]]) -> bytes:
    """parts: a raw request string, or a change set of (content_id, request) pairs."""
    out = []
    for part in parts:
        out.append("--batch_X\r\n")
        if isinstance(part, str):
            out.append("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n")
            out.append(part + "\r\n")
        else:
            out.append("Content-Type: multipart/mixed; boundary=changeset_Y\r\n\r\n")
            for cid, req in part:
                out.append(
                    "--changeset_Y\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
                )
                out.append(f"Content-ID: {cid}\r\n\r\n{req}\r\n")
            out.append("--changeset_Y--\r\n")
    out.append("--batch_X--\r\n")
    return "".join(out).encode()


def post(url: str, body: dict[str, Any]) -> str:
    return f"POST {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{json.dumps(body)}"


def send_batch(client: TestClient, body: bytes, prefer: str | None = None) -> Any:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_X"}
    if prefer:
        headers["Prefer"] = prefer
    return client.post(f"{B}/$batch", content=body, headers=headers)


def test_batch_changeset_success_with_references(client: TestClient, store: DataverseStore) -> None:
    body = batch_body(
        [
            [
                ("1", post(f"{B}/accounts", {"name": "Parent", "accountnumber": "B-1"})),
                (
                    "2",
                    post(
                        f"{ROOT}/contacts", {"lastname": "Kid", "parentcustomerid_account@odata.bind": "$1"}
                    ),
                ),
                ("3", 'PATCH $1 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{"creditlimit": 3}'),
            ],
            "GET accounts?$select=name HTTP/1.1\r\nAccept: application/json\r\n",
        ]
    )
    resp = send_batch(client, body)
    assert resp.status_code == 200
    assert resp.headers["x-sandbox-kind"] == "batch"
    assert resp.headers["x-sandbox-records"] == "4"
    assert resp.headers["content-type"].startswith("multipart/mixed; boundary=batchresponse_")
    text = resp.text
    assert "changesetresponse_" in text
    assert text.count("HTTP/1.1 204 No Content") == 3
    assert "Content-ID: 2" in text
    (acc,) = store.find("accounts", accountnumber="B-1")
    assert acc["creditlimit"] == 3
    (kid,) = store.rows("contacts")
    assert kid["_parentcustomerid_value"] == acc["accountid"]
    assert '"name":"Parent"' in text


def test_batch_changeset_rolls_back(client: TestClient, store: DataverseStore) -> None:
    store.insert("accounts", {"name": "Existing", "accountnumber": "E-1"})
    before = store.snapshot()
    body = batch_body(
        [
            [
                ("1", post(f"{B}/accounts", {"name": "A", "accountnumber": "N-1"})),
                (
                    "2",
                    f"PATCH {B}/accounts(accountnumber='E-1') HTTP/1.1\r\n"
                    'Content-Type: application/json\r\n\r\n{"name": "renamed"}',
                ),
                ("3", post(f"{B}/accounts", {"name": "x" * 200})),
            ],
            post(f"{B}/accounts", {"name": "never"}),
        ]
    )
    resp = send_batch(client, body)
    assert resp.status_code == 400  # stop on first error: overall status is the failure
    assert "0x80044331" in resp.text
    assert "never" not in json.dumps(store.rows("accounts"))
    assert store.count("accounts") == 1
    assert store.rows("accounts")[0]["name"] == "Existing"
    after = store.snapshot()
    assert after["tables"]["accounts"]["rows"] == before["tables"]["accounts"]["rows"]


def test_batch_continue_on_error_and_limits(client: TestClient, store: DataverseStore) -> None:
    body = batch_body(
        [
            post(f"{B}/accounts", {"name": "ok 1"}),
            post(f"{B}/accounts", {"name": "bad", "bogus": 1}),
            post(f"{B}/accounts", {"name": "ok 2"}),
        ]
    )
    resp = send_batch(client, body, prefer="odata.continue-on-error")
    assert resp.status_code == 200
    assert resp.headers["Preference-Applied"] == "odata.continue-on-error"
    assert resp.text.count("HTTP/1.1 204") == 2 and "HTTP/1.1 400" in resp.text
    assert store.count("accounts") == 2
    # stop-on-error without the preference
    resp = send_batch(client, body)
    assert resp.status_code == 400
    assert store.count("accounts") == 3
    many = batch_body([post(f"{B}/accounts", {"name": "n"})] * 1001)
    assert send_batch(client, many).status_code == 400
    body = batch_body([[("1", "PATCH $7 HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}")]])
    resp = send_batch(client, body)
    assert "Content-ID Reference: '$7' does not exist in the batch context." in resp.text
    assert send_batch(client, b"garbage").status_code == 400


def test_batch_response_parses_with_codec(client: TestClient, store: DataverseStore) -> None:
    resp = send_batch(client, batch_body([post(f"{B}/accounts", {"name": "p"})]))
    parts = parse_batch(
        resp.content.replace(b"HTTP/1.1 204 No Content", b"GET x HTTP/1.1"), resp.headers["content-type"]
    )
    assert len(parts) == 1


# ------------------------------------------------------------------------------------------- bulk


def test_bulk_create_update_upsert(client: TestClient, store: DataverseStore) -> None:
    t = "Microsoft.Dynamics.CRM.account"
    resp = client.post(
        f"{B}/accounts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": t, "name": f"n{i}", "accountnumber": f"M-{i}"} for i in range(3)]},
    )
    assert resp.status_code == 200
    assert resp.headers["x-sandbox-kind"] == "bulk" and resp.headers["x-sandbox-records"] == "3"
    ids = resp.json()["Ids"]
    assert len(ids) == 3 and resp.json()["@odata.context"].endswith(
        "#Microsoft.Dynamics.CRM.CreateMultipleResponse"
    )
    resp = client.post(
        f"{B}/accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={"Targets": [{"@odata.type": t, "accountid": ids[0], "name": "upd"}]},
    )
    assert resp.status_code == 204
    assert store.get("accounts", ids[0])["name"] == "upd"
    resp = client.post(
        f"{B}/accounts/Microsoft.Dynamics.CRM.UpsertMultiple",
        json={
            "Targets": [
                {"@odata.type": t, "name": "ups", "@odata.id": "accounts(accountnumber='M-1')"},
                {"@odata.type": t, "name": "new", "@odata.id": "accounts(accountnumber='M-9')"},
                {"@odata.type": t, "name": "bypk", "accountid": ids[2]},
            ]
        },
    )
    assert resp.status_code == 204
    assert store.get("accounts", ids[1])["name"] == "ups"
    assert store.find("accounts", accountnumber="M-9")[0]["name"] == "new"
    assert store.get("accounts", ids[2])["name"] == "bypk"


def test_bulk_rollback_and_rules(client: TestClient, store: DataverseStore) -> None:
    t = "Microsoft.Dynamics.CRM.account"
    store.insert("accounts", {"name": "keep", "accountnumber": "K-1"})
    url = f"{B}/accounts/Microsoft.Dynamics.CRM.UpsertMultiple"
    resp = client.post(
        url,
        json={
            "Targets": [
                {"@odata.type": t, "name": "changed", "@odata.id": "accounts(accountnumber='K-1')"},
                {"@odata.type": t, "name": "new", "@odata.id": "accounts(accountnumber='K-2')"},
                {
                    "@odata.type": t,
                    "name": "bad",
                    "bogus": True,
                    "@odata.id": "accounts(accountnumber='K-3')",
                },
            ]
        },
    )
    status, code, message = err(resp)
    assert (status, code) == (400, "0x80060888") and "bogus" in message
    assert [r["name"] for r in store.rows("accounts")] == ["keep"]
    assert err(client.post(url, json={"Targets": [{"name": "no type"}]}))[0] == 400
    too_many = {"Targets": [{"@odata.type": t, "name": "n"}] * 1001}
    assert err(client.post(url, json=too_many))[0] == 400
    resp = client.post(
        f"{B}/contacts/Microsoft.Dynamics.CRM.CreateMultiple",
        json={"Targets": [{"@odata.type": "Microsoft.Dynamics.CRM.contact", "lastname": "x"}]},
    )
    status, _, message = err(resp)
    assert status == 400 and "does not support entities of type 'contact'" in message
    missing = str(uuid.uuid4())
    resp = client.post(
        f"{B}/accounts/Microsoft.Dynamics.CRM.UpdateMultiple",
        json={"Targets": [{"@odata.type": t, "accountid": missing, "name": "x"}]},
    )
    assert err(resp)[:2] == (404, "0x80040217")


# ------------------------------------------------------------------------------------ store API


def test_store_snapshot_restore_and_find(store: DataverseStore) -> None:
    rid = store.insert("accounts", {"name": "A", "accountnumber": "S-1"})
    store.delete("accounts", store.insert("accounts", {"name": "gone"}))
    snap = json.loads(json.dumps(store.snapshot()))
    other = DataverseStore(CATALOGUE)
    other.restore(snap)
    assert other.get("accounts", rid)["name"] == "A"
    assert other.find("accounts", accountnumber="s-1")[0]["accountid"] == rid
    assert other.version == store.version
    assert other.count("accounts") == 1
    with pytest.raises(KeyError):
        other.update("accounts", str(uuid.uuid4()), {"name": "x"})


def test_metadata_and_whoami(client: TestClient) -> None:
    resp = client.get(f"{B}/$metadata")
    assert resp.status_code == 200 and resp.headers["x-sandbox-kind"] == "metadata"
    assert '<EntitySet Name="accounts" EntityType="mscrm.account" />' in resp.text
    assert "UserId" in client.get(f"{B}/WhoAmI").json()


# ------------------------------------------------------------------------------------------- perf


def test_page_of_5000_from_100k_rows_is_fast() -> None:
    store = DataverseStore(CATALOGUE)
    store.load_rows(
        "accounts",
        (
            {
                "name": f"Account {i}",
                "accountnumber": f"P-{i:06d}",
                "creditlimit": i * 1.5,
                "numberofemployees": i % 500,
                "accountcategorycode": 1 + i % 2,
                "donotphone": bool(i % 2),
            }
            for i in range(100_000)
        ),
    )
    service = DataverseService(store)
    headers = {"prefer": "odata.maxpagesize=5000"}
    service.handle("GET", "accounts", query={}, headers=headers, body=b"", root=ROOT)  # warm caches
    timings = []
    query: dict[str, str] = {}
    for _ in range(5):
        start = time.perf_counter()
        reply = service.handle("GET", "accounts", query=query, headers=headers, body=b"", root=ROOT)
        timings.append(time.perf_counter() - start)
        body = json.loads(reply.body)
        assert len(body["value"]) == 5000
        token = body["@odata.nextLink"].split("$skiptoken=")[1]
        from urllib.parse import unquote

        query = {"$skiptoken": unquote(token)}
    assert min(timings) < 0.1, timings
    assert quote  # keep import used


def test_changeset_reference_after_return_representation(client: TestClient, store: DataverseStore) -> None:
    rep_post = (
        f"POST {B}/accounts HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Prefer: return=representation\r\n\r\n" + json.dumps({"name": "Rep", "accountnumber": "R-1"})
    )
    body = batch_body(
        [
            [
                ("1", rep_post),
                ("2", post(f"{B}/contacts", {"lastname": "K", "parentcustomerid_account@odata.bind": "$1"})),
            ]
        ]
    )
    resp = send_batch(client, body)
    assert resp.status_code == 200, resp.text
    assert "HTTP/1.1 201 Created" in resp.text
    (acc,) = store.find("accounts", accountnumber="R-1")
    assert store.rows("contacts")[0]["_parentcustomerid_value"] == acc["accountid"]


def test_python_api_duplicate_keys_and_tracking_during_paging(
    client: TestClient, store: DataverseStore
) -> None:
    from sandbox.dataverse.store import DuplicateKey

    ids = seed(store, 6)
    with pytest.raises(DuplicateKey):
        store.insert("accounts", {"name": "dup", "accountnumber": "a-00001"})
    prefer = {"Prefer": "odata.track-changes,odata.maxpagesize=3"}
    first = client.get(f"{B}/accounts?$select=name", headers=prefer).json()
    store.update("accounts", ids[0], {"name": "changed during paging"})  # already delivered
    last = client.get(first["@odata.nextLink"], headers=prefer).json()
    delta = client.get(last["@odata.deltaLink"], headers=prefer).json()
    assert [r["name"] for r in delta["value"]] == ["changed during paging"]
