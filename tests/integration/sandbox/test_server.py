"""The sandbox over real HTTPS: MSAL against the Entra stand-in, the guard's 401/429/faults, the log.

These run against the session sandbox (`sandbox` fixture, reset per test) with TLS verified
against the sandbox CA, the way the product connects.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import msal
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox import Sandbox, SandboxInfo

pytestmark = pytest.mark.integration

DV_PATH = "/api/data/v9.2/"
FO_PATH = "/data/"
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def no_env_ca_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's `verify`, so MSAL's
    `verify=<ca_file>` would be ignored on machines that set them."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def token_for(info: SandboxInfo, service_url: str) -> str:
    resp = httpx.post(
        f"{info.authority_url}/{info.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials", "client_id": info.client_id,
            "client_secret": info.client_secret, "scope": f"{service_url}/.default",
        },
        verify=info.ca_file,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


@pytest.fixture
def dv(sandbox: Sandbox) -> Iterator[httpx.Client]:
    info = sandbox.info
    headers = {"Authorization": f"Bearer {token_for(info, info.dataverse_url)}", "Accept": "application/json"}
    with httpx.Client(base_url=info.dataverse_url + DV_PATH, headers=headers, verify=info.ca_file) as c:
        yield c


@pytest.fixture
def fo(sandbox: Sandbox) -> Iterator[httpx.Client]:
    info = sandbox.info
    headers = {"Authorization": f"Bearer {token_for(info, info.finops_url)}", "Accept": "application/json"}
    with httpx.Client(base_url=info.finops_url + FO_PATH, headers=headers, verify=info.ca_file) as c:
        yield c


def test_info_is_json_round_trippable(sandbox: Sandbox) -> None:
    info = sandbox.info
    assert SandboxInfo.from_dict(json.loads(json.dumps(info.as_dict()))) == info
    for url in (info.dataverse_url, info.finops_url, info.authority_url):
        assert url.startswith("https://127.0.0.1:") and not url.endswith("/")
    assert Path(info.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert isinstance(info.client_secret, str)


def test_msal_confidential_client_gets_working_tokens(
    sandbox: Sandbox, no_env_ca_bundle: None
) -> None:
    info = sandbox.info
    app = msal.ConfidentialClientApplication(
        info.client_id, client_credential=info.client_secret,
        authority=f"{info.authority_url}/{info.tenant_id}",
        validate_authority=False, instance_discovery=False, verify=info.ca_file,
    )
    for url, path in ((info.dataverse_url, DV_PATH + "accounts"), (info.finops_url, FO_PATH + "CustomersV3")):
        result = app.acquire_token_for_client(scopes=[f"{url}/.default"])
        assert "access_token" in result, result.get("error_description")
        assert result["token_type"] == "Bearer"
        resp = httpx.get(url + path, headers={"Authorization": f"Bearer {result['access_token']}"},
                         verify=info.ca_file)
        assert resp.status_code == 200, resp.text
    bad = msal.ConfidentialClientApplication(
        info.client_id, client_credential="wrong", authority=f"{info.authority_url}/{info.tenant_id}",
        validate_authority=False, instance_discovery=False, verify=info.ca_file,
    ).acquire_token_for_client(scopes=[f"{info.dataverse_url}/.default"])
    assert bad["error"] == "invalid_client" and 7000215 in bad["error_codes"]


def test_msal_with_instance_discovery_pointed_at_the_stand_in(
    sandbox: Sandbox, no_env_ca_bundle: None
) -> None:
    info = sandbox.info
    app = msal.ConfidentialClientApplication(
        info.client_id, client_credential=info.client_secret,
        authority=f"{info.authority_url}/{info.tenant_id}",
        instance_discovery=f"{info.authority_url}/common/discovery/instance", verify=info.ca_file,
    )
    assert "access_token" in app.acquire_token_for_client(scopes=[f"{info.finops_url}/.default"])


def test_msal_certificate_credential(sandbox: Sandbox, no_env_ca_bundle: None) -> None:
    info = sandbox.info
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2c-sync-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    thumbprint = sandbox.entra.register_certificate(cert_pem)
    assert thumbprint == hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    app = msal.ConfidentialClientApplication(
        info.client_id, client_credential={"private_key": key_pem, "thumbprint": thumbprint},
        authority=f"{info.authority_url}/{info.tenant_id}",
        validate_authority=False, instance_discovery=False, verify=info.ca_file,
    )
    result = app.acquire_token_for_client(scopes=[f"{info.dataverse_url}/.default"])
    assert "access_token" in result, result.get("error_description")


def test_missing_wrong_audience_and_expired_tokens_get_401(sandbox: Sandbox) -> None:
    info = sandbox.info
    with httpx.Client(verify=info.ca_file) as c:
        resp = c.get(info.dataverse_url + DV_PATH + "accounts")
        assert resp.status_code == 401 and resp.content == b""
        assert "authorization_uri=" in resp.headers["www-authenticate"]
        resp = c.get(info.finops_url + FO_PATH + "CustomersV3")
        assert resp.status_code == 401
        assert resp.json() == {"Message": "Authorization has been denied for this request."}

        fo_token = token_for(info, info.finops_url)
        wrong = {"Authorization": f"Bearer {fo_token}"}
        resp = c.get(info.dataverse_url + DV_PATH + "accounts", headers=wrong)
        assert resp.status_code == 401 and 'error="invalid_token"' in resp.headers["www-authenticate"]

        dv_token = token_for(info, info.dataverse_url)
        auth = {"Authorization": f"Bearer {dv_token}"}
        assert c.get(info.dataverse_url + DV_PATH + "accounts", headers=auth).status_code == 200
        sandbox.entra.expire_all_tokens()
        resp = c.get(info.dataverse_url + DV_PATH + "accounts", headers=auth)
        assert resp.status_code == 401 and "expired" in resp.headers["www-authenticate"]
        fresh = {"Authorization": f"Bearer {token_for(info, info.dataverse_url)}"}
        assert c.get(info.dataverse_url + DV_PATH + "accounts", headers=fresh).status_code == 200
    assert sandbox.log.count(status=401) == 4


def test_throttling_returns_429_with_retry_after(
    sandbox: Sandbox, dv: httpx.Client, fo: httpx.Client
) -> None:
    sandbox.limits.configure("dataverse", requests=3, window_s=300, concurrent=52, execution_s=1200)
    sandbox.limits.configure("finops", requests=2, window_s=60)
    assert [dv.get("accounts").status_code for _ in range(3)] == [200, 200, 200]
    resp = dv.get("accounts")
    assert resp.status_code == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 300
    assert resp.json()["error"] == {
        "code": "0x80072322",
        "message": "Number of requests exceeded the limit of 3 over time window of 300 seconds.",
    }
    assert [fo.get("CustomersV3").status_code for _ in range(3)] == [200, 200, 429]
    assert sandbox.log.count(status=429) == 2
    assert sum(e.throttled for e in sandbox.log.entries()) == 2
    sandbox.limits.clear()
    assert dv.get("accounts").status_code == 200


@pytest.mark.parametrize(
    ("fault", "status"),
    [("429", 429), ("500", 500), ("503", 503), ("html", 502), ("nonjson", 200), ("truncated", 200)],
)
def test_http_faults_are_observable(sandbox: Sandbox, fo: httpx.Client, fault: str, status: int) -> None:
    sandbox.faults.script([("finops", "read", fault)])
    resp = fo.get("CustomersV3")
    assert resp.status_code == status
    if fault == "429":
        assert resp.headers["Retry-After"] == "1"
    if fault in ("html", "nonjson", "truncated"):
        with pytest.raises(json.JSONDecodeError):
            resp.json()
    else:
        assert "error" in resp.json()
    assert fo.get("CustomersV3").status_code == 200
    assert [e.fault for e in sandbox.log.entries()] == [fault, None]


def test_reset_fault_drops_the_connection(sandbox: Sandbox, dv: httpx.Client) -> None:
    sandbox.faults.script([("dataverse", "*", "reset")])
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        dv.get("accounts")
    assert dv.get("accounts").status_code == 200  # the client reconnects
    assert sandbox.log.entries()[0].fault == "reset" and sandbox.log.entries()[0].status == 0


def test_hang_fault_outlasts_the_client_timeout(sandbox: Sandbox, dv: httpx.Client) -> None:
    sandbox.faults.configure(probability=0.0, hang_s=1.0)
    sandbox.faults.script([("dataverse", "read", "hang")])
    with pytest.raises(httpx.ReadTimeout):
        dv.get("accounts", timeout=0.3)
    assert dv.get("accounts").status_code == 200


def test_random_faults_hit_only_configured_services(
    sandbox: Sandbox, dv: httpx.Client, fo: httpx.Client
) -> None:
    sandbox.faults.configure(probability=1.0, kinds=["503"], seed=7, services=("finops",))
    assert fo.get("CustomersV3").status_code == 503
    assert dv.get("accounts").status_code == 200
    sandbox.faults.clear()
    assert fo.get("CustomersV3").status_code == 200


def test_log_counts_kinds_and_records_from_the_apps(
    sandbox: Sandbox, dv: httpx.Client, fo: httpx.Client
) -> None:
    from sandbox.datagen import generate

    dataset = generate(size=5, seed=1)
    sandbox.load(dataset)
    accounts = dv.get("accounts?$select=name")
    assert accounts.status_code == 200
    assert len(accounts.json()["value"]) == len(dataset.dataverse["accounts"])
    finops_set = next(iter(dataset.finops))
    rows = fo.get(f"{finops_set}?cross-company=true")
    assert rows.status_code == 200, rows.text
    assert sandbox.log.count(service="dataverse", kind="read", status=200) == 1
    entry = sandbox.log.entries()[0]
    assert (entry.service, entry.method, entry.path) == ("dataverse", "GET", DV_PATH + "accounts")
    assert entry.records == len(dataset.dataverse["accounts"])
    assert sandbox.log.entries()[1].records == len(rows.json()["value"])
    sandbox.reset()
    assert sandbox.log.count() == 0
    assert dv.get("accounts").json()["value"] == []


def test_latency_is_added_per_service(sandbox: Sandbox, dv: httpx.Client, fo: httpx.Client) -> None:
    sandbox.latency.configure("finops", fixed_ms=200, per_record_ms=0)
    started = time.perf_counter()
    assert fo.get("CustomersV3").status_code == 200
    assert time.perf_counter() - started >= 0.2
    started = time.perf_counter()
    assert dv.get("accounts").status_code == 200
    assert time.perf_counter() - started < 0.2


def test_concurrent_requests_are_all_logged(sandbox: Sandbox, dv: httpx.Client) -> None:
    def burst(_: int) -> list[int]:
        return [dv.get("accounts").status_code for _ in range(10)]

    with ThreadPoolExecutor(8) as pool:
        statuses = [s for batch in pool.map(burst, range(8)) for s in batch]
    assert statuses == [200] * 80
    assert sandbox.log.count(service="dataverse", status=200) == 80


def test_serve_command_writes_info_and_stops_on_sigterm(tmp_path: Path) -> None:
    port_file = tmp_path / "sandbox.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--port-file", str(port_file), "--seed", "3"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "serve did not write its port file"
            time.sleep(0.05)
        info = SandboxInfo.from_dict(json.loads(port_file.read_text()))
        resp = httpx.get(
            info.dataverse_url + DV_PATH + "accounts",
            headers={"Authorization": f"Bearer {token_for(info, info.dataverse_url)}"}, verify=info.ca_file,
        )
        assert resp.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    assert not port_file.exists()
