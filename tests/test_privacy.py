"""Pseudonymisation of patient ids: keyed, stable, never reversible without the key."""

from __future__ import annotations

import hashlib
import hmac
import threading

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu import privacy
from pyschedvisu.config import PrivacySettings
from pyschedvisu.privacy import (
    DEMO_KEY,
    MIN_KEY_BITS,
    key_entropy_bits,
    key_problem,
    load_key,
    pseudonymise,
    pseudonymise_column,
)
from pyschedvisu_core.errors import PseudonymKeyError
from tests.conftest import TEST_KEY


def test_is_hmac_sha256_hex() -> None:
    expected = hmac.new(b"k", b"123456", hashlib.sha256).hexdigest()
    assert pseudonymise("123456", b"k") == expected
    assert pseudonymise(" 123456 ", b"k") == expected  # DICOM padding does not make another patient


@given(
    st.text(min_size=1).filter(lambda s: s.strip()), st.binary(min_size=1), st.binary(min_size=1)
)
def test_same_key_same_patient_other_key_other_pseudonym(
    pid: str, key: bytes, other: bytes
) -> None:
    a = pseudonymise(pid, key)
    assert a == pseudonymise(pid, key)
    assert a is not None and len(a) == 64 and int(a, 16) >= 0
    if other != key:
        assert pseudonymise(pid, other) != a


def test_empty_ids_stay_empty() -> None:
    assert pseudonymise(None, b"k") is None
    assert pseudonymise("  ", b"k") is None


def test_column_replaced_and_raw_dropped() -> None:
    frame = pl.DataFrame({"patient_id": ["1", None, "1"], "x": [1, 2, 3]})
    out = pseudonymise_column(frame, b"k")
    assert out.columns == ["x", "patient_key"]
    keys = out["patient_key"].to_list()
    assert keys[0] == keys[2] and keys[1] is None and keys[0] != "1"


STRONG = TEST_KEY  # 64 hex characters: 256 bits by the estimate


def test_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", STRONG)
    assert load_key(PrivacySettings(key_env="MY_KEY")) == STRONG.encode()


def test_env_wins_over_secret_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", STRONG)
    # The block is not even looked up (no Prefect API needed) when the env variable is set.
    assert (
        load_key(PrivacySettings(key_env="MY_KEY", key_secret_block="no-such-block"))
        == STRONG.encode()
    )


def test_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYSCHEDVISU_PSEUDONYM_KEY", raising=False)
    with pytest.raises(PseudonymKeyError, match="PYSCHEDVISU_PSEUDONYM_KEY") as info:
        load_key(PrivacySettings())
    assert "allow_demo_key" in str(info.value)


def test_demo_key_only_when_allowed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PYSCHEDVISU_PSEUDONYM_KEY", raising=False)
    monkeypatch.setattr(privacy, "_demo_key_warned", threading.Event())  # warned once per process
    assert load_key(PrivacySettings(allow_demo_key=True)) == DEMO_KEY
    assert "PUBLIC demo key" in caplog.text
    caplog.clear()
    assert load_key(PrivacySettings(allow_demo_key=True)) == DEMO_KEY
    assert "PUBLIC demo key" not in caplog.text  # not once per day retrieved


@pytest.mark.parametrize(
    ("key", "bits"),
    [
        ("0123456789abcdef" * 2, 128),  # hex: 4 bits a character (`openssl rand -hex 16`)
        ("9F" * 32, 64),  # hex, but only 2 different characters: 1 bit each
        ("Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA", 180),  # base64 (cases and digits): 6 bits
        ("correct horse battery staple", 56),  # words: 2 bits a character
        ("test-key-not-secret", 38),
        ("a" * 500, 0),
        ("", 0),
    ],
)
def test_key_entropy_is_estimated_per_character(key: str, bits: float) -> None:
    assert key_entropy_bits(key) == pytest.approx(bits)


@pytest.mark.parametrize("weak", ["x", "test-key-not-secret", "a" * 64, "0123456789abcdef"])
def test_weak_key_is_refused_with_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, weak: str
) -> None:
    """Regression: a 1-character pseudonymisation key was accepted."""
    monkeypatch.setenv("PYSCHEDVISU_PSEUDONYM_KEY", weak)
    with pytest.raises(PseudonymKeyError) as info:
        load_key(PrivacySettings())
    text = str(info.value)
    assert text.startswith("environment variable PYSCHEDVISU_PSEUDONYM_KEY: ")
    assert f"at least {MIN_KEY_BITS}" in text and "openssl rand -hex 32" in text
    assert weak not in text or len(weak) < 2  # the key itself is never echoed


def test_a_random_base64_key_without_a_digit_is_strong_enough() -> None:
    """Regression: 1 random base64 key of 32 bytes in about 1,500 has no digit, and was
    estimated at 88 bits (counted as text) and refused."""
    assert key_entropy_bits("TaAYSaqiefOUsurtczueteEBJaDOzzvFaZXfcKdBiQM=") >= MIN_KEY_BITS
    # a phrase in mixed case is still counted as text
    assert key_problem("CorrectHorseBatteryStapleCorrectHorse") is not None


def test_generated_keys_are_strong_enough() -> None:
    import base64
    import secrets

    for _ in range(50):
        assert key_entropy_bits(secrets.token_hex(32)) >= MIN_KEY_BITS
        assert key_entropy_bits(secrets.token_hex(16)) >= MIN_KEY_BITS
        assert key_entropy_bits(base64.b64encode(secrets.token_bytes(32)).decode()) >= 128
    assert key_entropy_bits(TEST_KEY) >= MIN_KEY_BITS
