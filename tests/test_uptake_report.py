"""Injection to scan in the report (DOMAIN §8): the weekly markers, the PET machines' panel
page, the summary's columns, the workbook sheet, the HTML table and the PDF outline."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
from pypdf import PdfReader

from pyschedvisu import render
from pyschedvisu import workbook as wbk
from pyschedvisu.config import Settings, uptake_windows
from pyschedvisu_core import figures as F
from pyschedvisu_core import overview as O
from pyschedvisu_core import uptake as upt
from pyschedvisu_core import uptake_page as UP
from pyschedvisu_core.calendar import business_days
from tests.report_data import END, MON, SECRET_PATIENT, injected_week, known_week
from tests.test_figures import spec
from tests.test_render import blank_pdf, fake_page, outline_tree

FDG = upt.UptakeWindow(
    "FDG",
    descriptions=("FDG STAND.", "FDG CORPS"),
    min_s=55 * 60,
    target_s=60 * 60,
    max_s=75 * 60,
    activity_ref_mbq=300.0,
    source="EANM FDG PET/CT guideline v2.0",
)


def trace(fig: dict[str, Any], meta: str) -> dict[str, Any]:
    return next(t for t in fig["data"] if t.get("meta") == meta)


def note(fig: dict[str, Any], name: str) -> str:
    return next(a["text"] for a in fig["layout"]["annotations"] if a.get("name") == name)


# -- the weekly schedule --------------------------------------------------------------------


def test_weekly_schedule_marks_the_injection_before_each_pet_study() -> None:
    fig = F.page_dict(injected_week(), spec())
    go.Figure(fig)  # plotly validates it
    marks = trace(fig, "injections")
    ys = F.decode_array(marks["y"])
    # u1 06:58, u2 07:50, u3 09:32, u5 11:29:30, u6 12:10 (Monday); u4 was entered after its
    # start (flagged): no marker
    assert [round(y, 3) for y in sorted(ys)] == [
        round(h, 3) for h in (6 + 58 / 60, 7 + 50 / 60, 9 + 32 / 60, 11 + 29.5 / 60, 12 + 10 / 60)
    ]
    assert marks["name"] == "injection (TEP)" and marks["showlegend"]
    # each marker left of its study's box, a dotted line down to the acquisition start
    lines = F.decode_array(trace(fig, "uptake-lines")["y"])
    assert len(lines) == 3 * len(ys)
    assert fig["layout"]["yaxis"]["range"] == [18, 6]  # widened to the earliest injection
    hover = [t for t in fig["data"] if t.get("meta") == F.HOVER_META and "Injection" in str(t)]
    assert any("Injection 06:58" in text and "62 min" in text for text in hover[0]["hovertext"])
    assert SECRET_PATIENT not in json.dumps(fig)


def test_no_marker_without_injections_nor_on_longer_schedules() -> None:
    plain = F.page_dict(known_week(), spec())
    assert not [t for t in plain["data"] if t.get("meta") == "injections"]
    assert plain["layout"]["yaxis"]["range"] == [18, 7]  # the earliest padded start
    month = spec(
        start=MON - dt.timedelta(weeks=3),
        days=tuple(business_days(MON - dt.timedelta(weeks=3), END)),
    )
    longer = F.page_dict(injected_week(), month)
    assert not [t for t in longer["data"] if t.get("meta") == "injections"]


# -- the panel page -------------------------------------------------------------------------


def test_panel_page_shades_the_window_marks_target_and_reference_and_counts() -> None:
    sp = spec(uptake_windows=(FDG,))
    fig = UP.page_dict(injected_week(), sp)
    go.Figure(fig)
    json.dumps(F.printable(fig), allow_nan=False)
    cells = F.table_cells(fig, "uptake-table")
    # FDG STAND. u1 62, u3 58 in, u6 80 out; FDG CORPS u2 50 out; RB82 0.5; OTHER u4 flagged
    fdg = cells[cells.index("FDG STAND.") : cells.index("FDG STAND.") + 9]
    assert fdg == ["FDG STAND.", "3", "62", "59–76", "55–75 (60)", "67 %", "240", "256", "300"]
    assert cells[cells.index("AVEC FENÊTRE") + 1] == "4"  # u1, u2, u3, u6
    shapes = fig["layout"]["shapes"]
    windows = [s for s in shapes if s["type"] == "rect" and s["xref"] == "x7"]
    assert [(w["x0"], w["x1"]) for w in windows] == [(55.0, 75.0), (55.0, 75.0)]
    targets = [s for s in shapes if s["type"] == "line" and s["xref"] == "x7"]
    assert {s["x0"] for s in targets} == {60.0}
    refs = [s for s in shapes if s["type"] == "line" and s["xref"] == "x8"]
    assert {s["x0"] for s in refs} == {300.0} and len(refs) == 2
    notes = note(fig, "notes")
    assert "FDG 55–75 min (cible 60) (EANM FDG PET/CT guideline v2.0)" in notes
    assert "FDG 300 MBq" in notes
    assert "1 injection(s) notée(s) après le début de l'acquisition" in notes
    assert "Sans heure d'injection lisible : 2 examen(s) (no_pet_series 2)" in notes
    # the flagged study is left out of the uptake points, kept in the activity ones
    up = F.decode_array(trace(fig, "uptake-points")["x"])
    assert sorted(round(v, 1) for v in up) == [0.5, 50.0, 58.0, 62.0, 80.0]
    assert SECRET_PATIENT not in json.dumps(fig)


def test_panel_without_windows_shows_the_uptakes_without_targets() -> None:
    fig = UP.page_dict(injected_week(), spec())
    shapes = fig["layout"]["shapes"]
    assert not [s for s in shapes if s.get("xref") in ("x7", "x8")]
    assert "Aucune fenêtre configurée" in note(fig, "notes")
    assert "AVEC FENÊTRE" not in F.table_cells(fig, "uptake-table")


def test_activities_a_decade_apart_get_a_log_axis_with_plain_ticks() -> None:
    fig = UP.page_dict(injected_week(), spec())  # Rb-82 1100 MBq, FDG 200-310
    axis = fig["layout"]["xaxis8"]
    assert axis["type"] == "log" and axis["ticktext"] == ["200", "500", "1000"]
    fdg_only = injected_week().filter(pl.col("description") != "RB82 COEUR")
    assert UP.page_dict(fdg_only, spec())["layout"]["xaxis8"]["type"] == "linear"


def test_panel_in_english() -> None:
    fig = UP.page_dict(injected_week(), spec(language="en", uptake_windows=(FDG,)))
    assert "Injection → scan" in note(fig, "title")
    assert "WITH A WINDOW" in F.table_cells(fig, "uptake-table")
    assert "recorded after the scan start" in note(fig, "notes")


# -- the shell: pages, outline, HTML, workbook, summary -----------------------------------


def settings_with_reference() -> Settings:
    s = Settings()
    s.uptake["FDG"].activity_ref_mbq = 300.0
    return s


def test_a_pet_page_brings_its_panel_page_and_an_nm_page_none() -> None:
    s = settings_with_reference()
    page = render.build_page(s, injected_week(), "petge", "hebdomadaire", END)
    assert page is not None and page.uptake_figure is not None and page.uptake is not None
    fdg = page.uptake.filter(pl.col("label") == "FDG STAND.").row(0, named=True)
    assert (fdg["window"], fdg["activity_ref_mbq"], fdg["in_window"]) == ("FDG", 300.0, 2)
    nm = known_week("Intevo").with_columns(pl.lit("CT,NM").alias("modalities"))
    other = render.build_page(s, nm, "intevo", "hebdomadaire", END)
    assert other is not None and other.uptake_figure is None and other.uptake is None
    # the workbook's sheet and the HTML table carry the same numbers
    rows = wbk.uptake_rows(page.machine, page.period, page.uptake)
    assert rows.columns == list(wbk.UPTAKE_SCHEMA)
    assert rows.filter(pl.col("description") == "FDG STAND.")["median_s"].item() == 62 * 60
    sheets = render.workbook_sheets([page, other], None)
    assert sheets["uptake"].height == page.uptake.height
    html = render.uptake_table_html(page.uptake, "fr")
    assert '<td class="l">FDG STAND.</td><td data-v="3">3</td><td data-v="62">62</td>' in html


def test_the_panel_page_follows_its_page_in_the_pdf_and_its_outline() -> None:
    pet = dataclasses.replace(
        fake_page("PET GE", "petge", "hebdomadaire", "hebdomadaire"), uptake_figure="{}"
    )
    nm = fake_page("Intevo", "intevo", "hebdomadaire", "hebdomadaire")
    data = render.merge_pdf(
        [blank_pdf()] * 3, [pet, nm], title="t", subject="s", keywords="k", uptake_title="Inj"
    )
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 3
    assert outline_tree(reader)[1] == [
        ("PET GE", 0),
        [("hebdomadaire", 0), [("Inj", 1)]],
        ("Intevo", 2),
        [("hebdomadaire", 2)],
    ]


def test_summary_rows_carry_the_panels_numbers_of_the_studies_with_a_window() -> None:
    sp = spec(uptake_windows=uptake_windows(Settings()))
    studies = injected_week()
    row = O.summary_table(studies, [O.SummaryItem("hebdomadaire", sp, None)]).row(0, named=True)
    table = upt.uptake_table(studies, sp.description_order, sp.uptake_windows)
    windowed = table.filter(pl.col("label") == upt.WINDOWED).row(0, named=True)
    assert (row["uptake_n"], row["uptake_median_s"]) == (windowed["n_uptake"], windowed["median_s"])
    assert row["uptake_in_window_pct"] == windowed["in_window_pct"] == 50.0
    assert (row["activity_median_mbq"], row["activity_p90_mbq"]) == (
        windowed["activity_median_mbq"],
        windowed["activity_p90_mbq"],
    )
    header, cells = O.summary_cells(O.summary_table(studies, [O.SummaryItem("h", sp, None)]), "fr")
    assert header[-3:] == ["Inj.→acq.", "Fenêtre", "Act. MBq"]
    # u4 (OTHER, FDG) has the FDG window by its tracer: its activity counts, its flagged
    # uptake does not
    assert cells[0][-3:] == ["60 min", "50 %", "260 / 298"]
    assert row["activity_ref_mbq"] is None  # the default FDG window sets no reference
    ref = spec(uptake_windows=uptake_windows(settings_with_reference()))
    with_ref = O.summary_table(studies, [O.SummaryItem("h", ref, None)])
    assert with_ref["activity_ref_mbq"].to_list() == [300.0]
    assert O.summary_cells(with_ref, "fr")[1][0][-1] == "260 / 298 (300)"
    nm = spec(machine="Intevo", uptake_windows=sp.uptake_windows)
    none = O.summary_table(
        known_week("Intevo").with_columns(pl.lit("NM").alias("modalities")),
        [O.SummaryItem("h", nm, None)],
    )
    assert none["uptake_n"].to_list() == [None]


def test_config_windows_reach_the_page_spec(tmp_path: Path) -> None:
    s = Settings()
    page = render.page_spec(s, "petge", render.report_periods(s, END, ["hebdomadaire"])[0])
    (fdg,) = [w for w in page.uptake_windows if w.name == "FDG"]
    assert (fdg.min_s, fdg.target_s, fdg.max_s) == (3300.0, 3600.0, 4500.0)
    assert "EANM" in fdg.source
