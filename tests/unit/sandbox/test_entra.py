"""Entra stand-in: token issue and validation, token-endpoint errors, certificate assertions (no sockets)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
import warnings
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.entra import CLIENT_ASSERTION_TYPE, Entra, EntraError, TokenError, build_entra_app

warnings.filterwarnings("ignore", message="Using `httpx` with")
from starlette.testclient import TestClient  # noqa: E402

DV = "https://127.0.0.1:1001"
FO = "https://127.0.0.1:1002"
TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def entra(clock: Clock) -> Entra:
    e = Entra(
        tenant_id=TENANT, client_id=CLIENT, client_secret="s3cret", audiences=[DV, FO + "/"],
        token_lifetime_s=600, clock=clock,
    )
    e.set_authority("https://127.0.0.1:1000/")
    return e


def _form(**extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials", "client_id": CLIENT, "client_secret": "s3cret",
        "scope": f"{DV}/.default", **extra,
    }


def test_issued_token_has_entra_shape_and_claims(entra: Entra, clock: Clock) -> None:
    body = entra.token(TENANT, _form())
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 600
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["aud"] == DV
    assert claims["exp"] == int(clock.now) + 600
    assert claims["iss"] == f"https://127.0.0.1:1000/{TENANT}/v2.0"
    assert claims["appid"] == CLIENT and claims["tid"] == TENANT
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "RS256"
    assert entra.validate(body["access_token"], DV + "/").audience == DV


def test_trailing_slash_scope_is_accepted_for_finops(entra: Entra) -> None:
    token = entra.token(TENANT, _form(scope=f"{FO}//.default"))["access_token"]
    assert entra.validate(token, FO).audience == FO


def test_wrong_audience_is_rejected(entra: Entra) -> None:
    token = entra.token(TENANT, _form())["access_token"]
    with pytest.raises(TokenError, match="audience") as info:
        entra.validate(token, FO)
    assert not info.value.expired


def test_expiry_is_rechecked_even_for_cached_tokens(entra: Entra, clock: Clock) -> None:
    token = entra.token(TENANT, _form())["access_token"]
    entra.validate(token, DV)  # cached now
    clock.now += 599
    entra.validate(token, DV)
    clock.now += 1
    with pytest.raises(TokenError) as info:
        entra.validate(token, DV)
    assert info.value.expired


def test_expire_all_tokens_invalidates_earlier_tokens_only(entra: Entra) -> None:
    old = entra.token(TENANT, _form())["access_token"]
    entra.validate(old, DV)
    entra.expire_all_tokens()
    with pytest.raises(TokenError) as info:
        entra.validate(old, DV)
    assert info.value.expired
    new = entra.token(TENANT, _form())["access_token"]
    assert entra.validate(new, DV).audience == DV


def test_forged_and_garbage_tokens_are_rejected(entra: Entra, signing_key: rsa.RSAPrivateKey) -> None:
    claims = {"aud": DV, "iss": entra.issuer, "exp": int(time.time()) + 3600, "appid": CLIENT}
    forged = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": entra.key_id})
    with pytest.raises(TokenError, match="validation"):
        entra.validate(forged, DV)
    with pytest.raises(TokenError):
        entra.validate("not-a-jwt", DV)
    unsigned = jwt.encode(claims, "k" * 32, algorithm="HS256")
    with pytest.raises(TokenError):
        entra.validate(unsigned, DV)


def test_jwks_verifies_issued_tokens(entra: Entra) -> None:
    token = entra.token(TENANT, _form())["access_token"]
    jwk = entra.jwks()["keys"][0]
    key: Any = jwt.PyJWK(jwk).key
    decoded = jwt.decode(token, key, algorithms=["RS256"], audience=DV, options={"verify_exp": False})
    assert decoded["aud"] == DV
    assert jwk["kid"] == jwt.get_unverified_header(token)["kid"]


@pytest.mark.parametrize(
    ("form", "tenant", "status", "error", "code"),
    [
        (_form(client_secret="wrong"), TENANT, 401, "invalid_client", 7000215),
        (_form(scope="https://other.example/.default"), TENANT, 400, "invalid_scope", 70011),
        (_form(scope=f"{DV}/user_impersonation"), TENANT, 400, "invalid_scope", 70011),
        (_form(client_id="nobody"), TENANT, 400, "unauthorized_client", 700016),
        (_form(grant_type="password"), TENANT, 400, "unsupported_grant_type", 70003),
        (_form(), "another-tenant", 400, "invalid_request", 90002),
        ({k: v for k, v in _form().items() if k != "client_secret"}, TENANT, 401, "invalid_client", 7000218),
    ],
)
def test_token_errors_use_entra_codes(
    entra: Entra, form: dict[str, str], tenant: str, status: int, error: str, code: int
) -> None:
    with pytest.raises(EntraError) as info:
        entra.token(tenant, form)
    err = info.value
    assert (err.status, err.error, err.code) == (status, error, code)
    body = err.body()
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert "Trace ID:" in body["error_description"]


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p2c-sync")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _assertion(entra: Entra, key: rsa.RSAPrivateKey, thumb_hex: str, **over: Any) -> str:
    x5t = base64.urlsafe_b64encode(bytes.fromhex(thumb_hex)).rstrip(b"=").decode()
    now = int(time.time())
    claims = {"aud": entra.token_endpoint, "iss": CLIENT, "sub": CLIENT, "exp": now + 600, "nbf": now,
              "jti": "x", **over}
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": x5t})


def test_client_assertion_with_registered_certificate(entra: Entra, signing_key: rsa.RSAPrivateKey) -> None:
    pem = _certificate(signing_key)
    thumb = entra.register_certificate(pem)
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    assert thumb == hashlib.sha1(der).hexdigest().upper()
    form = {k: v for k, v in _form().items() if k != "client_secret"}
    form["client_assertion_type"] = CLIENT_ASSERTION_TYPE
    form["client_assertion"] = _assertion(entra, signing_key, thumb)
    assert entra.token(TENANT, form)["access_token"]

    form["client_assertion"] = _assertion(entra, signing_key, thumb, aud="https://elsewhere/token")
    with pytest.raises(EntraError) as info:
        entra.token(TENANT, form)
    assert info.value.error == "invalid_client"

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    form["client_assertion"] = _assertion(entra, other, "00" * 20)
    with pytest.raises(EntraError) as info:
        entra.token(TENANT, form)
    assert info.value.code == 700027


def test_http_endpoints_msal_reads(entra: Entra) -> None:
    client = TestClient(build_entra_app(entra))
    config = client.get(f"/{TENANT}/v2.0/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == entra.token_endpoint
    assert config["issuer"] == entra.issuer
    assert config["authorization_endpoint"].endswith(f"/{TENANT}/oauth2/v2.0/authorize")
    assert client.get(f"/{TENANT}/discovery/v2.0/keys").json()["keys"][0]["kty"] == "RSA"
    discovery = client.get("/common/discovery/instance").json()
    assert discovery["tenant_discovery_endpoint"] == f"{entra.issuer}/.well-known/openid-configuration"
    ok = client.post(f"/{TENANT}/oauth2/v2.0/token", data=_form())
    assert ok.status_code == 200 and ok.json()["token_type"] == "Bearer"
    bad = client.post(f"/{TENANT}/oauth2/v2.0/token", data=_form(client_secret="nope"))
    assert bad.status_code == 401 and bad.json()["error_codes"] == [7000215]
