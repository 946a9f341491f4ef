"""Bearer tokens for Dataverse and F&O: MSAL client credentials (secret or certificate) or managed identity.

One provider serves one scope (`<environment URL>/.default`). Tokens live in MSAL's in-memory cache,
which hands back a cached token until 5 minutes before it expires and then asks Entra for a new one,
so a long run never sends a token that dies in flight. `BearerAuth` plugs a provider into httpx and
answers a 401 by refreshing once (a revoked or rotated token) before the HTTP layer sees the 401.

Nothing here logs or formats a token, client secret or key; `AuthError` carries only Entra's error
code and description (with any configured secret scrubbed out, in case a service ever echoes it).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import msal
from msal.exceptions import MsalError, MsalServiceError

from shared.settings import Settings

__all__ = [
    "AuthError",
    "BearerAuth",
    "CertificateCredential",
    "ManagedIdentityTokenProvider",
    "MsalTokenProvider",
    "TokenProvider",
    "build_auth",
    "load_certificate",
]

#: Authority hosts MSAL knows; any other host (the local sandbox) skips instance discovery.
_MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.windows.net",
        "login.microsoft.com",
        "sts.windows.net",
    }
)


class AuthError(Exception):
    """A token could not be obtained.

    `code` is Entra's `error` (e.g. `invalid_client`) or a local code; `description` is Entra's
    `error_description` (AADSTS code and text); `transient` is True for network failures and 5xx
    answers of the token endpoint, which are worth retrying, unlike a wrong secret.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        description: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.description = description
        self.transient = transient


class TokenProvider(Protocol):
    """Something that hands out access tokens for one scope."""

    def token(self, *, force_refresh: bool = False) -> str:
        """A valid access token; `force_refresh` skips the cache (after the service rejected a token)."""
        ...


# --- msal's HTTP seam ---------------------------------------------------------------------------


