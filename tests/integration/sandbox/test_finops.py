"""F&O stand-in over real HTTPS, behind the sandbox guard (apis.md Part B).

Every request goes the way the product's `FinOpsClient` sends it: a client-credentials token from
MSAL's real `ConfidentialClientApplication` against the Entra stand-in, TLS verified against the
sandbox CA, `/data/` entity sets addressed by their composite natural keys. The assertions pin the
documented wire behaviour (keys with `dataAreaId`, default company vs `cross-company=true`, 10,000
row server paging with `$skip` nextLinks, enum literals, no upsert, atomic change sets reported
inside a 200 `$batch`) so a regression in the stand-in shows up as a protocol difference.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import msal
import pytest

from sandbox import Sandbox, SandboxConfig
from sandbox.finops.validation import AX_WRITE_EXCEPTION, NOT_FOUND_FOR_UPDATE

pytestmark = pytest.mark.integration

FO_PATH = "/data/"
ENTITY = "CustomersV2"
ENTITY_TYPE = "Microsoft.Dynamics.DataEntities.CustomerV2"
NOYES = "Microsoft.Dynamics.DataEntities.NoYes"


@pytest.fixture
def no_env_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests (under MSAL) lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override `verify=`."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def msal_token(sb: Sandbox, service_url: str) -> str:
    """A token for `<service_url>/.default` from a fresh MSAL confidential client (no shared cache)."""
    info = sb.info
    app = msal.ConfidentialClientApplication(
        info.client_id,
        client_credential=info.client_secret,
        authority=f"{info.authority_url}/{info.tenant_id}",
        validate_authority=False,
        instance_discovery=False,
        verify=info.ca_file,
    )
    result = app.acquire_token_for_client(scopes=[f"{service_url}/.default"])
    assert "access_token" in result, result.get("error_description")
    return str(result["access_token"])


def fo_client(sb: Sandbox, token: str | None) -> httpx.Client:
    info = sb.info
    headers = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(base_url=info.finops_url + FO_PATH, headers=headers, verify=info.ca_file, timeout=30)


@pytest.fixture
def fo(sandbox: Sandbox, no_env_ca_bundle: None) -> Iterator[httpx.Client]:
    with fo_client(sandbox, msal_token(sandbox, sandbox.info.finops_url)) as client:
        yield client


def settle(sb: Sandbox, count: int, timeout_s: float = 3.0) -> None:
    """Wait until the log holds `count` entries (the guard logs after the response is sent)."""
    deadline = time.monotonic() + timeout_s
    while sb.log.count() < count:
        assert time.monotonic() < deadline, f"log has {sb.log.count()} entries, expected {count}"
        time.sleep(0.005)


def customer(company: str, account: str, **extra: Any) -> dict[str, Any]:
    return {"dataAreaId": company, "CustomerAccount": account, "OrganizationName": f"Org {account}", **extra}


@pytest.fixture
def seeded(sandbox: Sandbox) -> Sandbox:
    """Five usmf customers, two demf customers (one sharing an account number with usmf)."""
    sandbox.finops.load_rows(
        ENTITY,
        [
            customer("usmf", "US-001", CustomerGroupId="10", CreditLimit=5000, IsOneTimeCustomer="Yes"),
            customer("usmf", "US-002", CustomerGroupId="20", CreditLimit=100, IsOneTimeCustomer="No"),
            customer("usmf", "US-003", CustomerGroupId="10", CreditLimit=250, IsOneTimeCustomer="No"),
            customer("usmf", "US-004", CustomerGroupId="30", CreditLimit=9000, IsOneTimeCustomer="Yes"),
            customer("usmf", "US-005", CustomerGroupId="10", CreditLimit=0, IsOneTimeCustomer="No"),
            customer("demf", "DE-001", CustomerGroupId="10", CreditLimit=700),
            customer("demf", "US-001", CustomerGroupId="20", CreditLimit=1),
        ],
    )
    return sandbox


def accounts(resp: httpx.Response) -> list[tuple[str, str]]:
    assert resp.status_code == 200, resp.text
    return [(r["dataAreaId"], r["CustomerAccount"]) for r in resp.json()["value"]]


# ------------------------------------------------------------------------------------------ addressing
def test_composite_key_with_dataareaid(seeded: Sandbox, fo: httpx.Client) -> None:
    resp = fo.get(f"{ENTITY}(dataAreaId='usmf',CustomerAccount='US-001')")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["@odata.context"].endswith(f"/data/$metadata#{ENTITY}/$entity")
    assert (body["dataAreaId"], body["CustomerAccount"], body["CreditLimit"]) == ("usmf", "US-001", 5000)
    assert body["@odata.etag"] == resp.headers["ETag"] and body["@odata.etag"].startswith('W/"')
    # Same account number, other company: a different row.
    other = fo.get(f"{ENTITY}(dataAreaId='demf',CustomerAccount='US-001')").json()
    assert (other["dataAreaId"], other["CreditLimit"]) == ("demf", 1)
    # All key fields are required, dataAreaId included (apis.md B1).
    resp = fo.get(f"{ENTITY}(CustomerAccount='US-001')")
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        "The number of keys specified in the URI does not match number of key properties for the "
        f"resource '{ENTITY_TYPE}'."
    )
    assert fo.get(f"{ENTITY}(dataAreaId='usmf',CustomerAccount='NOPE')").status_code == 404


def test_default_company_versus_cross_company(seeded: Sandbox, fo: httpx.Client) -> None:
    default = accounts(fo.get(ENTITY))
    assert default == [("usmf", f"US-00{i}") for i in range(1, 6)]
    everything = accounts(fo.get(ENTITY, params={"cross-company": "true"}))
    assert sorted(everything) == sorted([*default, ("demf", "DE-001"), ("demf", "US-001")])
    demf = accounts(fo.get(ENTITY, params={"cross-company": "true", "$filter": "dataAreaId eq 'demf'"}))
    assert demf == [("demf", "DE-001"), ("demf", "US-001")]
    # Without cross-company a filter on another company finds nothing in the default company.
    assert accounts(fo.get(ENTITY, params={"$filter": "dataAreaId eq 'demf'"})) == []


def test_query_options(seeded: Sandbox, fo: httpx.Client) -> None:
    resp = fo.get(ENTITY, params={"$filter": "CustomerGroupId eq '10' and CreditLimit gt 100"})
    assert accounts(resp) == [("usmf", "US-001"), ("usmf", "US-003")]

    resp = fo.get(ENTITY, params={"$select": "CustomerAccount,CreditLimit", "$top": "2"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["@odata.context"].endswith(f"#{ENTITY}(CustomerAccount,CreditLimit)")
    assert [set(r) for r in body["value"]] == [{"@odata.etag", "CustomerAccount", "CreditLimit"}] * 2
    assert "@odata.nextLink" not in body  # $top is honoured, not paged

    resp = fo.get(ENTITY, params={"$orderby": "CreditLimit desc", "$skip": "1", "$top": "3",
                                  "$select": "CustomerAccount,dataAreaId"})
    assert accounts(resp) == [("usmf", "US-001"), ("usmf", "US-003"), ("usmf", "US-002")]

    resp = fo.get(f"{ENTITY}/$count", params={"cross-company": "true"})
    assert (resp.status_code, resp.text) == (200, "7")
    assert fo.get(ENTITY, params={"$count": "true", "$top": "1"}).json()["@odata.count"] == 5

    bad = fo.get(ENTITY, params={"$top": "-1"})
    assert bad.status_code == 400 and "$top" in bad.json()["error"]["message"]


def test_enum_literals_in_filter(seeded: Sandbox, fo: httpx.Client) -> None:
    resp = fo.get(ENTITY, params={"$filter": f"IsOneTimeCustomer eq {NOYES}'Yes'"})
    assert accounts(resp) == [("usmf", "US-001"), ("usmf", "US-004")]
    params = {"$filter": f"IsOneTimeCustomer ne {NOYES}'Yes'", "$select": "IsOneTimeCustomer"}
    resp = fo.get(ENTITY, params=params)
    assert resp.status_code == 200
    assert {r["IsOneTimeCustomer"] for r in resp.json()["value"]} == {"No"}  # enums travel as member names
    bad = fo.get(ENTITY, params={"$filter": f"IsOneTimeCustomer eq {NOYES}'Maybe'"})
    assert bad.status_code == 400


# --------------------------------------------------------------------------------------------- paging
def test_server_paging_at_10000_rows_with_skip_next_links(sandbox: Sandbox, fo: httpx.Client) -> None:
    total = 10_050
    sandbox.finops.load_rows(ENTITY, (customer("usmf", f"P{i:06d}") for i in range(total)))
    first = fo.get(ENTITY, params={"$select": "CustomerAccount"})
    assert first.status_code == 200
    body = first.json()
    assert len(body["value"]) == 10_000
    next_link = body["@odata.nextLink"]
    assert next_link.startswith(sandbox.info.finops_url + f"/data/{ENTITY}?")
    query = parse_qs(urlsplit(next_link).query)
    assert query["$skip"] == ["10000"] and query["$select"] == ["CustomerAccount"]
    second = fo.get(next_link).json()
    assert len(second["value"]) == 50 and "@odata.nextLink" not in second
    seen = [r["CustomerAccount"] for r in body["value"] + second["value"]]
    assert seen == [f"P{i:06d}" for i in range(total)]  # stable key order, no gaps or repeats


@pytest.fixture(scope="module")
def small_pages() -> Iterator[Sandbox]:
    """A second sandbox with 3-row pages and another default company (SandboxConfig knobs)."""
    config = SandboxConfig(seed=5, finops_page_size=3, dataverse_max_page_size=3, default_company="demf")
    with Sandbox(config) as sb:
        yield sb


@pytest.fixture(scope="module")
def short_tokens() -> Iterator[Sandbox]:
    """A sandbox issuing 3-second tokens. `exp` is whole seconds from the issuing second, so such a
    token is valid for between 2 and 3 seconds (a 1-second token could be valid for 0.05 s, which
    made tests that page with one token fail on a slow machine)."""
    with Sandbox(SandboxConfig(seed=6, token_lifetime_s=3)) as sb:
        yield sb


def test_configured_page_size_and_default_company(small_pages: Sandbox, no_env_ca_bundle: None) -> None:
    sb = small_pages
    sb.reset()
    sb.finops.load_rows(ENTITY, [customer("demf", f"D{i}") for i in range(8)] + [customer("usmf", "U1")])
    with fo_client(sb, msal_token(sb, sb.info.finops_url)) as fo:
        url: str | None = f"{ENTITY}?$select=CustomerAccount,dataAreaId&$top=7"
        pages: list[list[tuple[str, str]]] = []
        while url:
            resp = fo.get(url)
            pages.append(accounts(resp))
            url = resp.json().get("@odata.nextLink")
    # default_company="demf": only demf rows; $top=7 spans three pages of at most 3 and stops at 7.
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [a for p in pages for a in p] == [("demf", f"D{i}") for i in range(7)]


def test_dataverse_page_cap_from_config(small_pages: Sandbox, no_env_ca_bundle: None) -> None:
    """`SandboxConfig.dataverse_max_page_size` caps Dataverse pages too (the smaller-page knob)."""
    sb = small_pages
    sb.reset()
    for i in range(5):
        sb.dataverse.insert("accounts", {"name": f"cap {i}"})
    info = sb.info
    headers = {"Authorization": f"Bearer {msal_token(sb, info.dataverse_url)}", "Accept": "application/json"}
    resp = httpx.get(info.dataverse_url + "/api/data/v9.2/accounts?$select=name", headers=headers,
                     verify=info.ca_file)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["value"]) == 3 and "@odata.nextLink" in resp.json()


# --------------------------------------------------------------------------------------------- writes
def test_create_201_and_update_204(sandbox: Sandbox, fo: httpx.Client) -> None:
    payload = {"@odata.type": f"#{ENTITY_TYPE}", **customer("usmf", "NEW-1"), "CreditLimit": 10}
    resp = fo.post(ENTITY, json=payload)
    assert resp.status_code == 201, resp.text
    url = sandbox.info.finops_url + f"/data/{ENTITY}(dataAreaId='usmf',CustomerAccount='NEW-1')"
    assert resp.headers["Location"] == url
    assert resp.json()["CreditLimit"] == 10 and resp.json()["dataAreaId"] == "usmf"
    # Created in the caller's default company when dataAreaId is omitted.
    assert fo.post(ENTITY, json={"CustomerAccount": "NEW-2"}).json()["dataAreaId"] == "usmf"

    resp = fo.patch(f"{ENTITY}(dataAreaId='usmf',CustomerAccount='NEW-1')",
                    json={"CreditLimit": 99, "IsOneTimeCustomer": "Yes"})
    assert resp.status_code == 204 and resp.content == b""
    row = sandbox.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "NEW-1"})
    assert row is not None and (row["CreditLimit"], row["IsOneTimeCustomer"]) == (99, "Yes")
    assert fo.delete(f"{ENTITY}(dataAreaId='usmf',CustomerAccount='NEW-2')").status_code == 204
    assert sandbox.finops.count(ENTITY) == 1


def test_no_upsert(seeded: Sandbox, fo: httpx.Client) -> None:
    """apis.md B2: PATCH of a missing key and POST of an existing key both fail (no upsert)."""
    resp = fo.patch(f"{ENTITY}(dataAreaId='usmf',CustomerAccount='GHOST')", json={"CreditLimit": 1})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["message"] == "An error has occurred."
    assert error["innererror"]["message"] == NOT_FOUND_FOR_UPDATE
    assert seeded.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "GHOST"}) is None

    resp = fo.post(ENTITY, json=customer("usmf", "US-001", CreditLimit=1))
    assert resp.status_code == 500
    error = resp.json()["error"]
    assert (error["code"], error["message"]) == ("", "An error has occurred.")
    assert error["innererror"]["type"] == AX_WRITE_EXCEPTION
    assert error["innererror"]["message"].startswith("Write failed for table row of type '")
    assert error["innererror"]["message"].endswith("\nThe record already exists..")
    # The existing row is untouched.
    row = seeded.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "US-001"})
    assert row is not None and row["CreditLimit"] == 5000


def test_unknown_field_is_rejected(sandbox: Sandbox, fo: httpx.Client) -> None:
    resp = fo.post(ENTITY, json={**customer("usmf", "X-1"), "notacolumn": "y"})
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == (
        f"The property 'notacolumn' does not exist on type '{ENTITY_TYPE}'. "
        "Make sure to only use property names that are defined by the type."
    )
    assert sandbox.finops.count(ENTITY) == 0
    assert fo.get(ENTITY, params={"$select": "notacolumn"}).status_code == 400
    assert fo.get(ENTITY, params={"$filter": "notacolumn eq 'x'"}).status_code == 400


# --------------------------------------------------------------------------------------------- $batch
def batch_body(items: list[list[tuple[str, str, dict[str, Any]]] | tuple[str, str, dict[str, Any]]]) -> bytes:
    """A multipart/mixed `$batch`: a list item is a change set of (method, url, body); a tuple is a
    top-level request."""
    out: list[str] = []

    def request(method: str, url: str, body: dict[str, Any], cid: int | None) -> str:
        head = "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
        if cid is not None:
            head += f"Content-ID: {cid}\r\n"
        payload = json.dumps(body) if body else ""
        ctype = "Content-Type: application/json\r\n" if body else ""
        return f"{head}\r\n{method} {url} HTTP/1.1\r\n{ctype}\r\n{payload}\r\n"

    for item in items:
        if isinstance(item, list):
            out.append("--batch_F\r\nContent-Type: multipart/mixed; boundary=changeset_F\r\n\r\n")
            for cid, (method, url, body) in enumerate(item, start=1):
                out.append("--changeset_F\r\n" + request(method, url, body, cid))
            out.append("--changeset_F--\r\n")
        else:
            out.append("--batch_F\r\n" + request(*item, None))
    out.append("--batch_F--\r\n")
    return "".join(out).encode()


def post_batch(fo: httpx.Client, body: bytes, prefer: str | None = None) -> tuple[httpx.Response, list[int]]:
    headers = {"Content-Type": "multipart/mixed; boundary=batch_F"}
    if prefer:
        headers["Prefer"] = prefer
    resp = fo.post("$batch", content=body, headers=headers)
    return resp, [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", resp.text, flags=re.MULTILINE)]


def test_batch_atomic_change_sets_report_failures_inside_200(seeded: Sandbox, fo: httpx.Client) -> None:
    ok = [("POST", f"/data/{ENTITY}", customer("usmf", f"B-{i}")) for i in (1, 2)]
    resp, statuses = post_batch(fo, batch_body([ok]))
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("multipart/mixed")
    assert statuses == [201, 201]
    assert seeded.finops.count(ENTITY, "usmf") == 7

    failing = [
        ("POST", f"/data/{ENTITY}", customer("usmf", "B-3")),
        ("PATCH", f"/data/{ENTITY}(dataAreaId='usmf',CustomerAccount='US-002')", {"CreditLimit": 1}),
        ("POST", f"/data/{ENTITY}", customer("usmf", "US-001")),  # duplicate: X++ write error
    ]
    resp, statuses = post_batch(fo, batch_body([failing]))
    assert resp.status_code == 200  # the batch succeeds; the failure is inside (apis.md B2)
    assert statuses == [500]  # a failed change set is answered by its failing part alone
    assert "The record already exists" in resp.text
    assert seeded.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "B-3"}) is None  # rolled back
    row = seeded.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "US-002"})
    assert row is not None and row["CreditLimit"] == 100

    # Independent change sets: without continue-on-error processing stops at the first failure.
    missing = [("PATCH", f"/data/{ENTITY}(dataAreaId='usmf',CustomerAccount='GHOST')", {"CreditLimit": 1})]
    later = [("POST", f"/data/{ENTITY}", customer("usmf", "B-4"))]
    resp, statuses = post_batch(fo, batch_body([missing, later]))
    assert resp.status_code == 200 and statuses == [400]
    assert NOT_FOUND_FOR_UPDATE in resp.text
    assert seeded.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "B-4"}) is None
    resp, statuses = post_batch(fo, batch_body([missing, later]), prefer="odata.continue-on-error")
    assert resp.status_code == 200 and statuses == [400, 201]
    assert seeded.finops.get(ENTITY, {"dataAreaId": "usmf", "CustomerAccount": "B-4"}) is not None

    # A top-level GET inside the batch reads through the same service.
    single: tuple[str, str, dict[str, Any]] = (
        "GET", f"/data/{ENTITY}(dataAreaId='usmf',CustomerAccount='B-1')", {}
    )
    resp, statuses = post_batch(fo, batch_body([single]))
    assert statuses == [200] and '"CustomerAccount":"B-1"' in resp.text.replace(" ", "")
    settle(seeded, 5)
    assert seeded.log.count(service="finops", kind="batch", status=200) == 5


# ---------------------------------------------------------------------------------------------- auth
def test_missing_expired_and_wrong_audience_tokens_get_401(sandbox: Sandbox, no_env_ca_bundle: None) -> None:
    denied = {"Message": "Authorization has been denied for this request."}
    with fo_client(sandbox, None) as anonymous:
        resp = anonymous.get(ENTITY)
        assert resp.status_code == 401 and resp.json() == denied
        assert "authorization_uri=" in resp.headers["www-authenticate"]
    with fo_client(sandbox, msal_token(sandbox, sandbox.info.dataverse_url)) as wrong_audience:
        resp = wrong_audience.get(ENTITY)
        assert resp.status_code == 401 and resp.json() == denied
        assert 'error="invalid_token"' in resp.headers["www-authenticate"]
    with fo_client(sandbox, msal_token(sandbox, sandbox.info.finops_url)) as fo:
        assert fo.get(ENTITY).status_code == 200
        sandbox.entra.expire_all_tokens()
        resp = fo.get(ENTITY)
        assert resp.status_code == 401 and "expired" in resp.headers["www-authenticate"]
    settle(sandbox, 4)
    assert sandbox.log.count(service="finops", status=401) == 3


def test_token_expires_by_its_lifetime(short_tokens: Sandbox, no_env_ca_bundle: None) -> None:
    """`token_lifetime_s=3`: a token that was valid is refused once its `exp` has passed."""
    sb = short_tokens
    sb.reset()
    with fo_client(sb, msal_token(sb, sb.info.finops_url)) as fo:
        assert fo.get(ENTITY).status_code == 200  # at least 2 s of validity left
        time.sleep(3.05)  # exp = issued second + 3; three seconds always passes it
        resp = fo.get(ENTITY)
        assert resp.status_code == 401 and "expired" in resp.headers["www-authenticate"]
