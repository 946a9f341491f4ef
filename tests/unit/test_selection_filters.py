"""Selection rules on our side: the text fast path decides exactly as the general comparison."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from shared.engine.filters import _OPS, compile_filter


@dataclass
class Cond:
    field: str
    op: str
    value: Any


PROBES: list[Any] = [
    "Yes",
    "yes",
    " Yes",
    "YES",
    "Active",
    "active",
    "No",
    "",
    "Straße",
    "STRASSE",
    None,
    True,
    False,
    1,
    0,
    1.0,
    Decimal("1"),
    "1",
    ["Yes"],
]
CONSTANTS: list[tuple[str, Any]] = [
    ("eq", "Yes"),
    ("ne", "WorkOrderIntegration"),
    ("ne", "Yes"),
    ("eq", "1"),
    ("eq", "strasse"),
    ("in", ["Active", "Yes"]),
    ("not_in", ["Active"]),
    ("in", ["1", "true"]),
]


@pytest.mark.parametrize(("op", "value"), CONSTANTS)
def test_text_constants_select_as_the_general_comparison_does(op: str, value: Any) -> None:
    predicate = compile_filter([Cond("f", op, value)])
    general = _OPS[op]
    for probe in PROBES:
        assert predicate({"f": probe}) == general(probe, value), (op, value, probe)
    assert predicate({}) == general(None, value)


def test_all_conditions_must_hold() -> None:
    predicate = compile_filter([Cond("a", "eq", "Yes"), Cond("b", "not_in", ["Active"])])
    assert predicate({"a": "yes", "b": "Done"})
    assert not predicate({"a": "yes", "b": "ACTIVE"})
    assert not predicate({"a": "No", "b": "Done"})
    assert compile_filter([])({"anything": 1})
