"""HTTP API for operators: manual runs, status, run history, errors and replay (auth level FUNCTION).

Every handler validates its input and answers JSON; a bad request gets a 400 naming the problem.
Runs are queued, never executed inside the HTTP request (the platform cuts responses at 230 s).
Handlers stay thin: validation here, the work in `shared.runqueue` and the state store.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import azure.functions as func
from azure.core.exceptions import AzureError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from functions.runtime import build_run_queue, build_state, load_settings, probe_storage
from shared.runqueue import RUN_ID_PATTERN, RunRequest, template_status
from shared.settings import SettingsError
from shared.templates import TEMPLATE_NAMES, get_template

bp = func.Blueprint()
log = logging.getLogger("p2c.functions")

MAX_BODY_BYTES = 16 * 1024
MAX_LIST = 500
MAX_REPLAY_KEYS = 1000
MAX_KEY_CHARS = 256

SourceKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_CHARS)]
Model = TypeVar("Model", bound=BaseModel)
Handler = Callable[[func.HttpRequest], func.HttpResponse]


class SyncBody(BaseModel):
    """`POST /api/sync/{template}` body (optional; `?mode=` / `?dry_run=` may be given instead)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["incremental", "full"] = "incremental"
    dry_run: bool = False


class ReplayBody(BaseModel):
    """`POST /api/errors/{template}/replay` body: which source keys (default all) and whether to run now."""

    model_config = ConfigDict(extra="forbid")
    keys: list[SourceKey] | None = Field(
        default=None, min_length=1, max_length=MAX_REPLAY_KEYS
    )
    run: bool = True


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, default=str), status_code=status, mimetype="application/json")


def _error(status: int, message: str, **details: Any) -> func.HttpResponse:
    return _json({"error": {"message": message, **details}}, status)


class _BadRequest(Exception):
    """Raised by the validators below; `_handler` turns it into the JSON error response."""

    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__(response.get_body().decode())
        self.response = response


def _handler(fn: Handler) -> Handler:
    """Uniform failure answers: 400 for bad input, 500 for bad settings, 503 when storage fails.

    No exception text of the storage SDK is returned (it can carry URLs and request ids); the
    class name is enough for an operator and the full error is in the logs.
    """

    @functools.wraps(fn)
    def wrapper(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return fn(req)
        except _BadRequest as bad:
            return bad.response
        except SettingsError as exc:
            log.error("settings are invalid: %s", exc)
            return _error(500, "settings are invalid", settings=_setting_names(exc))
        except AzureError as exc:
            log.exception("state storage failed")
            return _error(503, f"state storage unavailable ({type(exc).__name__})")

    return wrapper


def _setting_names(exc: SettingsError) -> list[str]:
    """Only the names of the settings at fault: a problem line may quote a (secret) value."""
    return sorted({p.split(":", 1)[0].split(" ", 1)[0] for p in exc.problems})


def _template_param(req: func.HttpRequest, allow_all: bool = False) -> str:
    name = req.route_params.get("template", "")
    if allow_all and name == "all":
        return name
    if name not in TEMPLATE_NAMES:
        known = (["all"] if allow_all else []) + list(TEMPLATE_NAMES)
        raise _BadRequest(_error(400, f"unknown template {name!r}", field="template", known_templates=known))
    return name


def _only_params(req: func.HttpRequest, allowed: set[str]) -> None:
    unknown = sorted(set(req.params) - allowed - {"code"})  # `code` carries the function key
    if unknown:
        raise _BadRequest(
            _error(400, f"unknown query parameter(s): {', '.join(unknown)}", allowed=sorted(allowed))
        )


def _body(req: func.HttpRequest, model: type[Model], overrides: dict[str, Any] | None = None) -> Model:
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise _BadRequest(
            _error(400, f"request body too large: {len(raw)} bytes, at most {MAX_BODY_BYTES}", field="body")
        )
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest(_error(400, "request body is not valid JSON", field="body")) from None
    if not isinstance(data, dict):
        raise _BadRequest(_error(400, "request body must be a JSON object", field="body"))
    data.update(overrides or {})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
            for e in exc.errors(include_input=False)
        ]
        fields = ", ".join(p["field"] for p in problems)
        raise _BadRequest(_error(400, f"invalid request: {fields}", problems=problems)) from None


def _limit(req: func.HttpRequest, default: int) -> int:
    raw = req.params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST:
        raise _BadRequest(_error(400, f"limit must be an integer between 1 and {MAX_LIST}", field="limit"))
    return int(raw)


def _bool_param(req: func.HttpRequest, name: str) -> bool | None:
    raw = req.params.get(name)
    if raw is None:
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise _BadRequest(_error(400, f"{name} must be true or false", field=name))


def _queue_run(request: RunRequest) -> None:
    queue = build_run_queue(load_settings())
    queue.ensure()
    queue.enqueue(request)


