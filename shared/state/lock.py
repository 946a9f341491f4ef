"""The run lock: a blob lease on ``locks/<template>``, renewed by a background thread.

Leases are finite (60 s by default) so a crashed instance frees the lock within a minute, and a
daemon thread renews them well inside that window during long runs. Losing the lease (someone
broke it, or renewals failed for longer than the lease lasts) must stop the run from writing
state, so the engine calls :meth:`RunLock.check` before every write and gets :class:`LeaseLost`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from types import TracebackType

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobLeaseClient, ContainerClient

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
RENEW_INTERVAL_SECONDS = 20.0
#: `check()` confirms the lease itself when the last confirmation is older than this: in effect at
#: every page and write (a blob request next to a page of up to 5,000 records is cheap).
CONFIRM_INTERVAL_SECONDS = 0.05
#: A renewal failing with one of these means the lease is gone for good (broken or taken over).
_FATAL_CODES = frozenset(
    {
        "LeaseIsBrokenAndCannotBeRenewed",
        "LeaseIdMismatchWithLeaseOperation",
        "LeaseNotPresentWithLeaseOperation",
        "LeaseLost",
        "LeaseIdMismatch",
        "BlobNotFound",
        "ContainerNotFound",
    }
)


class LeaseLost(Exception):
    """This run no longer holds its template's lock; it must stop before writing anything more."""


class RunLock:
    """Exclusive right to run one template."""

    def __init__(
        self,
        container: ContainerClient,
        template: str,
        *,
        lease_seconds: int = LEASE_SECONDS,
        renew_interval: float = RENEW_INTERVAL_SECONDS,
    ) -> None:
        if not (15 <= lease_seconds <= 60):
            raise ValueError("blob leases last 15-60 seconds")
        if renew_interval <= 0 or renew_interval >= lease_seconds:
            raise ValueError("renew_interval must be positive and shorter than the lease")
        self.container = container
        self.blob = container.get_blob_client(template)
        self.template = template
        self.lease_seconds = lease_seconds
        self.renew_interval = renew_interval
        self._lease: BlobLeaseClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._mutex = threading.Lock()
        self._lost_reason: str | None = None
        self._last_renewed = 0.0

    # -- public ---------------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the lease; False when another holder has it. Creates the lock blob if missing."""
        if self._lease is not None:
            if not self.lost:
                return True
            self.release()  # a lost lease is forgotten; try to take the lock afresh
        self._ensure_blob()
        lease = BlobLeaseClient(self.blob, lease_id=str(uuid.uuid4()))
        try:
            lease.acquire(lease_duration=self.lease_seconds)
        except HttpResponseError as exc:
            if exc.status_code == 409:
                return False
            raise
        with self._mutex:
            self._lease = lease
            self._lost_reason = None
            self._last_renewed = time.monotonic()
            self._stop.clear()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"lease-renewer-{self.template}", daemon=True
        )
        self._thread.start()
        return True

    @property
    def held(self) -> bool:
        return self._lease is not None and not self.lost

    @property
    def lost(self) -> bool:
        """True when the lease was taken away or could not be renewed in time."""
        if self._lease is None:
            return False
        if self._lost_reason is None and time.monotonic() - self._last_renewed >= self.lease_seconds:
            self._lost_reason = "the lease was not renewed within its duration"
        return self._lost_reason is not None

    def check(self) -> None:
        """Raise :class:`LeaseLost` if this run may no longer write state.

        Called before every page and every write, so it also confirms the lease itself when the
        last confirmation is older than ``CONFIRM_INTERVAL_SECONDS``: a broken or stolen lease is
        then noticed within seconds, not at the background renewal (every 20 s), and a run that
        lost its lock never writes a page or a checkpoint after noticing.
        """
        stale = time.monotonic() - self._last_renewed >= CONFIRM_INTERVAL_SECONDS
        if self._lease is not None and self._lost_reason is None and stale:
            self._renew_once()
        if self.lost:
            raise LeaseLost(f"run lock of '{self.template}' lost: {self._lost_reason}")

    def _renew_once(self) -> None:
        with self._mutex:
            lease = self._lease
            if lease is None or self._lost_reason is not None:
                return
            try:
                lease.renew()
                self._last_renewed = time.monotonic()
            except HttpResponseError as exc:
                code = str(getattr(exc, "error_code", None) or "")
                if exc.status_code in (404, 409, 412) or code in _FATAL_CODES:
                    self._lost_reason = f"renewal refused ({exc.status_code} {code or exc.reason})"
                    log.error("run lock of %s lost: %s", self.template, self._lost_reason)
            except Exception as exc:  # network trouble: the background renewal keeps trying
                log.warning("confirming run lock of %s failed: %s", self.template, exc)

    def release(self) -> None:
        """Stop renewing and give the lease back (idempotent; a lost lease is just forgotten)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.renew_interval + 5)
        with self._mutex:
            lease, self._lease = self._lease, None
            if lease is not None and self._lost_reason is None:
                try:
                    lease.release()
                except HttpResponseError as exc:  # already expired or broken: nothing to give back
                    log.info("releasing lock of %s: %s", self.template, exc)

    def break_lease(self) -> bool:
        """Free the lock now, whoever holds it; for an operator after a crashed run (or tests).

        A crashed holder's lease would expire by itself within ``lease_seconds``; breaking it
        skips the wait. The holder, if still alive, notices at its next renewal (``LeaseLost``).
        Returns False when there was no lease (or no lock blob) to break.
        """
        try:
            BlobLeaseClient(self.blob).break_lease(lease_break_period=0)
        except ResourceNotFoundError:
            return False
        except HttpResponseError as exc:
            if exc.status_code == 409:  # LeaseNotPresentWithLeaseOperation: nothing held
                return False
            raise
        return True

    def __enter__(self) -> RunLock:
        if not self.acquire():
            raise LeaseLost(f"run lock of '{self.template}' is held by another run")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- internals ------------------------------------------------------------------------------

    def _ensure_blob(self) -> None:
        """Create the (empty) lock blob, and its container, the first time a template runs."""
        for _ in range(2):
            try:
                self.blob.upload_blob(b"", overwrite=False)
                return
            except ResourceExistsError:
                return
            except ResourceNotFoundError:  # ContainerNotFound: ensure() was not run yet
                with contextlib.suppress(ResourceExistsError):
                    self.container.create_container()
            except HttpResponseError as exc:
                if exc.status_code == 412:  # leased right now: it exists; acquire() reports the holder
                    return
                raise

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.renew_interval):
            self._renew_once()
            if self._lease is None or self.lost:
                return
