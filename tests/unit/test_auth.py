"""shared.auth, pure: BearerAuth over httpx.MockTransport; msal providers with a fake msal http_client.

The fake http_client answers msal's OIDC discovery, token and managed-identity calls in memory, so
the real msal code paths (cache, 5-minute early expiry, client assertions) run without a network.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.auth import (
    AuthError,
    BearerAuth,
    ManagedIdentityTokenProvider,
    MsalTokenProvider,
    build_auth,
    load_certificate,
)
from shared.settings import Settings

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "client-secret-do-not-leak"
DV = "https://contoso.crm.dynamics.com"
SCOPE = f"{DV}/.default"


# --- fakes ------------------------------------------------------------------------------------------


class FakeResponse:
    def __init__(self, status_code: int, payload: dict[str, Any]) -> None:
        self.status_code = status_code
        self.text = json.dumps(payload)
        self.headers: dict[str, str] = {"content-type": "application/json"}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")


class FakeEntra:
    """msal's http_client contract: get() for discovery / managed identity, post() for tokens."""

    def __init__(self, *, expires_in: int = 3600) -> None:
        self.expires_in = expires_in
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.issued = 0
        self.token_error: tuple[int, dict[str, Any]] | None = None
        self.discovery_status = 200

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> FakeResponse:
        self.calls.append(("GET", url, dict(params or {})))
        parts = urlsplit(url)
        if url.endswith("/v2.0/.well-known/openid-configuration"):
            if self.discovery_status != 200:
                return FakeResponse(self.discovery_status, {"error": "invalid_tenant"})
            base = f"{parts.scheme}://{parts.netloc}/{TENANT}"
            return FakeResponse(200, {
                "issuer": f"{base}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
            })
        if parts.path == "/common/discovery/instance":  # msal looks up aliases after a failure
            return FakeResponse(200, {"tenant_discovery_endpoint": "", "metadata": [
                {"preferred_network": "login.microsoftonline.com",
                 "aliases": ["login.microsoftonline.com", "login.windows.net", "sts.windows.net"]},
            ]})
        if parts.path.endswith("/msi/token"):  # App Service / Functions managed identity endpoint
            self.issued += 1
            return FakeResponse(200, {
                "access_token": f"mi-token-{self.issued}",
                "expires_on": str(int(dt.datetime.now(dt.UTC).timestamp()) + self.expires_in),
                "resource": (params or {}).get("resource"),
                "token_type": "Bearer",
            })
        return FakeResponse(404, {"error": "not_found"})

    def post(self, url: str, params: Any = None, data: Any = None, headers: Any = None,
             **kwargs: Any) -> FakeResponse:
        self.calls.append(("POST", url, dict(data or {})))
        if self.token_error is not None:
            status, payload = self.token_error
            return FakeResponse(status, payload)
        self.issued += 1
        return FakeResponse(200, {
            "access_token": f"token-{self.issued}", "expires_in": self.expires_in, "token_type": "Bearer",
        })

    def posts(self) -> list[dict[str, Any]]:
        return [data for method, _, data in self.calls if method == "POST"]


def settings(**overrides: str) -> Settings:
    env = {
        "P2C_DATAVERSE_URL": DV,
        "P2C_FINOPS_URL": "https://contoso.operations.dynamics.com",
        "P2C_TENANT_ID": TENANT,
        "P2C_CLIENT_ID": CLIENT,
        "P2C_CLIENT_SECRET": SECRET,
        "P2C_STATE_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
    }
    env.update(overrides)
    return Settings.from_env(env)


def write_pem(path: Path, *, password: str | None = None, with_cert: bool = True) -> x509.Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2c-sync test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    if with_cert:
        pem += cert.public_bytes(serialization.Encoding.PEM)
    path.write_bytes(pem)
    return cert


def jwt_header(token: str | bytes) -> dict[str, Any]:
    head = (token.decode() if isinstance(token, bytes) else token).split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


# --- MsalTokenProvider ---------------------------------------------------------------------------------


def test_client_secret_token_is_cached_and_force_refresh_bypasses_the_cache() -> None:
    entra = FakeEntra()
    provider = MsalTokenProvider(settings(), SCOPE, http_client=entra)
    assert entra.calls == []  # nothing happens until the first token is needed
    assert provider.token() == "token-1"
    assert provider.token() == "token-1"  # msal's cache
    assert len(entra.posts()) == 1
    post = entra.posts()[0]
    assert post["grant_type"] == "client_credentials"
    assert post["client_secret"] == SECRET and post["client_id"] == CLIENT
    assert SCOPE in post["scope"]
    assert provider.token(force_refresh=True) == "token-2"
    assert provider.token() == "token-2"
    assert len(entra.posts()) == 2


