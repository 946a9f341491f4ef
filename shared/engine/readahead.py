"""Read the next source page while the current one is mapped and written.

A task's loop is read → map → write → record, page after page. Reading a page is a round trip
plus the service's own time to produce it (an F&O page of 5,000 rows takes a second or more), and
in a sequential loop nothing is written meanwhile: the target's request budget goes unused and
the run takes the sum of both. Fetching page k+1 in a background thread while page k is processed
overlaps the two. Only reading moves ahead: pages are still processed, and checkpoints saved, in
order and on the caller's thread, so crash safety is unchanged. At most ``depth`` pages wait in
memory, which keeps memory flat however long the source is.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

#: How often a blocked producer re-checks whether the consumer has gone away (seconds).
_POLL = 0.2


class _Done:
    """End of the source."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ReadAhead(Generic[T]):
    """Iterate ``pages`` with up to ``depth`` pages fetched ahead by a daemon thread.

    An exception raised by the source is re-raised to the consumer at the point where that page
    would have been read. Closing the iterator early (the consumer stopped: lease lost, budget spent)
    tells the producer to stop after the request it is in, and closes the source on its thread.
    """

    def __init__(self, pages: Iterator[T], *, depth: int = 1, name: str = "p2c-read-ahead") -> None:
        if depth < 1:
            raise ValueError("read-ahead depth must be at least 1")
        self._pages = pages
        self._queue: queue.Queue[T | _Done | _Failed] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._produce, name=name, daemon=True)
        self._started = False
        self._iterated = False

    def _put(self, item: T | _Done | _Failed) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            for page in self._pages:
                if not self._put(page):
                    return
            self._put(_Done())
        except BaseException as error:  # handed to the consumer, raised there
            self._put(_Failed(error))
        finally:
            close = getattr(self._pages, "close", None)
            if close is not None and self._stop.is_set():
                close()

    def start(self) -> ReadAhead[T]:
        """Begin fetching now (before the first page is asked for); idempotent."""
        if not self._thread.is_alive() and not self._started:
            self._started = True
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop fetching: the producer ends after the request it is in and closes the source."""
        self._stop.set()

    def __iter__(self) -> Iterator[T]:
        if self._iterated:
            raise RuntimeError("a ReadAhead is iterated once")
        self._iterated = True
        self.start()
        return self._pages_in_order()

    def _pages_in_order(self) -> Iterator[T]:
        try:
            while True:
                item = self._queue.get()
                if isinstance(item, _Done):
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            self._stop.set()


def read_ahead(pages: Iterator[T], *, depth: int = 1) -> Iterator[T]:
    """`pages`, with the next ``depth`` page(s) fetched in the background."""
    return iter(ReadAhead(pages, depth=depth))
