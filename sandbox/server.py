"""The sandbox: Entra ID, Dataverse and F&O stand-ins served over real HTTPS on loopback.

`Sandbox` starts three uvicorn servers (one per service, each on its own free 127.0.0.1 port, in
its own thread), with a throwaway trustme CA whose PEM file the product trusts through
`P2C_CA_BUNDLE`. The product therefore runs unchanged: MSAL against the Entra stand-in, httpx with
TLS verification against the data services. Tests reach the stores, faults, limits, latency and
request log directly through the `Sandbox` object.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sandbox.catalogue import load_catalogue_files
from sandbox.dataverse import DataverseStore, build_dataverse_app
from sandbox.entra import Entra, build_entra_app
from sandbox.finops import FinOpsStore, build_finops_app
from sandbox.guard import TRANSPORT_KEY, Faults, Guard, Latency, Limits, RequestLog

DEFAULT_CATALOGUE_DIR = Path(__file__).resolve().parent / "schemas"
_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox behaves; the defaults are the real services' documented values."""

    seed: int = 1
    token_lifetime_s: int = 3600
    default_company: str = "usmf"
    dataverse_max_page_size: int = 5000
    finops_page_size: int = 10000
    catalogue_dir: Path | str | None = None


@dataclass(frozen=True)
class SandboxInfo:
    """Everything a client needs to reach the sandbox; JSON-able for `python -m sandbox serve`."""

    dataverse_url: str
    finops_url: str
    authority_url: str
    tenant_id: str
    client_id: str
    client_secret: str
    ca_file: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SandboxInfo:
        names = {f.name for f in fields(cls)}
        missing = names - data.keys()
        if missing:
            raise ValueError(f"SandboxInfo is missing {sorted(missing)}")
        return cls(**{name: str(data[name]) for name in names})


