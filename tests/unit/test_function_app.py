"""Index the app the way the Functions Python worker does (worker/loader.py, worker/functions.py)."""

from __future__ import annotations

import functools
import importlib
import inspect
import json

import azure.functions as func

from shared.templates import TEMPLATES

EXPECTED_ROUTES = {
    ("POST", "sync/{template}"),
    ("GET", "status"),
    ("GET", "runs/{template}"),
    ("GET", "runs/{template}/{run_id}"),
    ("GET", "errors/{template}"),
    ("POST", "errors/{template}/replay"),
    ("GET", "health"),
}


@functools.cache
def _functions() -> dict[str, func.FunctionBuilder]:
    """Indexed once per process, like the worker does (a second `get_functions()` re-validates names)."""
    module = importlib.import_module("function_app")
    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    assert len(apps) == 1, "exactly one FunctionApp at module level"
    functions = apps[0].get_functions()  # also validates unique names
    return {f.get_function_name(): f for f in functions}


def test_bindings_match_parameters_like_the_worker_checks() -> None:
    for name, function in _functions().items():
        bound = {b.name for b in function.get_bindings() if b.name != "$return"}
        params = set(inspect.signature(function.get_user_function()).parameters) - {"context"}
        assert bound == params, name
        json.loads(function.get_function_json())


def test_one_timer_per_template_with_its_schedule_setting() -> None:
    functions = _functions()
    for template in TEMPLATES:
        function = functions[f"timer_{template.function_suffix}"]
        trigger = json.loads(function.get_function_json())["bindings"][0]
        assert trigger["type"] == "timerTrigger"
        assert trigger["schedule"] == f"%{template.schedule_setting}%"
        assert trigger.get("runOnStartup") in (None, False)


def test_queue_trigger_and_every_route_at_auth_level_function() -> None:
    functions = _functions()
    routes = set()
    queue_triggers = []
    for function in functions.values():
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] == "httpTrigger":
            assert trigger["authLevel"].upper() == "FUNCTION"
            for method in trigger["methods"]:
                routes.add((method.upper(), trigger["route"]))
        if trigger["type"] == "queueTrigger":
            queue_triggers.append(trigger)
    assert routes >= EXPECTED_ROUTES
    assert [t["queueName"] for t in queue_triggers] == ["p2c-runs"]
