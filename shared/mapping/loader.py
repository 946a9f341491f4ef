"""Read a mapping YAML file, validate its shape (pydantic) and compile it against the catalogue.

Every way a file can be wrong ends as one `MappingSpecError` whose message starts with the file
name, then the task and field, so the engine can refuse to run a template with a message that
tells the operator exactly which line to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from shared.mapping.catalogue import Catalogue
from shared.mapping.compiler import CompiledMapping, MappingSpecError, compile_spec
from shared.mapping.spec import MappingSpec


def parse_spec(document: Any, file: str) -> MappingSpec:
    """Validate a parsed YAML document; the first pydantic error becomes a `MappingSpecError`."""
    try:
        return MappingSpec.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = list(error["loc"])
        task, field = _locate(document, loc)
        where = ".".join(str(part) for part in loc)
        raise MappingSpecError(
            f"{error['msg']} (at {where})" if where else error["msg"], file=file, task=task, field=field
        ) from None


def _locate(document: Any, loc: list[Any]) -> tuple[str | None, str | None]:
    """Task name and target field for a pydantic error location like ['tasks', 0, 'fields', 3, 'source']."""
    task: str | None = None
    field: str | None = None
    try:
        if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
            raw_task = document["tasks"][loc[1]]
            task = str(raw_task.get("name")) if isinstance(raw_task, dict) else None
            if len(loc) >= 4 and loc[2] == "fields" and isinstance(loc[3], int):
                raw_rule = raw_task["fields"][loc[3]]
                field = str(raw_rule.get("target")) if isinstance(raw_rule, dict) else None
    except (KeyError, IndexError, TypeError, AttributeError):
        pass
    return task, field


def load_spec(path: Path) -> MappingSpec:
    """Read and shape-check a mapping file without the catalogue (for tooling and tests)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingSpecError(f"cannot read mapping file: {exc.strerror or exc}", file=file) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingSpecError(f"not valid YAML: {exc}", file=file) from None
    if not isinstance(document, dict):
        raise MappingSpecError("a mapping file is a YAML mapping with version, template and tasks", file=file)
    return parse_spec(document, file)


def load_mapping(path: Path, catalogue: Catalogue) -> CompiledMapping:
    """Load, validate and compile `path`; raises `MappingSpecError` naming file, task and field."""
    spec = load_spec(path)
    return compile_spec(spec, catalogue, file=str(path))
