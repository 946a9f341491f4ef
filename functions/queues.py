"""Queued manual runs: the HTTP API enqueues, this executes (no HTTP time limit applies here)."""

from __future__ import annotations

import logging
from pathlib import Path

import azure.functions as func
from pydantic import ValidationError

from functions.runtime import build_engine, load_settings
from shared.engine import RunOutcome, SyncEngine
from shared.runqueue import RUN_QUEUE, RunRequest
from shared.templates import TemplateDef, run_order

bp = func.Blueprint()
log = logging.getLogger("p2c.functions")


def execute(request: RunRequest) -> list[RunOutcome]:
    """Run what was queued; `all` runs every template with a mapping, in dependency order.

    Each template's run gets the id announced by the 202 answer (`RunRequest.run_id_of`), so an
    operator can look every one of them up. A failed run does not raise (the engine records it), so
    the message is not retried into a loop of failing runs.
    """
    engine = build_engine(load_settings())
    if request.template == "all":
        names = [t.name for t in _templates_with_mapping(engine)]
    else:
        names = [request.template]
    return [
        engine.run(
            name,
            trigger="queue",
            mode=request.mode,
            run_id=request.run_id_of(name),
            dry_run=request.dry_run,
        )
        for name in names
    ]


def _templates_with_mapping(engine: SyncEngine) -> list[TemplateDef]:
    """Like `SyncEngine.run_all`: a template without a mapping file is not deployed yet, not failed."""
    mappings_dir = Path(engine.settings.mappings_dir)
    return [t for t in run_order() if (mappings_dir / t.mapping_file).exists()]


@bp.function_name(name="queue_run")
@bp.queue_trigger(arg_name="msg", queue_name=RUN_QUEUE, connection="AzureWebJobsStorage")
def queue_run(msg: func.QueueMessage) -> None:
    try:
        request = RunRequest.model_validate_json(msg.get_body())
    except ValidationError as exc:
        # A malformed message would only fail again: log it and let it go (it is not retried).
        log.error("dropping invalid run request %s: %s", msg.id, exc.errors(include_input=False))
        return
    for outcome in execute(request):
        log.info("queued run %s of %s: %s", outcome.run_id, outcome.template, outcome.status)
