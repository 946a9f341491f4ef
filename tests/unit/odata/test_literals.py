"""OData literal escaping and key predicates, including injection attempts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import unquote
from uuid import UUID

import pytest

from shared.odata.literals import EnumLiteral, key_predicate, literal

GUID = UUID("5b4ced1c-88e1-ee11-904c-6045bd05e9d4")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc", "'abc'"),
        ("O'Brien", "'O''Brien'"),
        ("''", "''''''"),
        ("", "''"),
        (True, "true"),
        (False, "false"),
        (None, "null"),
        (0, "0"),
        (-12, "-12"),
        (Decimal("10.50"), "10.50"),
        (Decimal("1E+3"), "1000"),
        (1.5, "1.5"),
        (float("nan"), "NaN"),
        (float("-inf"), "-INF"),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),
        (
            datetime(2024, 1, 2, 5, 4, 5, 250000, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05.25Z",
        ),
        (date(2024, 1, 2), "2024-01-02"),
        (GUID, "5b4ced1c-88e1-ee11-904c-6045bd05e9d4"),
        (EnumLiteral("NoYes", "Yes"), "Microsoft.Dynamics.DataEntities.NoYes'Yes'"),
        (
            EnumLiteral("Microsoft.Dynamics.DataEntities.Gender", "Unknown"),
            "Microsoft.Dynamics.DataEntities.Gender'Unknown'",
        ),
    ],
)
def test_literal(value: object, expected: str) -> None:
    assert literal(value) == expected


def test_injection_stays_inside_the_string() -> None:
    evil = "x' or 1 eq 1 or name eq 'y"
    text = literal(evil)
    assert text == "'x'' or 1 eq 1 or name eq ''y'"
    # Un-doubling the inner quotes gives back exactly the input: no quote ever closes the literal early.
    assert text[1:-1].replace("''", "'") == evil
    assert "'" not in text[1:-1].replace("''", "")


def test_unsupported_types_and_bad_enums() -> None:
    with pytest.raises(TypeError):
        literal(object())
    with pytest.raises(TypeError):
        literal([1, 2])
    with pytest.raises(ValueError):
        EnumLiteral("NoYes", "Yes' or 'a")
    with pytest.raises(ValueError):
        EnumLiteral("No Yes", "Yes")
    with pytest.raises(ValueError):
        literal(Decimal("NaN"))


def test_key_predicate_composite() -> None:
    assert (
        key_predicate({"dataAreaId": "usmf", "CustomerAccount": "C'1"})
        == "(dataAreaId='usmf',CustomerAccount='C''1')"
    )


def test_key_predicate_single_guid_and_single_named_key() -> None:
    assert key_predicate({"accountid": GUID}) == f"({GUID})"
    assert key_predicate({"accountnumber": "ABC123"}) == "(accountnumber='ABC123')"
    assert key_predicate({"sequencenumber": 3}) == "(sequencenumber=3)"


def test_key_predicate_percent_encodes_path_breakers() -> None:
    pred = key_predicate({"dataAreaId": "usmf", "SalesOrderNumber": "SO/1?x=#5%20 &+é"})
    assert "/" not in pred and "?" not in pred and "#" not in pred and " " not in pred
    assert unquote(pred) == "(dataAreaId='usmf',SalesOrderNumber='SO/1?x=#5%20 &+é')"


def test_key_predicate_with_date_key() -> None:
    pred = key_predicate(
        {
            "dataAreaId": "usmf",
            "InvoiceNumber": "INV-1",
            "InvoiceDate": date(2024, 1, 2),
            "LedgerVoucher": "V1",
        }
    )
    assert pred == "(dataAreaId='usmf',InvoiceNumber='INV-1',InvoiceDate=2024-01-02,LedgerVoucher='V1')"


def test_key_predicate_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        key_predicate({})
    with pytest.raises(ValueError):
        key_predicate({"bad name": "x"})
    with pytest.raises(ValueError):
        key_predicate({"a": None})
