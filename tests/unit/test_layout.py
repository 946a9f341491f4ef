from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_top_level_layout_of_the_design_card_exists() -> None:
    for name in ["functions", "shared", "mappings", "tests", "host.json", "requirements.txt", "bicep"]:
        assert (ROOT / name).exists(), name
