"""The mapping file format: one pydantic model per YAML shape (design.md §6).

The model is the contract between people who edit `mappings/*.yaml` and the compiler. It is strict
(`extra="forbid"`) so a misspelt key fails loudly instead of being ignored, and its JSON Schema is
exported to `mappings/schema.json` so editors validate as you type. It checks only the *shape* of a
rule; whether the named fields exist is checked against the schema catalogue by the compiler.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Service = Literal["dataverse", "finops"]
FilterOp = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "null", "not_null"]
DeletePolicy = Literal["ignore", "deactivate", "delete"]
Unmapped = Literal["error", "default", "pass"]


def _key_text(value: Any) -> Any:
    """Value-map keys as text: YAML reads `1:` as int and `yes:` as bool; `~:` / `"":` mean empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


MapKey = Annotated[str, BeforeValidator(_key_text)]
ValueMap = dict[MapKey, Any]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(_Strict):
    """One source filter condition; all conditions of a task must hold (AND)."""

    field: str = Field(description="Source column (Dataverse logical name or F&O property).")
    op: FilterOp = Field(description="Comparison; `null`/`not_null` ignore `value`.")
    value: Any = Field(default=None, description="Literal to compare with; a list for `in`/`not_in`.")


class SourceSpec(_Strict):
    """Where records come from. `select` is completed automatically with every field the rules read."""

    service: Service
    entity_set: str = Field(description="Dataverse entity set (e.g. `accounts`) or F&O entity set.")
    key: str | list[str] = Field(
        description=(
            "Source natural-key column (e.g. `accountnumber`), or several for composite keys such as F&O "
            "lines (`[SalesOrderNumber, LineCreationSequenceNumber]`); their values are joined with `|`."
        )
    )
    select: list[str] = Field(
        default_factory=list, description="Extra columns to read besides the mapped ones."
    )
    filter: list[Condition] = Field(
        default_factory=list,
        description="Selection rule, applied client-side (Dataverse refuses $filter while change tracking).",
    )


class TargetSpec(_Strict):
    """Where records are written."""

    service: Service
    entity_set: str
    key: list[str] | None = Field(
        default=None,
        description=(
            "Target key fields. Default: the F&O entity keys without dataAreaId, or the Dataverse table's "
            "first alternate key (none for line tables, which are written by deterministic id)."
        ),
    )
    match: list[str] | None = Field(
        default=None,
        description=(
            "Dataverse targets without an alternate key: lookup (bind) fields that identify an existing row, "
            "matched before a record's first write so a row already in Sales is updated, not duplicated "
            "(e.g. a price list item by [productid, pricelevelid, uomid])."
        ),
    )


class LookupSpec(_Strict):
    """Reference look-up: find `entity` where `by` equals the value and return `return`."""

    entity: str | list[str] = Field(
        description=(
            "Dataverse table logical name or F&O entity set of the reference data, or `synced:<template>` "
            "for a parent; a list is tried in order and the first match wins (a customer that is an "
            "account or a contact)."
        )
    )
    by: str = Field(description="Column matched against the (transformed) source value.")
    return_: str = Field(alias="return", description="Column whose value is written to the target.")
    optional: bool = Field(
        default=False,
        description=(
            "No match is not an error: the rule's value is empty (its default applies, or the field is "
            "left out). An optional `synced:` look-up is not a parent, so it never defers a record."
        ),
    )


class BindSpec(_Strict):
    """Dataverse lookup write: `<target>@odata.bind: "<entity_set>(<id>)"`.

    The related row's id is found through the resolver (`lookup`); with `key` the related row is
    named by one of its alternate keys instead (`salesorders(ordernumber='ORD-1')`), which needs no
    look-up at all and lets Dataverse resolve it; without either the source value is taken to be
    the related row's id already (e.g. a `_x_value` GUID copied table to table).
    """

    entity_set: str = Field(description="Entity set of the related table, e.g. `accounts`.")
    lookup: LookupSpec | None = None
    key: str | None = Field(
        default=None, description="Alternate-key column of the related table to bind by (instead of its id)."
    )


class ConcatSpec(_Strict):
    """Join several source fields; empty ones are skipped so no double separators appear."""

    fields: list[str] = Field(min_length=1)
    separator: str = " "


TransformStep = str | dict[str, Any]


