"""The HTTP transport of the storage clients: environment settings read once, not per request.

``requests`` re-reads the process environment on every request when ``trust_env`` is on (the
default azure-core uses): it walks ``os.environ`` for proxy variables, checks ``no_proxy``, looks
for CA-bundle variables and opens ``~/.netrc``. For the crosswalk's hundreds of small Table
requests per page that was about a fifth of each request's CPU (profile in
``docs/performance.md``). The environment of a running process does not change, and every request
of a storage client goes to one account endpoint, so the result is the same each time: here it is
computed once per scheme and host and merged into each request exactly as ``requests`` would.

Left out on purpose: ``~/.netrc``. Storage requests carry their own ``Authorization`` header (shared
key, SAS or Entra); a netrc entry for the account host would only replace it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

#: Environment variables ``requests`` reads for a CA bundle, in its order of preference.
CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


class _Environment:
    """Proxies and CA bundle for one endpoint, as ``requests`` derives them from the environment."""

    def __init__(self, origin: str) -> None:
        self.proxies: dict[str, str] = dict(requests.utils.get_environ_proxies(origin))
        bundles = (os.environ.get(name) for name in CA_BUNDLE_VARIABLES)
        self.ca_bundle: str | None = next((b for b in bundles if b), None)


class SteadyEnvironmentSession(requests.Session):
    """A session that reads proxy and CA-bundle variables once per scheme and host."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # requests' own per-request reading, replaced below
        self._environments: dict[tuple[str, str], _Environment] = {}
        retries = Retry(total=False, redirect=False, raise_on_status=False)  # azure-core retries
        for scheme in ("http://", "https://"):
            self.mount(scheme, HTTPAdapter(max_retries=retries))

    def merge_environment_settings(
        self,
        url: str | bytes | None,
        proxies: Mapping[str, str] | None,
        stream: bool | None,
        verify: bool | str | None,
        cert: Any,
    ) -> dict[str, Any]:
        text = url.decode() if isinstance(url, bytes) else (url or "")
        parts = urlsplit(text)
        key = (parts.scheme, parts.netloc)
        environment = self._environments.get(key)
        if environment is None:  # a race only computes the same value twice
            environment = self._environments[key] = _Environment(f"{parts.scheme}://{parts.netloc}/")
        merged = dict(proxies or {})
        for scheme, proxy in environment.proxies.items():
            merged.setdefault(scheme, proxy)
        if (verify is True or verify is None) and environment.ca_bundle:
            verify = environment.ca_bundle
        return super().merge_environment_settings(text, merged, stream, verify, cert)


def storage_transport() -> RequestsTransport:
    """A transport for one storage client (each client closes its own)."""
    return RequestsTransport(session=SteadyEnvironmentSession(), session_owner=True)
