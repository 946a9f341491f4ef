"""Write `mappings/schema.json`, the JSON Schema of mapping files, from the pydantic model.

Editors (VS Code YAML extension via the `# yaml-language-server: $schema=` line) validate mapping
files as you type against it. Output is deterministic (sorted keys, fixed indent, trailing newline)
so a unit test can fail when the committed file is stale: run `python -m tools.export_mapping_schema`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.mapping.spec import json_schema

DEFAULT_PATH = Path(__file__).resolve().parents[1] / "mappings" / "schema.json"


def render() -> str:
    """The schema file's exact text."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="target (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale instead of writing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: run python -m tools.export_mapping_schema", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
