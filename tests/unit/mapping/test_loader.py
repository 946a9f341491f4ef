"""Load-time validation: every problem with a mapping file names the file, the task and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.mapping import Catalogue, MappingSpecError, load_mapping
from tests.unit.mapping.helpers import catalogue, spec_doc


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def load_error(tmp_path: Path, doc: dict[str, Any], cat: Catalogue | None = None) -> MappingSpecError:
    path = write(tmp_path, doc)
    with pytest.raises(MappingSpecError) as info:
        load_mapping(path, cat or catalogue())
    message = str(info.value)
    assert message.startswith(str(path)), message
    return info.value


def test_a_valid_file_loads(tmp_path: Path) -> None:
    doc = spec_doc([{"target": "OrganizationName", "source": "name"}], delete_policy="ignore")
    mapping = load_mapping(write(tmp_path, doc), catalogue())
    assert mapping.template == "accounts"
    task = mapping.task("main")
    assert task.delete_policy == "ignore" and task.parent_entities == [] and task.cursor is None
    assert task.source.service == "dataverse" and task.target.entity_set == "CustomersV2"


@pytest.mark.parametrize(
    ("rule", "field", "words"),
    [
        ({"target": "NoSuchField", "source": "name"}, "NoSuchField", ["does not exist", "CustomersV2"]),
        ({"target": "RecordId", "source": "name"}, "RecordId", ["read-only"]),
        ({"target": "OrganizationName", "source": "nosuchcolumn"}, "OrganizationName", ["nosuchcolumn"]),
        (
            {"target": "IsExternallyMaintained", "source": "name", "value_map": {"a": "Perhaps"}},
            "IsExternallyMaintained",
            ["value map entry 'a'", "Perhaps", "NoYes"],
        ),
        ({"target": "IsExternallyMaintained", "value": "Si"}, "IsExternallyMaintained", ["constant"]),
        ({"target": "CustomerGroupId", "value": "x" * 11}, "CustomerGroupId", ["constant", "10"]),
        (
            {"target": "OrganizationName", "source": "name", "transform": ["shout"]},
            "OrganizationName",
            ["shout"],
        ),
        (
            {"target": "OrganizationName", "source": "name", "transform": ["divide"]},
            "OrganizationName",
            ["divide"],
        ),
        (
            {"target": "OrganizationName", "source": "name", "value_map": "nope"},
            "OrganizationName",
            ["'nope'"],
        ),
        (
            {
                "target": "SalesCurrencyCode",
                "source": "name",
                "lookup": {"entity": "x", "by": "a", "return": "b"},
            },
            "SalesCurrencyCode",
            ["look-up entity 'x'"],
        ),
        (
            {"target": "OrganizationName", "source": "name", "bind": {"entity_set": "accounts"}},
            "OrganizationName",
            ["bind"],
        ),
        ({"target": "CustomerAccount", "source": "name"}, "CustomerAccount", ["mapped twice"]),
        ({"target": "dataAreaId", "source": "name"}, "dataAreaId", ["company"]),
    ],
)
def test_catalogue_errors_name_task_and_field(
    tmp_path: Path, rule: dict[str, Any], field: str, words: list[str]
) -> None:
    error = load_error(tmp_path, spec_doc([rule]))
    assert error.task == "main" and error.field == field
    assert "task 'main'" in str(error) and f"field {field!r}" in str(error)
    for word in words:
        assert word in str(error)


def test_dataverse_target_checks_writable_and_lookup_columns(tmp_path: Path) -> None:
    def doc(fields: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "version": 1,
            "template": "t",
            "tasks": [
                {
                    "name": "main",
                    "source": {"service": "finops", "entity_set": "CustomersV2", "key": "CustomerAccount"},
                    "target": {"service": "dataverse", "entity_set": "accounts"},
                    "fields": [{"target": "accountnumber", "source": "CustomerAccount"}, *fields],
                }
            ],
        }

    error = load_error(tmp_path, doc([{"target": "createdon", "source": "ModifiedAt"}]))
    assert error.field == "createdon" and "not writable" in str(error)
    error = load_error(tmp_path, doc([{"target": "transactioncurrencyid", "source": "SalesCurrencyCode"}]))
    assert "bind" in str(error)
    error = load_error(tmp_path, doc([{"target": "accountcategorycode", "value": "Gold"}]))
    assert "Gold" in str(error) and "Preferred Customer" in str(error)
    error = load_error(
        tmp_path,
        doc(
            [{"target": "parentaccountid", "source": "SalesCurrencyCode", "bind": {"entity_set": "contacts"}}]
        ),
    )
    assert "'accounts'" in str(error)


def test_source_side_errors(tmp_path: Path) -> None:
    error = load_error(
        tmp_path, spec_doc([], source={"service": "dataverse", "entity_set": "acounts", "key": "x"})
    )
    assert "acounts" in str(error) and error.task == "main"
    doc = spec_doc([])
    doc["tasks"][0]["source"]["key"] = "accountnum"
    assert "accountnum" in str(load_error(tmp_path, doc))
    doc = spec_doc([])
    doc["tasks"][0]["source"]["filter"] = [{"field": "statuscode", "op": "eq", "value": 1}]
    assert load_error(tmp_path, doc).field == "statuscode"
    doc = spec_doc([])
    doc["tasks"][0]["source"]["filter"] = [{"field": "name", "op": "in", "value": "x"}]
    assert "list" in str(load_error(tmp_path, doc))
    doc = spec_doc([])
    doc["tasks"][0]["cursor"] = "name"
    assert "F&O" in str(load_error(tmp_path, doc))


def test_unmapped_target_key_is_an_error(tmp_path: Path) -> None:
    doc = spec_doc([])
    doc["tasks"][0]["fields"] = [{"target": "OrganizationName", "source": "name"}]
    error = load_error(tmp_path, doc)
    assert error.field == "CustomerAccount" and "key" in str(error)


@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (
            lambda d: d["tasks"][0]["fields"].append({"target": "A", "source": "b", "colour": "red"}),
            ["colour"],
        ),
        (lambda d: d["tasks"][0]["fields"].append({"target": "A", "source": "b", "value": 1}), ["constant"]),
        (lambda d: d["tasks"][0]["fields"].append({"target": "A"}), ["needs `source`"]),
        (
            lambda d: d["tasks"][0]["fields"].append(
                {"target": "A", "source": "b", "value_map": {"x": "y"}, "unmapped": "default"}
            ),
            ["default"],
        ),
        (lambda d: d["tasks"][0].update(delete_policy="purge"), ["delete_policy"]),
        (lambda d: d.update(version=2), ["version"]),
        (lambda d: d["tasks"].append(dict(d["tasks"][0])), ["duplicate task"]),
    ],
)
def test_shape_errors_from_the_pydantic_model(tmp_path: Path, mutate: Any, words: list[str]) -> None:
    doc = spec_doc([])
    mutate(doc)
    error = load_error(tmp_path, doc)
    for word in words:
        assert word in str(error)


def test_shape_error_names_task_and_field(tmp_path: Path) -> None:
    doc = spec_doc([{"target": "OrganizationName", "source": "name", "unmapped": "pass"}])
    error = load_error(tmp_path, doc)
    assert error.task == "main" and error.field == "OrganizationName"


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(MappingSpecError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml", catalogue())
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [", encoding="utf-8")
    with pytest.raises(MappingSpecError, match="not valid YAML"):
        load_mapping(bad, catalogue())
    bad.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(MappingSpecError, match="YAML mapping"):
        load_mapping(bad, catalogue())
