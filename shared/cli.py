"""`p2c`: run, inspect and replay from a terminal, without reading code.

Settings come from the environment, or from a `local.settings.json`-style file (`--settings`),
exactly as the function app reads them, so the CLI and the cloud agree on what a setting means.

`p2c run --dry-run` reads and maps but writes nothing (no target write, no checkpoint, no
crosswalk, no retry-store row; only the run record of the dry run itself). It shows, per record,
the fields that would change. The crosswalk keeps only a hash of what was last written, so for an
update the CLI reads the current target record (F&O: by its entity key; Dataverse: by the id in
the crosswalk) and lists only the fields whose value differs: that is the question an operator
asks before a full re-run ("what will this overwrite?"). A create lists every field as new. When
the current record cannot be read (gone from the target, or a lookup binding whose current value
is not readable under the same name) the field is shown as "new/changed" instead of guessing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.engine import RunOutcome, SyncEngine
from shared.engine.values import same_value
from shared.engine.wiring import ServiceClients, build_service_clients
from shared.mapping import Catalogue, load_catalogue, load_mapping
from shared.odata.filters import F
from shared.runqueue import template_status
from shared.settings import Settings, SettingsError
from shared.state import StateStore
from shared.telemetry import Telemetry
from shared.templates import TEMPLATE_NAMES, UnknownTemplate, get_template, run_order

#: Shown instead of a current value that could not be read.
UNKNOWN = "new/changed"
#: Rows of a dry-run table; the rest is summarised (the full list is in `--json` output).
DRY_RUN_ROWS = 200


def _load_env(path: Path | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: the process environment) overlaid with a local.settings.json `Values`."""
    env = dict(os.environ if base is None else base)
    if path is not None:
        data = json.loads(path.read_text())
        values = data.get("Values", data)
        env.update({str(k): str(v) for k, v in values.items() if v is not None})
    return env


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(_load_env(args.settings, args.env))


def _state(settings: Settings) -> StateStore:
    state = StateStore.from_settings(settings)
    state.ensure()
    return state


def _engine(settings: Settings, state: StateStore) -> SyncEngine:
    return SyncEngine(settings, state, telemetry=Telemetry(settings.applicationinsights_connection_string))


# -- dry-run diff ---------------------------------------------------------------------------------


@dataclass
class FieldChange:
    """One field a dry run would write: the target's current value (or UNKNOWN) and the new one."""

    name: str
    current: Any
    new: Any


@dataclass
class RecordChange:
    """What a dry run would do to one record."""

    template: str
    task: str
    company: str
    key: str
    action: str  # create | update
    fields: list[FieldChange] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "task": self.task,
            "company": self.company,
            "key": self.key,
            "action": self.action,
            "note": self.note,
            "fields": [{"field": f.name, "current": f.current, "new": f.new} for f in self.fields],
        }


def _field_changes(payload: Mapping[str, Any], current: Mapping[str, Any] | None) -> list[FieldChange]:
    if current is None:
        return [FieldChange(name, UNKNOWN, value) for name, value in payload.items()]
    changes = []
    for name, value in payload.items():
        if "@" in name or name not in current:
            changes.append(FieldChange(name, UNKNOWN, value))
        elif not same_value(current[name], value):
            changes.append(FieldChange(name, current[name], value))
    return changes


def diff_dry_run(
    outcome: RunOutcome,
    settings: Settings,
    state: StateStore,
    catalogue: Catalogue,
    clients: ServiceClients,
) -> list[RecordChange]:
    """Per record and field, what `outcome` (a dry run) would write; updates read the target first."""
    mapping_file = Path(settings.mappings_dir) / get_template(outcome.template).mapping_file
    mapping = load_mapping(mapping_file, catalogue)
    tasks = {task.name: task for task in mapping.tasks}
    result: list[RecordChange] = []
    for change in outcome.dry_run_changes:
        payload: dict[str, Any] = dict(change["payload"])
        record = RecordChange(
            outcome.template, change["task"], change["company"], change["key"], change["action"]
        )
        task = tasks.get(record.task)
        if record.action != "update" or task is None:
            record.fields = [FieldChange(name, None, value) for name, value in payload.items()]
            result.append(record)
            continue
        current = _current_target(task, record, payload, state, catalogue, clients)
        if current is None:
            record.note = "current target record not found"
        record.fields = _field_changes(payload, current)
        if not record.fields:
            record.note = "target already holds these values"
        result.append(record)
    return result


