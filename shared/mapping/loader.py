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
from shared.mapping.records import synced_entity
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


#: libyaml's safe loader when the wheel has it (several times faster), else the pure-Python one.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def target_key_references(mappings_dir: Path) -> frozenset[tuple[str, str | None]]:
    """(template, task or None) of every `synced:` look-up made `by: target_key` in any mapping file.

    Only those tasks need reverse crosswalk rows (target key → source key); every other task saves
    a third of its crosswalk writes. The scan reads the YAML only (no compiling), so every run can
    afford it; a file that does not parse is skipped here and reported by its own load.
    """
    found: set[tuple[str, str | None]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("by") == "target_key":
                names = node.get("entity")
                for name in names if isinstance(names, list) else [names]:
                    synced = synced_entity(name) if isinstance(name, str) else None
                    if synced is not None:
                        found.add(synced)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    for path in sorted(Path(mappings_dir).glob("*.yaml")):
        try:
            walk(yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER))  # noqa: S506
        except (OSError, yaml.YAMLError):
            continue
    return frozenset(found)


def load_spec(path: Path) -> MappingSpec:
    """Read and shape-check a mapping file without the catalogue (for tooling and tests)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingSpecError(f"cannot read mapping file: {exc.strerror or exc}", file=file) from None
    try:
        document = yaml.load(text, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise MappingSpecError(f"not valid YAML: {exc}", file=file) from None
    if not isinstance(document, dict):
        raise MappingSpecError("a mapping file is a YAML mapping with version, template and tasks", file=file)
    return parse_spec(document, file)


def load_mapping(path: Path, catalogue: Catalogue) -> CompiledMapping:
    """Load, validate and compile `path`; raises `MappingSpecError` naming file, task and field."""
    spec = load_spec(path)
    return compile_spec(spec, catalogue, file=str(path))
