"""HTTP API for operators: manual runs, status, run history, errors and replay (auth level FUNCTION).

Every handler validates its input and answers JSON; a bad request gets a 400 naming the problem.
Runs are queued, never executed inside the HTTP request (the platform cuts responses at 230 s).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from shared.settings import SettingsError

from functions.runtime import build_run_queue, build_state, load_settings
from shared.runqueue import RunRequest
from shared.templates import TEMPLATE_NAMES, TEMPLATES, get_template

bp = func.Blueprint()
log = logging.getLogger("p2c.functions")

MAX_BODY_BYTES = 16 * 1024
MAX_LIST = 500


class SyncBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: str = "incremental"
    dry_run: bool = False


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    keys: list[str] | None = Field(default=None, max_length=1000)
    run: bool = True


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def _error(status: int, message: str, **details: Any) -> func.HttpResponse:
    return _json({"error": {"message": message, **details}}, status)


def _template_param(req: func.HttpRequest, allow_all: bool = False) -> str | func.HttpResponse:
    name = req.route_params.get("template", "")
    if allow_all and name == "all":
        return name
    if name not in TEMPLATE_NAMES:
        known = ", ".join((["all"] if allow_all else []) + list(TEMPLATE_NAMES))
        return _error(400, f"unknown template {name!r}", known_templates=known)
    return name


def _body(req: func.HttpRequest, model: type[BaseModel]) -> BaseModel | func.HttpResponse:
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        return _error(400, f"request body too large: {len(raw)} bytes, at most {MAX_BODY_BYTES}")
    if not raw.strip():
        raw = b"{}"
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return _error(400, "request body is not valid JSON")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [{"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return _error(400, "invalid request body", problems=problems)


def _limit(req: func.HttpRequest, default: int = 20) -> int | func.HttpResponse:
    raw = req.params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        return _error(400, f"limit must be an integer between 1 and {MAX_LIST}")
    return int(raw)


@bp.function_name(name="http_sync")
@bp.route(route="sync/{template}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def http_sync(req: func.HttpRequest) -> func.HttpResponse:
    template = _template_param(req, allow_all=True)
    if isinstance(template, func.HttpResponse):
        return template
    body = _body(req, SyncBody)
    if isinstance(body, func.HttpResponse):
        return body
    assert isinstance(body, SyncBody)
    mode = req.params.get("mode", body.mode)
    if mode not in ("incremental", "full"):
        return _error(400, f"mode must be 'incremental' or 'full', not {mode!r}")
    try:
        settings = load_settings()
        request = RunRequest(template=template, mode=mode, dry_run=body.dry_run, trigger="http")  # type: ignore[arg-type]
        queue = build_run_queue(settings)
        queue.ensure()
        queue.enqueue(request)
    except SettingsError as exc:
        return _error(500, f"settings are invalid: {exc}")
    return _json(
        {
            "run_id": request.run_id,
            "template": template,
            "mode": mode,
            "status": "queued",
            "links": {"runs": f"/api/runs/{template}" if template != "all" else "/api/status"},
        },
        202,
    )


@bp.function_name(name="http_status")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_status(req: func.HttpRequest) -> func.HttpResponse:
    state = build_state(load_settings())
    now = datetime.now(UTC)
    rows = []
    for template in TEMPLATES:
        last = state.runs.latest(template.name)
        last_ok = state.runs.latest(template.name, status="succeeded")
        counts = state.errors.counts(template.name)
        rows.append(
            {
                "template": template.name,
                "last_run": None
                if last is None
                else {
                    "run_id": last.run_id,
                    "status": last.status,
                    "started_at": last.started_at,
                    "finished_at": last.finished_at,
                    "counts": last.counts,
                    "message": last.message,
                },
                "last_success_at": None if last_ok is None else last_ok.finished_at,
                "lag_s": None
                if last_ok is None or last_ok.finished_at is None
                else round((now - last_ok.finished_at).total_seconds(), 1),
                "errors": counts,
            }
        )
    return _json({"templates": rows, "generated_at": now.isoformat()})


@bp.function_name(name="http_runs")
@bp.route(route="runs/{template}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_runs(req: func.HttpRequest) -> func.HttpResponse:
    template = _template_param(req)
    if isinstance(template, func.HttpResponse):
        return template
    limit = _limit(req)
    if isinstance(limit, func.HttpResponse):
        return limit
    state = build_state(load_settings())
    return _json(
        {"template": template, "runs": [r.as_dict() for r in state.runs.list(template, limit=limit)]}
    )


@bp.function_name(name="http_run")
@bp.route(route="runs/{template}/{run_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_run(req: func.HttpRequest) -> func.HttpResponse:
    template = _template_param(req)
    if isinstance(template, func.HttpResponse):
        return template
    run_id = req.route_params.get("run_id", "")
    if not run_id or len(run_id) > 64 or not all(c.isalnum() or c in "-_T" for c in run_id):
        return _error(400, "run_id is malformed")
    state = build_state(load_settings())
    record = state.runs.get(template, run_id)
    if record is None:
        return _error(404, f"no run {run_id!r} of template {template!r}")
    return _json(record.as_dict())


@bp.function_name(name="http_errors")
@bp.route(route="errors/{template}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_errors(req: func.HttpRequest) -> func.HttpResponse:
    template = _template_param(req)
    if isinstance(template, func.HttpResponse):
        return template
    status = req.params.get("status")
    if status is not None and status not in ("retrying", "parked", "resolved"):
        return _error(400, "status must be one of retrying, parked, resolved")
    limit = _limit(req, 100)
    if isinstance(limit, func.HttpResponse):
        return limit
    state = build_state(load_settings())
    records = state.errors.list(template, status=status, limit=limit)
    return _json(
        {
            "template": template,
            "counts": state.errors.counts(template),
            "errors": [r.as_dict() for r in records],
        }
    )


@bp.function_name(name="http_replay")
@bp.route(route="errors/{template}/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def http_replay(req: func.HttpRequest) -> func.HttpResponse:
    template = _template_param(req)
    if isinstance(template, func.HttpResponse):
        return template
    body = _body(req, ReplayBody)
    if isinstance(body, func.HttpResponse):
        return body
    assert isinstance(body, ReplayBody)
    settings = load_settings()
    state = build_state(settings)
    requeued = state.errors.requeue(template, keys=body.keys)
    response: dict[str, Any] = {"template": template, "requeued": requeued}
    if body.run and requeued:
        request = RunRequest(template=template, trigger="http")
        queue = build_run_queue(settings)
        queue.ensure()
        queue.enqueue(request)
        response["run_id"] = request.run_id
    return _json(response, 202 if body.run and requeued else 200)


@bp.function_name(name="http_health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_health(req: func.HttpRequest) -> func.HttpResponse:
    checks: dict[str, Any] = {}
    healthy = True
    try:
        settings = load_settings()
        checks["settings"] = "ok"
    except SettingsError as exc:
        return _json({"status": "unhealthy", "checks": {"settings": str(exc)}}, 503)
    try:
        state = build_state(settings)
        state.runs.latest(get_template("accounts").name)
        checks["storage"] = "ok"
    except Exception as exc:
        healthy = False
        checks["storage"] = f"unreachable: {type(exc).__name__}"
    return _json({"status": "healthy" if healthy else "unhealthy", "checks": checks}, 200 if healthy else 503)
