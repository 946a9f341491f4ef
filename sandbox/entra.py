"""Microsoft Entra ID stand-in: client-credentials tokens for the two data-service stand-ins.

The product authenticates with MSAL's `ConfidentialClientApplication`, so this app serves exactly
what MSAL 1.39 reads: the v2.0 OpenID configuration, a JWKS document, the v2.0 token endpoint and
(if a caller points `instance_discovery` at it) the instance-discovery document. Tokens are real
RS256 JWTs so the guard in front of each data service validates signature, expiry and audience the
same way the real services do; errors use Entra's JSON shape and AADSTS codes so the product's
error handling meets what it meets in Azure.

`Entra` holds the state (tenant, application registration, signing key, issued-token generation)
and is pure Python; `build_entra_app` exposes it over HTTP.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_TOKEN_CACHE_SIZE = 4096


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_uint(value: int) -> str:
    return _b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class TokenError(Exception):
    """A bearer token the guard must refuse; `reason` feeds the 401 `error_description`."""

    def __init__(self, reason: str, *, expired: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expired = expired


class EntraError(Exception):
    """A token-endpoint failure, rendered in Entra's error JSON shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self) -> dict[str, Any]:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description}\r\nTrace ID: {trace_id}\r\n"
                f"Correlation ID: {correlation_id}\r\nTimestamp: {stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }


@dataclass(frozen=True)
class TokenClaims:
    """What the guard needs from a validated access token."""

    audience: str
    expires_at: int
    app_id: str


