"""Run history against Azurite: newest first, get by id, latest by status, JSON view."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.state import RunRecord, StateStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def run(n: int, status: str = "succeeded", template: str = "accounts") -> RunRecord:
    started = T0 + timedelta(minutes=15 * n)
    return RunRecord(
        template=template,
        run_id=f"20260501T{n:06d}-abc{n}",
        trigger="timer",
        mode="incremental",
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=42, microseconds=5),
        counts={"read": n, "written": n // 2},
        companies=["usmf", "demf"],
        message=f"run {n}",
        requests={"dataverse": {"GET": n, "429": 1}},
    )


def test_start_then_finish_overwrites_one_row(state: StateStore) -> None:
    rec = run(1)
    rec.status, rec.finished_at = "running", None
    state.runs.start(rec)
    got = state.runs.get("accounts", rec.run_id)
    assert got is not None and got.status == "running" and got.finished_at is None
    rec.status, rec.finished_at, rec.counts = "partial", T0 + timedelta(minutes=16), {"failed": 2}
    state.runs.finish(rec)
    assert state.runs.get("accounts", rec.run_id) == rec
    assert len(state.runs.list("accounts")) == 1


def test_list_is_newest_first_and_limited(state: StateStore) -> None:
    for n in (3, 1, 4, 2, 5):
        state.runs.finish(run(n))
    state.runs.finish(run(9, template="contacts"))
    listed = state.runs.list("accounts", limit=3)
    assert [r.run_id for r in listed] == [run(n).run_id for n in (5, 4, 3)]
    assert len(state.runs.list("accounts", limit=20)) == 5
    assert state.runs.list("accounts", limit=0) == []
    assert listed[0] == run(5)


def test_latest_with_and_without_status(state: StateStore) -> None:
    assert state.runs.latest("accounts") is None
    state.runs.finish(run(1, "succeeded"))
    state.runs.finish(run(2, "failed"))
    state.runs.finish(run(3, "skipped"))
    latest = state.runs.latest("accounts")
    assert latest is not None and latest.run_id == run(3).run_id
    ok = state.runs.latest("accounts", status="succeeded")
    assert ok is not None and ok.run_id == run(1).run_id
    assert state.runs.latest("accounts", status="partial") is None


def test_get_unknown_run(state: StateStore) -> None:
    state.runs.finish(run(1))
    assert state.runs.get("accounts", "nope") is None
    assert state.runs.get("contacts", run(1).run_id) is None


def test_as_dict_is_json_ready(state: StateStore) -> None:
    state.runs.finish(run(7))
    got = state.runs.get("accounts", run(7).run_id)
    assert got is not None
    data = json.loads(json.dumps(got.as_dict()))
    assert data["started_at"] == "2026-05-01T09:45:00+00:00"
    assert data["duration_s"] == pytest.approx(42.0, abs=0.01)
    assert data["requests"] == {"dataverse": {"GET": 7, "429": 1}}
    assert data["companies"] == ["usmf", "demf"]


def test_invalid_status_is_refused(state: StateStore) -> None:
    with pytest.raises(ValueError, match="status"):
        state.runs.finish(run(1, "done"))
