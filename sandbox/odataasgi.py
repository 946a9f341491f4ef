"""The HTTP skin both stand-ins share: Starlette in, `service.handle(...)` (plain Python) out.

The protocol work lives in each service's `handle`, which `$batch` also calls for its inner
requests; this layer only moves bytes, folds repeated `Prefer` headers into one (as the services
read them) and runs the handler off the event loop.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

METHODS = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def odata_app(service: Any, state_name: str) -> Starlette:
    """Serve `service` under its `base_path`; the service object is also at `app.state.<state_name>`."""
    prefix: str = service.base_path

    async def endpoint(request: Request) -> Response:
        body = await request.body()
        path = request.scope["path"]
        rel = path[len(prefix) :].lstrip("/") if path.startswith(prefix) else path.lstrip("/")
        headers = dict(request.headers.items())
        prefer = request.headers.getlist("prefer")
        if len(prefer) > 1:
            headers["prefer"] = ",".join(prefer)
        root = str(request.base_url).rstrip("/") + prefix
        handle = partial(
            service.handle,
            request.method,
            rel,
            query=dict(request.query_params),
            headers=headers,
            body=body,
            root=root,
        )
        reply = await run_in_threadpool(handle)
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    app = Starlette(
        routes=[
            Route(prefix, endpoint, methods=METHODS),
            Route(prefix + "/{rest:path}", endpoint, methods=METHODS),
        ]
    )
    setattr(app.state, state_name, service)
    return app
