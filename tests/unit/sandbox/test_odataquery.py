"""$filter / $orderby / $select support shared by the Dataverse and F&O stand-ins."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.odataquery import (
    ODataQueryError,
    OrderKey,
    compile_filter,
    parse_orderby,
    parse_select,
    sort_rows,
)

ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "Contoso",
        "accountnumber": "A-1",
        "revenue": 100.5,
        "active": True,
        "createdon": "2024-01-01T10:00:00Z",
        "_owner_value": "AAAAAAAA-0000-0000-0000-000000000001",
        "city": None,
        "alias": "contoso",
    },
    {
        "id": 2,
        "name": "Fabrikam",
        "accountnumber": "O'Brien",
        "revenue": 20,
        "active": False,
        "createdon": "2024-06-01T00:00:00Z",
        "_owner_value": "aaaaaaaa-0000-0000-0000-000000000002",
        "city": "Paris",
        "alias": "fab",
    },
    {
        "id": 3,
        "name": "Adventure Works",
        "accountnumber": "A-3",
        "revenue": None,
        "active": True,
        "createdon": "2023-12-31T23:59:59Z",
        "_owner_value": None,
        "city": "paris",
        "alias": "Adventure Works",
    },
]
PROPS = set(ROWS[0])


def ids(text: str, **kwargs: Any) -> list[int]:
    pred = compile_filter(text, properties=PROPS, entity_type="Microsoft.Dynamics.CRM.account", **kwargs)
    return [r["id"] for r in ROWS if pred(r)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name eq 'contoso'", [1]),  # case-insensitive
        ("name ne 'Contoso'", [2, 3]),
        ("revenue gt 50", [1]),
        ("revenue ge 20", [1, 2]),
        ("revenue lt 100.5", [2]),
        ("revenue le 100.5", [1, 2]),
        ("revenue eq null", [3]),
        ("revenue ne null", [1, 2]),
        ("city ne 'paris'", []),  # null never matches ne (SQL semantics)
        ("active eq true", [1, 3]),
        ("active eq false", [2]),
        ("accountnumber eq 'O''Brien'", [2]),
        ("createdon gt 2024-01-01T00:00:00Z", [1, 2]),
        ("createdon lt 2024-01-01", [3]),
        ("_owner_value eq aaaaaaaa-0000-0000-0000-000000000001", [1]),
        ("contains(name,'WORK')", [3]),
        ("startswith(name,'fab')", [2]),
        ("endswith(name,'SO')", [1]),
        ("name eq 'Contoso' or name eq 'Fabrikam'", [1, 2]),
        ("active eq true and revenue gt 10", [1]),
        ("not (active eq true)", [2]),
        ("not active eq true", [2]),
        ("(name eq 'Contoso' or name eq 'Adventure Works') and active eq true", [1, 3]),
        ("name eq 'Contoso' or name eq 'Fabrikam' and active eq true", [1]),  # and binds tighter
        ("alias eq name", [1, 3]),  # column-to-column
        ("50 lt revenue", [1]),
        ("Microsoft.Dynamics.CRM.In(PropertyName='accountnumber',PropertyValues=['a-1','A-3'])", [1, 3]),
        ('Microsoft.Dynamics.CRM.In(PropertyName="revenue",PropertyValues=["20","7"])', [2]),
        ("Microsoft.Dynamics.CRM.NotIn(PropertyName='accountnumber',PropertyValues=['A-1'])", [2, 3]),
        ('Microsoft.Dynamics.CRM.Between(PropertyName=\'revenue\',PropertyValues=["10","50"])', [2]),
        ("revenue gt 1e1", [1, 2]),
    ],
)
def test_dataverse_filters(text: str, expected: list[int]) -> None:
    assert ids(text) == expected


def test_case_sensitive_option() -> None:
    assert ids("name eq 'contoso'", case_insensitive=False) == []
    assert ids("name eq 'Contoso'", case_insensitive=False) == [1]


def test_unknown_property_message() -> None:
    with pytest.raises(ODataQueryError) as err:
        ids("nope eq 1")
    assert err.value.message == (
        "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.account'."
    )
    with pytest.raises(ODataQueryError, match="'bad'"):
        ids("Microsoft.Dynamics.CRM.In(PropertyName='bad',PropertyValues=['1'])")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name eq",
        "name eq 'x' and",
        "(name eq 'x'",
        "name eq 'x')",
        "name foo 'x'",
        "name eq 'unterminated",
        "contains(name)",
        "eq eq 1",
        "name eq 'x' name eq 'y'",
        "Microsoft.Dynamics.CRM.Unknown(PropertyName='name')",
        "tolower(name) eq 'x'",
        "name eq Microsoft.Dynamics.DataEntities.NoYes'Yes'",
        "name eq #",
    ],
)
def test_syntax_errors(text: str) -> None:
    with pytest.raises(ODataQueryError):
        ids(text)


def test_no_property_check_and_equalities() -> None:
    compiled = compile_filter("dataAreaId eq 'usmf' and (x eq 1 or y eq 2) and Name eq 'A'")
    assert compiled.equalities == {"dataAreaId": "usmf", "Name": "A"}
    assert compiled.properties == {"dataAreaId", "x", "y", "Name"}
    assert compiled({"dataAreaId": "USMF", "x": 1, "Name": "a"})
    assert compile_filter("a eq 1 or b eq 2").equalities == {}


FO_ROWS = [
    {"CustomerAccount": "US-001", "Name": "Retail store", "IsExternallyMaintained": "Yes", "Flag": 1},
    {"CustomerAccount": "US-002", "Name": "Wholesale", "IsExternallyMaintained": "No", "Flag": 0},
]


def fo_ids(text: str) -> list[str]:
    pred = compile_filter(
        text,
        dialect="finops",
        enum_types={"NoYes": {"No": 0, "Yes": 1}},
        entity_type="Microsoft.Dynamics.DataEntities.CustomerV2",
        properties=set(FO_ROWS[0]),
    )
    return [r["CustomerAccount"] for r in FO_ROWS if pred(r)]


def test_finops_enum_and_wildcards() -> None:
    assert fo_ids("IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes'") == ["US-001"]
    assert fo_ids("IsExternallyMaintained ne Microsoft.Dynamics.DataEntities.NoYes'Yes'") == ["US-002"]
    assert fo_ids("Flag eq Microsoft.Dynamics.DataEntities.NoYes'Yes'") == ["US-001"]  # numeric storage
    assert fo_ids("Name eq '*retail*'") == ["US-001"]
    assert fo_ids("Name eq 'whole*'") == ["US-002"]
    assert fo_ids("Name ne '*store'") == ["US-002"]
    assert fo_ids("CustomerAccount eq 'US-001'") == ["US-001"]
    with pytest.raises(ODataQueryError, match="not a valid enumeration"):
        fo_ids("IsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Maybe'")
    with pytest.raises(ODataQueryError, match="Only 'eq' and 'ne'"):
        fo_ids("IsExternallyMaintained gt Microsoft.Dynamics.DataEntities.NoYes'No'")
    with pytest.raises(ODataQueryError, match="unknown function"):
        fo_ids("Microsoft.Dynamics.CRM.In(PropertyName='Name',PropertyValues=['x'])")
    # in the Dataverse dialect '*' is an ordinary character
    assert compile_filter("Name eq '*retail*'")(FO_ROWS[0]) is False


def test_orderby_and_sort() -> None:
    keys = parse_orderby("city asc,name desc", properties=PROPS)
    assert keys == [OrderKey("city"), OrderKey("name", True)]
    assert [r["id"] for r in sort_rows(ROWS, keys)] == [1, 2, 3]  # nulls first, paris == Paris
    assert [r["id"] for r in sort_rows(ROWS, parse_orderby("revenue desc"))] == [1, 2, 3]
    with pytest.raises(ODataQueryError, match="Could not find a property named 'zz'"):
        parse_orderby("zz", properties=PROPS)
    with pytest.raises(ODataQueryError):
        parse_orderby("name sideways")
    with pytest.raises(ODataQueryError):
        parse_orderby("name,,id")


def test_select() -> None:
    assert parse_select("name, accountnumber,name", properties=PROPS) == ["name", "accountnumber"]
    with pytest.raises(ODataQueryError, match="Could not find a property named 'x'"):
        parse_select("name,x", properties=PROPS, entity_type="Microsoft.Dynamics.CRM.account")
    with pytest.raises(ODataQueryError):
        parse_select("name,")


def test_compiled_filter_is_fast_enough() -> None:
    rows = [{"id": i, "name": f"Name {i}", "revenue": i * 1.5} for i in range(100_000)]
    pred = compile_filter("startswith(name,'name 9') and revenue gt 10")
    import time

    start = time.perf_counter()
    hits = sum(1 for r in rows if pred(r))
    elapsed = time.perf_counter() - start
    assert hits == 11_111
    assert elapsed < 1.0
