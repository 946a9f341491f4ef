"""Mapping engine: YAML spec, catalogue validation, compiled per-record mapping (design.md §6).

`load_mapping(path, load_catalogue(dir))` gives a `CompiledMapping` whose tasks map source rows to
target payloads as pure functions; reference data is looked up through the `ReferenceResolver`
passed in a `MapContext`.
"""

from shared.mapping.catalogue import (
    Catalogue,
    CatalogueError,
    ColumnSpec,
    DataverseTable,
    FinOpsEntitySet,
    PropertySpec,
    load_catalogue,
)
from shared.mapping.compiler import CompiledMapping, MappingSpecError, TaskMapping, compile_spec
from shared.mapping.loader import load_mapping, load_spec, target_key_references
from shared.mapping.records import (
    MapContext,
    MappedRecord,
    MappingFailure,
    ReferenceMissing,
    ReferenceResolver,
    record_hash,
    synced_entity,
)
from shared.mapping.spec import Condition, FieldRule, MappingSpec, SourceSpec, TargetSpec, TaskSpec

__all__ = [
    "Catalogue",
    "CatalogueError",
    "ColumnSpec",
    "CompiledMapping",
    "Condition",
    "DataverseTable",
    "FieldRule",
    "FinOpsEntitySet",
    "MapContext",
    "MappedRecord",
    "MappingFailure",
    "MappingSpec",
    "MappingSpecError",
    "PropertySpec",
    "ReferenceMissing",
    "ReferenceResolver",
    "SourceSpec",
    "TargetSpec",
    "TaskMapping",
    "TaskSpec",
    "compile_spec",
    "load_catalogue",
    "load_mapping",
    "load_spec",
    "record_hash",
    "synced_entity",
    "target_key_references",
]