class Entra:
    """Tenant + one application registration + the signing key; thread-safe.

    `audiences` are the data-service URLs (no trailing slash) a token may be requested for. The
    authority URL is only known once the HTTPS server has its port, so it is set afterwards via
    `set_authority`. `expire_all_tokens` makes every token issued so far fail validation as expired
    (the 401-mid-run scenario) without touching the clock.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        audiences: list[str],
        token_lifetime_s: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.audiences = [a.rstrip("/") for a in audiences]
        self.token_lifetime_s = token_lifetime_s
        self.authority_url = "https://127.0.0.1"
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public = self._key.public_key()
        self.key_id = _b64url(hashlib.sha256(self._public_der()).digest()[:16])
        self._lock = threading.Lock()
        self._generation = 0
        # token string -> (claims, generation); validated tokens skip the RSA check next time
        self._cache: OrderedDict[str, tuple[TokenClaims, int]] = OrderedDict()
        # certificate credentials: SHA-1 and SHA-256 thumbprints (base64url) -> public key
        self._certs: dict[str, Any] = {}

    # ------------------------------------------------------------------ configuration
    def set_authority(self, authority_url: str) -> None:
        self.authority_url = authority_url.rstrip("/")

    def set_audiences(self, audiences: list[str]) -> None:
        self.audiences = [a.rstrip("/") for a in audiences]

    @property
    def issuer(self) -> str:
        return f"{self.authority_url}/{self.tenant_id}/v2.0"

    @property
    def token_endpoint(self) -> str:
        return f"{self.authority_url}/{self.tenant_id}/oauth2/v2.0/token"

    def register_certificate(self, cert_pem: bytes) -> str:
        """Accept client assertions signed by this certificate's key; returns its SHA-1 thumbprint (hex).

        MSAL puts the SHA-1 thumbprint in `x5t` (and SHA-256 in `x5t#S256` when given one), so
        both are indexed.
        """
        cert = x509.load_pem_x509_certificate(cert_pem)
        der = cert.public_bytes(serialization.Encoding.DER)
        sha1 = hashlib.sha1(der, usedforsecurity=False).digest()
        sha256 = hashlib.sha256(der).digest()
        with self._lock:
            self._certs[_b64url(sha1)] = cert.public_key()
            self._certs[_b64url(sha256)] = cert.public_key()
        return sha1.hex().upper()

    def expire_all_tokens(self) -> None:
        """Every token issued before this call is from now on rejected as expired."""
        with self._lock:
            self._generation += 1
            self._cache.clear()

    # ------------------------------------------------------------------ documents
    def _public_der(self) -> bytes:
        return self._public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def jwks(self) -> dict[str, Any]:
        numbers = self._public.public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "kid": self.key_id,
                    "x5t": self.key_id,
                    "n": _b64url_uint(numbers.n),
                    "e": _b64url_uint(numbers.e),
                    "issuer": self.issuer,
                }
            ]
        }

    def openid_configuration(self) -> dict[str, Any]:
        base = f"{self.authority_url}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post", "private_key_jwt", "client_secret_basic"
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": self.issuer,
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{self.authority_url}/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver", "oid"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    def instance_discovery(self) -> dict[str, Any]:
        """Azure's `/common/discovery/instance` answer, pointing at this stand-in."""
        host = self.authority_url.split("://", 1)[-1]
        return {
            "tenant_discovery_endpoint": f"{self.issuer}/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    # ------------------------------------------------------------------ token endpoint
    def token(self, tenant: str, form: dict[str, str]) -> dict[str, Any]:
        """Handle one `POST /<tenant>/oauth2/v2.0/token`; raises `EntraError` like Entra would."""
        if tenant not in (self.tenant_id, "organizations", "common"):
            raise EntraError(
                400, "invalid_request", 90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
                "signing into the correct cloud.",
            )
        grant = form.get("grant_type")
        if not grant:
            raise EntraError(
                400, "invalid_request", 900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant != "client_credentials":
            raise EntraError(
                400, "unsupported_grant_type", 70003,
                f"The app requested an unsupported grant type '{grant}'.",
            )
        client_id = form.get("client_id", "")
        if client_id != self.client_id:
            raise EntraError(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.tenant_id}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant.",
            )
        self._authenticate_client(form)
        audience = self._audience(form.get("scope"))
        return self._issue(audience)

    def _authenticate_client(self, form: dict[str, str]) -> None:
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret is not None:
            if not secrets.compare_digest(secret.encode(), self.client_secret.encode()):
                raise EntraError(
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the "
                    "client secret value, not the client secret ID, for a secret added to app "
                    f"'{self.client_id}'.",
                )
            return
        if assertion is not None:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise EntraError(
                    400, "invalid_request", 700010,
                    f"The 'client_assertion_type' must be '{CLIENT_ASSERTION_TYPE}'.",
                )
            self._check_assertion(assertion)
            return
        raise EntraError(
            401, "invalid_client", 7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )

    def _check_assertion(self, assertion: str) -> None:
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise EntraError(
                401, "invalid_client", 50027, f"JWT token is invalid or malformed. {exc}"
            ) from exc
        thumb = header.get("x5t#S256") or header.get("x5t")
        with self._lock:  # MSAL keeps the base64 padding; RFC 7515 drops it
            key = self._certs.get(str(thumb).rstrip("=")) if thumb else None
        if key is None:
            raise EntraError(
                401, "invalid_client", 700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                "application. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{thumb}']",
            )
        try:
            claims = jwt.decode(
                assertion, key, algorithms=["RS256", "PS256"], audience=self.token_endpoint,
                options={"require": ["exp", "aud", "iss", "sub"]}, leeway=300,
            )
        except jwt.PyJWTError as exc:
            raise EntraError(
                401, "invalid_client", 700027, f"Client assertion failed signature validation. {exc}"
            ) from exc
        if claims.get("iss") != self.client_id or claims.get("sub") != self.client_id:
            raise EntraError(
                401, "invalid_client", 700021, "Client assertion application identifier doesn't match "
                "'client_id' parameter."
            )

    def _audience(self, scope: str | None) -> str:
        if not scope:
            raise EntraError(
                400, "invalid_request", 900144,
                "The request body must contain the following parameter: 'scope'.",
            )
        scopes = scope.split()
        resource = scopes[0][: -len("/.default")].rstrip("/") if scopes[0].endswith("/.default") else None
        if len(scopes) != 1 or resource is None or resource not in self.audiences:
            raise EntraError(
                400, "invalid_scope", 70011,
                "The provided request must include a 'scope' input parameter. The provided value for the "
                f"input parameter 'scope' is not valid. The scope {scope} is not valid.",
            )
        return resource

    def _issue(self, audience: str) -> dict[str, Any]:
        now = int(self._clock())
        with self._lock:
            generation = self._generation
        claims = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime_s,
            "appid": self.client_id,
            "azp": self.client_id,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{self.client_id}")),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{self.client_id}")),
            "tid": self.tenant_id,
            "idtyp": "app",
            "ver": "2.0",
            "uti": _b64url(secrets.token_bytes(16)),
            "sbgen": generation,
        }
        token = jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id, "typ": "JWT"})
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime_s,
            "ext_expires_in": self.token_lifetime_s,
            "access_token": token,
        }

    # ------------------------------------------------------------------ validation (the guard)
    def validate(self, token: str, audience: str) -> TokenClaims:
        """Check signature, expiry, issuer, audience and generation; raise `TokenError` otherwise.

        Verified tokens are cached (bounded LRU) so a 100k-request benchmark pays the RSA check
        once per token, not once per request; expiry and generation are re-checked every time.
        """
        audience = audience.rstrip("/")
        now = self._clock()
        with self._lock:
            hit = self._cache.get(token)
            generation = self._generation
        if hit is None:
            try:
                decoded = jwt.decode(
                    token, self._public, algorithms=["RS256"], issuer=self.issuer,
                    options={"verify_aud": False, "verify_exp": False, "require": ["exp", "aud", "iss"]},
                )
            except jwt.PyJWTError as exc:
                raise TokenError(f"Error during token validation! {exc}") from exc
            claims = TokenClaims(
                str(decoded["aud"]).rstrip("/"), int(decoded["exp"]), str(decoded.get("appid"))
            )
            hit = (claims, int(decoded.get("sbgen", 0)))
            with self._lock:
                self._cache[token] = hit
                if len(self._cache) > _TOKEN_CACHE_SIZE:
                    self._cache.popitem(last=False)
        claims, token_generation = hit
        if token_generation < generation or claims.expires_at <= now:
            raise TokenError("The token is expired.", expired=True)
        if claims.audience != audience:
            raise TokenError(f"The audience '{claims.audience}' is invalid.")
        return claims


