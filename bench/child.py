"""One measured job in a fresh process: ``python -m bench.child < job.json > result.json``.

The parent (``bench.run``) hosts the sandbox and Azurite; every product run, naive run and parse
baseline happens here, in a process of its own, so peak RSS and CPU seconds are the product's alone
and a 200,000-record run starts from the same empty heap as a 20,000-record one.

Job kinds:
- ``product``: ``SyncEngine.run(template, mode=...)`` against the sandbox, state under ``prefix``.
  Each entry of ``tasks`` (one per task and company) carries that task's own ``counts`` as the
  engine reports them (read, written, unchanged, deferred, ...), plus ``skipped``: read but not
  selected by the template's rules.
- ``naive``: ``bench.naive.NaiveSync`` (one request per record, sequential).
- ``parse``: the floor for CPU per record: parse the source JSON pages and serialize every target row,
  nothing else (the CPU target is "≤ 3× this").

With ``"profile": "<path>"`` the job runs under pyinstrument and writes a text profile there; a
path ending in ``.pstats`` runs it under cProfile instead (self time per function, every thread the
job starts included, for ``python -m pstats``).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import httpx


def _peak_rss_mb() -> float:
    """This process's peak resident set, in MiB.

    ``VmHWM`` belongs to the address space created by ``execve``; ``ru_maxrss`` survives the exec and
    would report the forking parent's size (the sandbox, with all its rows) as the child's peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class _CProfile:
    """cProfile on the job's thread and on every thread it starts (the read-ahead and write pools)."""

    def __init__(self, path: str) -> None:
        import cProfile
        import threading

        self._path = path
        self._threading = threading
        self._profiles: list[Any] = []
        # Thread CPU time, not wall time: a call that releases the GIL would otherwise be charged
        # with the time other threads held it.
        self._new = lambda: cProfile.Profile(time.thread_time)

    def _thread_hook(self, *_: Any) -> None:
        profile = self._new()
        self._profiles.append(profile)
        profile.enable()  # replaces this hook on the thread: the Profile now receives its calls

    def start(self) -> None:
        self._threading.setprofile(self._thread_hook)
        main = self._new()
        self._profiles.append(main)
        main.enable()

    def stop(self) -> None:
        self._threading.setprofile(None)
        for profile in self._profiles:
            profile.disable()
        import pstats

        stats = pstats.Stats(self._profiles[0])
        for profile in self._profiles[1:]:
            stats.add(profile)
        stats.dump_stats(self._path)


def _profiler(path: str | None) -> Any:
    if not path:
        return None
    if path.endswith(".pstats"):
        return _CProfile(path)
    from pyinstrument import Profiler

    return Profiler(interval=0.005)


def run_product(job: dict[str, Any]) -> dict[str, Any]:
    from shared.engine import SyncEngine
    from shared.settings import Settings
    from shared.state import StateStore

    settings = Settings.from_env(job["env"])
    state = StateStore.from_connection_string(
        job["env"]["P2C_STATE_STORAGE_CONNECTION_STRING"], prefix=job["prefix"]
    )
    state.ensure()
    engine = SyncEngine(settings, state)
    # Only the run is timed: settings, catalogue and table creation are one-off start-up costs.
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = engine.run(job["template"], trigger="cli", mode=job.get("mode", "incremental"))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    tasks = []
    for task in outcome.tasks:  # each task's counts, plus what its selection rules left out
        entry = dict(task)
        counts = dict(entry.get("counts") or {})
        if counts:
            settled = sum(counts.get(k, 0) for k in ("written", "unchanged", "failed", "deferred"))
            counts["skipped"] = counts.get("read", 0) - settled
        entry["counts"] = counts
        tasks.append(entry)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "tasks": tasks,
        "status": outcome.status,
        "message": outcome.message,
        "counts": outcome.counts,
        "requests": outcome.requests,
    }


def run_naive(job: dict[str, Any]) -> dict[str, Any]:
    from bench.naive import NaiveSync
    from shared.settings import Settings

    naive = NaiveSync(Settings.from_env(job["env"]), limit=job.get("limit"))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        result = naive.run(job["template"], create=bool(job.get("create", True)))
    finally:
        naive.close()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "status": "succeeded" if result.failed == 0 else "partial",
        "counts": {
            "read": result.read,
            "written": result.written,
            "failed": result.failed,
            "skipped": result.skipped,
        },
        "requests": {
            "naive": {**{f"kind.{k}": v for k, v in result.requests.items()}, "throttled": result.throttled}
        },
    }


def run_parse(job: dict[str, Any]) -> dict[str, Any]:
    """CPU seconds to json.loads every source page and json.dumps every target row (nothing else)."""
    from shared.auth import build_auth
    from shared.settings import Settings

    settings = Settings.from_env(job["env"])
    verify: Any = settings.ca_bundle or True
    cpu = 0.0
    records = 0
    targets = 0
    for service, url, headers in job["sources"]:
        scope = settings.dataverse_scope if service == "dataverse" else settings.finops_scope
        with httpx.Client(auth=build_auth(settings, scope), verify=verify, timeout=120.0) as client:
            next_url: str | None = url
            while next_url:
                raw = client.get(next_url, headers=headers).content
                t0 = time.process_time()
                body = json.loads(raw)
                cpu += time.process_time() - t0
                records += len(body.get("value", []))
                next_url = body.get("@odata.nextLink")
    for service, url, headers in job["targets"]:
        scope = settings.dataverse_scope if service == "dataverse" else settings.finops_scope
        with httpx.Client(auth=build_auth(settings, scope), verify=verify, timeout=120.0) as client:
            next_url = url
            while next_url:
                body = client.get(next_url, headers=headers).json()
                rows = body.get("value", [])
                t0 = time.process_time()
                for row in rows:
                    json.dumps(row)
                cpu += time.process_time() - t0
                targets += len(rows)
                next_url = body.get("@odata.nextLink")
    return {"status": "succeeded", "counts": {"read": records, "written": targets}, "parse_cpu_s": cpu}


JOBS = {"product": run_product, "naive": run_naive, "parse": run_parse}


def main() -> int:
    job = json.loads(sys.stdin.read())
    runner = JOBS[job["kind"]]
    profiler = _profiler(job.get("profile"))
    rss_before = _peak_rss_mb()
    ctx: AbstractContextManager[Any] = nullcontext()
    if profiler is not None:
        profiler.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with ctx:
        result = runner(job)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    if profiler is not None:
        profiler.stop()
        if not job["profile"].endswith(".pstats"):
            Path(job["profile"]).write_text(profiler.output_text(unicode=True, color=False, show_all=False))
    result.setdefault("wall_s", wall)
    result.setdefault("cpu_s", cpu)
    result.update(
        {
            "job_wall_s": wall,
            "job_cpu_s": cpu,
            "peak_rss_mb": _peak_rss_mb(),
            "rss_after_imports_mb": rss_before,
        }
    )
    sys.stdout.write(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
