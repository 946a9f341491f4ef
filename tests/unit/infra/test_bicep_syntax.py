"""Every Bicep file parses with both offline parsers (tree-sitter-bicep and pycep-parser)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.infra.bicep_model import BICEP, bicep_files, parse, syntax_errors

FILES = bicep_files()


def test_the_expected_files_exist() -> None:
    names = {p.relative_to(BICEP).as_posix() for p in FILES}
    assert {"main.bicep", "modules/functionapp.bicep", "modules/storage.bicep", "modules/rbac.bicep",
            "modules/keyvault.bicep", "modules/monitoring.bicep", "modules/identity.bicep",
            "modules/alerts.bicep"} <= names
    assert (BICEP / "main.parameters.json").exists()
    assert not (BICEP / ".gitkeep").exists()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(BICEP).as_posix())
def test_tree_sitter_finds_no_syntax_error(path: Path) -> None:
    assert syntax_errors(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(BICEP).as_posix())
def test_pycep_parses(path: Path) -> None:
    model = parse(path)
    assert model["resources"] or model["modules"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(BICEP).as_posix())
def test_no_syntax_the_parsers_cannot_read(path: Path) -> None:
    """Object spread and literal-union types break both parsers (azure.md §8): keep them out."""
    text = path.read_text(encoding="utf-8")
    assert "{ ..." not in text and "{..." not in text and "\n  ..." not in text
    assert "' | '" not in text


def test_the_checks_are_not_vacuous() -> None:
    """A truncated file is reported by both parsers."""
    from lark.exceptions import LarkError

    text = (BICEP / "modules" / "identity.bicep").read_text(encoding="utf-8")
    broken = text[: text.index("location: location") + 5]
    assert syntax_errors(broken)
    with pytest.raises(LarkError):
        from pycep import BicepParser

        BicepParser().parse(text=broken)
