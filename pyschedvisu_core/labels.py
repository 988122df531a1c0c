"""Study labels: minified StudyDescription matched fully against each machine's ordered patterns.

DOMAIN §3.5. A series' StudyDescription is minified (lower case; spaces and ``_ - ^ ( ) + : . '``
removed; accents too, as in the patterns: "Thyroïde" is "thyroide") and matched with ``re.fullmatch`` semantics against the label patterns of its display
machine, in config order: the first label that matches wins, else ``OTHER``. The label of a study
is the most frequent non-``OTHER`` label among its series (ties: config label order).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence

import polars as pl

from pyschedvisu_core.errors import ExtractionError

OTHER = "OTHER"

#: Characters removed from a StudyDescription before matching (plus every whitespace).
_DESCRIPTION_NOISE = r"[\s_\-^()+:.']"
#: What a model name or a display machine name loses before comparison (NUL: DICOM padding).
_MACHINE_NOISE = r"[\s\x00_]+"


def minify_description(expr: pl.Expr) -> pl.Expr:
    """``"PET-CT FDG (Tronc)"`` -> ``"petctfdgtronc"``; ``"Thyroïde"`` -> ``"thyroide"``.

    Accents are dropped (NFKD, then combining marks), as for institution names: the same exam
    is typed with or without them, and the department's patterns are written without.
    """
    unaccented = expr.str.normalize("NFKD").str.replace_all(r"\p{M}", "")
    return unaccented.str.to_lowercase().str.replace_all(_DESCRIPTION_NOISE, "")


def unaccented(text: str) -> str:
    """``text`` without accents: NFKD, then combining marks dropped ("Médecine" -> "Medecine").

    Also how label patterns are matched: like the minified descriptions, without accents.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def minify_machine(name: str) -> str:
    """Key of a model or display machine (``[machines]``, ``[descriptions]``, ``[draw.machine]``).

    ``"Biograph64_Vision 600"`` -> ``"biograph64vision600"``, ``"PET GE"`` -> ``"petge"``.
    """
    return re.sub(_MACHINE_NOISE, "", name).lower()


def minify_machine_expr(expr: pl.Expr) -> pl.Expr:
    """:func:`minify_machine` of a string column."""
    return expr.str.replace_all(_MACHINE_NOISE, "").str.to_lowercase()


def fullmatch_regex(patterns: Sequence[str]) -> str:
    """One regex that matches a whole string iff one of ``patterns`` does (``re.fullmatch``)."""
    # \A and \z (not ^ and $) so that a trailing newline never matches, exactly as fullmatch.
    return r"\A(?:" + "|".join(f"(?:{p})" for p in patterns) + r")\z"


def label_order(labels: Mapping[str, Mapping[str, Sequence[str]]]) -> pl.DataFrame:
    """``machine_key, label, label_rank``: the config order of each machine's labels."""
    rows = [(m, label, rank) for m, table in labels.items() for rank, label in enumerate(table)]
    return pl.DataFrame(
        rows,
        schema={"machine_key": pl.String(), "label": pl.String(), "label_rank": pl.Int32()},
        orient="row",
    )


def label_expr(
    machine_key: pl.Expr,
    minified: pl.Expr,
    labels: Mapping[str, Mapping[str, Sequence[str]]],
) -> pl.Expr:
    """The label of each row: first label of its machine whose patterns fully match, else OTHER.

    Raises :class:`ExtractionError` when a pattern is not understood by the polars regex engine.
    """
    # coalesce keeps the first non-null branch: config order, hence "first label wins".
    branches: list[pl.Expr] = []
    for machine, table in labels.items():
        for label, patterns in table.items():
            if not patterns:
                continue
            regex = fullmatch_regex([unaccented(p) for p in patterns])
            _check_regex(regex, machine, label)
            cond = (machine_key == machine) & minified.str.contains(regex)
            branches.append(pl.when(cond).then(pl.lit(label)))
    return pl.coalesce([*branches, pl.lit(OTHER)])


def _check_regex(regex: str, machine: str, label: str) -> None:
    # Config patterns are validated with Python's `re`; polars uses Rust's regex crate, which
    # lacks look-arounds and back-references. Fail with a clear message rather than deep in a query.
    try:
        pl.select(pl.lit("").str.contains(regex))
    except pl.exceptions.PolarsError as exc:
        raise ExtractionError(
            f"descriptions.{machine}.{label!r}: pattern not supported by the regex engine "
            f"(no look-arounds or back-references): {exc}"
        ) from exc
