"""`p2c`: run, inspect and replay from a terminal, without reading code.

Settings come from the environment, or from a `local.settings.json`-style file (`--settings`),
exactly as the function app reads them, so the CLI and the cloud agree on what a setting means.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from shared.engine import RunOutcome, SyncEngine
from shared.settings import Settings, SettingsError
from shared.state import StateStore
from shared.telemetry import Telemetry
from shared.templates import TEMPLATE_NAMES, UnknownTemplate, get_template, run_order


def _load_env(path: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if path is not None:
        data = json.loads(path.read_text())
        values = data.get("Values", data)
        env.update({str(k): str(v) for k, v in values.items() if v is not None})
    return env


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(_load_env(args.settings))


def _state(settings: Settings) -> StateStore:
    state = StateStore.from_settings(settings)
    state.ensure()
    return state


def _print_outcomes(console: Console, outcomes: Sequence[RunOutcome]) -> None:
    table = Table(title="runs")
    for column in (
        "template",
        "run id",
        "status",
        "read",
        "written",
        "unchanged",
        "failed",
        "deferred",
        "parked",
        "requests",
        "seconds",
    ):
        table.add_column(column)
    for o in outcomes:
        requests = sum(int(m.get("requests", 0)) for m in o.requests.values())
        table.add_row(
            o.template,
            o.run_id,
            o.status,
            *(
                str(o.counts.get(k, 0))
                for k in ("read", "written", "unchanged", "failed", "deferred", "parked")
            ),
            str(requests),
            f"{o.duration_s:.1f}",
        )
    console.print(table)
    for o in outcomes:
        if o.message:
            console.print(f"[yellow]{o.template}[/]: {o.message}")


def _print_dry_run(console: Console, outcomes: Sequence[RunOutcome]) -> None:
    for o in outcomes:
        if not o.dry_run_changes:
            console.print(f"{o.template}: nothing would change")
            continue
        table = Table(title=f"{o.template}: would write {len(o.dry_run_changes)} record(s) (dry run)")
        for column in ("action", "key", "company", "fields"):
            table.add_column(column)
        for change in o.dry_run_changes[:200]:
            fields = ", ".join(f"{k}={v!r}" for k, v in list(change["payload"].items())[:8])
            table.add_row(change["action"], change["key"], change["company"], fields)
        console.print(table)


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    engine = SyncEngine(
        settings, _state(settings), telemetry=Telemetry(settings.applicationinsights_connection_string)
    )
    mode = "full" if args.full else "incremental"
    names = [t.name for t in run_order()] if args.template == "all" else [get_template(args.template).name]
    outcomes: list[RunOutcome] = []
    with console.status("syncing…") as status:
        for name in names:
            if not (Path(settings.mappings_dir) / get_template(name).mapping_file).exists():
                continue
            status.update(f"syncing {name}…")
            outcomes.append(engine.run(name, trigger="cli", mode=mode, dry_run=args.dry_run))
    _print_outcomes(console, outcomes)
    if args.dry_run:
        _print_dry_run(console, outcomes)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    state = _state(_settings(args))
    table = Table(title="status")
    for column in ("template", "last run", "status", "finished", "retrying", "parked", "message"):
        table.add_column(column)
    for name in TEMPLATE_NAMES:
        last = state.runs.latest(name)
        counts = state.errors.counts(name)
        table.add_row(
            name,
            last.run_id if last else "-",
            last.status if last else "never run",
            str(last.finished_at or "-") if last else "-",
            str(counts.get("retrying", 0)),
            str(counts.get("parked", 0)),
            (last.message if last else "")[:60],
        )
    console.print(table)
    return 0


def cmd_runs(args: argparse.Namespace, console: Console) -> int:
    state = _state(_settings(args))
    table = Table(title=f"runs of {args.template}")
    for column in ("run id", "trigger", "mode", "status", "started", "counts", "message"):
        table.add_column(column)
    for rec in state.runs.list(get_template(args.template).name, limit=args.limit):
        table.add_row(
            rec.run_id,
            rec.trigger,
            rec.mode,
            rec.status,
            str(rec.started_at),
            json.dumps(rec.counts),
            (rec.message or "")[:60],
        )
    console.print(table)
    return 0


def cmd_errors(args: argparse.Namespace, console: Console) -> int:
    state = _state(_settings(args))
    table = Table(title=f"errors of {args.template}")
    for column in ("key", "company", "kind", "status", "attempts", "class", "field", "message"):
        table.add_column(column)
    for rec in state.errors.list(get_template(args.template).name, status=args.status, limit=args.limit):
        table.add_row(
            rec.source_key,
            rec.company,
            rec.kind,
            rec.status,
            str(rec.attempts),
            rec.error_class,
            rec.field or "",
            rec.message[:100],
        )
    console.print(table)
    return 0


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    state = _state(settings)
    name = get_template(args.template).name
    requeued = state.errors.requeue(name, keys=args.keys or None)
    console.print(f"{requeued} record(s) of {name} queued for retry")
    if requeued and not args.no_run:
        engine = SyncEngine(
            settings, state, telemetry=Telemetry(settings.applicationinsights_connection_string)
        )
        _print_outcomes(console, [engine.run(name, trigger="cli")])
    return 0


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    from shared.mapping import load_catalogue, load_mapping

    problems = 0
    try:
        settings = _settings(args)
        console.print("[green]settings ok[/]")
        mappings_dir = Path(settings.mappings_dir)
        catalogue_dir = Path(settings.schema_catalogue_dir)
    except SettingsError as exc:
        console.print(f"[red]settings:[/] {exc}")
        problems += 1
        mappings_dir, catalogue_dir = Path("mappings"), Path("sandbox/schemas")
    catalogue = load_catalogue(catalogue_dir)
    for template in run_order():
        path = mappings_dir / template.mapping_file
        if not path.exists():
            console.print(f"[dim]{template.name}: no mapping file yet[/]")
            continue
        try:
            load_mapping(path, catalogue)
            console.print(f"[green]{template.name}: mapping ok[/]")
        except Exception as exc:
            problems += 1
            console.print(f"[red]{template.name}:[/] {exc}")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2c", description="Prospect-to-cash sync: run, inspect, replay.")
    parser.add_argument(
        "--settings", type=Path, help="a local.settings.json-style file (else the environment)"
    )
    # `--settings` is accepted before or after the command (`p2c run accounts --settings f.json`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common])

    run = add("run", "run a template (or all, in dependency order)")
    run.add_argument("template", choices=["all", *TEMPLATE_NAMES])
    run.add_argument(
        "--full", action="store_true", help="ignore the checkpoint: re-read everything, write only changes"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="read and map, write nothing, show what would change"
    )
    run.set_defaults(handler=cmd_run)
    status = add("status", "last run and error counts per template")
    status.set_defaults(handler=cmd_status)
    runs = add("runs", "run history of a template")
    runs.add_argument("template", choices=TEMPLATE_NAMES)
    runs.add_argument("--limit", type=int, default=20)
    runs.set_defaults(handler=cmd_runs)
    errors = add("errors", "failed, deferred and parked records of a template")
    errors.add_argument("template", choices=TEMPLATE_NAMES)
    errors.add_argument("--status", choices=["retrying", "parked", "resolved"])
    errors.add_argument("--limit", type=int, default=100)
    errors.set_defaults(handler=cmd_errors)
    replay = add("replay", "retry failed records now (all, or the keys given)")
    replay.add_argument("template", choices=TEMPLATE_NAMES)
    replay.add_argument("keys", nargs="*")
    replay.add_argument("--no-run", action="store_true", help="only mark them due; the next run retries them")
    replay.set_defaults(handler=cmd_replay)
    validate = add("validate", "check settings and every mapping against the schemas")
    validate.set_defaults(handler=cmd_validate)
    return parser


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        result: int = args.handler(args, console)
        return result
    except SettingsError as exc:
        console.print(f"[red]settings are invalid:[/] {exc}")
        return 2
    except UnknownTemplate as exc:
        console.print(f"[red]{exc}[/]")
        return 2


def _entry() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    _entry()
