"""Per-record write outcomes shared by the Dataverse and F&O clients (design.md §3 step 7).

Bulk writes never report "the batch failed": every input record gets exactly one outcome, so the
engine can record crosswalk entries for the ones that landed and retry-store entries for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from shared.odata.batch import BatchPartResponse
from shared.odata.errors import SyncError

__all__ = ["WriteOutcome", "match_parts", "run_chunks"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class WriteOutcome:
    """What happened to one record of a bulk write.

    ``target_id`` is the id the row has in the target (Dataverse GUID, or the F&O key text such as
    ``"usmf|C0001"``). ``created`` is True/False when the service told us, None when it cannot be
    known (UpsertMultiple answers 204 for creates and updates alike).
    """

    source_key: str
    ok: bool
    target_id: str | None = None
    created: bool | None = None
    error: SyncError | None = None


def match_parts(parts: Sequence[BatchPartResponse], count: int) -> list[BatchPartResponse | None]:
    """Line `$batch` response parts up with the ``count`` requests that were sent.

    Requests carry Content-IDs ``"1".."count"``. Parts are matched by Content-ID when every part has
    a usable one, else by position when the counts agree. Anything that cannot be pinned is None: the
    caller reports that record as a transient failure instead of guessing whose answer a part is.
    """
    by_id: dict[int, BatchPartResponse] = {}
    for part in parts:
        cid = (part.content_id or "").strip()
        if cid.isdigit() and 1 <= int(cid) <= count:
            by_id.setdefault(int(cid), part)
    if by_id and len(by_id) == len(parts):
        return [by_id.get(i + 1) for i in range(count)]
    if len(parts) == count:
        return list(parts)
    return [by_id.get(i + 1) for i in range(count)]


def run_chunks(func: Callable[[T], R], chunks: Sequence[T], workers: int) -> list[R]:
    """``[func(c) for c in chunks]``, with up to ``workers`` chunks in flight at once; results in order.

    Bulk writes are latency-bound: each UpsertMultiple or ``$batch`` waits a round trip plus the
    server's per-record time, so sending chunks side by side multiplies throughput. The caller's
    ``ServiceHttp`` limiter still decides how many requests really go out together (it shrinks on
    429s), so ``workers`` is only the ceiling: the limiter's maximum. One chunk, or one worker, runs
    inline without a thread. The first exception (a run-level error such as ``AuthFailed``) is
    re-raised after the chunks not yet started are cancelled and those in flight have finished.
    """
    if workers <= 1 or len(chunks) <= 1:
        return [func(chunk) for chunk in chunks]
    pool = ThreadPoolExecutor(max_workers=min(workers, len(chunks)), thread_name_prefix="p2c-write")
    futures: list[Future[R]] = []
    try:
        futures = [pool.submit(func, chunk) for chunk in chunks]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
