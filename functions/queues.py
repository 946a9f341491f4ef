"""Queued manual runs: the HTTP API enqueues, this executes (no HTTP time limit applies here)."""

from __future__ import annotations

import logging

import azure.functions as func
from pydantic import ValidationError

from functions.runtime import build_engine, load_settings
from shared.runqueue import RUN_QUEUE, RunRequest

bp = func.Blueprint()
log = logging.getLogger("p2c.functions")


@bp.function_name(name="queue_run")
@bp.queue_trigger(arg_name="msg", queue_name=RUN_QUEUE, connection="AzureWebJobsStorage")
def queue_run(msg: func.QueueMessage) -> None:
    try:
        request = RunRequest.model_validate_json(msg.get_body())
    except ValidationError as exc:
        # A malformed message would only fail again: log it and let it go (it is not retried).
        log.error("dropping invalid run request %s: %s", msg.id, exc.errors(include_input=False))
        return
    engine = build_engine(load_settings())
    if request.template == "all":
        outcomes = engine.run_all(trigger="queue", mode=request.mode, dry_run=request.dry_run)
        log.info("queued run of all templates: %s", [(o.template, o.status) for o in outcomes])
    else:
        outcome = engine.run(
            request.template,
            trigger="queue",
            mode=request.mode,
            run_id=request.run_id,
            dry_run=request.dry_run,
        )
        log.info("queued run %s of %s: %s", outcome.run_id, request.template, outcome.status)
