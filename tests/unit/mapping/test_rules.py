"""Each field-rule shape, and each reason a record fails at map time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from shared.mapping import (
    MapContext,
    MappedRecord,
    MappingFailure,
    ReferenceMissing,
    TaskMapping,
    compile_spec,
)
from shared.mapping.loader import parse_spec
from tests.unit.mapping.helpers import FakeResolver, catalogue, spec_doc


def compile_task(fields: list[dict[str, Any]], **task: Any) -> TaskMapping:
    spec = parse_spec(spec_doc(fields, **task), "test.yaml")
    return compile_spec(spec, catalogue(), file="test.yaml").tasks[0]


def run(task: TaskMapping, row: dict[str, Any], resolver: FakeResolver | None = None) -> Any:
    return task.map(row, MapContext(company="usmf", resolver=resolver or FakeResolver()))


def ok(task: TaskMapping, row: dict[str, Any], resolver: FakeResolver | None = None) -> MappedRecord:
    result = run(task, row, resolver)
    assert isinstance(result, MappedRecord), result
    return result


def failed(task: TaskMapping, row: dict[str, Any]) -> MappingFailure:
    result = run(task, row)
    assert isinstance(result, MappingFailure), result
    return result


ROW = {"accountid": "0b1c", "accountnumber": "C0001", "name": "Contoso"}


def test_copy_and_identity_of_an_fno_target() -> None:
    task = compile_task([{"target": "OrganizationName", "source": "name"}])
    record = ok(task, ROW)
    assert record.payload == {"CustomerAccount": "C0001", "OrganizationName": "Contoso"}
    assert record.source_key == "C0001"
    assert record.target_key == {"dataAreaId": "usmf", "CustomerAccount": "C0001"}
    assert record.target_key_text == "usmf|C0001"
    assert record.source_id == "0b1c"
    assert record.target_id is None
    assert "name" in task.source.select and "accountnumber" in task.source.select


def test_constant_is_typed_for_the_target_enum() -> None:
    task = compile_task([{"target": "IsExternallyMaintained", "value": "yes"}])
    assert ok(task, ROW).payload["IsExternallyMaintained"] == "Yes"


def test_empty_source_is_omitted_unless_a_default_applies() -> None:
    task = compile_task(
        [
            {"target": "OrganizationName", "source": "name"},
            {"target": "CustomerGroupId", "source": "description", "default": "10"},
        ]
    )
    record = ok(task, {"accountnumber": "C1", "name": "", "description": None})
    assert record.payload == {"CustomerAccount": "C1", "CustomerGroupId": "10"}
    record = ok(task, {"accountnumber": "C1", "name": "  ", "description": "20"})
    assert record.payload == {"CustomerAccount": "C1", "CustomerGroupId": "20"}


def test_value_map_named_inline_and_unmapped_policies() -> None:
    doc = spec_doc(
        [
            {"target": "AddressCountryRegionISOCode", "source": "address1_country", "value_map": "iso"},
            {
                "target": "AddressCity",
                "source": "address1_city",
                "value_map": {"Redmond": "RED"},
                "unmapped": "pass",
            },
            {
                "target": "CustomerGroupId",
                "source": "accountcategorycode",
                "value_map": {1: "PREF", 2: "STD"},
                "unmapped": "default",
                "default": "OTHER",
            },
        ]
    )
    doc["value_maps"] = {"iso": {"United States": "US", "": "US", "Germany": "DE"}}
    task = compile_spec(parse_spec(doc, "t.yaml"), catalogue()).tasks[0]
    row = {
        "accountnumber": "C1",
        "address1_country": "germany",
        "address1_city": "Paris",
        "accountcategorycode": 1,
    }
    payload = ok(task, row).payload
    assert payload["AddressCountryRegionISOCode"] == "DE"  # case-insensitive match
    assert payload["AddressCity"] == "Paris"  # unmapped: pass
    assert payload["CustomerGroupId"] == "PREF"  # option value matched as text
    payload = ok(task, {"accountnumber": "C1", "address1_country": None, "accountcategorycode": 9}).payload
    assert payload["AddressCountryRegionISOCode"] == "US"  # blank key = when empty
    assert payload["CustomerGroupId"] == "OTHER"  # unmapped: default


def test_unmapped_value_fails_naming_field_value_and_rule() -> None:
    task = compile_task([{"target": "AddressCity", "source": "address1_city", "value_map": {"A": "B"}}])
    failure = failed(task, {"accountnumber": "C1", "address1_city": "Atlantis"})
    assert failure.field == "AddressCity"
    assert failure.source_key == "C1"
    assert (
        "'Atlantis'" in failure.reason and "value map" in failure.reason and "address1_city" in failure.reason
    )


def test_lookup_through_the_resolver_with_default_when_empty() -> None:
    task = compile_task(
        [
            {
                "target": "SalesCurrencyCode",
                "source": "transactioncurrencyid",
                "lookup": {
                    "entity": "transactioncurrency",
                    "by": "transactioncurrencyid",
                    "return": "isocurrencycode",
                },
                "default": "USD",
            }
        ]
    )
    assert "_transactioncurrencyid_value" in task.source.select
    resolver = FakeResolver({("transactioncurrency", "transactioncurrencyid", "g-eur"): "EUR"})
    record = ok(task, {"accountnumber": "C1", "_transactioncurrencyid_value": "g-eur"}, resolver)
    assert record.payload["SalesCurrencyCode"] == "EUR"
    assert resolver.calls == [("transactioncurrency", "transactioncurrencyid", "g-eur", "isocurrencycode")]
    assert ok(task, {"accountnumber": "C1"}).payload["SalesCurrencyCode"] == "USD"
    with pytest.raises(ReferenceMissing) as info:
        run(task, {"accountnumber": "C1", "_transactioncurrencyid_value": "g-xxx"})
    assert info.value.entity == "transactioncurrency" and info.value.value == "g-xxx"
    assert "transactioncurrency" in str(info.value) and "g-xxx" in str(info.value)


@pytest.mark.parametrize(
    ("steps", "value", "expected"),
    [
        (["trim"], "  a  ", "a"),
        (["trim", "upper"], " ab ", "AB"),
        (["lower"], "AB", "ab"),
        (["truncate"], "x" * 150, "x" * 100),
        (["truncate:3"], "abcdef", "abc"),
        ([{"first_non_empty": ["description", "name"]}], None, "Contoso"),
        ([{"concat": {"fields": ["name", "address1_city"], "separator": " - "}}], None, "Contoso - Redmond"),
    ],
)
def test_string_transforms(steps: list[Any], value: Any, expected: str) -> None:
    rule: dict[str, Any] = {"target": "OrganizationName", "transform": steps}
    if not isinstance(steps[0], dict):
        rule["source"] = "telephone1"
    task = compile_task([rule])
    row = {"accountnumber": "C1", "telephone1": value, "name": "Contoso", "address1_city": "Redmond"}
    assert ok(task, row).payload["OrganizationName"] == expected


def test_numeric_and_date_transforms_type_the_output() -> None:
    task = compile_task(
        [
            {"target": "CreditLimit", "source": "creditlimit", "transform": ["decimal:2"]},
            {
                "target": "OrganizationNumberOfEmployees",
                "source": "numberofemployees",
                "transform": ["divide:100"],
            },
            {"target": "CreatedDate", "source": "lastonholdtime", "transform": ["date"]},
            {"target": "ModifiedAt", "source": "name", "transform": ["datetime"]},
        ]
    )
    row = {
        "accountnumber": "C1",
        "creditlimit": "1234.567",
        "numberofemployees": 5000,
        "lastonholdtime": "2024-05-01T23:30:00-02:00",
        "name": "2024-05-01T10:00:00.000Z",
    }
    payload = ok(task, row).payload
    assert payload["CreditLimit"] == 1234.57 and isinstance(payload["CreditLimit"], float)
    assert payload["OrganizationNumberOfEmployees"] == 50 and isinstance(
        payload["OrganizationNumberOfEmployees"], int
    )
    assert payload["CreatedDate"] == "2024-05-02"  # UTC date
    assert payload["ModifiedAt"] == "2024-05-01T10:00:00Z"


@pytest.mark.parametrize(
    ("rule", "row_value", "words"),
    [
        ({"target": "CustomerGroupId", "source": "name"}, "x" * 11, ["11 characters", "10", "truncate"]),
        ({"target": "CreditLimit", "source": "name"}, "12,5O", ["not a number", "'12,5O'"]),
        ({"target": "OrganizationNumberOfEmployees", "source": "name"}, "2.5", ["not a whole number"]),
        (
            {"target": "CreatedDate", "source": "name", "transform": ["date"]},
            "31/12/2024",
            ["not an ISO date"],
        ),
        ({"target": "IsExternallyMaintained", "source": "name"}, "Maybe", ["not a member of", "No, Yes"]),
    ],
)
def test_record_failures_name_field_value_and_rule(
    rule: dict[str, Any], row_value: str, words: list[str]
) -> None:
    task = compile_task([rule])
    failure = failed(task, {"accountnumber": "C1", "name": row_value})
    assert failure.field == rule["target"]
    assert "rule:" in failure.reason and "from name" in failure.reason
    for word in words:
        assert word in failure.reason


def test_missing_source_key_fails_the_record() -> None:
    task = compile_task([])
    failure = failed(task, {"accountnumber": "", "name": "x"})
    assert failure.source_key is None and failure.field == "accountnumber"
    assert "required key" in failure.reason
    assert task.source_key_of({"accountnumber": None}) is None
    assert task.source_key_of({"accountnumber": "C9"}) == "C9"


def test_empty_target_key_fails_the_record() -> None:
    doc = spec_doc([])
    doc["tasks"][0]["fields"] = [{"target": "CustomerAccount", "source": "name"}]
    task = compile_spec(parse_spec(doc, "t.yaml"), catalogue()).tasks[0]
    failure = failed(task, {"accountnumber": "C1", "name": None})
    assert failure.field == "CustomerAccount" and "target key" in failure.reason


def test_dataverse_target_key_id_and_bind() -> None:
    from shared.ids import deterministic_id

    doc = {
        "version": 1,
        "template": "t",
        "tasks": [
            {
                "name": "main",
                "source": {"service": "finops", "entity_set": "CustomersV2", "key": "CustomerAccount"},
                "target": {"service": "dataverse", "entity_set": "accounts"},
                "fields": [
                    {"target": "accountnumber", "source": "CustomerAccount"},
                    {
                        "target": "accountcategorycode",
                        "source": "CustomerGroupId",
                        "value_map": {"P": "Preferred Customer"},
                        "unmapped": "pass",
                    },
                    {
                        "target": "transactioncurrencyid",
                        "source": "SalesCurrencyCode",
                        "bind": {
                            "entity_set": "transactioncurrencies",
                            "lookup": {
                                "entity": "transactioncurrency",
                                "by": "isocurrencycode",
                                "return": "transactioncurrencyid",
                            },
                        },
                    },
                    {
                        "target": "parentaccountid",
                        "source": "OrganizationName",
                        "bind": {"entity_set": "accounts"},
                    },
                ],
            }
        ],
    }
    task = compile_spec(parse_spec(doc, "t.yaml"), catalogue()).tasks[0]
    resolver = FakeResolver({("transactioncurrency", "isocurrencycode", "EUR"): "c-1"})
    row = {
        "CustomerAccount": "C1",
        "CustomerGroupId": "P",
        "SalesCurrencyCode": "EUR",
        "OrganizationName": "p-9",
    }
    record = ok(task, row, resolver)
    assert record.payload == {
        "accountnumber": "C1",
        "accountcategorycode": 1,
        "transactioncurrencyid@odata.bind": "transactioncurrencies(c-1)",
        "parentaccountid@odata.bind": "accounts(p-9)",
    }
    assert record.target_key == {"accountnumber": "C1"}
    assert record.target_key_text == "C1"
    assert record.target_id == deterministic_id("account", "usmf", "C1")
    assert record.source_id is None
    bad = task.map({**row, "CustomerGroupId": "7"}, MapContext("usmf", resolver))
    assert isinstance(bad, MappingFailure) and bad.field == "accountcategorycode"
    assert "Preferred Customer" in bad.reason


def test_decimal_inputs_are_accepted() -> None:
    task = compile_task([{"target": "CreditLimit", "source": "creditlimit"}])
    assert ok(task, {"accountnumber": "C1", "creditlimit": Decimal("10.50")}).payload["CreditLimit"] == 10.5
    assert ok(task, {"accountnumber": "C1", "creditlimit": 100}).payload["CreditLimit"] == 100


def test_filter_and_select_use_wire_names_of_lookups() -> None:
    task = compile_task(
        [],
        source={
            "service": "dataverse",
            "entity_set": "accounts",
            "key": "accountnumber",
            "select": ["name"],
            "filter": [
                {"field": "parentaccountid", "op": "null"},
                {"field": "name", "op": "ne", "value": "x"},
            ],
        },
    )
    assert [(c.field, c.op) for c in task.source.filter] == [
        ("_parentaccountid_value", "null"),
        ("name", "ne"),
    ]
    assert task.source.select == ["accountnumber", "name", "_parentaccountid_value"]


def test_null_constant_is_written_as_null() -> None:
    task = compile_task([{"target": "SalesMemo", "value": None}])
    assert ok(task, ROW).payload["SalesMemo"] is None


def test_arithmetic_overflow_is_a_record_failure() -> None:
    task = compile_task(
        [{"target": "CreditLimit", "source": "creditlimit", "transform": ["multiply:1e999999"]}]
    )
    failure = failed(task, {"accountnumber": "C1", "creditlimit": "9e999999"})
    assert failure.field == "CreditLimit"