@bp.function_name(name="http_sync")
@bp.route(route="sync/{template}", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@_handler
def http_sync(req: func.HttpRequest) -> func.HttpResponse:
    """Queue a run of one template (or `all`); 202 with the run id, the queue trigger executes it."""
    template = _template_param(req, allow_all=True)
    _only_params(req, {"mode", "dry_run"})
    overrides: dict[str, Any] = {}
    if "mode" in req.params:
        overrides["mode"] = req.params["mode"]
    dry_run = _bool_param(req, "dry_run")
    if dry_run is not None:
        overrides["dry_run"] = dry_run
    body = _body(req, SyncBody, overrides)
    settings = load_settings()
    if template != "all":
        mapping = Path(settings.mappings_dir) / get_template(template).mapping_file
        if not mapping.exists():
            message = f"template {template!r} has no mapping deployed ({mapping.name})"
            return _error(400, message, field="template")
    request = RunRequest(template=template, mode=body.mode, dry_run=body.dry_run, trigger="http")
    _queue_run(request)
    runs = [request.run_id] if template != "all" else None
    return _json(
        {
            "run_id": request.run_id,
            "template": template,
            "mode": body.mode,
            "dry_run": body.dry_run,
            "status": "queued",
            "runs": runs,
            "links": {
                "run": f"/api/runs/{template}/{request.run_id}" if template != "all" else None,
                "status": "/api/status",
            },
        },
        202,
    )


@bp.function_name(name="http_status")
@bp.route(route="status", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@_handler
def http_status(req: func.HttpRequest) -> func.HttpResponse:
    """Per template: last run and outcome, checkpoint lag, retry-store counts."""
    _only_params(req, set())
    state = build_state(load_settings())
    now = datetime.now(UTC)
    rows = [template_status(state, name, now) for name in TEMPLATE_NAMES]
    return _json({"templates": rows, "generated_at": now.isoformat()})


@bp.function_name(name="http_runs")
@bp.route(route="runs/{template}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@_handler
def http_runs(req: func.HttpRequest) -> func.HttpResponse:
    """Run history of a template, newest first (`?limit=`, default 20)."""
    template = _template_param(req)
    _only_params(req, {"limit"})
    limit = _limit(req, 20)
    state = build_state(load_settings())
    runs = [r.as_dict() for r in state.runs.list(template, limit=limit)]
    return _json({"template": template, "runs": runs})


@bp.function_name(name="http_run")
@bp.route(route="runs/{template}/{run_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@_handler
def http_run(req: func.HttpRequest) -> func.HttpResponse:
    """One run record; 404 while a queued run has not started yet."""
    template = _template_param(req)
    _only_params(req, set())
    run_id = req.route_params.get("run_id", "")
    if not re.match(RUN_ID_PATTERN, run_id):
        return _error(400, "run_id is malformed", field="run_id")
    state = build_state(load_settings())
    record = state.runs.get(template, run_id)
    if record is None:
        return _error(404, f"no run {run_id!r} of template {template!r} (yet)")
    return _json(record.as_dict())


@bp.function_name(name="http_errors")
@bp.route(route="errors/{template}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@_handler
def http_errors(req: func.HttpRequest) -> func.HttpResponse:
    """Retry-store rows of a template (`?status=retrying|parked|resolved`, `?limit=`, default 100)."""
    template = _template_param(req)
    _only_params(req, {"status", "limit"})
    status = req.params.get("status")
    if status is not None and status not in ("retrying", "parked", "resolved"):
        return _error(400, "status must be one of retrying, parked, resolved", field="status")
    limit = _limit(req, 100)
    state = build_state(load_settings())
    records = state.errors.list(template, status=status, limit=limit)
    errors = [r.as_dict() for r in records]
    return _json({"template": template, "counts": state.errors.counts(template), "errors": errors})


@bp.function_name(name="http_replay")
@bp.route(route="errors/{template}/replay", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@_handler
def http_replay(req: func.HttpRequest) -> func.HttpResponse:
    """Make failed/parked records due now; with `run` (default) also queue a run that retries them."""
    template = _template_param(req)
    _only_params(req, set())
    body = _body(req, ReplayBody)
    settings = load_settings()
    requeued = build_state(settings).errors.requeue(template, keys=body.keys)
    response: dict[str, Any] = {"template": template, "requeued": requeued, "run_id": None}
    if body.run and requeued:
        request = RunRequest(template=template, trigger="http")
        _queue_run(request)
        response["run_id"] = request.run_id
        return _json(response, 202)
    return _json(response, 200)


@bp.function_name(name="http_health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def http_health(req: func.HttpRequest) -> func.HttpResponse:
    """Settings valid and state storage reachable; names the failing check, never a value."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        checks: dict[str, Any] = {"settings": {"status": "invalid", "settings": _setting_names(exc)}}
        return _json({"status": "unhealthy", "checks": checks}, 503)
    checks = {"settings": {"status": "ok"}}
    healthy = True
    try:
        probe_storage(settings)
        checks["storage"] = {"status": "ok"}
    except Exception as exc:  # any failure means "not reachable"; the class is enough to act on
        healthy = False
        checks["storage"] = {"status": "unreachable", "error": type(exc).__name__}
    return _json({"status": "healthy" if healthy else "unhealthy", "checks": checks}, 200 if healthy else 503)
