"""`make demo`: the whole product on real parts, locally.

Starts Azurite and the sandbox (HTTPS stand-ins for Dataverse, F&O and Entra ID) with Contoso-style
sample data, runs every template that has a mapping the way the timers do, changes records on both
sides, runs again to show the deltas, and prints a summary that is also written to
`.demo/report.json`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rich.console import Console
from rich.table import Table

from sandbox import Sandbox, SandboxConfig
from sandbox.azurite import Azurite
from sandbox.datagen import generate
from sandbox.product_env import product_env
from shared.engine import RunOutcome, SyncEngine
from shared.settings import Settings
from shared.state import StateStore
from shared.telemetry import Telemetry
from shared.templates import run_order

ROOT = Path(__file__).resolve().parent.parent


def demo_settings(
    sb: Sandbox, storage_connection_string: str, extra: dict[str, str] | None = None
) -> Settings:
    env = product_env(
        sb.info,
        storage_connection_string,
        P2C_COMPANIES="usmf=Contoso US,demf=Contoso Europe",
        **(extra or {}),
    )
    return Settings.from_env(env)


def change_sales_side(sb: Sandbox) -> list[str]:
    """A few realistic edits in Sales between two runs: renames, a new account, a deletion."""
    notes: list[str] = []
    accounts = sorted(sb.dataverse.rows("accounts"), key=lambda r: str(r.get("accountnumber")))
    for row in accounts[:5]:
        sb.dataverse.update(
            "accounts",
            row["accountid"],
            {"telephone1": "+1 425 555 0199", "name": f"{row.get('name', '')} (renamed)"[:160]},
        )
        notes.append(f"updated account {row.get('accountnumber')}")
    new_id = sb.dataverse.insert(
        "accounts",
        {
            "accountnumber": "ACC-99001-DEMO01",
            "name": "Fabrikam Demo & Söhne",
            "address1_city": "Redmond",
            "address1_country": "United States",
            "telephone1": "+1 425 555 0100",
            "_transactioncurrencyid_value": accounts[0].get("_transactioncurrencyid_value"),
        },
    )
    notes.append(f"created account ACC-99001-DEMO01 ({new_id})")
    if len(accounts) > 6:
        victim = accounts[6]
        sb.dataverse.delete("accounts", victim["accountid"])
        notes.append(
            f"deleted account {victim.get('accountnumber')} (policy: keep the F&O customer, record it)"
        )
    return notes


def checkpoint_label(cursor: str | None) -> str:
    """A checkpoint as an operator reads it: the delta token or snapshot time, not a whole URL."""
    if not cursor:
        return "-"
    if "$deltatoken=" in cursor:
        token = unquote(cursor.split("$deltatoken=", 1)[1].split("&", 1)[0])
        return "delta token " + token.split("!", 1)[0]
    return cursor[:32]


def summary_table(title: str, outcomes: list[RunOutcome]) -> Table:
    table = Table(title=title, title_justify="left")
    columns = (
        "template",
        "status",
        "read",
        "created",
        "updated",
        "unchanged",
        "deleted",
        "failed",
        "deferred",
        "requests",
        "seconds",
        "checkpoint",
    )
    for column in columns:
        table.add_column(
            column,
            justify="left" if column in ("template", "status", "checkpoint") else "right",
            no_wrap=True,
        )
    for o in outcomes:
        requests = sum(int(m.get("requests", 0)) for m in o.requests.values())
        cursor = ", ".join(checkpoint_label(t.get("cursor_after")) for t in o.tasks) or "-"
        table.add_row(
            o.template,
            o.status,
            *(
                str(o.counts.get(k, 0))
                for k in ("read", "created", "updated", "unchanged", "deleted", "failed", "deferred")
            ),
            str(requests),
            f"{o.duration_s:.1f}",
            cursor,
        )
    return table


def run_demo(size: int, seed: int, report_path: Path, console: Console) -> dict[str, Any]:
    report: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(),
        "size": size,
        "seed": seed,
        "rounds": [],
    }
    with Azurite() as storage, Sandbox(SandboxConfig(seed=seed)) as sb:
        t0 = time.monotonic()
        dataset = generate(size=size, seed=seed)
        sb.load(dataset)
        console.print(
            f"[bold]sandbox[/] Dataverse {sb.info.dataverse_url}  F&O {sb.info.finops_url}  "
            f"(seeded {dataset.counts()} in {time.monotonic() - t0:.1f}s)"
        )
        settings = demo_settings(sb, storage.connection_string)
        state = StateStore.from_settings(settings)
        state.ensure()
        engine = SyncEngine(settings, state, telemetry=Telemetry(None))
        templates = [t.name for t in run_order() if (Path(settings.mappings_dir) / t.mapping_file).exists()]
        for round_no, title in (
            (1, "first run (initial load)"),
            (2, "second run (after changes)"),
            (3, "third run (nothing changed)"),
        ):
            changes: list[str] = []
            if round_no == 2:
                changes = change_sales_side(sb)
                for note in changes:
                    console.print(f"  [dim]change:[/] {note}")
            outcomes = [engine.run(name, trigger="demo") for name in templates]
            console.print(summary_table(f"Round {round_no}: {title}", outcomes))
            for o in outcomes:
                if o.message:
                    console.print(f"  [yellow]{o.template}[/]: {o.message}")
            report["rounds"].append(
                {
                    "round": round_no,
                    "title": title,
                    "changes": changes,
                    "runs": [o.as_dict() for o in outcomes],
                }
            )
        errors = {name: [e.as_dict() for e in state.errors.list(name, limit=20)] for name in templates}
        report["errors"] = errors
        shown = [(n, e) for n, es in errors.items() for e in es][:10]
        if shown:
            console.print("[bold]failed or deferred records (first 10), each with its reason:[/]")
            for name, err in shown:
                console.print(
                    f"  {name} {err.get('source_key')}: {err.get('error_class')}: {err.get('message')}"
                )
    report["finished_at"] = datetime.now(UTC).isoformat()
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"report written to {report_path}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=200, help="number of Sales accounts to seed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report", type=Path, default=ROOT / ".demo" / "report.json")
    args = parser.parse_args(argv)
    report = run_demo(args.size, args.seed, args.report, Console(width=max(Console().width, 150)))
    failed_runs = [r for rnd in report["rounds"] for r in rnd["runs"] if r["status"] == "failed"]
    return 1 if failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