class _SandboxProtocol(H11Protocol):
    """uvicorn's h11 protocol that also exposes the connection's transport to the app.

    The guard needs it for the "reset" and "hang" faults: ASGI has no way to drop a connection
    without answering, so the guard aborts the transport itself.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        inner = self.app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            scope[TRANSPORT_KEY] = transport
            await inner(scope, receive, send)

        self.app = app


def _bind_loopback() -> socket.socket:
    """A listening socket on a free loopback port (bound now, so no other process can take it)."""
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # TCP, and without it Nagle + delayed ACKs add ~40 ms to every response written in two parts.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _ServerThread:
    """One uvicorn server on a pre-bound socket, run in a daemon thread."""

    def __init__(self, name: str, app: Any, sock: socket.socket, certfile: str, keyfile: str) -> None:
        config = uvicorn.Config(
            app,
            http=_SandboxProtocol,
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="critical",
            access_log=False,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            backlog=2048,
        )
        self.name = name
        self.sock = sock
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{name}", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def wait_started(self, deadline: float) -> None:
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError(f"sandbox {self.name} server exited during start-up")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sandbox {self.name} server did not start in time")
            time.sleep(0.005)

    def stop(self) -> None:
        self.server.should_exit = True

    def join(self) -> None:
        self.thread.join(_STOP_TIMEOUT_S)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(_STOP_TIMEOUT_S)
        self.sock.close()


def _build_app(factory: Any, store: Any, base_path: str, page_size: int, default_company: str) -> Any:
    """Call a stand-in's `build_*_app`, passing page size / default company only if the builder takes them.

    The two stand-ins are written independently; Dataverse's page cap is a module constant today.
    """
    params = inspect.signature(factory).parameters
    kwargs: dict[str, Any] = {"base_path": base_path}
    for name in ("max_page_size", "page_size"):
        if name in params:
            kwargs[name] = page_size
            break
    if "default_company" in params:
        kwargs["default_company"] = default_company
    return factory(store, **kwargs)


class Sandbox:
    """The running sandbox; use as a context manager (or `start()` / `stop()`)."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        seed = self.config.seed
        self.tenant_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"p2c-sandbox-tenant:{seed}"))
        self.client_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"p2c-sandbox-client:{seed}"))
        self.client_secret = secrets.token_urlsafe(30)
        self.log = RequestLog()
        self.limits = Limits()
        self.faults = Faults()
        self.latency = Latency()
        self.entra = Entra(
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            audiences=[],
            token_lifetime_s=self.config.token_lifetime_s,
        )
        catalogue_dir = Path(self.config.catalogue_dir or DEFAULT_CATALOGUE_DIR)
        dataverse_catalogue, finops_catalogue = load_catalogue_files(catalogue_dir)
        self.dataverse = DataverseStore(dataverse_catalogue)
        self.finops = FinOpsStore(finops_catalogue, default_company=self.config.default_company)
        self._servers: list[_ServerThread] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._info: SandboxInfo | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def info(self) -> SandboxInfo:
        if self._info is None:
            raise RuntimeError("the sandbox is not running: use `with Sandbox(...) as sb` or call start()")
        return self._info

    def start(self) -> SandboxInfo:
        if self._info is not None:
            return self._info
        self._tmp = tempfile.TemporaryDirectory(prefix="p2c-sandbox-")
        tmp = Path(self._tmp.name)
        ca = trustme.CA(organization_name="p2c-sync sandbox")
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca_file = tmp / "sandbox-ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        certfile, keyfile = tmp / "server.pem", tmp / "server.key"
        cert.private_key_pem.write_to_path(str(keyfile))
        with certfile.open("wb") as fh:
            for blob in cert.cert_chain_pems:
                fh.write(blob.bytes())

        socks = {name: _bind_loopback() for name in ("entra", "dataverse", "finops")}
        urls = {name: f"https://127.0.0.1:{s.getsockname()[1]}" for name, s in socks.items()}
        self.entra.set_authority(urls["entra"])
        self.entra.set_audiences([urls["dataverse"], urls["finops"]])

        apps: dict[str, Any] = {"entra": build_entra_app(self.entra)}
        apps["dataverse"] = self._guard(
            "dataverse",
            _build_app(
                build_dataverse_app, self.dataverse, "/api/data/v9.2",
                self.config.dataverse_max_page_size, self.config.default_company,
            ),
            urls["dataverse"],
        )
        apps["finops"] = self._guard("finops", self._finops_app(), urls["finops"])
        try:
            self._servers = [
                _ServerThread(name, apps[name], socks[name], str(certfile), str(keyfile)) for name in socks
            ]
            for server in self._servers:
                server.start()
            deadline = time.monotonic() + _START_TIMEOUT_S
            for server in self._servers:
                server.wait_started(deadline)
        except BaseException:
            self.stop()
            for s in socks.values():
                s.close()
            raise
        self._info = SandboxInfo(
            dataverse_url=urls["dataverse"],
            finops_url=urls["finops"],
            authority_url=urls["entra"],
            tenant_id=self.tenant_id,
            client_id=self.client_id,
            client_secret=self.client_secret,
            ca_file=str(ca_file),
        )
        return self._info

    def _guard(self, service: str, app: Any, url: str) -> Guard:
        return Guard(
            app, service=service, audience=url, entra=self.entra, limits=self.limits,
            faults=self.faults, latency=self.latency, log=self.log,
        )

    def _finops_app(self) -> Any:
        return _build_app(
            build_finops_app, self.finops, "/data", self.config.finops_page_size, self.config.default_company
        )

    def stop(self) -> None:
        for server in self._servers:
            server.stop()
        for server in self._servers:
            server.join()
        self._servers = []
        self._info = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp.name, ignore_errors=True)
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ data + state
    def load(self, dataset: Any) -> None:
        """Load a `sandbox.datagen.Dataset` (rows by entity set) into both stores."""
        for entity_set, rows in dataset.dataverse.items():
            self.dataverse.load_rows(entity_set, rows)
        for entity_set, rows in dataset.finops.items():
            self.finops.load_rows(entity_set, rows)

    def reset(self) -> None:
        """Empty both stores and clear faults, limits, latency and the log; servers keep running."""
        self.dataverse.clear()
        self.finops.clear()
        self.faults.clear()
        self.limits.clear()
        self.latency.clear()
        self.log.reset()