def build_entra_app(entra: Entra) -> Starlette:
    """The Entra endpoints MSAL uses, as an ASGI app (served on its own HTTPS port)."""

    async def openid(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        if tenant not in (entra.tenant_id, "organizations", "common"):
            err = EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
            return JSONResponse(err.body(), 400)
        return JSONResponse(entra.openid_configuration())

    async def keys(request: Request) -> Response:
        return JSONResponse(entra.jwks())

    async def discovery(request: Request) -> Response:
        return JSONResponse(entra.instance_discovery())

    async def token(request: Request) -> Response:
        # application/x-www-form-urlencoded, parsed here (Starlette's form parser needs python-multipart)
        fields = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic ") and "client_secret" not in fields:
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                user, password = "", ""
            fields.setdefault("client_id", user)
            fields["client_secret"] = password
        try:
            body = entra.token(request.path_params["tenant"], fields)
        except EntraError as err:
            return JSONResponse(err.body(), err.status, headers={"Cache-Control": "no-store, no-cache"})
        return JSONResponse(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    return Starlette(
        routes=[
            Route("/common/discovery/instance", discovery, methods=["GET"]),
            Route("/{tenant}/v2.0/.well-known/openid-configuration", openid, methods=["GET"]),
            Route("/{tenant}/discovery/v2.0/keys", keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
        ]
    )
