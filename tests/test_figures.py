"""Figure level: one page built from the small known week (and longer synthetic periods)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from typing import Any

import plotly.graph_objects as go
import polars as pl
import pytest

from pyschedvisu_core import figures as F
from pyschedvisu_core.calendar import business_days
from pyschedvisu_core.colors import later_take_shade
from tests.report_data import END, MON, SECRET_PATIENT, frame, known_week, study

ORDER = ("FDG STAND.", "FDG CORPS", "RB82 COEUR", "OS 3 PHASE")
COLORS = ("orange", "gold", "red", "pink", "lightgreen")


def spec(start: dt.date = MON, end: dt.date = END, **kw: Any) -> F.PageSpec:
    base = F.PageSpec(
        machine="PET GE",
        period_label="hebdomadaire",
        start=start,
        end=end,
        days=tuple(business_days(start, end)),
        description_order=ORDER,
        colors=COLORS,
        slots_per_weekday=(15, 15, 15, 15, 15),
        gap_minutes=30,
        prep_minutes=10,
        retake_descriptions=("OS 3 PHASE",),
    )
    return dataclasses.replace(base, **kw)


def traces(fig: go.Figure, meta: str) -> list[Any]:
    return [t for t in fig.data if getattr(t, "meta", None) == meta]


def n_paths(trace: Any, points_per_path: int) -> int:
    xs = F.decode_array(trace.x)
    assert len(xs) % points_per_path == 0
    assert all(math.isnan(v) for v in xs[points_per_path - 1 :: points_per_path])
    return len(xs) // points_per_path


def annotation(fig: go.Figure, name: str) -> str:
    return next(a.text for a in fig.layout.annotations if a.name == name)


@pytest.fixture(scope="module")
def week_fig() -> go.Figure:
    return F.page_figure(known_week(), spec())


def test_one_outer_and_one_acquisition_box_per_study(week_fig: go.Figure) -> None:
    boxes = traces(week_fig, "boxes")
    acq = traces(week_fig, "acquisition")
    assert sum(n_paths(t, 6) for t in boxes) == 8
    assert sum(n_paths(t, 6) for t in acq) == 8
    assert all(t.fill == "toself" for t in boxes + acq)
    # one trace per label, named in French (OTHER printed AUTRE), OTHER's colour last
    names = [t.name for t in boxes]
    assert names == [
        "FDG STAND.",
        "FDG CORPS",
        "RB82 COEUR",
        "OS 3 PHASE [1]",
        "OS 3 PHASE [2]",
        "AUTRE",
    ]
    assert boxes[-1].line.color == COLORS[-1]
    # the later take [2] in a darker shade of its first take's colour
    assert boxes[3].line.color == "pink"
    assert boxes[4].line.color == later_take_shade("pink") != "pink"


def test_consecutive_boxes_alternate_left_and_right(week_fig: go.Figure) -> None:
    hover = traces(week_fig, F.HOVER_META)[-1]
    xs = F.decode_array(hover.x)[:6]  # Monday's studies, in start order
    shifts = [round(x - 0.0, 2) for x in xs]
    assert shifts == [-0.08, 0.08, -0.08, 0.08, -0.08, 0.08]


def test_retake_hatching_first_take_one_way_later_takes_the_other(week_fig: go.Figure) -> None:
    (first,) = traces(week_fig, "hatch-first")
    (later,) = traces(week_fig, "hatch-later")
    fy, ly = F.decode_array(first.y), F.decode_array(later.y)
    assert len(fy) >= 9 and len(ly) >= 9  # several lines per box
    assert all(fy[i] < fy[i + 1] for i in range(0, len(fy), 3))  # "\": y grows downwards
    assert all(ly[i] > ly[i + 1] for i in range(0, len(ly), 3))  # "/"
    # clipped to the acquisition boxes: take 1 08:00-08:20, take 2 09:30-09:50
    assert (
        min(v for v in fy if v == v) >= 8.0 - 1e-5
        and max(v for v in fy if v == v) <= 8 + 20 / 60 + 1e-5
    )
    assert (
        min(v for v in ly if v == v) >= 9.5 - 1e-5
        and max(v for v in ly if v == v) <= 9 + 50 / 60 + 1e-5
    )


def test_dashed_gap_lines_one_per_gap(week_fig: go.Figure) -> None:
    (gaps,) = traces(week_fig, "gaps")
    assert gaps.line.dash == "dash"
    assert n_paths(gaps, 3) == 2
    ys = F.decode_array(gaps.y)
    assert [round(v, 3) for v in (ys[0], ys[1], ys[3], ys[4])] == [9.333, 10.333, 8.5, 9.333]


def test_count_table_cells(week_fig: go.Figure) -> None:
    cells = F.table_cells(week_fig, "count-table")
    header, rest = cells[:8], cells[8:]
    assert header == [
        "Date",
        "Lu 18/11",
        "Ma 19/11",
        "Me 20/11",
        "Je 21/11",
        "Ve 22/11",
        "Total",
        "Moyen",
    ]
    assert rest[:8] == ["Plages", "15", "15", "0", "0", "0", "30", "15.0"]
    assert rest[8:16] == ["Exam.", "6", "2", "0", "0", "0", "8", "4.0"]
    assert rest[16:24] == ["Trous", "1", "1", "0", "0", "0", "2", "1.0"]
    assert rest[24:32] == ["Util. (%)", "40 %", "13 %", "-", "-", "-", "27 %", "27 %"]
    # nothing retrieved on Wed-Fri (no store): no data, not counted; zeros left blank
    assert rest[32:] == ["J. sans act.", "J. sans donn.", "1", "1", "1", "3"]
    assert "27 %" in annotation(week_fig, "overall")


def test_retrieved_idle_days_count_their_slots_and_are_marked_in_the_schedule() -> None:
    retrieved = frozenset(spec().days[:4])  # Friday not retrieved
    f = F.page_figure(known_week(), spec(retrieved=retrieved, service_from=MON))
    cells = F.table_cells(f, "count-table")
    assert cells[8:16] == ["Plages", "15", "15", "15", "15", "0", "60", "15.0"]
    assert cells[32:40] == ["Util. (%)", "40 %", "13 %", "0 %", "0 %", "-", "13 %", "13 %"]
    (idle,) = traces(f, "status-no_activity")
    (missing,) = traces(f, "status-no_data")
    assert n_paths(idle, 6) == 1  # Wed + Thu: one run, one rectangle
    assert n_paths(missing, 6) == 1 and missing.showlegend
    assert [idle.name, missing.name] == ["sans activité", "sans données"]
    marks = [a.text for a in f.layout.annotations if a.name == "status"]
    assert marks == ["sans activité", "sans activité", "sans données"]


def test_duration_table_cells(week_fig: go.Figure) -> None:
    cells = F.table_cells(week_fig, "duration-table")
    rows = [cells[i : i + 7] for i in range(7, len(cells), 7)]  # the swatch column is blank
    assert cells[:7] == ["DESCRIPTION", "N.EXA", "MOY", "MED", "P90", "MIN", "MAX"]
    # from an hour on as h:mm h (a 265-minute gap read "265:18")
    assert rows == [
        ["FDG STAND.", "3", "35:00", "30:00", "42:00", "30:00", "45:00"],
        ["FDG CORPS", "1", "30:00", "30:00", "30:00", "30:00", "30:00"],
        ["RB82 COEUR", "1", "30:00", "30:00", "30:00", "30:00", "30:00"],
        ["OS 3 PHASE [1]", "1", "20:00", "20:00", "20:00", "20:00", "20:00"],
        ["OS 3 PHASE [2]", "1", "20:00", "20:00", "20:00", "20:00", "20:00"],
        ["AUTRE", "1", "2:00 h", "2:00 h", "2:00 h", "2:00 h", "2:00 h"],
        ["TROUS", "2", "55:00", "55:00", "59:00", "50:00", "1:00 h"],
    ]


def test_violins_one_per_label_with_their_means(week_fig: go.Figure) -> None:
    violins = traces(week_fig, "violin")
    assert [v.name for v in violins] == [
        "FDG STAND.",
        "FDG CORPS",
        "RB82 COEUR",
        "OS 3 PHASE [1]",
        "OS 3 PHASE [2]",
        "AUTRE",
    ]
    (means,) = traces(week_fig, "means")
    assert [round(y, 2) for y in means.y if y is not None][::2] == [
        35.0,
        30.0,
        30.0,
        20.0,
        20.0,
        120.0,
    ]
    assert next(iter(week_fig.layout.xaxis2.ticktext)) == "FDG STAND."


def test_header_week_dates_machine(week_fig: go.Figure) -> None:
    assert annotation(week_fig, "title") == "<b>Rapport hebdomadaire</b>"
    assert annotation(week_fig, "subtitle") == "Semaine 47 — du 18/11/2019 au 22/11/2019"
    assert annotation(week_fig, "machine") == "<b>PET GE</b>"


def test_y_axis_from_8_to_18_widened_to_the_data() -> None:
    f = F.page_figure(known_week(), spec())
    assert list(f.layout.yaxis.range) == [18, 7]  # downwards; 07:50 padded start widens the top
    late = frame([study(MON, "17:30", "19:10", "OTHER", "late")])
    g = F.page_figure(late, spec())
    assert list(g.layout.yaxis.range) == [20, 8]


def test_study_past_midnight_does_not_wrap_to_the_top() -> None:
    one = frame([study(MON, "23:00", "23:50", "OTHER", "n")])
    night = one.with_columns(
        end=one["end"] + dt.timedelta(hours=1), end_prep=one["end_prep"] + dt.timedelta(hours=1)
    )
    g = F.page_figure(night, spec())
    assert g.layout.yaxis.range[0] == 25


@pytest.mark.parametrize(
    ("weeks", "ticks"),
    [(1, 5), (2, 10), (3, 3), (4, 4), (12, 3), (24, 6)],
)
def test_ticks_thin_out_with_the_period_length(weeks: int, ticks: int) -> None:
    start = END - dt.timedelta(days=4 + 7 * (weeks - 1))
    days = business_days(start, END)
    vals, texts, _ = F.tick_marks(days, F.day_positions(days))
    assert len(vals) == len(texts) == ticks


def test_yearly_ticks_for_ten_years() -> None:
    days = business_days(dt.date(2016, 1, 1), dt.date(2025, 11, 21))
    _, texts, bounds = F.tick_marks(days, F.day_positions(days, 0.0))
    assert texts == [str(y) for y in range(2016, 2026)]
    assert len(bounds) == 9


def test_friday_spacer_between_weeks() -> None:
    days = business_days(dt.date(2019, 11, 11), END)
    pos = F.day_positions(days)
    assert pos[4] - pos[3] == 1.0 and pos[5] - pos[4] == 2.0


def synthetic(start: dt.date, end: dt.date) -> Any:
    rows = []
    for k, day in enumerate(business_days(start, end)):
        for j, (a, b) in enumerate([("08:00", "08:40"), ("09:00", "09:30"), ("11:00", "11:45")]):
            rows.append(study(day, a, b, ORDER[(k + j) % 3], f"{day}-{j}"))
    return frame(rows)


def test_long_periods_edges_only_no_gap_lines_and_a_distribution() -> None:
    start = dt.date(2019, 6, 10)  # 24 weeks
    f = F.page_figure(synthetic(start, END), spec(start=start, period_label="semestriel"))
    boxes = traces(f, "boxes")
    assert boxes and all(t.fill is None for t in boxes)
    assert not traces(f, "acquisition")
    assert traces(f, "gaps")  # 24 weeks is still "under ~6 months"
    assert len(traces(f, "distribution")) == 3
    assert f.layout.xaxis.domain == (0.0, 0.8)


def test_over_half_a_year_no_gap_lines() -> None:
    start = dt.date(2019, 1, 1)
    f = F.page_figure(synthetic(start, END), spec(start=start, period_label="annuel"))
    assert not traces(f, "gaps")


def test_years_drawn_as_an_occupancy_map() -> None:
    start = dt.date(2016, 1, 1)
    f = F.page_figure(synthetic(start, END), spec(start=start, period_label="longue durée"))
    (heat,) = traces(f, "occupancy")
    assert len(heat.x) == F.OCCUPANCY_COLUMNS
    values = {v for row in heat.z for v in row if v is not None}
    assert values == {0.0, 1.0, 2.0}
    assert [t.name for t in traces(f, "legend")] == list(ORDER[:3])
    assert "2016 - 2019" in annotation(f, "subtitle")


def test_english_labels() -> None:
    f = F.page_figure(known_week(), spec(language="en", period_label="weekly"))
    assert annotation(f, "title") == "<b>Weekly report</b>"
    assert "Week 47" in annotation(f, "subtitle")
    cells = F.table_cells(f, "duration-table")
    assert "GAPS" in cells and "OTHER" in cells and "MEAN" in cells
    assert "Mo 18/11" in F.table_cells(f, "count-table")


def test_hover_shows_label_times_and_duration_never_the_patient(week_fig: go.Figure) -> None:
    (hover,) = [t for t in traces(week_fig, F.HOVER_META) if "AUTRE" in "".join(t.hovertext)]
    assert "AUTRE<br>18/11/2019<br>11:00 – 13:00 (120 min)" in hover.hovertext
    text = week_fig.to_json()
    assert SECRET_PATIENT not in text and "u1_1" not in text


def test_stamp_and_printable() -> None:
    fig = json.loads(F.page_figure(known_week(), spec()).to_json())
    out = F.printable(
        F.stamp(
            fig, generated="Généré le X", footer="saved at Y", extra_notes=["2 jours manquants"]
        )
    )
    anns = {a["name"]: a["text"] for a in out["layout"]["annotations"]}
    assert anns["generated"] == "Généré le X" and anns["footer"] == "saved at Y"
    assert anns["notes"].endswith("<b>⚠ 2 jours manquants</b>")
    assert not [t for t in out["data"] if t.get("meta") == F.HOVER_META]


def test_printable_draws_line_traces_as_one_path_shape_each() -> None:
    # Plotly.js makes one SVG element per NaN-separated run: thousands of boxes per page
    # made printing slow. The print form must keep every box, hatch line, gap line, violin.
    fig = json.loads(F.page_figure(known_week(), spec()).to_json())
    out = F.printable(fig)
    lines = [t for t in fig["data"] if t.get("mode") == "lines"]
    new_shapes = out["layout"]["shapes"][len(fig["layout"]["shapes"]) :]
    assert [s["name"] for s in new_shapes] == [str(t["meta"]) for t in lines]
    for trace, shape in zip(lines, new_shapes, strict=True):
        xs = F.decode_array(trace["x"])
        runs = sum(1 for i, v in enumerate(xs) if v == v and (i == 0 or xs[i - 1] != xs[i - 1]))
        assert shape["path"].count("M") == runs  # one subpath per box / line
        assert (shape["xref"], shape["yref"]) == (trace["xaxis"], trace["yaxis"])
        assert shape["line"] == trace["line"] and shape["opacity"] == trace.get("opacity", 1)
        if trace.get("fill") == "toself":
            assert shape["path"].count("Z") == runs and shape["fillrule"] == "nonzero"
            assert shape["fillcolor"] == trace["fillcolor"]
    metas = [s["name"] for s in new_shapes]
    assert {"boxes", "acquisition", "hatch-first", "hatch-later", "gaps"} <= set(metas)
    assert {"count-table", "duration-table", "violin", "means"} <= set(metas)
    assert metas.index("means") > metas.index("violin")  # drawn over the violins
    # the means over the violin points (a trace), the table cells under their text
    layer = {s["name"]: s["layer"] for s in new_shapes}
    assert layer["means"] == "above" and layer["count-table"] == layer["boxes"] == "between"
    assert {t.get("meta") for t in out["data"]} == {
        "boxes",
        "status-no_data",
        "count-table-text",
        "violin-points",
        "duration-table-text",
    }
    # boxes keep their legend entries, emptied; other converted traces are gone
    kept = [t for t in out["data"] if t.get("meta") in ("boxes", "acquisition", "gaps")]
    assert [t["name"] for t in out["data"] if t.get("meta") == "status-no_data"] == ["sans données"]
    assert kept and all(t["meta"] == "boxes" and t["x"] == [None] for t in kept)
    assert len(kept) == len([t for t in fig["data"] if t.get("meta") == "boxes"])
    go.Figure(out)  # still a valid figure


def test_page_dict_is_what_plotly_validates() -> None:
    # The report skips plotly.py's validation: the plain dict must be exactly the JSON of
    # the validated figure (an unknown property would make go.Figure raise).
    for sp in (spec(), spec(start=dt.date(2019, 1, 1), period_label="annuel")):
        studies = known_week() if sp.start == MON else synthetic(sp.start, END)
        raw = F.page_dict(studies, sp)
        assert json.loads(json.dumps(raw, allow_nan=False)) == json.loads(go.Figure(raw).to_json())


def test_typed_arrays_round_trip() -> None:
    arr = F.typed_array([1.5, None, 3.25])
    back = F.decode_array(arr)
    assert back[0] == 1.5 and math.isnan(back[1]) and back[2] == 3.25


def test_violin_axis_contains_every_study_point_and_violin_with_headroom() -> None:
    """Regression: a violin was cut at the top of its axis (MAX 40:12 on a 40-min axis)."""
    rows = [study(MON, "08:00", "08:40", "FDG STAND.", f"a{i}") for i in range(3)]
    rows.append(study(MON, "09:00", "09:40", "FDG STAND.", "b"))
    long = frame(rows).with_columns(
        end=pl.when(pl.col("study_uid") == "b")
        .then(pl.col("end") + dt.timedelta(seconds=12))
        .otherwise(pl.col("end"))
    )
    fig = F.page_dict(long, spec())
    top = fig["layout"]["yaxis2"]["range"][1]
    ys = [v for t in fig["data"] if t.get("yaxis") == "y2" for v in t["y"] if v is not None]
    assert max(ys) == pytest.approx(40.2)
    assert top >= 40.2 * 1.05  # headroom above the longest study


def test_time_of_day_panel_has_its_own_legend_and_axis_title() -> None:
    start = dt.date(2019, 6, 10)
    f = F.page_dict(synthetic(start, END), spec(start=start, period_label="semestriel"))
    curves = [t for t in f["data"] if t.get("meta") == "distribution"]
    assert curves and all(t["showlegend"] and t["legend"] == "legend2" for t in curves)
    assert [t["name"] for t in curves] == list(ORDER[:3])
    assert f["layout"]["legend2"]["title"]["text"] == "<b>Répartition horaire</b>"
    assert "max = 100 %" in f["layout"]["xaxis3"]["title"]["text"]
    # the schedule's legend keeps the box colours only
    assert not [t for t in f["data"] if t.get("legend") is None and t.get("meta") == "distribution"]


def test_the_page_height_is_used_down_to_the_footer() -> None:
    f = F.page_dict(known_week(), spec())
    layout = f["layout"]
    assert layout["margin"]["b"] <= 30
    assert layout["yaxis5"]["domain"][0] == 0.0  # the duration table reaches the bottom
    assert layout["yaxis2"]["domain"][0] <= 0.06  # the violins too (their labels below)


def test_notes_wrap_and_name_the_service_window_and_the_overlaps() -> None:
    sp = spec(service_from=MON, service_until=END)
    lines = F.notes_lines(sp, 5, [MON, dt.date(2019, 11, 20)])
    parts = [p.replace("<b>", "").replace("</b>", "") for x in lines for p in x.split("<br>")]
    assert all(len(part) <= F.NOTE_WIDTH for part in parts) and len(parts) > len(lines)
    assert "(du 18/11/2019 au 22/11/2019)" in " ".join(lines).replace("<br>", " ")
    assert "plus de 100 % : plus d'examens que de plages" in " ".join(lines).replace("<br>", " ")
    assert lines[-1].startswith("<b>⚠ Qualité des données")
    assert "18/11/2019, 20/11/2019" in lines[-1].replace("<br>", " ")


def test_trimmed_period_says_so_in_the_header() -> None:
    f = F.page_figure(known_week(), spec(period_start=dt.date(2016, 1, 1)))
    assert annotation(f, "subtitle").endswith("— données depuis le 18/11/2019")


def test_studies_overlapped_by_another_patient_are_listed_in_the_page_notes() -> None:
    studies = known_week().with_columns(
        foreign_overlaps=pl.when(pl.col("study_uid") == "u2").then(2).otherwise(0).cast(pl.Int32)
    )
    notes = annotation(F.page_figure(studies, spec()), "notes").replace("<br>", " ")
    assert "⚠ Qualité des données" in notes and "18/11/2019" in notes
    assert "Qualité des données" not in annotation(F.page_figure(known_week(), spec()), "notes")