def _current_target(
    task: Any,
    record: RecordChange,
    payload: Mapping[str, Any],
    state: StateStore,
    catalogue: Catalogue,
    clients: ServiceClients,
) -> dict[str, Any] | None:
    target = task.target
    if target.service == "finops":
        key = {"dataAreaId": record.company, **{name: payload.get(name) for name in task.target_key_fields}}
        return clients.finops.get(target.entity_set, key)
    pair = f"{task.source.entity_set}>{target.entity_set}"
    entry = state.crosswalk.get(pair, record.company, record.key)
    if entry is None or not entry.target_id:
        return None
    primary_id = catalogue.dataverse_table_by_set(target.entity_set).primary_id
    select = [name for name in payload if "@" not in name]
    for page in clients.dataverse.query(
        target.entity_set, select, filter=F.eq(primary_id, UUID(entry.target_id))
    ):
        for row in page:
            return row
    return None


# -- printing -------------------------------------------------------------------------------------


def _print_outcomes(console: Console, outcomes: Sequence[RunOutcome]) -> None:
    table = Table(title="runs")
    columns = ("template", "run id", "status", "read", "written", "unchanged", "failed", "deferred", "parked")
    for column in (*columns, "requests", "seconds"):
        table.add_column(column)
    for o in outcomes:
        requests = sum(int(m.get("requests", 0)) for m in o.requests.values())
        table.add_row(
            o.template,
            o.run_id,
            o.status,
            *(str(o.counts.get(k, 0)) for k in columns[3:]),
            str(requests),
            f"{o.duration_s:.1f}",
        )
    console.print(table)
    for o in outcomes:
        if o.message:
            console.print(f"[yellow]{o.template}[/]: {o.message}")


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_dry_run(console: Console, template: str, changes: Sequence[RecordChange]) -> None:
    if not changes:
        console.print(f"{template}: nothing would change (dry run)")
        return
    table = Table(title=f"{template}: would write {len(changes)} record(s) (dry run, nothing written)")
    for column in ("action", "key", "company", "field", "current", "new"):
        table.add_column(column)
    rows = 0
    for change in changes:
        if rows >= DRY_RUN_ROWS:
            break
        if not change.fields:
            table.add_row(change.action, change.key, change.company, "-", change.note, "")
            rows += 1
            continue
        for index, fc in enumerate(change.fields):
            first = index == 0
            table.add_row(
                change.action if first else "",
                change.key if first else "",
                change.company if first else "",
                fc.name,
                "" if change.action == "create" else _short(fc.current),
                _short(fc.new),
            )
            rows += 1
    console.print(table)
    if rows >= DRY_RUN_ROWS:
        console.print(f"[dim]first {DRY_RUN_ROWS} rows shown; use --json for all[/]")


# -- commands -------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    settings = _settings(args)
    state = _state(settings)
    engine = _engine(settings, state)
    mode = "full" if args.full else "incremental"
    names = [t.name for t in run_order()] if args.template == "all" else [get_template(args.template).name]
    names = [n for n in names if (Path(settings.mappings_dir) / get_template(n).mapping_file).exists()]
    outcomes: list[RunOutcome] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} template(s)"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.json,
    )
    with progress:
        bar = progress.add_task("syncing", total=len(names))
        for name in names:
            progress.update(bar, description=f"syncing {name}{' (dry run)' if args.dry_run else ''}")
            outcomes.append(engine.run(name, trigger="cli", mode=mode, dry_run=args.dry_run))
            progress.advance(bar)
    diffs: dict[str, list[RecordChange]] = {}
    if args.dry_run:
        clients = build_service_clients(settings)
        try:
            for o in outcomes:
                diffs[o.template] = diff_dry_run(o, settings, state, engine.catalogue, clients)
        finally:
            clients.close()
    if args.json:
        out = [
            {**o.as_dict(), **({"changes": [c.as_dict() for c in diffs[o.template]]} if args.dry_run else {})}
            for o in outcomes
        ]
        console.print_json(json.dumps(out, default=str))
    else:
        _print_outcomes(console, outcomes)
        for o in outcomes if args.dry_run else []:
            _print_dry_run(console, o.template, diffs[o.template])
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    state = _state(_settings(args))
    rows = [template_status(state, name) for name in TEMPLATE_NAMES]
    if args.json:
        console.print_json(json.dumps(rows, default=str))
        return 0
    table = Table(title="status")
    for column in ("template", "last run", "outcome", "finished", "lag (s)", "failed", "deferred", "parked"):
        table.add_column(column)
    for row in rows:
        last = row["last_run"] or {}
        table.add_row(
            row["template"],
            last.get("run_id", "-"),
            row["outcome"] or "never run",
            str(last.get("finished_at") or "-"),
            "-" if row["lag_s"] is None else f"{row['lag_s']:.0f}",
            str(row["open"]["failed"]),
            str(row["open"]["deferred"]),
            str(row["open"]["parked"]),
        )
    console.print(table)
    return 0


