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
from pyschedvisu.privacy import DEMO_KEY, load_key, pseudonymise, pseudonymise_column
from pyschedvisu_core.errors import PseudonymKeyError


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


def test_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "s3cret")
    assert load_key(PrivacySettings(key_env="MY_KEY")) == b"s3cret"


def test_env_wins_over_secret_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_KEY", "from-env")
    # The block is not even looked up (no Prefect API needed) when the env variable is set.
    assert (
        load_key(PrivacySettings(key_env="MY_KEY", key_secret_block="no-such-block")) == b"from-env"
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
