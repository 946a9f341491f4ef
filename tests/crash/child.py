"""The child process of the crash suite: `p2c run` with a SIGKILL planted at an exact point.

    python -m tests.crash.child --settings F --template T --kill-at POINT:N

The product is not modified: this script wraps a few product methods *in this process only* so
that at the Nth call of the chosen point the process sends itself SIGKILL (no cleanup, no
`finally`, no lease release — exactly what a killed Functions host leaves behind), then runs the
ordinary CLI entry point `shared.cli.main(["run", T, "--settings", F])`.

Kill points (N counts calls of that point over the whole run, 1-based):

* ``read``             — a source page has arrived and not yet been processed (Dataverse change
                         page or F&O page; sources are generators, so this is mid-read);
* ``write-before``     — a target write (F&O `$batch` or Dataverse upsert) is about to be sent;
* ``write-inflight``   — a target write has been sent and the process dies 0.15 s later, while
                         the answer is held back by the sandbox's latency (the write is applied,
                         its answer lost: the mid-batch case);
* ``write-after``      — a target write answered, its crosswalk record not yet stored;
* ``crosswalk-after``  — crosswalk records stored, the next page (or the checkpoint) not reached;
* ``checkpoint-before``— everything of a task is written and recorded, its checkpoint not saved;
* ``checkpoint-after`` — a task's checkpoint saved, the rest of the run (other tasks/companies,
                         the run record, the lease release) not done;
* ``error-after``      — a record was stored in the retry store (deferred/failed).

If the run ends before the Nth call, the child exits normally (status 0/1) and the test fails
because the process was not killed: every planted point must really be reached.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Delay of a `write-inflight` kill after the write was sent; the test holds each write answer
#: for longer than this with sandbox latency, so the kill lands while the answer is pending.
INFLIGHT_DELAY_S = 0.15

POINTS = (
    "read",
    "write-before",
    "write-inflight",
    "write-after",
    "crosswalk-after",
    "checkpoint-before",
    "checkpoint-after",
    "error-after",
)


def die() -> None:
    """SIGKILL this process: nothing after this line runs, nothing is flushed or released."""
    os.kill(os.getpid(), signal.SIGKILL)


class KillSwitch:
    """Counts calls of one kill point and kills the process at the Nth."""

    def __init__(self, point: str, nth: int) -> None:
        if point not in POINTS:
            raise SystemExit(f"unknown kill point {point!r}; expected one of {', '.join(POINTS)}")
        if nth < 1:
            raise SystemExit("N must be >= 1")
        self.point = point
        self.nth = nth
        self.calls = 0
        self._lock = threading.Lock()

    def hit(self, point: str) -> bool:
        """True when this call of `point` is the Nth one (the caller then kills)."""
        if point != self.point:
            return False
        with self._lock:
            self.calls += 1
            return self.calls == self.nth


def _wrap_call(owner: type, name: str, switch: KillSwitch, before: str | None, after: str | None) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if before is not None and switch.hit(before):
            die()
        timer: threading.Timer | None = None
        if before == "write-before" and switch.hit("write-inflight"):
            timer = threading.Timer(INFLIGHT_DELAY_S, die)
            timer.daemon = True
            timer.start()
        result = original(*args, **kwargs)
        if after is not None and switch.hit(after):
            die()
        return result

    setattr(owner, name, wrapper)


def _wrap_pages(owner: type, name: str, switch: KillSwitch) -> None:
    """Wrap a page generator: kill when the Nth page has arrived, before the engine sees it."""
    original: Callable[..., Iterator[Any]] = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for page in original(*args, **kwargs):
            if switch.hit("read"):
                die()
            yield page

    setattr(owner, name, wrapper)


def plant(switch: KillSwitch) -> None:
    """Install the kill point in the product classes (this process only)."""
    from shared.dataverse import DataverseClient
    from shared.engine.sources import DataverseChangeSource, FinOpsDateCursorSource, FinOpsSnapshotSource
    from shared.finops import FinOpsClient
    from shared.state.checkpoints import CheckpointStore
    from shared.state.crosswalk import CrosswalkStore
    from shared.state.errors import ErrorStore

    # page iteration of the task sources (not the look-up reads of the reference resolver)
    for source in (DataverseChangeSource, FinOpsSnapshotSource, FinOpsDateCursorSource):
        _wrap_pages(source, "read", switch)
    _wrap_call(FinOpsClient, "write", switch, "write-before", "write-after")
    _wrap_call(DataverseClient, "upsert_many", switch, "write-before", "write-after")
    _wrap_call(CrosswalkStore, "put_many", switch, None, "crosswalk-after")
    _wrap_call(CheckpointStore, "save", switch, "checkpoint-before", "checkpoint-after")
    _wrap_call(ErrorStore, "record", switch, None, "error-after")


def parse_kill_at(text: str) -> tuple[str, int]:
    point, _, nth = text.rpartition(":")
    if not point or not nth.isdigit():
        raise argparse.ArgumentTypeError(f"--kill-at must be POINT:N, got {text!r}")
    return point, int(nth)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.crash.child", description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=Path, required=True)
    parser.add_argument("--template", required=True)
    parser.add_argument("--kill-at", type=parse_kill_at, required=True)
    args = parser.parse_args(argv)
    point, nth = args.kill_at
    plant(KillSwitch(point, nth))
    from shared.cli import main as cli_main

    return cli_main(["run", args.template, "--settings", str(args.settings), "--json"])


if __name__ == "__main__":
    sys.exit(main())