def cmd_runs(args: argparse.Namespace, console: Console) -> int:
    state = _state(_settings(args))
    records = state.runs.list(get_template(args.template).name, limit=args.limit)
    if args.json:
        console.print_json(json.dumps([r.as_dict() for r in records], default=str))
        return 0
    table = Table(title=f"runs of {args.template}")
    for column in ("run id", "trigger", "mode", "status", "started", "seconds", "counts", "message"):
        table.add_column(column)
    for rec in records:
        table.add_row(
            rec.run_id,
            rec.trigger,
            rec.mode,
            rec.status,
            rec.started_at.isoformat(timespec="seconds"),
            "-" if rec.duration_s is None else f"{rec.duration_s:.1f}",
            ", ".join(f"{k}={v}" for k, v in rec.counts.items() if v),
            (rec.message or "")[:60],
        )
    console.print(table)
    return 0


def cmd_errors(args: argparse.Namespace, console: Console) -> int:
    state = _state(_settings(args))
    records = state.errors.list(get_template(args.template).name, status=args.status, limit=args.limit)
    if args.json:
        console.print_json(json.dumps([r.as_dict() for r in records], default=str))
        return 0
    table = Table(title=f"errors of {args.template}")
    for column in ("key", "company", "kind", "status", "attempts", "class", "field", "message"):
        table.add_column(column)
    for rec in records:
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
        with console.status(f"replaying {name}…"):
            outcome = _engine(settings, state).run(name, trigger="cli")
        _print_outcomes(console, [outcome])
        return 1 if outcome.status == "failed" else 0
    return 0


def cmd_validate(args: argparse.Namespace, console: Console) -> int:
    problems = 0
    try:
        settings = _settings(args)
        console.print("[green]settings ok[/]")
        mappings_dir = Path(settings.mappings_dir)
        catalogue_dir = Path(settings.schema_catalogue_dir)
    except SettingsError as exc:
        console.print(f"[red]settings:[/] {exc}")
        problems += 1
        root = Path(__file__).resolve().parent.parent
        mappings_dir, catalogue_dir = root / "mappings", root / "sandbox" / "schemas"
    catalogue = load_catalogue(catalogue_dir)
    for template in run_order():
        path = mappings_dir / template.mapping_file
        if not path.exists():
            console.print(f"[dim]{template.name}: no mapping file yet[/]")
            continue
        try:
            load_mapping(path, catalogue)
            console.print(f"[green]{template.name}: mapping ok[/]")
        except Exception as exc:  # every mapping is checked; each problem is reported, none hides another
            problems += 1
            console.print(f"[red]{template.name}:[/] {exc}")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="p2c", description="Prospect-to-cash sync: run, inspect, replay.")
    parser.add_argument(
        "--settings", type=Path, help="a local.settings.json-style file (else the environment)"
    )
    # `--settings` / `--json` are accepted before or after the command (`p2c run accounts --settings f.json`)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--settings", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON, not tables"
    )
    parser.add_argument("--json", action="store_true", help="print JSON, not tables")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, parents=[common])

    run = add("run", "run a template (or all, in dependency order)")
    run.add_argument("template", choices=["all", *TEMPLATE_NAMES])
    run.add_argument(
        "--full", action="store_true", help="ignore the checkpoint: re-read everything, write only changes"
    )
    run.add_argument(
        "--dry-run", action="store_true", help="read and map, write nothing, show what would change per field"
    )
    run.set_defaults(handler=cmd_run)
    status = add("status", "last run, outcome, checkpoint lag and error counts per template")
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


def main(
    argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None, console: Console | None = None
) -> int:
    """Entry point of the `p2c` console script; `env` and `console` let tests drive it in-process.

    Exit codes: 0 ok, 1 a run failed / validation found problems, 2 bad settings or usage.
    """
    args = build_parser().parse_args(argv)
    args.env = env
    console = console or Console()
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
