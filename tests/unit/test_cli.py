"""`p2c` pieces that need no services: argument parsing, settings files, the dry-run diff rules."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from shared.cli import (
    UNKNOWN,
    FieldChange,
    RecordChange,
    _field_changes,
    _load_env,
    _print_dry_run,
    build_parser,
    diff_dry_run,
    main,
    same_value,
)
from shared.engine import RunOutcome
from shared.mapping import load_catalogue
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_parser_accepts_settings_and_json_before_or_after_the_command() -> None:
    parser = build_parser()
    a = parser.parse_args(["--settings", "a.json", "run", "all", "--full", "--dry-run"])
    assert (a.settings, a.template, a.full, a.dry_run) == (Path("a.json"), "all", True, True)
    b = parser.parse_args(["run", "accounts", "--settings", "b.json", "--json"])
    assert (b.settings, b.json, b.full, b.dry_run) == (Path("b.json"), True, False, False)
    c = parser.parse_args(["replay", "accounts", "K1", "K2", "--no-run"])
    assert (c.keys, c.no_run) == (["K1", "K2"], True)


@pytest.mark.parametrize(
    "argv",
    [["run", "nope"], ["runs", "all"], ["errors", "accounts", "--status", "lost"], ["frobnicate"]],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(argv)
    assert exc.value.code == 2


def test_settings_file_overrides_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": {"P2C_A": "file", "P2C_N": None}}))
    env = _load_env(path, {"P2C_A": "env", "P2C_B": "env"})
    assert env == {"P2C_A": "file", "P2C_B": "env"}


def test_invalid_settings_exit_2_naming_the_setting() -> None:
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    assert main(["status"], env={}, console=console) == 2
    out = console.export_text()
    assert "settings are invalid" in out and "P2C_DATAVERSE_URL" in out


@pytest.mark.parametrize(
    ("current", "new", "same"),
    [
        (None, "", True),
        ("", None, True),
        (5, 5.0, True),
        ("1500.00", 1500, True),
        (1500.5, 1500, False),
        ("2024-01-02T00:00:00Z", "2024-01-02", True),
        ("2024-01-02T10:00:00Z", "2024-01-02", False),
        ("Yes", "Yes", True),
        ("Yes", "No", False),
        (True, 1, False),
        ("US", None, False),
        ("01234", "1234", False),
        ("Infinity", "infinity", False),
        (float("nan"), float("nan"), False),
    ],
)
def test_same_value(current: Any, new: Any, same: bool) -> None:
    assert same_value(current, new) is same


def test_field_changes_lists_only_differences_and_marks_unreadable_ones() -> None:
    payload = {"A": "x", "B": 2, "C": "new", "D@odata.bind": "/things(1)", "E": "e"}
    current = {"A": "x", "B": 2.0, "C": "old"}
    changes = _field_changes(payload, current)
    assert changes == [
        FieldChange("C", "old", "new"),
        FieldChange("D@odata.bind", UNKNOWN, "/things(1)"),
        FieldChange("E", UNKNOWN, "e"),
    ]
    assert [c.current for c in _field_changes({"A": 1}, None)] == [UNKNOWN]


class _FakeFinOps:
    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def get(self, entity_set: str, key: dict[str, Any]) -> dict[str, Any] | None:
        self.asked.append((entity_set, dict(key)))
        return self.rows.get(str(key["CustomerAccount"]))


class _FakeClients:
    def __init__(self, finops: _FakeFinOps) -> None:
        self.finops = finops


def _settings() -> Settings:
    return Settings.from_env(
        {
            "P2C_DATAVERSE_URL": "https://contoso.crm.dynamics.com",
            "P2C_FINOPS_URL": "https://contoso.operations.dynamics.com",
            "P2C_TENANT_ID": "contoso.onmicrosoft.com",
            "P2C_CLIENT_ID": "app",
            "P2C_CLIENT_SECRET": "secret",
            "P2C_STATE_STORAGE_ACCOUNT": "stp2c",
            "P2C_MAPPINGS_DIR": str(ROOT / "mappings"),
            "P2C_SCHEMA_CATALOGUE_DIR": str(ROOT / "sandbox" / "schemas"),
        }
    )


def test_diff_dry_run_reads_the_finops_record_by_its_entity_key() -> None:
    now = datetime.now(UTC)
    outcome = RunOutcome(
        "accounts", "r1", "succeeded", "cli", "incremental", now, now, {},
        dry_run_changes=[
            {
                "task": "main", "company": "usmf", "key": "C-1", "action": "update",
                "payload": {"CustomerAccount": "C-1", "OrganizationName": "New", "AddressCity": "Oslo"},
            },
            {
                "task": "main", "company": "usmf", "key": "C-2", "action": "create",
                "payload": {"CustomerAccount": "C-2", "OrganizationName": "Two"},
            },
        ],
    )  # fmt: skip
    settings = _settings()
    current = {"CustomerAccount": "C-1", "OrganizationName": "Old", "AddressCity": "Oslo"}
    finops = _FakeFinOps({"C-1": current})
    catalogue = load_catalogue(ROOT / "sandbox" / "schemas")
    changes = diff_dry_run(outcome, settings, None, catalogue, _FakeClients(finops))  # type: ignore[arg-type]
    update, create = changes
    assert finops.asked == [("CustomersV2", {"dataAreaId": "usmf", "CustomerAccount": "C-1"})]
    assert update.fields == [FieldChange("OrganizationName", "Old", "New")]
    assert create.action == "create" and [f.current for f in create.fields] == [None, None]

    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    _print_dry_run(console, "accounts", changes)
    out = console.export_text()
    assert "would write 2 record(s)" in out and "OrganizationName" in out and "Old" in out


def test_print_dry_run_without_changes() -> None:
    console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
    _print_dry_run(console, "accounts", [])
    assert "nothing would change" in console.export_text()
    record = RecordChange("accounts", "main", "usmf", "K", "update", note="target already holds these values")
    _print_dry_run(console, "accounts", [record])
    assert "target already holds these values" in console.export_text()
