"""Every app setting the app reads is set by the Bicep (except the listed local-only ones).

The list comes from local.settings.sample.json (the documented settings) once it exists, else from
the Settings table of docs/internals.md; on top, setting names the code reads literally.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.unit.infra.bicep_model import (
    LOCAL_ONLY_SETTINGS,
    app_settings,
    deployable,
    expected_settings,
    settings_from_internals,
    settings_read_by_code,
)


def test_every_documented_setting_is_set_in_bicep() -> None:
    source, names = expected_settings()
    assert names, f"no settings found in {source}"
    missing = sorted(set(deployable(names)) - set(app_settings()))
    assert not missing, f"set in {source} but not in bicep/modules/functionapp.bicep: {missing}"


def test_the_internals_table_is_covered_too() -> None:
    """Even when the sample file exists, the contract table stays the floor."""
    names = settings_from_internals()
    assert len(names) >= 30 and "INVOICES_SCHEDULE" in names and "P2C_DATAVERSE_URL" in names
    missing = sorted(set(deployable(names)) - set(app_settings()))
    assert not missing, missing


def test_local_only_settings_are_not_deployed() -> None:
    settings = app_settings()
    for name, reason in LOCAL_ONLY_SETTINGS.items():
        assert reason
        assert name not in settings, name


def test_settings_read_by_code_are_set() -> None:
    read = settings_read_by_code()
    missing = sorted(n for n in read if n not in app_settings() and n not in LOCAL_ONLY_SETTINGS)
    assert not missing, f"read by the code but not set in Azure: {missing}"


def test_no_setting_name_is_invalid() -> None:
    for name in app_settings():
        assert ":" not in name and name.strip() == name
        assert "__" not in name or name.startswith("AzureWebJobsStorage__"), name


def test_sample_file_is_preferred_and_local_only_names_are_filtered(tmp_path: Path) -> None:
    sample = tmp_path / "local.settings.sample.json"
    assert expected_settings(sample)[0] == "docs/internals.md"  # fallback while it does not exist
    sample.write_text(json.dumps({"IsEncrypted": False, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "python", "AzureWebJobsStorage": "UseDevelopmentStorage=true",
        "AzureWebJobs.timer_accounts.Disabled": "true", "P2C_CA_BUNDLE": "", "P2C_DATAVERSE_URL": "x"}}))
    source, names = expected_settings(sample)
    assert source == "local.settings.sample.json"
    assert deployable(names) == ["P2C_DATAVERSE_URL"]
