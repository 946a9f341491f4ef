"""Deterministic target ids: stable across runs, distinct across table, company and key."""

from __future__ import annotations

import uuid

import pytest

from shared.ids import P2C_NAMESPACE, deterministic_id


def test_same_inputs_give_the_same_id() -> None:
    first = deterministic_id("account", "usmf", "C0001")
    assert first == deterministic_id("account", "usmf", "C0001")
    parsed = uuid.UUID(first)
    assert parsed.version == 5
    assert first == str(parsed)  # canonical lower-case form, as Dataverse echoes it


def test_namespace_is_pinned() -> None:
    # Changing the namespace would orphan every row already synced; this pins the constant.
    assert str(P2C_NAMESPACE) == "6f3b1c52-8d4e-5a7f-9b20-3c1d7e5a9f41"
    assert deterministic_id("account", "usmf", "C0001") == str(
        uuid.uuid5(P2C_NAMESPACE, "account|usmf|C0001")
    )


@pytest.mark.parametrize(
    ("table", "company", "key"),
    [
        ("contact", "usmf", "C0001"),  # other table
        ("account", "usrt", "C0001"),  # other company
        ("account", "usmf", "C0002"),  # other key
        ("account", "usmf", "c0001"),  # keys are case-sensitive in F&O
        ("account", "", "usmf|C0001"),  # an empty company does not fold into the key
    ],
)
def test_any_difference_gives_a_different_id(table: str, company: str, key: str) -> None:
    assert deterministic_id(table, company, key) != deterministic_id("account", "usmf", "C0001")


def test_many_keys_do_not_collide() -> None:
    ids = {deterministic_id("salesorder", "usmf", f"SO-{n:06d}") for n in range(5000)}
    assert len(ids) == 5000


@pytest.mark.parametrize(("table", "key"), [("", "C1"), ("account", "")])
def test_empty_parts_are_refused(table: str, key: str) -> None:
    with pytest.raises(ValueError):
        deterministic_id(table, "usmf", key)


@pytest.mark.parametrize(
    "key", ["C0001", "SO-000123|4", "Ünïcödé/🙂", "x" * 1000, "a|b|c", " spaced "]
)
@pytest.mark.parametrize("company", ["usmf", "", "DAT"])
def test_the_id_is_uuid5_of_the_joined_identity(company: str, key: str) -> None:
    """The id is computed by hand for speed; it must stay bit for bit `uuid.uuid5`."""
    expected = str(uuid.uuid5(P2C_NAMESPACE, f"salesorder|{company}|{key}"))
    assert deterministic_id("salesorder", company, key) == expected
