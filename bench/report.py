"""Markdown tables of a benchmark result file, for docs/performance.md.

``python -m bench.report bench/results/latest.json [more.json ...]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RUN_COLUMNS = [
    ("run", "run"),
    ("wall_s", "wall s"),
    ("records", "records"),
    ("written", "written"),
    ("deferred", "deferred"),
    ("skipped", "skipped"),
    ("records_per_s", "records/s"),
    ("reads", "read pages"),
    ("bulk", "bulk"),
    ("batch", "batches"),
    ("single", "single"),
    ("throttled", "429s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("cpu_s_per_1k", "CPU s / 1k rec"),
]


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _partial(wl: dict[str, Any], started_at: str) -> list[str]:
    """A `--only` run: the parts that ran, raw (no targets: they compare all parts)."""
    parts = ", ".join(wl["partial"])
    out = [f"### {wl['template']}, {wl['size']} records, parts {parts} ({started_at[:16]} UTC)"]
    out += ["", _row(["run", "wall s", "written", "CPU s", "peak RSS MB"]), _row(["---"] * 5)]
    for name, result in wl.get("product", {}).get("scenarios", {}).items():
        out.append(
            _row(
                [
                    name,
                    round(result["wall_s"], 1),
                    result["counts"].get("written", 0),
                    round(result["cpu_s"], 1),
                    round(result.get("peak_rss_mb", 0), 1),
                ]
            )
        )
    if "rss_small" in wl:
        rss = wl["rss_small"]
        out.append(_row([f"RSS companion ({rss['size']})", "", "", "", rss["peak_rss_mb"]]))
    return [*out, ""]


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    for wl in results["workloads"]:
        if wl.get("partial"):
            out.extend(_partial(wl, results["started_at"]))
            continue
        out.append(f"### {wl['template']}, {wl['size']} records ({results['started_at'][:16]} UTC)")
        out.append("")
        out.append(_row([title for _, title in RUN_COLUMNS]))
        out.append(_row(["---"] * len(RUN_COLUMNS)))
        for run in wl["runs"]:
            out.append(_row([run.get(key, "") for key, _ in RUN_COLUMNS]))
        out.append("")
        for setup in wl["product"].get("setup", []):
            out.append(
                f"Set-up (not measured): `{setup['template']}` ran once before the initial load, "
                f"{setup['counts'].get('written', 0)} records written."
            )
            out.append("")
        throttle = wl["throttle"]
        out.append(
            f"Rate-bound run: {throttle['records']} records, limit "
            f"{throttle['limit']['requests']} requests / {throttle['limit']['window_s']:g} s "
            f"on {throttle['service']} (this machine drives "
            f"{throttle['unthrottled_rate_per_s']} requests/s unthrottled); {throttle['admitted']} admitted, "
            f"{throttle['throttled']} throttled, {throttle['achieved_rate_per_s']} requests/s achieved of "
            f"{throttle['allowed_rate_per_s']:g} allowed. RSS companion: {wl['rss_small']['size']} records, "
            f"peak {wl['rss_small']['peak_rss_mb']:.1f} MB."
        )
        out.append("")
        out.append(_row(["target", "measured", "limit", "met", "note"]))
        out.append(_row(["---"] * 5))
        for t in wl["targets"]:
            out.append(
                _row(
                    [
                        t["target"],
                        t["measured"],
                        t["limit"],
                        "yes" if t["met"] else "**no**",
                        t.get("note", ""),
                    ]
                )
            )
        out.append("")
    for name in results.get("not_measured", []):
        out.append(f"- `{name}`: not measured (unknown, or a mapping it needs does not exist yet).")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    for path in argv or ["bench/results/latest.json"]:
        print(render(json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
