"""Local stand-ins for Entra ID, Dataverse and Finance & Operations (see docs/internals.md "Sandbox").

`Sandbox`, `SandboxConfig` and `SandboxInfo` are imported lazily so `import sandbox.<module>` (the
stores, the catalogue, the Azurite harness) stays cheap and does not need uvicorn or trustme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.server import Sandbox, SandboxConfig, SandboxInfo

__all__ = ["Sandbox", "SandboxConfig", "SandboxInfo"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sandbox import server

        return getattr(server, name)
    raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
