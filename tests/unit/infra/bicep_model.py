"""Offline model of bicep/: parsed with pycep-parser (structure) and tree-sitter-bicep (syntax).

No Bicep compiler is reachable offline (azure.md §8), so these tests check what a parser can:
resource types and API versions, wiring between files, names of app settings, role GUIDs and the
alert queries. Types, scopes and API schemas are checked online by `az bicep build` / `azd provision`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
BICEP = ROOT / "bicep"
MAIN = BICEP / "main.bicep"
PARAMS = BICEP / "main.parameters.json"
SAMPLE_SETTINGS = ROOT / "local.settings.sample.json"
INTERNALS = ROOT / "docs" / "internals.md"


def bicep_files() -> list[Path]:
    return sorted(BICEP.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    result: dict[str, Any] = BicepParser().parse(text=path.read_text(encoding="utf-8"))
    for section in ("globals", "parameters", "variables", "resources", "modules", "outputs"):
        result.setdefault(section, {})  # pycep leaves empty sections out
    return result


@functools.cache
def _ts_parser() -> Any:
    import tree_sitter
    import tree_sitter_bicep

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def syntax_errors(text: str) -> list[str]:
    """ERROR / MISSING nodes of tree-sitter-bicep, as 'line:col kind' strings."""
    tree = _ts_parser().parse(text.encode("utf-8"))
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, col = node.start_point
            found.append(f"{row + 1}:{col + 1} {node.type}{' (missing)' if node.is_missing else ''}")
        stack.extend(node.children)
    if tree.root_node.has_error and not found:
        found.append("has_error")
    return found


def unquote(key: str) -> str:
    return key[1:-1] if len(key) >= 2 and key[0] == key[-1] == "'" else key


def strings(node: Any) -> Iterator[str]:
    """Every string leaf of a pycep subtree (identifiers and literals alike)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield unquote(key)
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def resource_body(resource: dict[str, Any]) -> dict[str, Any]:
    """The object of a resource, looking through `for` loops and `if` conditions."""
    config: dict[str, Any] = resource["config"]
    while "loop_type" in config or ("condition" in config and "config" in config):
        config = config["config"]
    return config


def all_resources() -> Iterator[tuple[Path, str, dict[str, Any]]]:
    for path in bicep_files():
        for name, res in parse(path)["resources"].items():
            yield path, name, res


def module_path(caller: Path, module: dict[str, Any]) -> Path:
    return (caller.parent / module["detail"]["path"]).resolve()


def load_text_paths(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        fn = node.get("function")
        if isinstance(fn, dict) and fn.get("type") == "load_text_content":
            yield fn["parameters"]["file_path"]
        for value in node.values():
            yield from load_text_paths(value)
    elif isinstance(node, list):
        for item in node:
            yield from load_text_paths(item)


# --- settings -----------------------------------------------------------------------------------

#: Settings that exist only on a developer machine, never in Azure (with the reason).
LOCAL_ONLY_SETTINGS: dict[str, str] = {
    "P2C_STATE_STORAGE_CONNECTION_STRING": "Azurite connection string; in Azure the account has shared keys "
    "disabled and the app uses P2C_STATE_STORAGE_ACCOUNT with its managed identity",
    "P2C_CA_BUNDLE": "extra CA for the local HTTPS sandbox or a corporate proxy; Azure trusts public CAs",
    "AzureWebJobsStorage": "UseDevelopmentStorage=true locally; Azure uses the identity-based "
    "AzureWebJobsStorage__accountName/__credential/__clientId",
    "FUNCTIONS_WORKER_RUNTIME": "on Flex Consumption the runtime is functionAppConfig.runtime, "
    "not an app setting (azure.md §3, §7)",
    "FUNCTIONS_EXTENSION_VERSION": "not an app setting on Flex Consumption (azure.md §3)",
}


def _is_local_only(name: str) -> bool:
    # AzureWebJobs.<function>.Disabled toggles are local conveniences, not deployed settings
    return name in LOCAL_ONLY_SETTINGS or (name.startswith("AzureWebJobs.") and name.endswith(".Disabled"))


def settings_from_internals() -> list[str]:
    """Names in the Settings table of docs/internals.md (the <TEMPLATE>_SCHEDULE row lists eight)."""
    text = INTERNALS.read_text(encoding="utf-8")
    section = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1].strip().strip("`")
        if first == "<TEMPLATE>_SCHEDULE":
            names += re.findall(r"`([A-Z_]+_SCHEDULE)`", line)
        else:
            names.append(first)
    return names


def expected_settings(sample: Path = SAMPLE_SETTINGS) -> tuple[str, list[str]]:
    """(source, names): local.settings.sample.json once it exists, else the internals.md table."""
    if sample.exists():
        values = json.loads(sample.read_text(encoding="utf-8"))["Values"]
        return sample.name, list(values)
    return "docs/internals.md", settings_from_internals()


def deployable(names: list[str]) -> list[str]:
    return [n for n in names if not _is_local_only(n)]


def settings_read_by_code() -> set[str]:
    """App setting names the code reads literally: quoted P2C_* / APPLICATIONINSIGHTS_* / PYTHON_*
    strings and %X% binding expressions in shared/, functions/ and function_app.py."""
    files = [*ROOT.joinpath("shared").rglob("*.py"), *ROOT.joinpath("functions").rglob("*.py")]
    if (ROOT / "function_app.py").exists():
        files.append(ROOT / "function_app.py")
    found: set[str] = set()
    quoted = re.compile(r"""["']((?:P2C|APPLICATIONINSIGHTS|PYTHON_APPLICATIONINSIGHTS)_[A-Z0-9_]+)["']""")
    binding = re.compile(r"%([A-Z][A-Z0-9]*_[A-Z0-9_]+)%")  # not strftime's %Y%m
    for f in files:
        text = f.read_text(encoding="utf-8")
        found.update(quoted.findall(text))
        found.update(binding.findall(text))
    try:  # functions/timers.py binds f"%{template.schedule_setting}%"
        from shared.templates import TEMPLATES
    except ImportError:
        return found
    found.update(t.schedule_setting for t in TEMPLATES)
    return found


def app_settings() -> dict[str, Any]:
    """Name -> pycep value of the function app's appsettings config resource."""
    res = parse(BICEP / "modules" / "functionapp.bicep")["resources"]["appSettings"]
    assert res["type"] == "Microsoft.Web/sites/config"
    body = resource_body(res)
    assert body["name"] == "appsettings"
    return {unquote(k): v for k, v in body["properties"].items()}
