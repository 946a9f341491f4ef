"""The one FunctionApp: registers the blueprints in functions/ — nothing else."""

import azure.functions as func

from functions import http_api, queues, timers

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(timers.bp)
app.register_functions(queues.bp)
app.register_functions(http_api.bp)
