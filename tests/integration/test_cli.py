"""`p2c` against the sandbox and a fresh Azurite: run, dry-run diff, status, runs, errors, replay, validate.

The CLI is driven in-process through `main(argv, env, console)` with the same app settings a user
puts in local.settings.json; `--json` output is parsed, table output is checked for what an
operator reads.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from sandbox.azurite import Azurite
from sandbox.datagen import generate
from sandbox.product_env import product_env
from shared.cli import UNKNOWN, main
from shared.settings import Settings
from shared.state import StateStore

pytestmark = pytest.mark.integration

COMPANY = "usmf"
BAD_KEY = "ACC-90009-STATE1"


@pytest.fixture
def env(sandbox: Any) -> Iterator[dict[str, str]]:
    with Azurite() as endpoints:
        yield product_env(sandbox.info, endpoints.connection_string, P2C_MAX_RETRIES="8")


def p2c(env: dict[str, str], *argv: str) -> tuple[int, str]:
    console = Console(file=io.StringIO(), width=250, record=True, color_system=None)
    code = main(list(argv), env=env, console=console)
    return code, console.export_text()


def p2c_json(env: dict[str, str], *argv: str) -> tuple[int, Any]:
    code, text = p2c(env, *argv, "--json")
    return code, json.loads(text)


def test_dry_run_shows_field_diff_and_writes_nothing(sandbox: Any, env: dict[str, str]) -> None:
    sandbox.load(generate(size=10, seed=11))
    code, out = p2c(env, "run", "accounts")
    assert code == 0, out
    assert "succeeded" in out
    accounts = sandbox.dataverse.rows("accounts")
    changed, untouched = accounts[0], accounts[1]
    customers = {r["CustomerAccount"]: r for r in sandbox.finops.rows("CustomersV2", company=COMPANY)}
    old_phone = customers[changed["accountnumber"]]["PrimaryContactPhone"]
    sandbox.dataverse.update("accounts", changed["accountid"], {"telephone1": "+1 425 555 0199"})
    # a new account too: a create lists every field
    sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": "ACC-77777-NEW001",
            "name": "Brand New Ltd",
            "_transactioncurrencyid_value": changed["_transactioncurrencyid_value"],
        },
    )
    state = StateStore.from_settings(Settings.from_env(env))
    checkpoints_before = [(c.task, c.cursor) for c in state.checkpoints.list("accounts")]
    sandbox.log.reset()

    code, [outcome] = p2c_json(env, "run", "accounts", "--dry-run")
    assert code == 0 and outcome["status"] == "succeeded", outcome
    by_key = {c["key"]: c for c in outcome["changes"]}
    assert set(by_key) == {changed["accountnumber"], "ACC-77777-NEW001"}
    update = by_key[changed["accountnumber"]]
    assert update["action"] == "update"
    phone = {"field": "PrimaryContactPhone", "current": old_phone, "new": "+1 425 555 0199"}
    assert update["fields"] == [phone]
    create = by_key["ACC-77777-NEW001"]
    assert create["action"] == "create"
    fields = {f["field"]: f for f in create["fields"]}
    assert fields["OrganizationName"]["new"] == "Brand New Ltd"
    assert fields["CustomerAccount"]["current"] is None
    assert UNKNOWN not in json.dumps(update)
    assert untouched["accountnumber"] not in by_key

    # nothing was written: no F&O batch, same customers, checkpoint unmoved
    assert sandbox.log.count(service="finops", kind="batch") == 0
    after = {r["CustomerAccount"]: r for r in sandbox.finops.rows("CustomersV2", company=COMPANY)}
    assert after[changed["accountnumber"]]["PrimaryContactPhone"] == old_phone
    assert "ACC-77777-NEW001" not in after
    assert [(c.task, c.cursor) for c in state.checkpoints.list("accounts")] == checkpoints_before

    # the table output names the record, the field and both values
    code, out = p2c(env, "run", "accounts", "--dry-run")
    assert code == 0
    line = next(x for x in out.splitlines() if "PrimaryContactPhone" in x)
    assert changed["accountnumber"] in line and old_phone in line and "+1 425 555 0199" in line

    # the real run then writes exactly that
    code, [real] = p2c_json(env, "run", "accounts")
    assert code == 0 and real["counts"]["written"] == 2, real


def test_status_runs_errors_replay(sandbox: Any, env: dict[str, str]) -> None:
    sandbox.load(generate(size=5, seed=11))
    currency = sandbox.dataverse.rows("accounts")[0]["_transactioncurrencyid_value"]
    sandbox.dataverse.insert(
        "accounts",
        {
            "accountnumber": BAD_KEY,
            "name": "Bad State Ltd",
            "address1_stateorprovince": "Nordrhein-Westfalen",
            "_transactioncurrencyid_value": currency,
        },
    )
    code, outcomes = p2c_json(env, "run", "all")
    # every template with a mapping runs, in dependency order (accounts before contacts)
    names = [o["template"] for o in outcomes]
    assert "accounts" in names
    if "contacts" in names:
        assert names.index("accounts") < names.index("contacts")
    first = next(o for o in outcomes if o["template"] == "accounts")
    assert first["status"] == "partial", first
    assert code == (1 if any(o["status"] == "failed" for o in outcomes) else 0)  # partial is not failed

    code, rows = p2c_json(env, "status")
    row = next(r for r in rows if r["template"] == "accounts")
    assert row["outcome"] == "partial" and row["open"] == {"failed": 1, "deferred": 0, "parked": 0}
    code, out = p2c(env, "status")
    line = next(x for x in out.splitlines() if x.strip("│ ").startswith("accounts "))
    assert "partial" in line and first["run_id"] in line

    code, runs = p2c_json(env, "runs", "accounts")
    assert code == 0 and [r["run_id"] for r in runs] == [first["run_id"]]
    code, out = p2c(env, "runs", "accounts")
    assert first["run_id"] in out and "failed=1" in out

    code, errors = p2c_json(env, "errors", "accounts")
    assert [e["source_key"] for e in errors] == [BAD_KEY]
    code, out = p2c(env, "errors", "accounts", "--status", "retrying")
    assert BAD_KEY in out and "AddressState" in out

    [bad] = sandbox.dataverse.find("accounts", accountnumber=BAD_KEY)
    sandbox.dataverse.update("accounts", bad["accountid"], {"address1_stateorprovince": "NRW"})
    code, out = p2c(env, "replay", "accounts", BAD_KEY)
    assert code == 0, out
    assert "1 record(s) of accounts queued for retry" in out and "succeeded" in out
    code, resolved = p2c_json(env, "errors", "accounts", "--status", "resolved")
    assert [e["source_key"] for e in resolved] == [BAD_KEY]
    customers = {r["CustomerAccount"]: r for r in sandbox.finops.rows("CustomersV2", company=COMPANY)}
    assert customers[BAD_KEY]["AddressState"] == "NRW"


def test_validate_settings_and_mappings(env: dict[str, str], tmp_path: Path) -> None:
    # only the accounts mapping, so other templates' mappings (work in progress) do not matter here
    mappings = tmp_path / "mappings"
    mappings.mkdir()
    source = (Path(env["P2C_MAPPINGS_DIR"]) / "accounts.yaml").read_text()
    (mappings / "accounts.yaml").write_text(source)
    env = {**env, "P2C_MAPPINGS_DIR": str(mappings)}
    code, out = p2c(env, "validate")
    assert code == 0, out
    assert "settings ok" in out and "accounts: mapping ok" in out and "invoices: no mapping file yet" in out
    # a broken mapping is named with its problem
    broken = source.replace("{target: AddressState,", "{target: AddressStateX,")
    (mappings / "accounts.yaml").write_text(broken)
    code, out = p2c(env, "validate")
    assert code == 1 and "AddressStateX" in out, out
    # settings from a local.settings.json file override the environment
    settings_file = tmp_path / "local.settings.json"
    settings_file.write_text(json.dumps({"Values": {"P2C_DATAVERSE_URL": "ftp://nowhere"}}))
    code, out = p2c(env, "validate", "--settings", str(settings_file))
    assert code == 1 and "P2C_DATAVERSE_URL" in out
