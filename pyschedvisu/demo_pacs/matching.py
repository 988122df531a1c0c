"""C-FIND attribute matching (DICOM PS3.4 C.2.2.2), on the string form of values.

Pure functions: a query value (as received in the identifier) is compiled once into a
predicate, then applied to the distinct stored values of an attribute. Stored values are
strings with multiple values joined by a backslash, as pydicom writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

Predicate = Callable[[str | None], bool]

#: VRs on which wildcards are not applied (the standard forbids them; a '*' is literal).
_NO_WILDCARD_VRS = {"UI", "DA", "TM", "DT"}
_RANGE_VRS = {"DA", "TM", "DT"}


def is_universal(query: str | None) -> bool:
    """True for a universal match: empty value, or only ``*`` (returns the attribute, no filter)."""
    return query is None or query.strip() in ("", "*")


def tm_seconds(value: str, *, upper: bool = False) -> float | None:
    """Seconds since midnight of a DICOM TM (``HH``, ``HHMM``, ``HHMMSS[.f]``, or ``HH:MM:SS``).

    With ``upper``, a truncated value means the end of its precision (``10`` -> 10:59:59.999999),
    so that a range ``-10`` includes all of hour 10. ``None`` when unparsable.
    """
    v = value.strip().replace(":", "")
    m = re.fullmatch(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?", v)
    if not m:
        return None
    hh, mm, ss, frac = m.groups()
    h, mi, s = int(hh), int(mm or 0), int(ss or 0)
    if h > 24 or mi > 59 or s > 60:
        return None
    secs = h * 3600 + mi * 60 + s + (float("0." + frac) if frac else 0.0)
    if upper and frac is None:
        if mm is None:
            secs += 3599.999999
        elif ss is None:
            secs += 59.999999
        else:
            secs += 0.999999
    return secs


def _wildcard_regex(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _range_predicate(query: str, vr: str) -> Predicate | None:
    """Predicate of a ``a-b`` / ``a-`` / ``-b`` range, or None when ``query`` is not a range."""
    if "-" not in query:
        return None
    if vr == "DT":
        # DT values may hold a '-hhmm' UTC offset: only split on a lone '-' between two values.
        parts = re.split(r"(?<=\d)-(?=\d{4,}|$)|^-", query, maxsplit=1)
        if len(parts) != 2:
            return None
        lo, hi = parts
    else:
        lo, _, hi = query.partition("-")
    lo, hi = lo.strip(), hi.strip()
    if vr == "TM":
        lo_s = tm_seconds(lo) if lo else None
        hi_s = tm_seconds(hi, upper=True) if hi else None
        if (lo and lo_s is None) or (hi and hi_s is None):
            return lambda _v: False

        def tm_pred(value: str | None) -> bool:
            if not value:
                return False
            s = tm_seconds(value)
            if s is None:
                return False
            return (lo_s is None or s >= lo_s) and (hi_s is None or s <= hi_s)

        return tm_pred

    # DA (YYYYMMDD) and DT compare as strings of digits; DT upper bounds are padded.
    lo_d = lo.replace(".", "")
    hi_d = hi.replace(".", "")
    if vr == "DT" and hi_d:
        hi_d = hi_d + "9" * max(0, 21 - len(hi_d))

    def da_pred(value: str | None) -> bool:
        if not value:
            return False
        v = value.strip().replace(".", "")
        return (not lo_d or v >= lo_d) and (not hi_d or v[: len(hi_d)] <= hi_d)

    return da_pred


def _single_predicate(query: str, vr: str) -> Predicate:
    """Predicate of one query value (no backslash)."""
    if vr in _RANGE_VRS:
        rng = _range_predicate(query, vr)
        if rng is not None:
            return rng
        if vr == "TM":
            # A single TM is the range [value, value]: '1000' matches 10:00:00..10:00:59.
            lo, hi = tm_seconds(query), tm_seconds(query, upper=True)
            if lo is None or hi is None:
                return lambda _v: False

            def tm_eq(value: str | None) -> bool:
                s = tm_seconds(value) if value else None
                return s is not None and lo <= s <= hi

            return tm_eq
    ignore_case = vr == "PN"  # like Orthanc's default CaseSensitivePN = false
    if vr not in _NO_WILDCARD_VRS and ("*" in query or "?" in query):
        rx = _wildcard_regex(query, ignore_case=ignore_case)
        return lambda v: v is not None and any(rx.fullmatch(p) for p in _parts(v))
    q = query.strip() if vr != "PN" else query.strip().lower()

    def eq(value: str | None) -> bool:
        if value is None:
            return False
        parts = _parts(value)
        if ignore_case:
            parts = [p.lower() for p in parts]
        return q in parts

    return eq


def _parts(value: str) -> list[str]:
    """The whole value and its backslash-separated components, stripped."""
    comps = [p.strip() for p in value.split("\\")]
    return [value.strip(), *comps] if len(comps) > 1 else comps


@lru_cache(maxsize=1024)
def compile_query(query: str | None, vr: str) -> Predicate | None:
    """Predicate for ``query`` on an attribute of ``vr``; None for a universal match.

    Single value, backslash list (any item), ``*``/``?`` wildcards (not on UI, DA, TM, DT),
    and DA/TM/DT ranges ``a-b``, ``a-``, ``-b``. A missing stored value never matches a
    non-universal query.
    """
    if is_universal(query):
        return None
    assert query is not None
    items = [q for q in query.split("\\")] if vr not in ("LT", "ST", "UT") else [query]
    items = [q for q in items if q.strip() != ""]
    if not items:
        return None
    if vr == "UI" and len(items) > 1:
        # a UID list (PS3.4 C.2.2.2.2): one set look-up per value, not one test per UID
        wanted = frozenset(q.strip() for q in items)
        return lambda v: v is not None and any(p in wanted for p in _parts(v))
    preds = [_single_predicate(q, vr) for q in items]
    if len(preds) == 1:
        return preds[0]
    return lambda v: any(p(v) for p in preds)


def exact_values(query: str | None, vr: str) -> frozenset[str] | None:
    """The values an exact query matches as they are, or None when it is not exact.

    Exact: one value or a backslash list, without wildcard (or on a VR that takes none),
    without range, case-sensitive (not PN), and not a TM/DT (a single TM is a range). A
    stored single value matches it iff it is one of these (stored values are stripped);
    a stored value holding several values may still match by a component.
    """
    if is_universal(query) or vr in ("PN", "TM", "DT", "LT", "ST", "UT"):
        return None
    assert query is not None
    items = frozenset(q.strip() for q in query.split("\\") if q.strip())
    if not items:
        return None
    if vr == "DA" and any("-" in q for q in items):
        return None
    if vr not in _NO_WILDCARD_VRS and any("*" in q or "?" in q for q in items):
        return None
    return items


def matches(query: str | None, vr: str, value: str | None) -> bool:
    """True when stored ``value`` matches ``query`` (universal queries match everything)."""
    pred = compile_query(query, vr)
    return True if pred is None else pred(value)
