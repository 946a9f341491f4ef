"""One template run from lock to run record (design.md §3, steps 1–11).

`SyncEngine.run` is the only entry point the triggers, the CLI, the demo and the benchmarks use.
It never raises for a failed run: the outcome, the counts and the reason are in the returned
`RunOutcome`, the `runs` table and the run event, so a timer can always report and move on.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.engine.companies import OWNING_BUSINESS_UNIT, CompanyRouter
from shared.engine.counts import RunCounts
from shared.engine.filters import Predicate, compile_filter
from shared.engine.pipeline import OpenedSource, TaskPipeline, TaskResult, TaskSpecView, open_source
from shared.engine.ports import Source, Target
from shared.engine.references import ReferenceCache, RunResolver, SyncedRecords, SyncedTask
from shared.engine.scope import RunScope
from shared.engine.sources import (
    DataverseChangeSource,
    FinOpsDateCursorSource,
    FinOpsSnapshotSource,
    SourceKey,
)
from shared.engine.targets import DataverseTarget, FinOpsTarget
from shared.engine.wiring import ServiceClients, build_service_clients
from shared.mapping import (
    Catalogue,
    CompiledMapping,
    MappingSpecError,
    TaskMapping,
    load_catalogue,
    load_mapping,
    synced_entity,
    target_key_references,
)
from shared.odata.errors import BudgetExhausted, SyncError
from shared.settings import Settings
from shared.state import LeaseLost, RunRecord, StateStore
from shared.telemetry import RunEvent, Telemetry
from shared.templates import TemplateDef, get_template, run_order

log = logging.getLogger("p2c.engine")

ClientsFactory = Callable[[Settings], ServiceClients]


@dataclass
class RunOutcome:
    """What a run did; also what `p2c run`, the HTTP API and the demo print."""

    template: str
    run_id: str
    status: str
    trigger: str
    mode: str
    started_at: datetime
    finished_at: datetime
    counts: dict[str, int]
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    dry_run_changes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "run_id": self.run_id,
            "status": self.status,
            "trigger": self.trigger,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "counts": self.counts,
            "requests": self.requests,
            "tasks": self.tasks,
            "message": self.message,
        }


def new_run_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"


class SyncEngine:
    """Runs templates against the services named in `settings`, with state in `state`."""

    def __init__(
        self,
        settings: Settings,
        state: StateStore,
        *,
        telemetry: Telemetry | None = None,
        catalogue: Catalogue | None = None,
        clients_factory: ClientsFactory = build_service_clients,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.state = state
        self.telemetry = telemetry or Telemetry(None)
        self.catalogue = catalogue or load_catalogue(Path(settings.schema_catalogue_dir))
        self.clients_factory = clients_factory
        self.clock = clock
        self._mappings: dict[str, CompiledMapping] = {}
        self._target_key_refs: frozenset[tuple[str, str | None]] | None = None

    # -- public ---------------------------------------------------------------------------------

    def run(
        self,
        template_name: str,
        *,
        trigger: str = "timer",
        mode: str = "incremental",
        run_id: str | None = None,
        dry_run: bool = False,
    ) -> RunOutcome:
        template = get_template(template_name)
        started = self.clock()
        run_id = run_id or new_run_id(started)
        lock = self.state.lock(template.name)
        if not lock.acquire():
            return self._skipped(template, run_id, trigger, mode, started)
        try:
            return self._run_locked(template, run_id, trigger, mode, dry_run, started, lock)
        finally:
            lock.release()

    def run_all(
        self,
        *,
        trigger: str = "timer",
        mode: str = "incremental",
        names: list[str] | None = None,
        dry_run: bool = False,
    ) -> list[RunOutcome]:
        outcomes = []
        for template in run_order(names):
            if not (Path(self.settings.mappings_dir) / template.mapping_file).exists():
                continue
            outcomes.append(self.run(template.name, trigger=trigger, mode=mode, dry_run=dry_run))
        return outcomes

    # -- internals ------------------------------------------------------------------------------

    def _skipped(
        self, template: TemplateDef, run_id: str, trigger: str, mode: str, started: datetime
    ) -> RunOutcome:
        message = (
            f"another run of '{template.name}' holds the lock (a timer run or a manual run is "
            "still in progress); this run was skipped"
        )
        finished = self.clock()
        record = RunRecord(
            template=template.name,
            run_id=run_id,
            trigger=trigger,
            mode=mode,
            status="skipped",
            started_at=started,
            finished_at=finished,
            counts={},
            companies=[],
            message=message,
        )
        self.state.runs.finish(record)
        outcome = RunOutcome(
            template.name, run_id, "skipped", trigger, mode, started, finished, {}, message=message
        )
        self._emit(outcome, company="*", lag=None)
        log.warning(message)
        return outcome

    def _run_locked(
        self,
        template: TemplateDef,
        run_id: str,
        trigger: str,
        mode: str,
        dry_run: bool,
        started: datetime,
        lock: Any,
    ) -> RunOutcome:
        companies = self._companies(template)
        record = RunRecord(
            template=template.name,
            run_id=run_id,
            trigger=trigger,
            mode=mode,
            status="running",
            started_at=started,
            finished_at=None,
            counts={},
            companies=companies,
            message="",
        )
        self.state.runs.start(record)
        counts = RunCounts()
        status, message = "succeeded", ""
        clients: ServiceClients | None = None
        tasks: list[TaskResult] = []
        report = None if dry_run else self.state.reports.writer(template.name, run_id)
        scope: RunScope | None = None
        t0 = time.monotonic()
        try:
            mapping = self._mapping(template)
            clients = self.clients_factory(self.settings)

            def guard() -> None:
                lock.check()
                clients_budget = clients.budget if clients is not None else None
                if clients_budget is not None:
                    clients_budget.check()

            scope = RunScope(
                template=template.name,
                run_id=run_id,
                mode=mode,
                dry_run=dry_run,
                state=self.state,
                resolver=self._resolver(clients),
                guard=guard,
                park_after=self.settings.park_after_attempts,
                secrets=self._secrets(),
                report_sink=report,
                clock=self.clock,
                counts=counts,
            )
            router = CompanyRouter(self.settings, scope.resolver.for_company(self.settings.default_company))
            views = [
                self._task_view(template, mapping, task, company, clients, router)
                for task in mapping.tasks
                for company in companies
            ]
            # Each task's source is opened (its first page fetched) while the task before it is
            # still writing, so the target is not left idle while the next task starts reading.
            opened: list[OpenedSource] = []
            try:
                if views:
                    opened.append(open_source(scope, views[0]))
                for index, view in enumerate(views):
                    if index + 1 < len(views):
                        opened.append(open_source(scope, views[index + 1]))
                    tasks.append(TaskPipeline(scope, view).run(opened[index]))
            finally:
                for source in opened:  # a run that stops early stops every reader it started
                    source.close()
            if counts.failed:
                status = "partial"
                message = f"{counts.failed} record(s) failed; see GET /api/errors/{template.name}"
        except LeaseLost as exc:
            status, message = "failed", f"run lock lost, writing stopped: {exc}"
        except BudgetExhausted as exc:
            status = "partial"
            message = (
                f"time budget of {self.settings.run_time_budget_seconds}s spent; the checkpoint "
                f"was not advanced past unwritten changes, the next run continues ({exc})"
            )
        except SyncError as exc:
            status, message = "failed", f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # a run never crashes its trigger; the reason is recorded
            log.exception("run %s of %s failed", run_id, template.name)
            status, message = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            if report is not None:
                report.close()
        finished = self.clock()
        if scope is not None:
            message = scope.scrub(message)
        requests = clients.requests_snapshot() if clients is not None else {}
        if clients is not None:
            clients.close()
        if dry_run:
            message = "dry run: nothing was written" + (f"; {message}" if message else "")
        record.status, record.finished_at, record.message = status, finished, message
        record.counts = counts.as_dict()
        record.requests = {k: v for k, v in requests.items()}
        self.state.runs.finish(record)
        outcome = RunOutcome(
            template.name,
            run_id,
            status,
            trigger,
            mode,
            started,
            finished,
            counts.as_dict(),
            requests,
            tasks=[
                {
                    "task": t.task,
                    "company": t.company,
                    "cursor_before": _short(t.cursor_before),
                    "cursor_after": _short(t.cursor_after),
                    "restarted": t.restarted,
                    "notes": t.notes,
                    "counts": t.counts,
                }
                for t in tasks
            ],
            message=message,
            dry_run_changes=[
                {
                    "task": task,
                    "company": company,
                    "key": plan.source_key,
                    "action": "update" if plan.exists else "create",
                    "payload": plan.payload,
                }
                for task, company, plan in (scope.dry_run_plans if scope is not None else [])
            ],
        )
        log.info(
            "run %s %s: %s in %.1fs %s",
            template.name,
            run_id,
            status,
            time.monotonic() - t0,
            counts.as_dict(),
        )
        self._emit(outcome, company=",".join(companies), lag=self._checkpoint_lag(template, companies))
        return outcome

    def _companies(self, template: TemplateDef) -> list[str]:
        """Companies a run serves: the default one for `companies: default` templates and for
        Sales→F&O without business-unit routing, else every company of P2C_COMPANIES."""
        try:
            only_default = self._mapping(template).spec.companies == "default"
        except (MappingSpecError, OSError):  # a mapping that does not load fails the run, with its reason
            only_default = False
        routed = any(c.business_unit for c in self.settings.companies)
        if only_default or (template.direction == "sales_to_fno" and not routed):
            return [self.settings.default_company]
        return [c.id for c in self.settings.companies]

    def _task_view(
        self,
        template: TemplateDef,
        mapping: CompiledMapping,
        task: TaskMapping,
        company: str,
        clients: ServiceClients,
        router: CompanyRouter | None = None,
    ) -> TaskSpecView:
        source: Source
        target: Target
        src, tgt = task.source, task.target
        key = self._source_key(task)
        if src.service == "dataverse":
            source_id_field = self.catalogue.dataverse_table_by_set(src.entity_set).primary_id
            select = list(src.select)
            if router is not None and router.active and OWNING_BUSINESS_UNIT not in select:
                select.append(OWNING_BUSINESS_UNIT)
            source = DataverseChangeSource(clients.dataverse, src.entity_set, select, key, source_id_field)
        elif task.cursor is not None:
            from datetime import timedelta

            source = FinOpsDateCursorSource(
                clients.finops,
                src.entity_set,
                src.select,
                key,
                task.cursor,
                timedelta(days=self.settings.invoice_lookback_days),
                clock=self.clock,
            )
            source_id_field = None
        else:
            source = FinOpsSnapshotSource(clients.finops, src.entity_set, src.select, key, clock=self.clock)
            source_id_field = None
        if tgt.service == "finops":
            target = FinOpsTarget(clients.finops, tgt.entity_set)
        else:
            table = self.catalogue.dataverse_table_by_set(tgt.entity_set)
            target = DataverseTarget(
                clients.dataverse,
                table.logical_name,
                tgt.entity_set,
                table.supports_multiple,
                table.primary_id,
                match=tgt.match or (),
            )
        return TaskSpecView(
            template=template.name,
            task=task.name,
            pair=task_pair(task),
            company=company,
            mapping=task,
            source=source,
            target=target,
            selects=self._selects(task, company, router),
            source_id_field=source_id_field,
            delete_policy=task.delete_policy,
            parent_entities=frozenset(task.parent_entities),
            index_target_keys=self._looked_up_by_target_key(template.name, task.name, mapping),
            looks_itself_up=self._looks_itself_up(template.name, task),
        )

    def _selects(self, task: TaskMapping, company: str, router: CompanyRouter | None) -> Predicate:
        """The template's selection rule, plus "owned by this company" for routed Sales records."""
        base = compile_filter(task.source.filter)
        if task.source.service != "dataverse" or router is None or not router.active:
            return base

        def selects(row: dict[str, Any]) -> bool:
            return base(row) and router.company_of(row) == company

        return selects

    def _source_key(self, task: TaskMapping) -> SourceKey:
        columns = task.key_columns
        if task.source.service == "finops":
            props = self.catalogue.finops_entity_set(task.source.entity_set).properties
            numeric = [props[c].type in _NUMERIC_EDM if c in props else False for c in columns]
            return SourceKey.of(columns, numeric)
        return SourceKey.of(columns)

    def _resolver(self, clients: ServiceClients) -> RunResolver:
        catalogue = self.catalogue

        def dataverse_rows(entity: str, fields: list[str]) -> Any:
            table = catalogue.dataverse_table(entity)
            return clients.dataverse.query(table.entity_set, fields)

        def finops_rows(entity: str, fields: list[str]) -> Any:
            for company in self.settings.companies:
                yield from clients.finops.read_company(entity, fields, company.id)

        loaders = {name: dataverse_rows for name in catalogue.dataverse_table_names()}
        loaders.update({name: finops_rows for name in catalogue.finops_entity_set_names()})
        return RunResolver(ReferenceCache(loaders), SyncedRecords(self.state.crosswalk, self._synced_task))

    def _looked_up_by_target_key(self, template: str, task: str, mapping: CompiledMapping) -> bool:
        """Whether any mapping file looks this task up `by: target_key` (scanned once per engine)."""
        if self._target_key_refs is None:
            self._target_key_refs = target_key_references(Path(self.settings.mappings_dir))
        refs = self._target_key_refs
        return (template, task) in refs or ((template, None) in refs and mapping.tasks[0].name == task)

    def _looks_itself_up(self, template: str, task: TaskMapping) -> bool:
        """Whether a rule of this task looks up records of this same task (an account's parent account).

        Such a task writes each page before mapping the next, so a record always finds a parent
        that came on an earlier page in the crosswalk.
        """
        own = task_pair(task)
        for entity in task.synced_lookups():
            parsed = synced_entity(entity)
            # only this template's tasks can be this task (other templates' mappings stay unloaded)
            if parsed is not None and parsed[0] == template and self._synced_task(*parsed).pair == own:
                return True
        return False

    def _mapping(self, template: TemplateDef) -> CompiledMapping:
        """Compiled mappings are reused across runs of this engine; a file change needs a new engine."""
        cached = self._mappings.get(template.name)
        if cached is None:
            cached = load_mapping(Path(self.settings.mappings_dir) / template.mapping_file, self.catalogue)
            self._mappings[template.name] = cached
        return cached

    def _synced_task(self, template_name: str, task_name: str | None) -> SyncedTask:
        mapping = self._mapping(get_template(template_name))
        task = mapping.task(task_name) if task_name else mapping.tasks[0]
        return SyncedTask(
            pair=task_pair(task),
            key_fields=tuple(task.target_key_fields),
            company_in_key=task.target.service == "finops",
        )

    def _secrets(self) -> tuple[str, ...]:
        secret = self.settings.client_secret
        return (secret.get_secret_value(),) if secret is not None else ()

    def _checkpoint_lag(self, template: TemplateDef, companies: list[str]) -> float | None:
        """Seconds since the stalest task checkpoint of the template last advanced (alerting input)."""
        try:
            mapping_tasks = [t.name for t in self._mapping(template).tasks]
            lags = []
            for company in companies:
                for task in mapping_tasks:
                    cp = self.state.checkpoints.load(template.name, task, company)
                    if cp.updated_at is not None:
                        lags.append((self.clock() - cp.updated_at).total_seconds())
            return max(lags) if lags else None
        except Exception:  # lag is informative only
            return None

    def _emit(self, outcome: RunOutcome, company: str, lag: float | None) -> None:
        counts = outcome.counts
        requests = sum(int(m.get("requests", 0)) for m in outcome.requests.values())
        throttled = sum(int(m.get("throttled", 0)) for m in outcome.requests.values())
        retries = sum(int(m.get("retries", 0)) for m in outcome.requests.values())
        self.telemetry.emit_run(
            RunEvent(
                template=outcome.template,
                company=company,
                run_id=outcome.run_id,
                trigger=outcome.trigger,
                mode=outcome.mode,
                outcome=outcome.status,
                read=counts.get("read", 0),
                written=counts.get("written", 0),
                unchanged=counts.get("unchanged", 0),
                failed=counts.get("failed", 0),
                deferred=counts.get("deferred", 0),
                parked=counts.get("parked", 0),
                requests=requests,
                throttled=throttled,
                retries=retries,
                duration_s=outcome.duration_s,
                checkpoint_lag_s=lag,
                message=outcome.message,
            )
        )


def _short(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    return cursor if len(cursor) <= 2000 else cursor[:1000] + "…" + cursor[-900:]


_NUMERIC_EDM = frozenset({"Edm.Int32", "Edm.Int64", "Edm.Decimal", "Edm.Double", "Edm.Int16", "Edm.Byte"})


def task_pair(task: TaskMapping) -> str:
    """The crosswalk partition of a task: `<source entity set>><target entity set>`."""
    return f"{task.source.entity_set}>{task.target.entity_set}"
