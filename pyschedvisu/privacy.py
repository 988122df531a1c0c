"""Patient ids are replaced by a keyed hash before anything is stored or logged.

``patient_key = HMAC-SHA256(key, PatientID)`` in hex: the same patient keeps the same
key across days (retakes and merges still work), and without the key nobody can go back
from a stored key to the id, nor test guesses. The key comes from, in order: the env
variable ``privacy.key_env``, the Prefect Secret block ``privacy.key_secret_block``, a
fixed public demo key when ``privacy.allow_demo_key`` (demo department only).

A configured key must carry at least :data:`MIN_KEY_BITS` bits of entropy, as estimated by
:func:`key_entropy_bits`; ``openssl rand -hex 32`` gives 256.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import threading
from typing import Any

import polars as pl

from pyschedvisu_core.errors import PseudonymKeyError

log = logging.getLogger("pyschedvisu.privacy")

#: Public, hence worthless as a secret: only for the synthetic demo department.
DEMO_KEY = b"pyschedvisu-demo-key-public-not-secret"


_demo_key_warned = threading.Event()

#: Least estimated entropy of a pseudonymisation key, in bits.
MIN_KEY_BITS = 128
#: How to make a good key (in every message about a weak or missing one).
MAKE_KEY = "openssl rand -hex 32"

_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def key_entropy_bits(key: str) -> float:
    """Estimated entropy of ``key`` in bits: its length times the bits each character carries.

    Per character: 4 bits for a hexadecimal key (``0-9a-f``, either case); 6 for a base64 or
    base64url key (``A-Z a-z 0-9 + / - _``, ``=`` padding) that mixes upper and lower case
    with digits, or with at least 24 different characters (random base64 of 32 bytes has no
    digit once in 1,500 keys, and about 32 different characters; a phrase rarely 24); 2 for
    anything else (words and phrases: a conservative figure for text). A key written with fewer than 8 different characters
    (``aaaa…``, ``0101…``) counts at most log2(that number) bits per character.
    """
    if not key:
        return 0.0
    if _HEX.fullmatch(key):
        per_char = 4.0
    elif (
        _BASE64.fullmatch(key)
        and re.search(r"[A-Z]", key)
        and re.search(r"[a-z]", key)
        and (re.search(r"[0-9]", key) or len(set(key)) >= 24)
    ):
        per_char = 6.0
    else:
        per_char = 2.0
    distinct = len(set(key))
    if distinct < 8:
        per_char = min(per_char, math.log2(distinct))
    return len(key) * per_char


def key_problem(key: str) -> str | None:
    """What is wrong with ``key`` as a pseudonymisation key, or None when it is strong enough."""
    bits = key_entropy_bits(key)
    if bits >= MIN_KEY_BITS:
        return None
    return (
        f"the pseudonymisation key is too weak: about {bits:.0f} bits of entropy (estimated "
        f"from its {len(key)} characters), at least {MIN_KEY_BITS} are needed; make one with "
        f"`{MAKE_KEY}` (64 hex characters, 256 bits) and keep it: another key gives other "
        "patient keys"
    )


def check_key(key: str, source: str) -> None:
    """Raise :class:`PseudonymKeyError` when ``key`` (from ``source``) is too weak."""
    problem = key_problem(key)
    if problem is not None:
        raise PseudonymKeyError(f"{source}: {problem}")


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
        check_key(value, f"environment variable {privacy.key_env}")
        return value.encode("utf-8")
    if privacy.key_secret_block:
        secret = _secret_block(privacy.key_secret_block)
        if secret:
            check_key(secret, f"Prefect Secret block {privacy.key_secret_block!r}")
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
        f"(`{MAKE_KEY}`), and keep it: another key gives other patient keys. "
        "For the demo only: privacy.allow_demo_key = true."
    )
