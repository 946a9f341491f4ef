"""Filter rendering in both dialects; field-name validation; operators."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from shared.odata.filters import F, Filter
from shared.odata.literals import EnumLiteral


def test_comparisons() -> None:
    assert F.eq("name", "A'B").render() == "name eq 'A''B'"
    assert F.ne("statecode", 0).render() == "statecode ne 0"
    assert F.gt("revenue", 1.5).render() == "revenue gt 1.5"
    assert (
        F.le("modifiedon", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)).render()
        == "modifiedon le 2024-01-02T03:04:05Z"
    )
    assert (
        F.ge("InvoiceDate", datetime(2024, 1, 2, tzinfo=UTC)).render("finops")
        == "InvoiceDate ge 2024-01-02T00:00:00Z"
    )
    assert F.lt("a", 1).render() == "a lt 1"
    assert F.is_null("accountnumber").render() == "accountnumber eq null"
    assert F.not_null("accountnumber").render() == "accountnumber ne null"


def test_enum_in_finops() -> None:
    flt = F.eq("OrderingCustomerIsExternallyMaintained", EnumLiteral("NoYes", "Yes"))
    assert (
        flt.render("finops")
        == "OrderingCustomerIsExternallyMaintained eq Microsoft.Dynamics.DataEntities.NoYes'Yes'"
    )


def test_in_dataverse_and_finops() -> None:
    flt = F.in_("accountnumber", ["A1", "O'B", "A1"])
    assert flt.render("dataverse") == (
        "Microsoft.Dynamics.CRM.In(PropertyName='accountnumber',PropertyValues=['A1','O''B'])"
    )
    assert flt.render("finops") == "(accountnumber eq 'A1' or accountnumber eq 'O''B')"
    assert F.in_("CustomerAccount", ["X"]).render("finops") == "CustomerAccount eq 'X'"


def test_in_dataverse_renders_non_strings_as_strings() -> None:
    guid = UUID("5b4ced1c-88e1-ee11-904c-6045bd05e9d4")
    assert F.in_("accountid", [guid]).render() == (
        f"Microsoft.Dynamics.CRM.In(PropertyName='accountid',PropertyValues=['{guid}'])"
    )
    assert F.in_("sequencenumber", [1, 2]).render() == (
        "Microsoft.Dynamics.CRM.In(PropertyName='sequencenumber',PropertyValues=['1','2'])"
    )
    assert F.in_("sequencenumber", [1, 2]).render("finops") == "(sequencenumber eq 1 or sequencenumber eq 2)"


def test_in_forced_dialect() -> None:
    flt = F.in_("CustomerAccount", ["A", "B"], dialect="finops")
    assert flt.render("dataverse") == "(CustomerAccount eq 'A' or CustomerAccount eq 'B')"


def test_in_rejects_empty() -> None:
    with pytest.raises(ValueError):
        F.in_("a", [])


def test_text_functions() -> None:
    assert F.contains("name", "ret'ail").render() == "contains(name,'ret''ail')"
    assert F.startswith("name", "Con").render() == "startswith(name,'Con')"
    assert F.contains("Name", "retail").render("finops") == "Name eq '*retail*'"
    assert F.startswith("Name", "Con").render("finops") == "Name eq 'Con*'"
    with pytest.raises(ValueError):
        F.contains("Name", "a*b").render("finops")


def test_junctions_and_operators() -> None:
    a, b, c = F.eq("a", 1), F.eq("b", 2), F.eq("c", 3)
    assert (a & b & c).render() == "a eq 1 and b eq 2 and c eq 3"
    assert ((a | b) & c).render() == "(a eq 1 or b eq 2) and c eq 3"
    assert (a | (b & c)).render() == "a eq 1 or (b eq 2 and c eq 3)"
    assert (~a).render() == "not (a eq 1)"
    assert (~(a | b)).render() == "not (a eq 1 or b eq 2)"
    assert F.and_(a).render() == "a eq 1"
    assert (F.eq("dataAreaId", "usmf") & F.in_("CustomerAccount", ["1", "2"])).render("finops") == (
        "dataAreaId eq 'usmf' and (CustomerAccount eq '1' or CustomerAccount eq '2')"
    )
    assert str(a) == "a eq 1"
    assert isinstance(a & b, Filter)
    with pytest.raises(ValueError):
        F.or_()


@pytest.mark.parametrize(
    "field",
    ["", "1abc", "name eq 'x' or 1", "a/b", "name)", "na-me", "x'"],
)
def test_field_names_validated(field: str) -> None:
    with pytest.raises(ValueError):
        F.eq(field, 1)
    with pytest.raises(ValueError):
        F.in_(field, [1])
    with pytest.raises(ValueError):
        F.is_null(field)


def test_injection_in_values_is_quoted() -> None:
    flt = F.eq("name", "x') or (1 eq 1")
    assert flt.render() == "name eq 'x'') or (1 eq 1'"


def test_unsupported_value_fails_at_build_time() -> None:
    with pytest.raises(TypeError):
        F.eq("a", {"x": 1})
    with pytest.raises(ValueError):
        F.eq("a", 1).render("sql")  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", ["dataverse", "finops"])
def test_rendered_filters_evaluate_in_the_sandbox_parser(dialect: str) -> None:
    """The stand-ins parse our text the way the services do; an injection attempt matches nothing."""
    from sandbox.odataquery import compile_filter

    rows = [{"name": "O'Brien", "num": "A1"}, {"name": "Other", "num": "B2"}, {"name": "x", "num": "C3"}]
    flt = F.in_("num", ["A1", "C3"]) & F.ne("name", "x")
    pred = compile_filter(flt.render(dialect), dialect=dialect)  # type: ignore[arg-type]
    assert [r["num"] for r in rows if pred(r)] == ["A1"]
    evil = F.eq("name", "x' or name ne 'zzz")
    pred = compile_filter(evil.render(dialect), dialect=dialect)  # type: ignore[arg-type]
    assert [r for r in rows if pred(r)] == []
    starts = compile_filter(F.startswith("name", "O'").render(dialect), dialect=dialect)  # type: ignore[arg-type]
    assert [r["num"] for r in rows if starts(r)] == ["A1"]
