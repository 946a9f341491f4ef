"""One timer function per template; the schedule comes from the app setting %<TEMPLATE>_SCHEDULE%."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.runtime import build_engine, load_settings
from shared.templates import TEMPLATES, TemplateDef

bp = func.Blueprint()
log = logging.getLogger("p2c.functions")


def _register(template: TemplateDef) -> None:
    def run_template(timer: func.TimerRequest) -> None:
        if timer.past_due:
            log.info("timer for %s is past due; running now", template.name)
        engine = build_engine(load_settings())
        outcome = engine.run(template.name, trigger="timer", mode="incremental")
        log.info("timer run %s of %s: %s", outcome.run_id, template.name, outcome.status)

    run_template.__name__ = f"timer_{template.function_suffix}"
    run_template.__qualname__ = run_template.__name__
    decorated = bp.timer_trigger(
        arg_name="timer", schedule=f"%{template.schedule_setting}%", run_on_startup=False, use_monitor=True
    )(run_template)
    bp.function_name(name=run_template.__name__)(decorated)


for _template in TEMPLATES:
    _register(_template)
