"""Start and stop a real Azurite (Azure Storage emulator) on free loopback ports.

Tests, the demo and the benchmarks all need real Table, Blob and Queue storage; Azurite is
installed into the project by `npm ci` (pinned in package.json), never by hand.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT = "devstoreaccount1"
# The well-known, public Azurite development key: not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class AzuriteEndpoints:
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        host = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={host}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={host}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={host}:{self.table_port}/{ACCOUNT};"
        )


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _azurite_binary() -> str:
    local = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return str(local)
    found = shutil.which("azurite")
    if found:
        return found
    raise RuntimeError("Azurite is not installed: run `make setup` (npm ci installs azurite 3.35.0)")


def _wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"Azurite did not open port {port} in time")


class Azurite:
    """A running Azurite process; use as a context manager or call start()/stop()."""

    def __init__(self, location: Path | None = None, in_memory: bool = True) -> None:
        self._location = location
        self._in_memory = in_memory
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.endpoints: AzuriteEndpoints | None = None

    def start(self, timeout: float = 30.0) -> AzuriteEndpoints:
        for _attempt in range(3):
            ports = AzuriteEndpoints(free_port(), free_port(), free_port())
            if len({ports.blob_port, ports.queue_port, ports.table_port}) < 3:
                continue
            argv = [
                _azurite_binary(),
                "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose",
                "--blobHost", "127.0.0.1", "--blobPort", str(ports.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(ports.queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", str(ports.table_port),
            ]
            if self._in_memory:
                # Azurite refuses --location together with in-memory persistence; its debug and
                # extent files still go to the working directory, so run it in a temp dir.
                argv.append("--inMemoryPersistence")
                self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
                cwd = self._tmp.name
            else:
                location = self._location or PROJECT_ROOT / ".azurite"
                location.mkdir(parents=True, exist_ok=True)
                argv += ["--location", str(location)]
                cwd = str(location)
            self._proc = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=cwd,
                env={**os.environ, "AZURITE_ACCEPT_EULA": "true"},
            )
            deadline = time.monotonic() + timeout
            try:
                for port in (ports.blob_port, ports.queue_port, ports.table_port):
                    _wait_for_port(port, deadline)
            except TimeoutError:
                self.stop()
                continue
            if self._proc.poll() is not None:  # lost a port race: try fresh ports
                self.stop()
                continue
            self.endpoints = ports
            return ports
        raise RuntimeError("could not start Azurite on free loopback ports after 3 attempts")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> AzuriteEndpoints:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
