"""F&O OData stand-in tests: store, FinOpsService.handle() and the Starlette app (TestClient)."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from sandbox.finops import FinOpsService, FinOpsStore, build_finops_app
from sandbox.finops.store import DuplicateKey, MissingKey
from sandbox.multipart import ChangeSet, parse_batch

warnings.filterwarnings("ignore", message="Using `httpx` with")
from starlette.testclient import TestClient  # noqa: E402

B = "/data"
ROOT = "https://fo.test" + B
NOYES = "Microsoft.Dynamics.DataEntities.NoYes"

CATALOGUE: dict[str, Any] = {
    "service": "finops",
    "entity_sets": {
        "CustomersV2": {
            "keys": ["dataAreaId", "CustomerAccount"],
            "properties": {
                "dataAreaId": {"type": "Edm.String", "nullable": False, "max_length": 4},
                "CustomerAccount": {"type": "Edm.String", "nullable": False, "max_length": 20},
                "OrganizationName": {"type": "Edm.String", "nullable": True, "max_length": 100},
                "CustomerGroupId": {"type": "Edm.String", "nullable": True, "max_length": 10},
                "CreditLimit": {"type": "Edm.Decimal", "nullable": False},
                "IsExternallyMaintained": {"type": NOYES, "nullable": False},
                "CreatedDateTime": {"type": "Edm.DateTimeOffset", "nullable": True},
            },
        },
        "Currencies": {
            "keys": ["CurrencyCode"],
            "properties": {
                "CurrencyCode": {"type": "Edm.String", "nullable": False, "max_length": 3},
                "Name": {"type": "Edm.String", "nullable": True, "max_length": 60},
            },
        },
    },
    "enum_types": {"NoYes": {"No": 0, "Yes": 1}},
}


@pytest.fixture
def store() -> FinOpsStore:
    return FinOpsStore(CATALOGUE)


@pytest.fixture
def client(store: FinOpsStore) -> Iterator[TestClient]:
    with TestClient(build_finops_app(store, page_size=7), base_url="https://fo.test") as c:
        yield c


def customer(account: str, company: str = "usmf", **extra: Any) -> dict[str, Any]:
    row = {
        "dataAreaId": company,
        "CustomerAccount": account,
        "OrganizationName": f"Org {account}",
        "CustomerGroupId": "10",
        "CreditLimit": 1000.0,
        "IsExternallyMaintained": "No",
    }
    row.update(extra)
    return row


def seed(store: FinOpsStore, n: int, company: str = "usmf") -> None:
    store.load_rows("CustomersV2", (customer(f"C{i:04d}", company) for i in range(n)))


def err(resp: Any) -> tuple[int, str, str]:
    """(status, top-level message, inner message)."""
    body = resp.json()["error"]
    return resp.status_code, body["message"], body.get("innererror", {}).get("message", "")


def key_url(company: str, account: str) -> str:
    return (
        f"{B}/CustomersV2(dataAreaId='{company}',CustomerAccount='{account.replace(chr(39), chr(39) * 2)}')"
    )


# ----------------------------------------------------------------------------------------- store


def test_store_crud_keys_and_etags(store: FinOpsStore) -> None:
    store.insert("CustomersV2", customer("C1", "USMF"))
    key = {"dataAreaId": "usmf", "CustomerAccount": "c1"}
    row = store.get("CustomersV2", key)
    assert row is not None and row["dataAreaId"] == "usmf" and row["CustomerAccount"] == "C1"
    etag = store.etag("CustomersV2", key)
    assert etag is not None and etag.startswith('W/"')
    with pytest.raises(DuplicateKey):
        store.insert("CustomersV2", customer("c1"))
    with pytest.raises(MissingKey):
        store.insert("CustomersV2", {"dataAreaId": "usmf"})
    store.update("CustomersV2", key, {"OrganizationName": "New"})
    assert store.get("CustomersV2", key)["OrganizationName"] == "New"  # type: ignore[index]
    assert store.etag("CustomersV2", key) != etag
    store.insert("CustomersV2", customer("C2", "demf"))
    assert [r["CustomerAccount"] for r in store.rows("CustomersV2", company="usmf")] == ["C1"]
    assert store.count("CustomersV2") == 2 and store.count("CustomersV2", company="DEMF") == 1
    store.delete("CustomersV2", key)
    assert store.get("CustomersV2", key) is None
    with pytest.raises(KeyError):
        store.delete("CustomersV2", key)
    with pytest.raises(KeyError):
        store.update("CustomersV2", key, {})


def test_store_transaction_snapshot_restore(store: FinOpsStore) -> None:
    seed(store, 3)
    with pytest.raises(RuntimeError), store.transaction():
        store.insert("CustomersV2", customer("X1"))
        store.update("CustomersV2", {"CustomerAccount": "C0001"}, {"OrganizationName": "changed"})
        store.delete("CustomersV2", {"CustomerAccount": "C0002"})
        raise RuntimeError("roll back")
    assert [r["CustomerAccount"] for r in store.rows("CustomersV2")] == ["C0000", "C0001", "C0002"]
    assert store.get("CustomersV2", {"CustomerAccount": "C0001"})["OrganizationName"] == "Org C0001"  # type: ignore[index]
    state = json.loads(json.dumps(store.snapshot()))
    etag = store.etag("CustomersV2", {"CustomerAccount": "C0001"})
    store.clear()
    assert store.count("CustomersV2") == 0
    store.restore(state)
    assert store.count("CustomersV2") == 3
    assert store.etag("CustomersV2", {"CustomerAccount": "C0001"}) == etag
    store.insert("CustomersV2", customer("C9"))
    assert store.etag("CustomersV2", {"CustomerAccount": "C9"}) != etag


# ----------------------------------------------------------------------------------------- reads


def follow(client: TestClient, url: str, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    rows: list[dict[str, Any]] = []
    pages = 0
    next_url: str | None = url
    while next_url:
        pages += 1
        assert pages <= limit, "nextLink loop does not terminate"
        resp = client.get(next_url)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-sandbox-kind"] == "read"
        body = resp.json()
        assert resp.headers["x-sandbox-records"] == str(len(body["value"]))
        rows.extend(body["value"])
        next_url = body.get("@odata.nextLink")
    return rows, pages


def test_paging_next_links_terminate_and_scope_to_default_company(
    client: TestClient, store: FinOpsStore
) -> None:
    seed(store, 30)
    seed(store, 5, company="demf")
    rows, pages = follow(client, f"{B}/CustomersV2")
    assert pages == 5 and len(rows) == 30
    assert {r["dataAreaId"] for r in rows} == {"usmf"}
    assert len({r["CustomerAccount"] for r in rows}) == 30
    assert all(r["@odata.etag"].startswith('W/"') for r in rows)
    first = client.get(f"{B}/CustomersV2").json()
    assert first["@odata.context"] == f"{ROOT}/$metadata#CustomersV2"
    link = urlsplit(first["@odata.nextLink"])
    assert link.path == f"{B}/CustomersV2" and dict(parse_qsl(link.query)) == {"$skip": "7"}

    rows, _ = follow(client, f"{B}/CustomersV2?cross-company=true")
    assert len(rows) == 35
    next_link = client.get(f"{B}/CustomersV2?cross-company=true").json()["@odata.nextLink"]
    assert "cross-company=true" in next_link

    rows, _ = follow(client, f"{B}/CustomersV2?cross-company=true&$filter=dataAreaId eq 'demf'")
    assert [r["CustomerAccount"] for r in rows] == [f"C{i:04d}" for i in range(5)]
    rows, _ = follow(
        client, f"{B}/CustomersV2?cross-company=true&$filter=dataAreaId eq 'DEMF' or CreditLimit lt 0"
    )
    assert len(rows) == 5
    assert follow(client, f"{B}/CustomersV2?$filter=dataAreaId eq 'demf'")[0] == []  # default company only

    rows, pages = follow(client, f"{B}/CustomersV2?$top=10")
    assert len(rows) == 10 and pages == 2
    second = client.get(f"{B}/CustomersV2?$top=10").json()["@odata.nextLink"]
    assert dict(parse_qsl(urlsplit(second).query)) == {"$top": "3", "$skip": "7"}

    rows, _ = follow(client, f"{B}/CustomersV2?$skip=25")
    assert [r["CustomerAccount"] for r in rows] == [f"C{i:04d}" for i in range(25, 30)]
    assert client.get(f"{B}/CustomersV2?$skip=-1").status_code == 400


def test_filters_select_orderby_count(client: TestClient, store: FinOpsStore) -> None:
    seed(store, 10)
    store.update("CustomersV2", {"CustomerAccount": "C0003"}, {"IsExternallyMaintained": "Yes"})
    store.update("CustomersV2", {"CustomerAccount": "C0004"}, {"OrganizationName": "Contoso Retail"})
    store.update(
        "CustomersV2",
        {"CustomerAccount": "C0005"},
        {"CreatedDateTime": "2024-03-01T10:00:00Z", "CreditLimit": 5},
    )
    q = quote(f"IsExternallyMaintained eq {NOYES}'Yes'")
    body = client.get(f"{B}/CustomersV2?$filter={q}").json()
    assert [r["CustomerAccount"] for r in body["value"]] == ["C0003"]
    body = client.get(f"{B}/CustomersV2?$filter=OrganizationName eq '*retail*'").json()
    assert [r["CustomerAccount"] for r in body["value"]] == ["C0004"]
    body = client.get(f"{B}/CustomersV2?$filter=CreatedDateTime ge 2024-01-01T00:00:00Z").json()
    assert [r["CustomerAccount"] for r in body["value"]] == ["C0005"]
    body = client.get(f"{B}/CustomersV2?$filter=CreditLimit lt 10 or CustomerAccount eq 'C0009'").json()
    assert [r["CustomerAccount"] for r in body["value"]] == ["C0005", "C0009"]

    body = client.get(
        f"{B}/CustomersV2?$select=CustomerAccount,CreditLimit&$orderby=CustomerAccount desc&$count=true"
    ).json()
    assert body["@odata.count"] == 10
    assert body["@odata.context"] == f"{ROOT}/$metadata#CustomersV2(CustomerAccount,CreditLimit)"
    assert set(body["value"][0]) == {"@odata.etag", "CustomerAccount", "CreditLimit"}
    assert [r["CustomerAccount"] for r in body["value"]] == [f"C{i:04d}" for i in range(9, 2, -1)]
    rows, _ = follow(client, f"{B}/CustomersV2?$orderby=CreditLimit desc,CustomerAccount desc")
    assert [r["CustomerAccount"] for r in rows][:3] == ["C0009", "C0008", "C0007"]
    assert rows[-1]["CustomerAccount"] == "C0005"
    assert client.get(f"{B}/CustomersV2/$count").text == "10"

    status, message, _ = err(client.get(f"{B}/CustomersV2?$filter=Nope eq 1"))
    assert status == 400 and "Could not find a property named 'Nope'" in message
    status, message, _ = err(
        client.get(
            f"{B}/CustomersV2?$filter={quote(NOYES + chr(39) + 'Maybe' + chr(39))} eq IsExternallyMaintained"
        )
    )
    assert status == 400 and "Maybe" in message
    assert client.get(f"{B}/CustomersV2?$select=Bogus").status_code == 400
    assert client.get(f"{B}/Nothing").status_code == 404


def test_get_by_key(client: TestClient, store: FinOpsStore) -> None:
    store.insert("CustomersV2", customer("O'Brien & Co/1"))
    resp = client.get(quote(key_url("USMF", "o'brien & co/1"), safe="/()='"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-sandbox-kind"] == "single" and resp.headers["x-sandbox-records"] == "1"
    body = resp.json()
    assert body["CustomerAccount"] == "O'Brien & Co/1"
    assert body["@odata.context"] == f"{ROOT}/$metadata#CustomersV2/$entity"
    assert body["@odata.etag"] == store.etag("CustomersV2", {"CustomerAccount": "O'Brien & Co/1"})
    resp = client.get(key_url("usmf", "missing"))
    assert resp.status_code == 404 and resp.json()["error"]["code"] == ""
    assert client.get(f"{B}/CustomersV2(CustomerAccount='x')").status_code == 400
    assert client.get(f"{B}/CustomersV2('x')").status_code == 400
    store.insert("Currencies", {"CurrencyCode": "USD", "Name": "US Dollar"})
    assert client.get(f"{B}/Currencies('usd')").json()["Name"] == "US Dollar"


# ----------------------------------------------------------------------------------------- writes


def test_create_duplicate_update_delete(client: TestClient, store: FinOpsStore) -> None:
    resp = client.post(f"{B}/CustomersV2", json=customer("N1", "USMF"))
    assert resp.status_code == 201, resp.text
    assert resp.headers["location"] == f"{ROOT}/CustomersV2(dataAreaId='usmf',CustomerAccount='N1')"
    assert resp.json()["dataAreaId"] == "usmf" and resp.headers["x-sandbox-kind"] == "single"

    status, message, inner = err(client.post(f"{B}/CustomersV2", json=customer("n1")))
    assert status == 500 and message == "An error has occurred."
    assert inner.startswith("Write failed for table row of type 'CustomerV2Entity'. Infolog:")
    assert inner.endswith("The record already exists..")

    no_company = {k: v for k, v in customer("N2").items() if k != "dataAreaId"}
    assert client.post(f"{B}/CustomersV2", json=no_company).status_code == 201
    assert store.get("CustomersV2", {"dataAreaId": "usmf", "CustomerAccount": "N2"}) is not None
    missing_key = {k: v for k, v in customer("N3").items() if k != "CustomerAccount"}
    status, message, _ = err(client.post(f"{B}/CustomersV2", json=missing_key))
    assert status == 400 and "CustomerAccount" in message

    resp = client.patch(key_url("usmf", "N1"), json={"OrganizationName": "Renamed"})
    assert resp.status_code == 204 and resp.headers["x-sandbox-records"] == "1"
    assert store.get("CustomersV2", {"CustomerAccount": "N1"})["OrganizationName"] == "Renamed"  # type: ignore[index]
    assert client.patch(key_url("usmf", "N1"), json={"CustomerAccount": "Other"}).status_code == 400
    status, message, inner = err(client.patch(key_url("usmf", "ZZ"), json={"OrganizationName": "x"}))
    assert status == 400 and inner == "No resources were found when selecting for update."
    stale = client.patch(key_url("usmf", "N1"), json={"CustomerGroupId": "20"}, headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412

    assert client.delete(key_url("usmf", "N1")).status_code == 204
    assert store.get("CustomersV2", {"CustomerAccount": "N1"}) is None
    status, _, inner = err(client.delete(key_url("usmf", "N1")))
    assert status == 400 and inner == "No resources were found when selecting for update."


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        (
            {"Bogus": 1},
            "The property 'Bogus' does not exist on type 'Microsoft.Dynamics.DataEntities.CustomerV2'",
        ),
        ({"CreditLimit": "12.5"}, "Cannot convert the literal '12.5' to the expected type 'Edm.Decimal'"),
        ({"IsExternallyMaintained": "Maybe"}, "'Maybe' is not a valid enumeration type constant"),
        ({"CreatedDateTime": "2024-02-30T00:00:00Z"}, "'Edm.DateTimeOffset'"),
        ({"CreatedDateTime": "yesterday"}, "'Edm.DateTimeOffset'"),
        ({"OrganizationName": "x" * 101}, "'OrganizationName'"),
        ({"CreditLimit": None}, "A null value was found for the property named 'CreditLimit'"),
        ({"OrganizationName": 5}, "Edm.String"),
    ],
)
def test_validation_errors(
    client: TestClient, store: FinOpsStore, payload: dict[str, Any], needle: str
) -> None:
    resp = client.post(f"{B}/CustomersV2", json=customer("V1", **payload))
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]
    assert store.count("CustomersV2") == 0
    store.insert("CustomersV2", customer("V2"))
    assert client.patch(key_url("usmf", "V2"), json=payload).status_code == 400


def test_enum_and_dates_are_normalised(client: TestClient, store: FinOpsStore) -> None:
    resp = client.post(
        f"{B}/CustomersV2",
        json=customer("E1", IsExternallyMaintained="1", CreatedDateTime="2024-05-01T12:00:00.1234567+02:00"),
    )
    assert resp.status_code == 201, resp.text
    row = store.get("CustomersV2", {"CustomerAccount": "E1"})
    assert row is not None and row["IsExternallyMaintained"] == "Yes"
    assert row["CreatedDateTime"] == "2024-05-01T10:00:00Z"


def test_unset_non_nullable_fields_read_as_xpp_defaults(client: TestClient, store: FinOpsStore) -> None:
    store.load_rows("CustomersV2", [{"dataAreaId": "usmf", "CustomerAccount": "S1"}])
    sparse = {"CustomerAccount": "S2", "OrganizationName": "Sparse"}
    assert client.post(f"{B}/CustomersV2", json=sparse).status_code == 201
    rows, _ = follow(
        client, f"{B}/CustomersV2?$filter=CreditLimit eq 0 and IsExternallyMaintained eq {NOYES}'No'"
    )
    assert [(r["CustomerAccount"], r["CreditLimit"], r["IsExternallyMaintained"]) for r in rows] == [
        ("S1", 0, "No"),
        ("S2", 0, "No"),
    ]
    assert rows[0]["OrganizationName"] is None  # nullable: stays null


# ----------------------------------------------------------------------------------------- $batch


def batch_body(parts: list[str | list[tuple[str, str]]]) -> bytes:
    """parts: a raw request string, or a change set of (content_id, request) pairs."""
    out = []
    for n, part in enumerate(parts):
        out.append("--batch_X\r\n")
        if isinstance(part, str):
            out.append("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n")
            out.append(part + "\r\n")
        else:
            out.append(f"Content-Type: multipart/mixed; boundary=changeset_{n}\r\n\r\n")
            for cid, req in part:
                out.append(f"--changeset_{n}\r\nContent-Type: application/http\r\n")
                out.append("Content-Transfer-Encoding: binary\r\n")
                out.append(f"Content-ID: {cid}\r\n\r\n{req}\r\n")
            out.append(f"--changeset_{n}--\r\n")
    out.append("--batch_X--\r\n")
    return "".join(out).encode()


def post(body: dict[str, Any], url: str = f"{ROOT}/CustomersV2") -> str:
    return f"POST {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{json.dumps(body)}"


def patch(url: str, body: dict[str, Any]) -> str:
    return f"PATCH {url} HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n{json.dumps(body)}"


def send_batch(client: TestClient, body: bytes, prefer: str | None = None) -> Any:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_X"}
    if prefer:
        headers["Prefer"] = prefer
    return client.post(f"{B}/$batch", content=body, headers=headers)


def statuses(resp: Any) -> list[list[int] | int]:
    """Inner statuses per part (a list per change set), read back with the shared codec."""
    text = resp.content.replace(b"HTTP/1.1 ", b"PATCH /x HTTP/1.1\r\nX-Status: ")
    out: list[list[int] | int] = []
    for part in parse_batch(text, resp.headers["content-type"]):
        if isinstance(part, ChangeSet):
            out.append([int(str(r.headers["X-Status"]).split()[0]) for r in part.requests])
        else:
            out.append(int(str(part.headers["X-Status"]).split()[0]))
    return out


def test_batch_change_sets_are_atomic_and_isolated(client: TestClient, store: FinOpsStore) -> None:
    store.insert("CustomersV2", customer("DUP"))
    body = batch_body(
        [
            [("1", post(customer("B1"))), ("2", post(customer("B2")))],
            [("1", post(customer("B3"))), ("2", post(customer("DUP"))), ("3", post(customer("B4")))],
            [("1", post(customer("B5")))],
        ]
    )
    resp = send_batch(client, body, prefer="odata.continue-on-error")
    assert resp.status_code == 200
    assert resp.headers["x-sandbox-kind"] == "batch" and resp.headers["x-sandbox-records"] == "6"
    assert resp.headers["preference-applied"] == "odata.continue-on-error"
    assert statuses(resp) == [[201, 201], [500], [201]]
    assert "The record already exists" in resp.text
    accounts = {r["CustomerAccount"] for r in store.rows("CustomersV2")}
    assert accounts == {"DUP", "B1", "B2", "B5"}  # B3 rolled back with its failing change set

    # Without continue-on-error the batch still answers 200 but stops after the failing part.
    body = batch_body([[("1", post(customer("DUP")))], [("1", post(customer("B6")))]])
    resp = send_batch(client, body)
    assert resp.status_code == 200 and statuses(resp) == [[500]]
    assert store.get("CustomersV2", {"CustomerAccount": "B6"}) is None


def test_batch_content_id_reference_and_independent_requests(client: TestClient, store: FinOpsStore) -> None:
    body = batch_body(
        [
            [("1", post(customer("R1"))), ("2", patch("$1", {"OrganizationName": "Patched"}))],
            f"GET {ROOT}/CustomersV2?$filter=CustomerAccount%20eq%20'R1'&$select=OrganizationName"
            " HTTP/1.1\r\n",
            patch(f"{B}/CustomersV2(dataAreaId='usmf',CustomerAccount='NONE')", {"OrganizationName": "x"}),
            post(customer("R2"), url="CustomersV2"),
        ]
    )
    resp = send_batch(client, body, prefer="odata.continue-on-error")
    assert statuses(resp) == [[201, 204], 200, 400, 201]
    assert store.get("CustomersV2", {"CustomerAccount": "R1"})["OrganizationName"] == "Patched"  # type: ignore[index]
    assert store.get("CustomersV2", {"CustomerAccount": "R2"}) is not None
    assert '"OrganizationName":"Patched"' in resp.text
    assert "Content-ID: 1" in resp.text

    bad_ref = batch_body([[("1", patch("$9", {"OrganizationName": "x"}))]])
    resp = send_batch(client, bad_ref)
    assert "Content-ID Reference: '$9' does not exist in the batch context." in resp.text
    assert send_batch(client, b"garbage").status_code == 400


def test_handle_directly_reports_kind_and_records(store: FinOpsStore) -> None:
    service = FinOpsService(store, page_size=2)
    seed(store, 3)
    reply = service.handle("GET", "CustomersV2", {"$select": "CustomerAccount"}, {}, b"", ROOT)
    assert reply.status == 200 and reply.kind == "read" and reply.records == 2
    assert reply.headers["x-sandbox-kind"] == "read" and reply.headers["x-sandbox-records"] == "2"
    payload = json.loads(reply.body)
    assert payload["@odata.nextLink"] == f"{ROOT}/CustomersV2?$select=CustomerAccount&$skip=2"
    reply = service.handle(
        "POST", "CustomersV2", {}, {"Prefer": "return=minimal"}, json.dumps(customer("H1")).encode(), ROOT
    )
    assert reply.status == 204 and reply.headers["OData-EntityId"].endswith("CustomerAccount='H1')")
    meta = service.handle("GET", "$metadata", {}, {}, b"", ROOT)
    assert b'<EntityType Name="CustomerV2">' in meta.body and b'<EnumType Name="NoYes">' in meta.body


def test_200k_rows_page_fast() -> None:
    store = FinOpsStore(CATALOGUE)
    store.load_rows(
        "CustomersV2",
        (
            {"dataAreaId": "usmf" if i % 2 else "demf", "CustomerAccount": f"C{i:06d}", "CreditLimit": i}
            for i in range(200_000)
        ),
    )
    service = FinOpsService(store)
    started = time.perf_counter()
    seen = 0
    query: dict[str, str] = {"cross-company": "true", "$filter": "CreditLimit ge 0"}
    pages = 0
    while True:
        reply = service.handle("GET", "CustomersV2", query, {}, b"", ROOT)
        payload = json.loads(reply.body)
        seen += len(payload["value"])
        pages += 1
        link = payload.get("@odata.nextLink")
        if not link:
            break
        query = dict(parse_qsl(urlsplit(link).query))
    elapsed = time.perf_counter() - started
    assert seen == 200_000 and pages == 20
    assert elapsed < 15, f"paging 200k rows took {elapsed:.1f}s"
