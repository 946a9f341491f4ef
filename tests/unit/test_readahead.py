"""Read-ahead of source pages: order, errors, early stop, and that it really reads ahead."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shared.engine.readahead import ReadAhead, read_ahead


def test_pages_come_in_order_and_all_of_them() -> None:
    assert list(read_ahead(iter(range(50)), depth=2)) == list(range(50))
    assert list(read_ahead(iter([]))) == []


def test_a_source_error_is_raised_where_its_page_would_have_been() -> None:
    def pages() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("page 3 failed")

    got: list[int] = []
    with pytest.raises(ConnectionError, match="page 3 failed"):
        for page in read_ahead(pages()):
            got.append(page)
    assert got == [1, 2]


def test_the_next_page_is_fetched_while_the_current_one_is_processed() -> None:
    fetched: list[int] = []
    second_fetched = threading.Event()

    def pages() -> Iterator[int]:
        for n in range(3):
            fetched.append(n)
            if n == 1:
                second_fetched.set()
            yield n

    it = read_ahead(pages(), depth=1)
    assert next(it) == 0
    # page 0 is still being "processed" here, and page 1 arrives meanwhile
    assert second_fetched.wait(5.0)
    assert list(it) == [1, 2]


def test_stopping_early_stops_the_reader_and_closes_the_source() -> None:
    closed = threading.Event()
    produced: list[int] = []

    def pages() -> Iterator[int]:
        try:
            for n in range(1000):
                produced.append(n)
                yield n
        finally:
            closed.set()

    ahead = ReadAhead(pages(), depth=1)
    it = iter(ahead)
    assert next(it) == 0
    it.close()  # the consumer gives up (lease lost, budget spent)
    assert closed.wait(5.0)
    assert len(produced) <= 3  # the current page, one ahead, and at most one in flight
    with pytest.raises(RuntimeError, match="once"):
        iter(ahead).__next__()


def test_start_fetches_before_the_first_page_is_asked_for_and_close_stops_an_unread_source() -> None:
    first_fetched = threading.Event()
    closed = threading.Event()

    def pages() -> Iterator[int]:
        try:
            first_fetched.set()
            yield 0
            yield 1
        finally:
            closed.set()

    ahead = ReadAhead(pages()).start()  # the runner opens the next task's source this way
    assert first_fetched.wait(5.0)
    ahead.close()  # the run stopped before that task began: nothing must linger
    assert closed.wait(5.0)
