"""Patient ids are replaced by a keyed hash before anything is stored or logged.

``patient_key = HMAC-SHA256(key, PatientID)`` in hex: the same patient keeps the same
key across days (retakes and merges still work), and without the key nobody can go back
from a stored key to the id, nor test guesses. The key comes from, in order: the env
variable ``privacy.key_env``, the Prefect Secret block ``privacy.key_secret_block``, a
fixed public demo key when ``privacy.allow_demo_key`` (demo department only).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from typing import Any

import polars as pl

from pyschedvisu_core.errors import PseudonymKeyError

log = logging.getLogger("pyschedvisu.privacy")

#: Public, hence worthless as a secret: only for the synthetic demo department.
DEMO_KEY = b"pyschedvisu-demo-key-public-not-secret"


_demo_key_warned = threading.Event()


def pseudonymise(patient_id: str | None, key: bytes) -> str | None:
    """HMAC-SHA256 hex of the stripped ``patient_id`` (None stays None)."""
    if patient_id is None:
        return None
    value = str(patient_id).strip()
    if not value:
        return None
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonymise_column(
    frame: pl.DataFrame, key: bytes, source: str = "patient_id", target: str = "patient_key"
) -> pl.DataFrame:
    """``frame`` with ``target`` = pseudonym of ``source``, and ``source`` dropped."""
    values = [pseudonymise(v, key) for v in frame.get_column(source).to_list()]
    return frame.with_columns(pl.Series(target, values, dtype=pl.String())).drop(source)


def _secret_block(name: str) -> str | None:
    try:
        from prefect.blocks.system import Secret

        value: Any = Secret.load(name).get()
    except Exception as exc:  # any failure to reach Prefect means: no key from there
        raise PseudonymKeyError(
            f"cannot read Prefect Secret block {name!r} holding the pseudonymisation key: {exc}"
        ) from exc
    return str(value) if value else None


def load_key(privacy: Any) -> bytes:
    """The HMAC key for ``settings.privacy``; raises :class:`PseudonymKeyError` when there is none."""
    value = os.environ.get(privacy.key_env, "")
    if value:
        return value.encode("utf-8")
    if privacy.key_secret_block:
        secret = _secret_block(privacy.key_secret_block)
        if secret:
            return secret.encode("utf-8")
    if privacy.allow_demo_key:
        if not _demo_key_warned.is_set():  # once per process, not once per day
            _demo_key_warned.set()
            log.warning(
                "pseudonymisation uses the PUBLIC demo key: fine for the demo department only"
            )
        return DEMO_KEY
    where = f"environment variable {privacy.key_env}"
    if privacy.key_secret_block:
        where += f" or Prefect Secret block {privacy.key_secret_block!r}"
    raise PseudonymKeyError(
        f"no key to pseudonymise patient ids: set the {where} to a long random secret "
        "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), and keep it: "
        "another key gives other patient keys. For the demo only: privacy.allow_demo_key = true."
    )
