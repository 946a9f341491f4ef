"""A rule's fast applier returns exactly what its full `apply` returns, for every rule we ship.

`CompiledRule.applier` skips the general path when a value is already what the target type wants.
This compares the two, rule by rule over every mapping file, on values of every shape a source
sends: text (plain, padded, blank, too long, any case), numbers (whole, fractional, huge, not
finite), booleans, Decimals, GUIDs in both cases, dates and nothing at all.
"""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from shared.mapping import load_catalogue, load_mapping
from shared.mapping.records import MapContext
from shared.mapping.rules import SKIP, CompiledRule, RuleFailure
from tests.unit.mapping.helpers import FakeResolver

ROOT = Path(__file__).resolve().parents[3]

PROBES: list[Any] = [
    None,
    "",
    "   ",
    "Contoso",
    "  Contoso  ",
    "x" * 400,
    "yes",
    "No",
    "YES",
    "1",
    "12.5",
    "not a number",
    "2024-05-01T10:00:00Z",
    "2024-05-01",
    "6f3b1c52-8d4e-5a7f-9b20-3c1d7e5a9f41",
    "6F3B1C52-8D4E-5A7F-9B20-3C1D7E5A9F41",
    "{6f3b1c52-8d4e-5a7f-9b20-3c1d7e5a9f41}",
    0,
    1,
    2,
    100000000,
    -3,
    10**20,
    1.0,
    2.675,
    -0.5,
    1e20,
    math.nan,
    math.inf,
    True,
    False,
    Decimal("2.50"),
    Decimal("7"),
    Decimal("NaN"),
]


def _rules() -> list[tuple[str, CompiledRule]]:
    catalogue = load_catalogue(ROOT / "sandbox" / "schemas")
    found = []
    for path in sorted((ROOT / "mappings").glob("*.yaml")):
        for task in load_mapping(path, catalogue).tasks:
            for rule in task.rules:
                found.append((f"{path.stem}.{task.name}.{rule.payload_name}", rule))
    return found


RULES = _rules()


def _outcome(apply: Any, row: dict[str, Any], ctx: MapContext) -> tuple[str, Any]:
    try:
        value = apply(row, ctx)
    except RuleFailure as failure:
        return "failure", failure.reason
    except Exception as exc:  # compared, not swallowed
        return type(exc).__name__, str(exc)
    if value is SKIP:
        return "skip", None
    # nan != nan: compare its text
    return "value", (type(value), repr(value))


@pytest.mark.parametrize(("name", "rule"), RULES, ids=[name for name, _ in RULES])
def test_fast_applier_matches_the_general_path(name: str, rule: CompiledRule) -> None:
    ctx = MapContext(company="usmf", resolver=FakeResolver())
    fast = rule.applier()
    # every column the rule can read (its own, and those its transforms name) gets the probe
    columns = {rule.read} if rule.read else set()
    for probe in PROBES:
        row = dict.fromkeys(columns, probe)
        row |= {key: probe for key in _transform_columns(rule)}
        assert _outcome(fast, row, ctx) == _outcome(rule._general, row, ctx), (name, probe)


def _transform_columns(rule: CompiledRule) -> set[str]:
    """Columns named inside transform arguments (concat, first_non_empty, per_unit), by closure."""
    names: set[str] = set()
    for _step, transform in rule.transforms:
        for cell in getattr(transform, "__closure__", None) or ():
            contents = cell.cell_contents
            if isinstance(contents, str):
                names.add(contents)
            elif isinstance(contents, list) and all(isinstance(item, str) for item in contents):
                names.update(contents)
    return names


def test_most_shipped_rules_have_a_fast_path() -> None:
    """The point of the fast path: most of the rules a record runs through take it."""
    fast = [name for name, rule in RULES if rule.applier() != rule._general]
    assert len(fast) >= len(RULES) // 2, f"{len(fast)} of {len(RULES)}"