class _HttpxForMsal:
    """msal's `http_client` contract (get/post returning objects with status_code/text/headers) over httpx.

    Using httpx keeps TLS trust (`P2C_CA_BUNDLE`) and timeouts the same as the service calls, and
    avoids a second HTTP stack. msal passes form data as a dict and may pass None header values.
    """

    def __init__(
        self, *, verify: str | bool, timeout: float, transport: httpx.BaseTransport | None = None
    ) -> None:
        self._client = httpx.Client(
            verify=verify, timeout=timeout, follow_redirects=False, transport=transport
        )

    @staticmethod
    def _headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
        return {k: str(v) for k, v in (headers or {}).items() if v is not None}

    @staticmethod
    def _timeout(kwargs: Mapping[str, Any]) -> Any:
        """msal's own timeout when it passes one, else the client's (None would mean no timeout)."""
        timeout = kwargs.get("timeout")
        return httpx.USE_CLIENT_DEFAULT if timeout is None else timeout

    def get(
        self, url: str, params: Any = None, headers: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        return self._client.get(
            url, params=params, headers=self._headers(headers), timeout=self._timeout(kwargs)
        )

    def post(
        self,
        url: str,
        params: Any = None,
        data: Any = None,
        headers: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        if isinstance(data, Mapping):
            # msal hands the client assertion over as bytes; httpx would form-encode str(b"...")
            data = {k: v.decode("utf-8") if isinstance(v, bytes) else v for k, v in data.items()}
        return self._client.post(
            url, params=params, data=data, headers=self._headers(headers), timeout=self._timeout(kwargs)
        )

    def close(self) -> None:
        self._client.close()


# --- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateCredential:
    """The parts of a PEM credential msal needs, plus thumbprints for diagnostics (they are public)."""

    private_key_pem: str
    certificate_pem: str
    sha1_thumbprint: str
    sha256_thumbprint: str

    def __repr__(self) -> str:  # the key must never reach a log line
        return f"CertificateCredential(sha1_thumbprint={self.sha1_thumbprint!r})"


def load_certificate(path: str | Path, password: str | None = None) -> CertificateCredential:
    """Read a PEM file holding the private key and the certificate registered on the app registration.

    The key is decrypted here (not later inside msal) so that a wrong password or a file without a
    key fails with a message naming the setting; thumbprints are computed from the certificate the
    way Entra shows them (hex). The returned key PEM is unencrypted and stays in memory only.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuthError(
            f"P2C_CLIENT_CERTIFICATE_PATH: cannot read {str(path)!r}: {exc.strerror}", code="certificate"
        ) from None
    try:
        key = serialization.load_pem_private_key(data, password.encode("utf-8") if password else None)
    except TypeError as exc:  # password given for an unencrypted key, or missing for an encrypted one
        raise AuthError(f"P2C_CLIENT_CERTIFICATE_PASSWORD: {exc}", code="certificate") from None
    except ValueError:
        raise AuthError(
            "P2C_CLIENT_CERTIFICATE_PATH: no readable private key in the PEM file (or the password in "
            "P2C_CLIENT_CERTIFICATE_PASSWORD is wrong)",
            code="certificate",
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise AuthError(
            "P2C_CLIENT_CERTIFICATE_PATH: the PEM file holds no certificate; it needs the private key "
            "and the certificate uploaded to the app registration",
            code="certificate",
        ) from None
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return CertificateCredential(
        private_key_pem=key_pem,
        certificate_pem=cert_pem,
        sha1_thumbprint=cert.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - Entra's thumbprint
        sha256_thumbprint=cert.fingerprint(hashes.SHA256()).hex().upper(),
    )


# --- providers -----------------------------------------------------------------------------------


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _token_from_result(result: Mapping[str, Any] | None, what: str, secrets: list[str]) -> str:
    """The access token of an msal result, or AuthError with Entra's code and description."""
    if result and isinstance(result.get("access_token"), str):
        return str(result["access_token"])
    result = result or {}
    code = str(result.get("error") or "no_token")
    description = _scrub(str(result.get("error_description") or "no access token in the response"), secrets)
    status = result.get("status_code")
    transient = code in {"temporarily_unavailable", "service_unavailable"} or (
        isinstance(status, int) and status >= 500
    )
    raise AuthError(f"{what}: {code}: {description}", code=code, description=description, transient=transient)


def _drop_access_tokens(cache: msal.TokenCache) -> None:
    """Remove cached access tokens so the next acquire goes to Entra (msal's client-credentials
    call has no force_refresh). The cache belongs to one provider and so to one scope."""
    for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
        cache.remove_at(entry)


def _from_msal_error(exc: MsalError, what: str, secrets: list[str]) -> AuthError:
    """msal raises (rather than returns) on 5xx answers and failed instance discovery."""
    text = _scrub(str(exc), secrets)
    status = re.search(r"HTTP Error: (\d{3})", text)
    transient = status is not None and int(status.group(1)) >= 500
    code = getattr(exc, "error", None) or ("service_unavailable" if transient else "msal_error")
    return AuthError(f"{what}: {text}", code=str(code), description=text, transient=transient)


class MsalTokenProvider:
    """Client-credentials tokens from Entra ID (or the sandbox's stand-in) via msal.

    The msal application is built on first use, not in the constructor, because msal performs OIDC
    discovery while constructing it; building lazily keeps `build_auth` free of network calls and
    turns discovery failures into `AuthError` where callers already expect auth failures.
    """

    def __init__(
        self,
        settings: Settings,
        scope: str,
        *,
        http_client: Any | None = None,
        token_cache: msal.TokenCache | None = None,
    ) -> None:
        if settings.use_managed_identity:
            raise ValueError("settings select managed identity; use ManagedIdentityTokenProvider")
        if not settings.client_id or not settings.tenant_id:
            raise ValueError("P2C_CLIENT_ID and P2C_TENANT_ID are required for client credentials")
        self.scope = scope
        self._settings = settings
        self._client_id = settings.client_id
        self._authority = settings.authority
        self._secrets: list[str] = []
        self.certificate: CertificateCredential | None = None
        self._credential: str | dict[str, str] = self._build_credential(settings)
        self._http_client = http_client
        self._owns_http = http_client is None
        self._cache = token_cache if token_cache is not None else msal.TokenCache()
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    def _build_credential(self, settings: Settings) -> str | dict[str, str]:
        if settings.client_certificate_path is not None:
            password = settings.client_certificate_password
            cert = load_certificate(
                settings.client_certificate_path, password.get_secret_value() if password else None
            )
            self.certificate = cert
            # with public_certificate and no explicit thumbprint msal computes both thumbprints and
            # signs with PS256 + x5t#S256 (SHA-1 only for ADFS), which is what Entra prefers today
            return {"private_key": cert.private_key_pem, "public_certificate": cert.certificate_pem}
        if settings.client_secret is None:
            raise ValueError("no client secret or certificate configured")
        secret = settings.client_secret.get_secret_value()
        self._secrets.append(secret)
        return secret

    @property
    def is_microsoft_authority(self) -> bool:
        host = (urlsplit(self._settings.authority_host).hostname or "").lower()
        return host in _MICROSOFT_AUTHORITY_HOSTS

    def _application(self) -> msal.ConfidentialClientApplication:
        if self._app is not None:
            return self._app
        if self._http_client is None:
            self._http_client = _HttpxForMsal(
                verify=self._settings.ca_bundle or True, timeout=self._settings.http_timeout_seconds
            )
        extra: dict[str, Any] = {}
        if not self.is_microsoft_authority:
            # the local sandbox (https://127.0.0.1:port) is unknown to Microsoft's instance discovery
            extra = {"instance_discovery": False, "validate_authority": False}
        try:
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._credential,
                authority=self._authority,
                token_cache=self._cache,
                http_client=self._http_client,
                verify=self._settings.ca_bundle or True,
                timeout=self._settings.http_timeout_seconds,
                **extra,
            )
        except httpx.HTTPError as exc:
            raise AuthError(
                f"authority {self._authority} unreachable: {type(exc).__name__}: {exc}",
                code="network",
                transient=True,
            ) from None
        except MsalServiceError as exc:
            what = f"authority {self._authority} discovery failed"
            raise _from_msal_error(exc, what, self._secrets) from None
        except ValueError as exc:  # msal: OIDC discovery failed (unknown tenant, bad authority host)
            message = _scrub(str(exc), self._secrets)
            raise AuthError(
                f"authority {self._authority} rejected: {message}",
                code="invalid_authority",
                description=message,
            ) from None
        return self._app

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:  # one token request at a time; the others then hit the fresh cache entry
            app = self._application()
            if force_refresh:
                _drop_access_tokens(self._cache)
            try:
                result = app.acquire_token_for_client(scopes=[self.scope])
            except MsalServiceError as exc:
                raise _from_msal_error(exc, f"token request for {self.scope} failed", self._secrets) from None
            except httpx.HTTPError as exc:
                raise AuthError(
                    f"token request for {self.scope} failed: {type(exc).__name__}",
                    code="network",
                    transient=True,
                ) from None
            return _token_from_result(result, f"token request for {self.scope} failed", self._secrets)

    def close(self) -> None:
        if self._owns_http and isinstance(self._http_client, _HttpxForMsal):
            self._http_client.close()


class ManagedIdentityTokenProvider:
    """Tokens from the app's managed identity (system-assigned, or user-assigned by client id).

    Managed identity endpoints take a resource, not a scope, so `<url>/.default` becomes `<url>`.
    """

    def __init__(
        self,
        settings: Settings,
        scope: str,
        *,
        http_client: Any | None = None,
        token_cache: msal.TokenCache | None = None,
    ) -> None:
        self.scope = scope
        self.resource = scope.removesuffix("/.default")
        client_id = settings.managed_identity_client_id
        self.identity: msal.SystemAssignedManagedIdentity | msal.UserAssignedManagedIdentity = (
            msal.UserAssignedManagedIdentity(client_id=client_id)
            if client_id
            else msal.SystemAssignedManagedIdentity()
        )
        self._cache = token_cache if token_cache is not None else msal.TokenCache()
        self._owned = http_client is None
        self._http_client: Any = http_client or _HttpxForMsal(
            verify=True, timeout=settings.http_timeout_seconds
        )
        self._client = msal.ManagedIdentityClient(
            self.identity, http_client=self._http_client, token_cache=self._cache
        )
        self._lock = threading.Lock()

    def token(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            if force_refresh:
                _drop_access_tokens(self._cache)
            try:
                result = self._client.acquire_token_for_client(resource=self.resource)
            except MsalServiceError as exc:
                what = f"managed identity token for {self.resource} failed"
                raise _from_msal_error(exc, what, []) from None
            except httpx.HTTPError as exc:
                raise AuthError(
                    f"managed identity token for {self.resource} failed: {type(exc).__name__}",
                    code="network",
                    transient=True,
                ) from None
            except msal.ManagedIdentityError as exc:
                raise AuthError(f"managed identity unavailable: {exc}", code="managed_identity") from None
            return _token_from_result(result, f"managed identity token for {self.resource} failed", [])

    def close(self) -> None:
        if self._owned and isinstance(self._http_client, _HttpxForMsal):
            self._http_client.close()


# --- httpx ---------------------------------------------------------------------------------------


class BearerAuth(httpx.Auth):
    """Adds `Authorization: Bearer`; on a 401 fetches a fresh token and resends the request once.

    A second 401 goes back to the caller (the HTTP layer turns it into `AuthFailed`): a token that
    is rejected straight after issue means missing permissions, and retrying would not help.
    When many threads see a 401 for the same expired token, only the first forces a refresh; the
    others find a token different from the one that failed and use it.
    """

    requires_request_body = True  # the retry must be able to resend the body

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider
        self._refresh_lock = threading.Lock()

    def _fresh_token(self, rejected: str) -> str:
        with self._refresh_lock:
            current = self.provider.token()
            if current != rejected:
                return current
            return self.provider.token(force_refresh=True)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.provider.token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        request.headers["Authorization"] = f"Bearer {self._fresh_token(token)}"
        yield request


def build_auth(settings: Settings, scope: str, *, http_client: Any | None = None) -> httpx.Auth:
    """The httpx auth for one service scope, using the credential the settings select.

    `http_client` replaces msal's HTTP client (tests); normally msal gets an httpx client that trusts
    `P2C_CA_BUNDLE`.
    """
    provider: TokenProvider
    if settings.use_managed_identity:
        provider = ManagedIdentityTokenProvider(settings, scope, http_client=http_client)
    else:
        provider = MsalTokenProvider(settings, scope, http_client=http_client)
    return BearerAuth(provider)