def test_microsoft_authority_uses_the_tenant_authority() -> None:
    entra = FakeEntra()
    provider = MsalTokenProvider(settings(), SCOPE, http_client=entra)
    assert provider.is_microsoft_authority
    provider.token()
    urls = [url for _, url, _ in entra.calls]
    assert urls[0] == f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    assert urls[-1] == f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"


def test_sandbox_authority_skips_instance_discovery() -> None:
    entra = FakeEntra()
    s = settings(P2C_AUTHORITY_HOST="https://127.0.0.1:9443")
    provider = MsalTokenProvider(s, SCOPE, http_client=entra)
    assert not provider.is_microsoft_authority
    assert provider.token() == "token-1"
    hosts = {urlsplit(url).netloc for _, url, _ in entra.calls}
    assert hosts == {"127.0.0.1:9443"}  # no call to Microsoft's instance discovery endpoint


def test_token_is_renewed_within_five_minutes_of_expiry() -> None:
    entra = FakeEntra(expires_in=299)
    provider = MsalTokenProvider(settings(), SCOPE, http_client=entra)
    assert provider.token() == "token-1"
    assert provider.token() == "token-2"
    entra.expires_in = 301
    assert provider.token() == "token-3"
    assert provider.token() == "token-3"


def test_entra_error_becomes_auth_error_without_the_secret() -> None:
    entra = FakeEntra()
    entra.token_error = (401, {
        "error": "invalid_client",
        "error_description": f"AADSTS7000215: Invalid client secret provided. Got {SECRET}.",
        "error_codes": [7000215],
    })
    provider = MsalTokenProvider(settings(), SCOPE, http_client=entra)
    with pytest.raises(AuthError) as info:
        provider.token()
    err = info.value
    assert err.code == "invalid_client" and not err.transient
    assert err.description is not None and "AADSTS7000215" in err.description
    assert "AADSTS7000215" in str(err) and SCOPE in str(err)
    assert SECRET not in str(err) and SECRET not in (err.description or "")


def test_unavailable_token_endpoint_is_transient() -> None:
    entra = FakeEntra()
    entra.token_error = (503, {"error": "temporarily_unavailable", "error_description": "try later"})
    with pytest.raises(AuthError) as info:
        MsalTokenProvider(settings(), SCOPE, http_client=entra).token()
    assert info.value.transient


def test_failed_discovery_becomes_auth_error() -> None:
    entra = FakeEntra()
    entra.discovery_status = 400
    with pytest.raises(AuthError) as info:
        MsalTokenProvider(settings(), SCOPE, http_client=entra).token()
    assert info.value.code == "invalid_authority"


