"""The numbers of a report page as frames: labels, gaps, counts per bin, durations, time of day.

Every function takes the studies of ONE machine (``schema.STUDY_SCHEMA`` columns) and plain
values from the configuration; nothing here knows about Settings, files or plotly.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection, Sequence

import polars as pl

from pyschedvisu_core import i18n
from pyschedvisu_core.colors import later_take_shade
from pyschedvisu_core.periods import BinKind

OTHER = "OTHER"
#: Label of the gap row of the duration table (printed TROUS / GAPS).
GAPS = "GAPS"


def parse_duration(value: str) -> int:
    """Seconds of a polars-style duration such as ``3m``, ``15m``, ``1h30m``, ``90s``."""
    parts = re.findall(r"(\d+)\s*(h|m|s)", value.strip().lower())
    if not parts or "".join(n + u for n, u in parts) != re.sub(r"\s+", "", value.lower()):
        raise ValueError(f"{value!r} is not a duration like '3m', '15m' or '1h30m'")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def split_labels(description: str, retake_descriptions: Sequence[str]) -> list[str]:
    """Labels a description is shown as: ``["X [1]", "X [2]"]`` when split by take, else ``["X"]``."""
    if description in retake_descriptions:
        return [f"{description} [1]", f"{description} [2]"]
    return [description]


def base_description(label: str) -> str:
    """The description of a (possibly split) label: ``OS 3 PHASE [2]`` -> ``OS 3 PHASE``."""
    return re.sub(r" \[[12]\]$", "", label)


def label_order(
    order: Sequence[str], present: Sequence[str], retake_descriptions: Sequence[str] = ()
) -> list[str]:
    """Labels of ``present`` in the machine's description ``order``, split ones side by side,
    unknown labels after the known ones and ``OTHER`` last."""
    known = [d for d in order if d != OTHER]
    extra = sorted({base_description(p) for p in present} - set(known) - {OTHER})
    wanted = set(present)
    out: list[str] = []
    for desc in [*known, *extra, OTHER]:
        out.extend(lab for lab in split_labels(desc, retake_descriptions) if lab in wanted)
    return out


def color_of(description: str, order: Sequence[str], colors: Sequence[str]) -> str:
    """Colour of a description: its rank in the machine's order; ``OTHER`` (and unknown) the
    last. A later take ``X [2]`` gets a darker shade of X's colour, so that the two takes of
    one description read as a pair but never as one."""
    desc = base_description(description)
    known = [d for d in order if d != OTHER]
    base = colors[known.index(desc) % (len(colors) - 1)] if desc in known else colors[-1]
    return later_take_shade(base) if description.endswith(" [2]") else base


def with_labels(studies: pl.DataFrame, retake_descriptions: Sequence[str] = ()) -> pl.DataFrame:
    """Studies plus ``s``/``e`` (prep-padded times, raw ones when missing), ``label`` (with the
    ``[1]``/``[2]`` take split), ``retaken`` (its study has several takes) and ``duration_s``."""
    split = pl.col("description").is_in(list(retake_descriptions))
    take_tag = pl.when(pl.col("take") <= 1).then(pl.lit(" [1]")).otherwise(pl.lit(" [2]"))
    return studies.with_columns(
        s=pl.coalesce("start_prep", "start"),
        e=pl.coalesce("end_prep", "end"),
        label=pl.when(split)
        .then(pl.col("description") + take_tag)
        .otherwise(pl.col("description")),
        retaken=(pl.col("take").max().over("date", "study_uid") > 1),
        duration_s=(pl.col("end") - pl.col("start")).dt.total_microseconds() / 1e6,
    )


def find_gaps(studies: pl.DataFrame, gap_minutes: float) -> pl.DataFrame:
    """Idle stretches of at least ``gap_minutes`` between consecutive studies of each day.

    Uses prep-padded times. A gap starts when *every* earlier study of the day has ended
    (running maximum of the ends), so a long study overlapping shorter ones is never
    mistaken for idle time, and a study ending inside a candidate gap shortens it.
    Returns ``date, start, end, duration_s`` sorted by time.
    """
    f = (
        studies.select(
            "date",
            s=pl.coalesce("start_prep", "start"),
            e=pl.coalesce("end_prep", "end"),
        )
        .drop_nulls()
        .sort("date", "s", "e")
    )
    f = f.with_columns(prev_end=pl.col("e").cum_max().shift(1).over("date"))
    gap_s = (pl.col("s") - pl.col("prev_end")).dt.total_microseconds() / 1e6
    return (
        f.with_columns(duration_s=gap_s)
        .filter(pl.col("duration_s") >= gap_minutes * 60)
        .select("date", start=pl.col("prev_end"), end=pl.col("s"), duration_s=pl.col("duration_s"))
    )


#: Status of a business day for one machine (DOMAIN §4, utilisation).
ACTIVITY = "activity"  # studies that day: counted
NO_ACTIVITY = "no_activity"  # retrieved, in service, no study: counted, 0 exams
NO_DATA = "no_data"  # not retrieved (or not final yet): not counted
OUT_OF_SERVICE = "out_of_service"  # before / after the machine's service window: not counted
DAY_STATUSES = (ACTIVITY, NO_ACTIVITY, NO_DATA, OUT_OF_SERVICE)


def daily_counts(
    studies: pl.DataFrame,
    gaps: pl.DataFrame,
    days: Sequence[dt.date],
    slots_per_weekday: Sequence[int],
    retrieved: Collection[dt.date] = (),
    service: tuple[dt.date | None, dt.date | None] = (None, None),
) -> pl.DataFrame:
    """One row per business day: ``date, status, counted, slots, exams, gaps``.

    A day counts its weekday slots when it has studies, or when it was retrieved (final in
    the store: ``retrieved``) and lies in the machine's service window ``service`` (first and
    last day, None = open): an idle scanner then lowers utilisation instead of vanishing from
    it. Days not retrieved (``no_data``) and days outside the window (``out_of_service``) are
    not counted. Holidays are not in ``days`` at all.
    """
    first, last = service
    base = pl.DataFrame(
        {
            "date": list(days),
            "slot": [int(slots_per_weekday[d.weekday()]) for d in days],
            "retrieved": [d in retrieved for d in days] if retrieved else [False] * len(days),
            "in_service": [
                (first is None or d >= first) and (last is None or d <= last) for d in days
            ],
        },
        schema={
            "date": pl.Date(),
            "slot": pl.Int64(),
            "retrieved": pl.Boolean(),
            "in_service": pl.Boolean(),
        },
    )
    exams = studies.group_by("date").agg(exams=pl.len().cast(pl.Int64))
    n_gaps = gaps.group_by("date").agg(gaps=pl.len().cast(pl.Int64))
    out = (
        base.join(exams, on="date", how="left")
        .join(n_gaps, on="date", how="left")
        .with_columns(pl.col("exams", "gaps").fill_null(0))
    )
    status = (
        pl.when(pl.col("exams") > 0)
        .then(pl.lit(ACTIVITY))
        .when(~pl.col("in_service"))
        .then(pl.lit(OUT_OF_SERVICE))
        .when(pl.col("retrieved"))
        .then(pl.lit(NO_ACTIVITY))
        .otherwise(pl.lit(NO_DATA))
    )
    counted = pl.col("status").is_in([ACTIVITY, NO_ACTIVITY])
    return (
        out.with_columns(status=status)
        .with_columns(counted=counted)
        .select(
            "date",
            "status",
            "counted",
            slots=pl.when(pl.col("counted")).then(pl.col("slot")).otherwise(0),
            exams="exams",
            gaps="gaps",
        )
    )


def day_bins(days: Sequence[dt.date], kind: BinKind, lang: str = "fr") -> pl.DataFrame:
    """``date, bin, bin_label`` for each business day: bins of the count table and of the ticks.

    4-week bins are counted back from the last day, so the last bin is always complete.
    """
    if not days:
        return pl.DataFrame(schema={"date": pl.Date(), "bin": pl.Int64(), "bin_label": pl.String()})
    keys: list[tuple[int, ...]] = []
    last_monday = days[-1] - dt.timedelta(days=days[-1].weekday())
    for i, d in enumerate(days):
        if kind == "day":
            keys.append((i,))
        elif kind == "week":
            iso = d.isocalendar()
            keys.append((iso.year, iso.week))
        elif kind == "4weeks":
            monday = d - dt.timedelta(days=d.weekday())
            keys.append((-(((last_monday - monday).days // 7) // 4),))
        elif kind == "month":
            keys.append((d.year, d.month))
        else:
            keys.append((d.year,))
    index: dict[tuple[int, ...], int] = {}
    bins = [index.setdefault(k, len(index)) for k in keys]
    firsts: dict[int, dt.date] = {}
    lasts: dict[int, dt.date] = {}
    for b, d in zip(bins, days, strict=True):
        firsts.setdefault(b, d)
        lasts[b] = d
    years = days[0].year != days[-1].year
    labels = {b: _bin_label(firsts[b], lasts[b], kind, lang, years) for b in firsts}
    return pl.DataFrame(
        {"date": list(days), "bin": bins, "bin_label": [labels[b] for b in bins]},
        schema={"date": pl.Date(), "bin": pl.Int64(), "bin_label": pl.String()},
    )


def _bin_label(first: dt.date, last: dt.date, kind: BinKind, lang: str, years: bool) -> str:
    if kind == "day":
        return f"{i18n.weekday_abbrev(first, lang)} {first:%d/%m}"
    if kind == "week":
        return i18n.week_abbrev(first.isocalendar().week, lang)
    if kind == "4weeks":
        a, b = first.isocalendar().week, last.isocalendar().week
        return i18n.week_abbrev(a, lang) + (f"-{b}" if b != a else "")
    if kind == "month":
        # "janv." within one calendar year, "01/20" when the period spans several.
        return f"{first:%m/%y}" if years else i18n.month_abbrev(first, lang)
    return str(first.year)


#: Columns of :func:`count_table` (values as floats: the mean row is fractional).
COUNT_COLUMNS = ("days", "slots", "exams", "gaps", "util", "no_activity", "no_data")


def utilisation(exams: pl.Expr, slots: pl.Expr) -> pl.Expr:
    """Utilisation in % = exams / slots (null without slots): the one definition, everywhere."""
    return pl.when(slots > 0).then(100 * exams / slots)


def count_table(daily: pl.DataFrame, bins: pl.DataFrame) -> pl.DataFrame:
    """The count table: one row per bin, then ``Total`` and ``Moyen`` (mean) rows.

    Columns ``label, row ("bin"|"total"|"mean"), first_day, last_day, days, slots, exams, gaps,
    util, no_activity, no_data``: ``days`` = days counted (with studies, or retrieved in
    service), util in % (null without slots), ``no_activity`` / ``no_data`` = days of those
    statuses. The mean row holds the mean per bin of the bins with counted days, but its util
    is the total's (total exams / total slots), so that "mean" and "overall" utilisation are
    one number.
    """
    per_bin = (
        daily.join(bins, on="date", how="left")
        .group_by("bin", "bin_label")
        .agg(
            first_day=pl.col("date").min(),
            last_day=pl.col("date").max(),
            days=pl.col("counted").sum().cast(pl.Float64),
            slots=pl.col("slots").sum().cast(pl.Float64),
            exams=pl.col("exams").sum().cast(pl.Float64),
            gaps=pl.col("gaps").sum().cast(pl.Float64),
            no_activity=(pl.col("status") == NO_ACTIVITY).sum().cast(pl.Float64),
            no_data=(pl.col("status") == NO_DATA).sum().cast(pl.Float64),
        )
        .sort("bin")
        .with_columns(util=utilisation(pl.col("exams"), pl.col("slots")), row=pl.lit("bin"))
        .select("bin_label", "row", "first_day", "last_day", *COUNT_COLUMNS)
        .rename({"bin_label": "label"})
    )
    sums = [pl.col(c).sum() for c in COUNT_COLUMNS if c != "util"]
    total = per_bin.select(
        *sums,
        label=pl.lit("total"),
        row=pl.lit("total"),
        first_day=pl.col("first_day").min(),
        last_day=pl.col("last_day").max(),
    ).with_columns(util=utilisation(pl.col("exams"), pl.col("slots")))
    with_data = per_bin.filter(pl.col("days") > 0)
    mean = with_data.select(
        *[pl.col(c).mean() for c in COUNT_COLUMNS if c != "util"],
        label=pl.lit("mean"),
        row=pl.lit("mean"),
        first_day=pl.lit(None, dtype=pl.Date()),
        last_day=pl.lit(None, dtype=pl.Date()),
    ).with_columns(util=total["util"][0] if total.height else None)
    if with_data.height == 0:
        mean = mean.clear(1).with_columns(label=pl.lit("mean"), row=pl.lit("mean"))
    cols = per_bin.columns
    return pl.concat(
        [per_bin, total.select(cols).cast(per_bin.schema), mean.select(cols).cast(per_bin.schema)]
    )


def _duration_stats(col: str) -> list[pl.Expr]:
    d = pl.col(col)
    return [
        pl.len().cast(pl.Int64).alias("n"),
        d.mean().alias("mean_s"),
        d.median().alias("median_s"),
        d.quantile(0.9, "linear").alias("p90_s"),
        d.min().alias("min_s"),
        d.max().alias("max_s"),
    ]


#: Columns of :func:`duration_table`.
DURATION_COLUMNS = ("label", "n", "mean_s", "median_s", "p90_s", "min_s", "max_s")


def duration_table(
    labeled: pl.DataFrame, gaps: pl.DataFrame, labels: Sequence[str]
) -> pl.DataFrame:
    """``label, n, mean_s, median_s, p90_s, min_s, max_s`` per label (in ``labels`` order),
    then the gap row (label :data:`GAPS`) with the count and durations of the gaps.

    P90 interpolates linearly between the two nearest durations (as numpy's default).
    """
    stats = labeled.group_by("label").agg(_duration_stats("duration_s"))
    order = pl.DataFrame({"label": list(labels)}, schema={"label": pl.String()})
    rows = order.join(stats, on="label", how="inner", maintain_order="left")
    gap_row = gaps.select(pl.lit(GAPS).alias("label"), *_duration_stats("duration_s"))
    return pl.concat(
        [rows.select(DURATION_COLUMNS), gap_row.select(DURATION_COLUMNS).cast(rows.schema)]
    )


def _seconds_of_day(col: str) -> pl.Expr:
    return (pl.col(col) - pl.col(col).dt.truncate("1d")).dt.total_microseconds() / 1e6


def time_of_day_distribution(
    labeled: pl.DataFrame,
    labels: Sequence[str],
    sample_s: int = 180,
    smooth_s: int = 900,
) -> pl.DataFrame:
    """Share of studies in progress at each time of day, per label.

    Sampled every ``sample_s`` seconds over the span of the data, smoothed with a centred
    rolling mean of ``smooth_s`` and normalised to its maximum (1.0). Returns
    ``label, hour (float), share``.
    """
    schema = {"label": pl.String(), "hour": pl.Float64(), "share": pl.Float64()}
    f = labeled.filter(pl.col("label").is_in(list(labels))).select(
        "label", a=_seconds_of_day("start"), b=_seconds_of_day("end")
    )
    f = f.drop_nulls().filter(pl.col("b") > pl.col("a"))
    if f.height == 0:
        return pl.DataFrame(schema=schema)
    lo = math.floor(float(f["a"].min()) / sample_s)  # type: ignore[arg-type]
    hi = math.ceil(float(f["b"].max()) / sample_s)  # type: ignore[arg-type]
    grid = pl.DataFrame({"i": list(range(lo, hi + 1))}, schema={"i": pl.Int64()})
    # +1 at the first sample inside the study, -1 at the first one after it: a cumulative
    # sum then gives the number of studies in progress at each sample.
    events = pl.concat(
        [
            f.select("label", i=(pl.col("a") / sample_s).ceil().cast(pl.Int64), d=pl.lit(1)),
            f.select("label", i=(pl.col("b") / sample_s).ceil().cast(pl.Int64), d=pl.lit(-1)),
        ]
    )
    window = max(1, round(smooth_s / sample_s))
    out = []
    for label in labels:
        ev = events.filter(pl.col("label") == label).group_by("i").agg(pl.col("d").sum())
        if ev.height == 0:
            continue
        curve = (
            grid.join(ev, on="i", how="left")
            .sort("i")
            .with_columns(n=pl.col("d").fill_null(0).cum_sum().cast(pl.Float64))
            .with_columns(
                n=pl.col("n").rolling_mean(window_size=window, center=True, min_samples=1)
            )
        )
        peak = curve["n"].max()
        denom = float(peak) if isinstance(peak, int | float) and peak > 0 else 1.0
        out.append(
            curve.select(
                label=pl.lit(label),
                hour=pl.col("i") * sample_s / 3600.0,
                share=pl.col("n") / denom,
            )
        )
    if not out:
        return pl.DataFrame(schema=schema)
    return pl.concat(out).cast(schema)  # type: ignore[arg-type]


def duration_density(
    labeled: pl.DataFrame, labels: Sequence[str], points: int = 48, bins: int = 256
) -> pl.DataFrame:
    """Gaussian kernel density of the durations (minutes) of each label, for violin shapes.

    Evaluated at ``points`` minutes from the shortest to the longest study (no tails beyond
    the data), Silverman bandwidth, normalised to a maximum of 1. Durations are first
    counted in ``bins`` bins so that tens of thousands of studies cost no more than a few.
    Returns ``label, minutes, density``.
    """
    schema = {"label": pl.String(), "minutes": pl.Float64(), "density": pl.Float64()}
    vals = (
        labeled.filter(pl.col("label").is_in(list(labels)))
        .select("label", m=pl.col("duration_s") / 60.0)
        .drop_nulls("m")
    )
    stats = {
        str(r[0]): r[1:]
        for r in vals.group_by("label")
        .agg(lo=pl.col("m").min(), hi=pl.col("m").max(), n=pl.len(), std=pl.col("m").std())
        .iter_rows()
    }
    flat: list[tuple[int, str, float]] = []  # labels whose durations are all equal
    params: list[tuple[str, int, float, float, float]] = []  # label, order, lo, width, bw
    grid_rows: list[tuple[str, int, float]] = []
    for k, label in enumerate(labels):
        if label not in stats:
            continue
        lo, hi, n, std = stats[label]
        if hi - lo < 1e-9:
            flat.append((k, label, lo))
            continue
        spread = std if std else (hi - lo) / 4
        params.append((label, k, lo, (hi - lo) / bins, 1.06 * spread * n ** (-0.2)))
        grid_rows += [(label, i, lo + (hi - lo) * i / (points - 1)) for i in range(points)]
    parts = [
        pl.DataFrame(
            [(k, label, 0, lo, 1.0) for k, label, lo in flat],
            schema={"k": pl.Int64(), "label": pl.String(), "i": pl.Int64(), **schema},
            orient="row",
        )
    ]
    if params:
        # Durations counted in bins, then the kernels of the bin centres summed at each grid
        # point: one cross join per page (labels x bins x points rows), no Python loop.
        p = pl.DataFrame(
            params, schema=["label", "k", "lo", "width", "bw"], orient="row"
        ).with_columns(pl.col("k").cast(pl.Int64))
        grid = pl.DataFrame(grid_rows, schema=["label", "i", "minutes"], orient="row")
        dens = (
            vals.join(p, on="label")
            .with_columns(
                b=((pl.col("m") - pl.col("lo")) / pl.col("width"))
                .floor()
                .clip(0, bins - 1)
                .cast(pl.Int64)
            )
            .group_by("label", "b")
            .agg(pl.len().alias("c"), pl.col("k", "lo", "width", "bw").first())
            .with_columns(x=pl.col("lo") + (pl.col("b") + 0.5) * pl.col("width"))
            .join(grid, on="label")
            .group_by("k", "label", "i")
            .agg(
                d=(
                    pl.col("c")
                    * (-0.5 * ((pl.col("minutes") - pl.col("x")) / pl.col("bw")) ** 2).exp()
                ).sum(),
                minutes=pl.col("minutes").first(),
            )
            .with_columns(peak=pl.col("d").max().over("label"))
            .select(
                "k",
                "label",
                pl.col("i").cast(pl.Int64),
                "minutes",
                density=pl.when(pl.col("peak") > 0)
                .then(pl.col("d") / pl.col("peak"))
                .otherwise(pl.col("d")),
            )
        )
        parts.append(dens)
    return pl.concat(parts).sort("k", "i").select(list(schema)).cast(schema)  # type: ignore[arg-type]


def occupancy_grid(geo: pl.DataFrame, n_columns: int, step_h: float = 1 / 6) -> pl.DataFrame:
    """The dominant label of each (column of days, time step) cell, for very long periods.

    ``geo`` needs ``col`` (column index of the study's day), ``label`` and ``ys``/``ye``
    (padded start/end in hours). A cell takes the label in progress most often in it.
    Returns ``col, row, label`` (row = index of the ``step_h`` time step from midnight).
    """
    cells = (
        geo.select(
            "col",
            "label",
            row=pl.int_ranges(
                (pl.col("ys") / step_h).floor().cast(pl.Int64),
                (pl.col("ye") / step_h).ceil().cast(pl.Int64),
            ),
        )
        .explode("row")
        .drop_nulls("row")
    )
    return (
        cells.group_by("col", "row", "label")
        .agg(n=pl.len())
        .sort("col", "row", "n", "label", descending=[False, False, True, False])
        .group_by("col", "row", maintain_order=True)
        .first()
        .select("col", "row", "label")
        .filter(pl.col("col") < n_columns)
    )
