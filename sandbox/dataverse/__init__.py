"""Dataverse Web API stand-in: in-memory store + Starlette app (see apis.md Part A)."""

from sandbox.dataverse.app import DataverseService, build_dataverse_app
from sandbox.dataverse.store import DataverseStore

__all__ = ["DataverseService", "DataverseStore", "build_dataverse_app"]
