"""The storage session reads the environment once per host, and merges it as requests would."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from shared.state.transport import SteadyEnvironmentSession, storage_transport

URL = "https://acct.table.core.windows.net/crosswalk()?$filter=PartitionKey%20eq%20'a'"


def _requests_would(url: str) -> dict[str, Any]:
    with requests.Session() as plain:
        return plain.merge_environment_settings(url, {}, None, True, None)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy",
                 "ALL_PROXY", "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_proxies_and_ca_bundle_match_requests(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    environment.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    session = SteadyEnvironmentSession()
    merged = session.merge_environment_settings(URL, {}, None, True, None)
    assert merged["proxies"]["https"] == "http://proxy.corp:3128"
    assert merged["verify"] == "/etc/corp-ca.pem"
    assert merged["proxies"] == _requests_would(URL)["proxies"]
    assert merged["verify"] == _requests_would(URL)["verify"]


def test_no_proxy_host_bypasses_the_proxy(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    environment.setenv("NO_PROXY", ".core.windows.net")
    merged = SteadyEnvironmentSession().merge_environment_settings(URL, {}, None, True, None)
    assert "https" not in merged["proxies"]


def test_explicit_settings_win_over_the_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    environment.setenv("REQUESTS_CA_BUNDLE", "/etc/corp-ca.pem")
    merged = SteadyEnvironmentSession().merge_environment_settings(
        URL, {"https": "http://explicit:8080"}, None, False, None
    )
    assert merged["proxies"]["https"] == "http://explicit:8080"
    assert merged["verify"] is False


def test_environment_is_read_once_per_host(environment: pytest.MonkeyPatch) -> None:
    session = SteadyEnvironmentSession()
    session.merge_environment_settings(URL, {}, None, True, None)
    environment.setenv("HTTPS_PROXY", "http://late.proxy:1")  # a running process's env is fixed
    assert "https" not in session.merge_environment_settings(URL, {}, None, True, None)["proxies"]
    other = "https://acct.blob.core.windows.net/locks"
    assert session.merge_environment_settings(other, {}, None, True, None)["proxies"]["https"] == (
        "http://late.proxy:1"
    )


def test_netrc_is_not_consulted(environment: pytest.MonkeyPatch, tmp_path: Any) -> None:
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine acct.table.core.windows.net login user password secret\n")
    netrc.chmod(0o600)
    environment.setenv("NETRC", str(netrc))
    prepared = SteadyEnvironmentSession().prepare_request(requests.Request("GET", URL))
    assert "Authorization" not in prepared.headers


def test_transport_owns_its_session() -> None:
    transport = storage_transport()
    transport.open()
    assert isinstance(transport.session, SteadyEnvironmentSession)
    transport.close()
    assert transport.session is None
