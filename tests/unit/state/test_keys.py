"""Key encoding for Table Storage: forbidden characters never reach a key, and encoding is reversible."""

from __future__ import annotations

import pytest

from shared.state.keys import (
    MAX_KEY_UNITS,
    KeyDecodeError,
    compose_key,
    decode_composite,
    decode_key,
    encode_key,
    is_hashed,
    is_valid_key,
)

AWKWARD = [
    "",
    "plain",
    "a/b#c?d\\e",
    "~already~7E~escaped",
    "tab\there\nnewline\x00nul\x7fdel\x85nel\x9f",
    "Ünïcödé ключ 客户 😀",
    "pipe|inside",
    "O'Brien",
    "100%",
    "\ud800 lone surrogate",
]


@pytest.mark.parametrize("value", AWKWARD)
def test_round_trip_and_valid(value: str) -> None:
    key = encode_key(value)
    assert is_valid_key(key)
    assert not is_hashed(key)
    assert decode_key(key) == value
    for forbidden in "/\\#?":
        assert forbidden not in key


def test_forbidden_characters_escaped_readably() -> None:
    assert encode_key("a/b#c?d\\e") == "a~2Fb~23c~3Fd~5Ce"
    assert encode_key("x~y") == "x~7Ey"
    assert encode_key("plain-key:1 2") == "plain-key:1 2"


def test_control_characters_never_reach_a_key() -> None:
    key = encode_key("".join(chr(c) for c in range(0x00, 0x20)) + "".join(chr(c) for c in range(0x7F, 0xA0)))
    assert all(0x20 <= ord(ch) < 0x7F for ch in key)


def test_long_key_is_hashed_bounded_and_distinct() -> None:
    long_a = "x" * 2000
    long_b = "x" * 1999 + "y"
    a, b = encode_key(long_a), encode_key(long_b)
    assert is_hashed(a) and is_hashed(b)
    assert len(a) <= MAX_KEY_UNITS and len(b) <= MAX_KEY_UNITS
    assert a != b
    assert a == encode_key(long_a)  # deterministic
    assert a.startswith("x" * 100)
    with pytest.raises(KeyDecodeError):
        decode_key(a)


def test_long_astral_key_counts_utf16_units_and_never_splits_a_character() -> None:
    key = encode_key("😀" * 600)
    assert is_hashed(key)
    units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in key)
    assert units <= MAX_KEY_UNITS
    assert is_valid_key(key)


def test_key_exactly_at_the_limit_is_not_hashed() -> None:
    assert encode_key("k" * MAX_KEY_UNITS) == "k" * MAX_KEY_UNITS
    assert is_hashed(encode_key("k" * (MAX_KEY_UNITS + 1)))


def test_escapes_that_push_a_key_over_the_limit_hash_it() -> None:
    key = encode_key("/" * 200)  # 600 characters once escaped
    assert is_hashed(key) and len(key) <= MAX_KEY_UNITS


def test_composite_keys_keep_part_tuples_distinct() -> None:
    assert compose_key("usmf", "task|a", "b") != compose_key("usmf", "task", "a|b")
    assert compose_key("a", "b") == "a|b"
    assert decode_composite(compose_key("us|mf", "a/b", "")) == ["us|mf", "a/b", ""]


def test_long_composite_is_hashed_and_distinct() -> None:
    a = compose_key("usmf", "task", "k" * 2000)
    b = compose_key("usmf", "task", "k" * 1999 + "j")
    assert is_hashed(a) and a != b and len(a) <= MAX_KEY_UNITS


def test_malformed_keys_are_rejected() -> None:
    for bad in ("a~", "a~zz", "a~2"):
        with pytest.raises(KeyDecodeError):
            decode_key(bad)


def test_is_valid_key_rejects_what_the_service_rejects() -> None:
    assert not is_valid_key("a/b")
    assert not is_valid_key("tab\t")
    assert not is_valid_key("k" * (MAX_KEY_UNITS + 1))
    assert is_valid_key("space and : and | are fine")
