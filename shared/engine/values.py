"""What counts as "the same value" when comparing what a target holds with what we would write.

The services echo values back in their own shapes (F&O dates with a time, numbers as strings or
floats), so a plain `==` would report changes that are not there; the dry-run diff and the two-way
conflict check both ask this one function.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def as_decimal(value: Any) -> Decimal | None:
    """A number, or numeric text, as a Decimal; None for anything else (booleans included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | Decimal):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def same_value(current: Any, new: Any) -> bool:
    """Equal as the target stores it: blank == None, 5 == 5.0 == "5", dates compare by their day."""
    if current in (None, "") and new in (None, ""):
        return True
    if isinstance(current, bool) or isinstance(new, bool):  # True == 1 in Python, not in a target
        return isinstance(current, bool) and isinstance(new, bool) and current == new
    # numeric comparison only when one side is a number: "01234" and "1234" are different zip codes
    numeric = (int, float, Decimal)
    if isinstance(current, numeric) or isinstance(new, numeric):
        a, b = as_decimal(current), as_decimal(new)
        return a is not None and b is not None and a.is_finite() and a == b
    if isinstance(current, str) and isinstance(new, str):
        if current == new:
            return True
        # F&O answers dates as 2024-01-02T00:00:00Z where a mapping writes 2024-01-02
        return len(new) == 10 and current.startswith(new + "T00:00:00")
    return bool(current == new)