class FieldRule(_Strict):
    """One target field and where its value comes from.

    Shapes: copy `{target, source}`; constant `{target, value}`; default when empty
    `{target, source, default}`; value map `{target, source, value_map, unmapped}`; reference look-up
    `{target, source, lookup}`; Dataverse lookup write `{target, source, bind}`; transforms
    `{target, source, transform: [...]}`. Transforms run first, then the value map / look-up / bind,
    then the default when the value is still empty. An empty value (null or "") with no default is
    left out of the payload, so the target keeps its own value or default.
    """

    target: str = Field(description="Target field (F&O property, Dataverse column, or bind navigation name).")
    source: str | None = Field(default=None, description="Source column read from the row.")
    value: Any = Field(default=None, description="Constant written on every record.")
    default: Any = Field(default=None, description="Written when the source value is empty (null or '').")
    value_map: str | ValueMap | None = Field(
        default=None, description="Name of a file-level value map, or an inline {source value: target value}."
    )
    unmapped: Unmapped = Field(
        default="error",
        description="Value not in the map: fail the record, write `default`, or pass the value through.",
    )
    pass_if: str | None = Field(
        default=None,
        description=(
            "With `unmapped: pass`: a regular expression a passed-through value must match in full "
            "(e.g. `^[A-Z]{2}$` for ISO country codes); anything else fails the record."
        ),
    )
    required: bool = Field(
        default=False,
        description="Fail the record when the value ends up empty (the target needs it).",
    )
    lookup: LookupSpec | None = None
    then_map: str | ValueMap | None = Field(
        default=None,
        description="Value map applied to the looked-up value (a Sales unit name to an F&O unit symbol).",
    )
    bind: BindSpec | None = None
    transform: list[TransformStep] = Field(
        default_factory=list,
        description=(
            "Named transforms applied in order: trim, upper, lower, truncate, date, datetime, decimal:N, "
            "divide:N, multiply:N, int, bool, string, {concat: {fields, separator}}, {first_non_empty: [..]}."
        ),
    )

    @model_validator(mode="after")
    def _one_shape(self) -> FieldRule:
        fields_set = self.model_fields_set
        if "value" in fields_set:
            extra = fields_set - {"target", "value", "lookup", "bind"}
            if extra:
                raise ValueError(f"a constant rule takes only target and value, not {sorted(extra)}")
            return self
        picks = [name for name in ("lookup", "bind") if getattr(self, name) is not None]
        if len(picks) > 1:
            raise ValueError(f"use one of value_map, lookup, bind per rule, not {picks}")
        if self.source is None and not _reads_own_fields(self.transform):
            if "default" in fields_set and not picks and not self.transform:
                raise ValueError("a rule with no source is a constant: write `value:` instead of `default:`")
            raise ValueError("rule needs `source` (or `value` for a constant)")
        if self.then_map is not None and self.lookup is None:
            raise ValueError("`then_map` maps a looked-up value: it needs `lookup`")
        if self.unmapped == "default" and "default" not in fields_set:
            raise ValueError("unmapped: default needs a `default` value")
        if "unmapped" in fields_set and self.value_map is None:
            raise ValueError("`unmapped` only applies to a value_map rule")
        if self.pass_if is not None:
            if self.unmapped != "pass":
                raise ValueError("`pass_if` only applies with `unmapped: pass`")
            try:
                re.compile(self.pass_if)
            except re.error as exc:
                raise ValueError(f"`pass_if` is not a valid regular expression: {exc}") from None
        return self


def _reads_own_fields(steps: list[TransformStep]) -> bool:
    """True when the first transform gathers its own inputs (concat, first_non_empty)."""
    if not steps:
        return False
    first = steps[0]
    own = ("concat", "first_non_empty", "per_unit", "per_unit_remainder")
    return isinstance(first, dict) and any(name in first for name in own)


class TaskSpec(_Strict):
    """One source entity → one target entity."""

    name: str
    description: str | None = None
    source: SourceSpec
    target: TargetSpec
    fields: list[FieldRule] = Field(min_length=1)
    delete_policy: DeletePolicy = Field(
        default="ignore",
        description=(
            "Source deletes (Dataverse sources): ignore and record (P2C behaviour), deactivate (write the "
            "`deactivate` payload to the target) or delete the target record."
        ),
    )
    deselect_policy: DeletePolicy = Field(
        default="ignore",
        description=(
            "A synced record that no longer matches `source.filter` (e.g. an order cancelled, a tax line "
            "that dropped to zero): ignore and keep it, deactivate, or delete the target record."
        ),
    )
    record_conflicts: bool = Field(
        default=False,
        description=(
            "Two-way tasks: before updating a record, read it from the target and report the fields that "
            "changed there since p2c-sync last wrote them and are about to be overwritten (`conflict_lost`)."
        ),
    )
    deactivate: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Target fields written to deactivate a record. Dataverse targets default to "
            "{statecode: 1, statuscode: 2}; F&O targets must say (e.g. {OnHoldStatus: All})."
        ),
    )
    parent_entities: list[str] = Field(
        default_factory=list,
        description="Look-up entities that are parents: a missing one defers the record, not fails it.",
    )
    cursor: str | None = Field(
        default=None, description="F&O date column for immutable date-cursor reads (invoices)."
    )


class MappingSpec(_Strict):
    """A whole template mapping file."""

    version: Literal[1]
    template: str
    description: str | None = None
    companies: Literal["all", "default"] = Field(
        default="all",
        description=(
            "F&O → Sales: which companies a run reads. `all` (each company of P2C_COMPANIES, e.g. orders), "
            "or `default` (only P2C_DEFAULT_COMPANY: masters Sales keeps once, such as products)."
        ),
    )
    value_maps: dict[str, ValueMap] = Field(
        default_factory=dict, description="Named value maps shared by the rules of this file."
    )
    tasks: list[TaskSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_tasks(self) -> MappingSpec:
        names = [task.name for task in self.tasks]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate task names {duplicates}")
        return self


def json_schema() -> dict[str, Any]:
    """JSON Schema of the mapping file, for `mappings/schema.json` (deterministic)."""
    schema = MappingSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "p2c-sync mapping file"
    return schema
