"""Which tasks need reverse crosswalk rows: those some mapping looks up `by: target_key`."""

from __future__ import annotations

from pathlib import Path

from shared.mapping import target_key_references

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_mappings_need_reverse_rows_for_sales_order_lines_only() -> None:
    # orders-to-sales puts F&O lines back on the Sales lines orders-to-fno wrote, by their F&O key
    assert target_key_references(ROOT / "mappings") == {("orders-to-fno", "lines")}


def test_lists_tasks_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "tasks:\n"
        "  - fields:\n"
        "      - lookup: {entity: ['synced:x', 'synced:y.lines', product], by: target_key}\n"
        "      - lookup: {entity: 'synced:z', by: origin}\n",
        encoding="utf-8",
    )
    (tmp_path / "broken.yaml").write_text("tasks: [unclosed\n", encoding="utf-8")
    assert target_key_references(tmp_path) == {("x", None), ("y", "lines")}