def test_certificate_credential_signs_a_client_assertion(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    cert = write_pem(pem, password="pem-password")
    s = settings(P2C_CLIENT_SECRET="", P2C_CLIENT_CERTIFICATE_PATH=str(pem),
                 P2C_CLIENT_CERTIFICATE_PASSWORD="pem-password")
    entra = FakeEntra()
    provider = MsalTokenProvider(s, SCOPE, http_client=entra)
    assert provider.certificate is not None
    assert provider.certificate.sha1_thumbprint == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert provider.certificate.sha256_thumbprint == cert.fingerprint(hashes.SHA256()).hex().upper()
    assert "PRIVATE KEY" not in repr(provider.certificate)
    assert provider.token() == "token-1"
    post = entra.posts()[0]
    assert "client_secret" not in post
    assert post["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header = jwt_header(post["client_assertion"])
    expected = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    assert header["x5t#S256"].rstrip("=") == expected and header["alg"] == "PS256"


def test_unencrypted_certificate(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    write_pem(pem)
    credential = load_certificate(pem)
    assert credential.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert credential.certificate_pem.startswith("-----BEGIN CERTIFICATE-----")


def test_certificate_errors_name_the_setting(tmp_path: Path) -> None:
    pem = tmp_path / "app.pem"
    write_pem(pem, password="right")
    with pytest.raises(AuthError, match="P2C_CLIENT_CERTIFICATE_PASSWORD is wrong"):
        load_certificate(pem, "wrong")
    with pytest.raises(AuthError, match="P2C_CLIENT_CERTIFICATE_PASSWORD"):
        load_certificate(pem, None)
    key_only = tmp_path / "key.pem"
    write_pem(key_only, with_cert=False)
    with pytest.raises(AuthError, match="holds no certificate"):
        load_certificate(key_only)
    with pytest.raises(AuthError, match="cannot read"):
        load_certificate(tmp_path / "missing.pem")


def test_msal_provider_refuses_managed_identity_settings() -> None:
    s = settings(P2C_CLIENT_SECRET="", P2C_USE_MANAGED_IDENTITY="true")
    with pytest.raises(ValueError, match="managed identity"):
        MsalTokenProvider(s, SCOPE, http_client=FakeEntra())


# --- ManagedIdentityTokenProvider -------------------------------------------------------------------------


@pytest.fixture
def app_service_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:41741/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "identity-header-value")


@pytest.mark.usefixtures("app_service_identity")
def test_user_assigned_managed_identity() -> None:
    entra = FakeEntra()
    s = settings(
        P2C_CLIENT_SECRET="", P2C_USE_MANAGED_IDENTITY="true", P2C_MANAGED_IDENTITY_CLIENT_ID="uami-1"
    )
    provider = ManagedIdentityTokenProvider(s, SCOPE, http_client=entra)
    assert provider.resource == DV
    assert provider.token() == "mi-token-1"
    assert provider.token() == "mi-token-1"
    assert provider.token(force_refresh=True) == "mi-token-2"
    gets = [params for method, url, params in entra.calls if url.endswith("/msi/token")]
    assert len(gets) == 2
    assert gets[0]["resource"] == DV and gets[0]["client_id"] == "uami-1"


@pytest.mark.usefixtures("app_service_identity")
def test_system_assigned_managed_identity_via_build_auth() -> None:
    entra = FakeEntra()
    s = settings(P2C_CLIENT_SECRET="", P2C_USE_MANAGED_IDENTITY="true")
    auth = build_auth(s, SCOPE, http_client=entra)
    assert isinstance(auth, BearerAuth)
    assert isinstance(auth.provider, ManagedIdentityTokenProvider)
    assert auth.provider.token() == "mi-token-1"
    params = next(p for _, url, p in entra.calls if url.endswith("/msi/token"))
    assert "client_id" not in params


def test_build_auth_with_a_secret_is_msal() -> None:
    auth = build_auth(settings(), SCOPE, http_client=FakeEntra())
    assert isinstance(auth, BearerAuth) and isinstance(auth.provider, MsalTokenProvider)
    assert auth.provider.scope == SCOPE


# --- BearerAuth -----------------------------------------------------------------------------------------


class FakeProvider:
    """Hands out token-1, and token-N+1 on each forced refresh."""

    def __init__(self) -> None:
        self.current = "token-1"
        self.forced = 0
        self.calls = 0

    def token(self, *, force_refresh: bool = False) -> str:
        self.calls += 1
        if force_refresh:
            self.forced += 1
            self.current = f"token-{self.forced + 1}"
        return self.current


def client(provider: FakeProvider, accepted: set[str], seen: list[tuple[str, bytes]]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append((token, request.read()))
        if token in accepted:
            return httpx.Response(200, json={"ok": True})
        return httpx.Response(401, json={"error": {"code": "0x80072560", "message": "token expired"}})

    return httpx.Client(transport=httpx.MockTransport(handler), auth=BearerAuth(provider))


def test_bearer_header_and_no_refresh_on_success() -> None:
    provider, seen = FakeProvider(), []  # type: ignore[var-annotated]
    with client(provider, {"token-1"}, seen) as c:
        assert c.get("https://x.test/a").status_code == 200
    assert seen == [("token-1", b"")] and provider.forced == 0


def test_401_refreshes_once_and_resends_the_body() -> None:
    provider, seen = FakeProvider(), []  # type: ignore[var-annotated]
    with client(provider, {"token-2"}, seen) as c:
        response = c.post("https://x.test/a", json={"name": "Contoso"})
    assert response.status_code == 200
    assert provider.forced == 1
    assert [t for t, _ in seen] == ["token-1", "token-2"]
    assert seen[0][1] == seen[1][1] == b'{"name":"Contoso"}'


def test_streamed_body_is_resent() -> None:
    def body() -> Iterator[bytes]:
        yield b"part1-"
        yield b"part2"

    provider, seen = FakeProvider(), []  # type: ignore[var-annotated]
    with client(provider, {"token-2"}, seen) as c:
        assert c.post("https://x.test/a", content=body()).status_code == 200
    assert [b for _, b in seen] == [b"part1-part2", b"part1-part2"]


def test_second_401_is_returned_to_the_caller() -> None:
    provider, seen = FakeProvider(), []  # type: ignore[var-annotated]
    with client(provider, set(), seen) as c:
        response = c.get("https://x.test/a")
    assert response.status_code == 401
    assert len(seen) == 2 and provider.forced == 1


def test_no_forced_refresh_when_another_request_already_refreshed() -> None:
    provider = FakeProvider()
    auth = BearerAuth(provider)
    provider.current = "token-9"  # someone refreshed after this request took token-1
    assert auth._fresh_token("token-1") == "token-9"
    assert provider.forced == 0
    assert auth._fresh_token("token-9") == "token-2"
    assert provider.forced == 1


def test_concurrent_401s_force_a_single_refresh() -> None:
    provider, seen = FakeProvider(), []  # type: ignore[var-annotated]
    barrier = threading.Barrier(4)

    def handler(request: httpx.Request) -> httpx.Response:
        token = request.headers["Authorization"].removeprefix("Bearer ")
        seen.append((token, b""))
        if token == "token-1":
            barrier.wait(timeout=5)  # all four hold the stale token before any refresh
            return httpx.Response(401)
        return httpx.Response(200)

    with httpx.Client(transport=httpx.MockTransport(handler), auth=BearerAuth(provider)) as c:
        threads = [threading.Thread(target=c.get, args=("https://x.test/",)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
    assert provider.forced == 1
    assert sorted(t for t, _ in seen) == ["token-1"] * 4 + ["token-2"] * 4


def test_auth_error_propagates_from_the_flow() -> None:
    class Failing:
        def token(self, *, force_refresh: bool = False) -> str:
            raise AuthError("token request failed: invalid_client: AADSTS7000215", code="invalid_client")

    transport = httpx.MockTransport(lambda r: httpx.Response(200))
    with (
        httpx.Client(transport=transport, auth=BearerAuth(Failing())) as c,
        pytest.raises(AuthError, match="invalid_client"),
    ):
        c.get("https://x.test/")


# --- the httpx adapter msal uses by default ------------------------------------------------------------


def test_httpx_adapter_carries_msal_traffic() -> None:
    from shared.auth import _HttpxForMsal

    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            base = f"https://127.0.0.1:9443/{TENANT}"
            return httpx.Response(200, json={
                "issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
            })
        return httpx.Response(200, json={"access_token": "via-httpx", "expires_in": 3600})

    adapter = _HttpxForMsal(verify=True, timeout=5, transport=httpx.MockTransport(handler))
    s = settings(P2C_AUTHORITY_HOST="https://127.0.0.1:9443")
    provider = MsalTokenProvider(s, SCOPE, http_client=adapter)
    assert provider.token() == "via-httpx"
    token_request = seen[-1]
    assert token_request.method == "POST"
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(httpx.QueryParams(token_request.read().decode()))
    assert form["grant_type"] == "client_credentials" and form["client_secret"] == SECRET
    adapter.close()


def test_httpx_adapter_sends_the_client_assertion_as_text(tmp_path: Path) -> None:
    """msal passes the assertion as bytes; it must arrive as the JWT, not as "b'eyJ...'"."""
    from shared.auth import _HttpxForMsal

    forms: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            base = f"https://login.microsoftonline.com/{TENANT}"
            return httpx.Response(200, json={
                "issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
            })
        forms.append(dict(httpx.QueryParams(request.read().decode())))
        return httpx.Response(200, json={"access_token": "cert-token", "expires_in": 3600})

    pem = tmp_path / "app.pem"
    write_pem(pem)
    s = settings(P2C_CLIENT_SECRET="", P2C_CLIENT_CERTIFICATE_PATH=str(pem))
    adapter = _HttpxForMsal(verify=True, timeout=5, transport=httpx.MockTransport(handler))
    assert MsalTokenProvider(s, SCOPE, http_client=adapter).token() == "cert-token"
    assertion = forms[0]["client_assertion"]
    assert assertion.startswith("eyJ") and assertion.count(".") == 2
    assert "x5t#S256" in jwt_header(assertion)
    adapter.close()
