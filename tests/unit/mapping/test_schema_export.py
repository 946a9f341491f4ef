"""mappings/schema.json must be what the pydantic model exports today (editors validate against it)."""

from __future__ import annotations

import json
from pathlib import Path

from tools.export_mapping_schema import DEFAULT_PATH, main, render


def test_committed_schema_is_current() -> None:
    assert DEFAULT_PATH.exists(), "run python -m tools.export_mapping_schema"
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "stale: run python -m tools.export_mapping_schema"
    )


def test_export_is_deterministic_and_checkable(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["--output", str(out), "--check"]) == 1
    assert main(["--output", str(out)]) == 0
    assert main(["--output", str(out), "--check"]) == 0
    schema = json.loads(out.read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    assert {"version", "template", "tasks"} <= set(schema["required"])
    assert "FieldRule" in schema["$defs"]
    assert render() == render()
