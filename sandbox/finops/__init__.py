"""Finance and Operations OData stand-in: in-memory store + Starlette app (see apis.md Part B)."""

from sandbox.finops.app import FinOpsService, build_finops_app
from sandbox.finops.store import FinOpsStore

__all__ = ["FinOpsService", "FinOpsStore", "build_finops_app"]
