"""Planned against performed in the report: the page panel, the outlines, the summary page,
the workbook sheets and the HTML tables; and nothing of it without a worklist."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pyschedvisu import render
from pyschedvisu import workbook as wbk
from pyschedvisu.config import Settings
from pyschedvisu_core import figures, overview, planmatch
from pyschedvisu_core.worklist import PLANNED_SCHEMA
from tests.report_data import END, MON, TUE, known_week

WED, THU, FRI = (MON + dt.timedelta(days=i) for i in (2, 3, 4))
WEEK = [MON, TUE, WED, THU, FRI]


def at(day: dt.date, hhmm: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def steps() -> pl.DataFrame:
    """Monday's plan of PET GE: u1 by uid (07:50), u3 by accession (10:35, early), a no-show
    at 15:00, and Tuesday's u7 (take 1 at 08:00, its take 2 a retake) by uid."""
    rows = [
        (MON, "s1", "u1", None, at(MON, "07:50"), "PET-CT FDG Tronc"),
        (MON, "s2", None, "ACC3", at(MON, "10:35"), "PET-CT FDG Tronc"),
        (MON, "s3", None, "ACC9", at(MON, "15:00"), "PET-CT G PSMA Tronc"),
        (TUE, "s4", "u7", None, at(TUE, "07:45"), "Scinti osseuse 3 phases"),
    ]
    out = []
    for day, key, uid, acc, start, desc in rows:
        base = {k: None for k in PLANNED_SCHEMA}
        base.update(
            date=day,
            machine="PET GE",
            step_key=key,
            study_uid=uid,
            accession_number=acc,
            scheduled_start=start,
            scheduled_end=start + dt.timedelta(minutes=30),
            scheduled_duration_s=1800.0,
            first_scheduled_start=start,
            scheduled_description=desc,
            first_seen=at(MON, "06:00"),
            last_seen=at(day, "06:00"),
            n_seen=1,
            added_same_day=False,
            rescheduled=False,
        )
        out.append(base)
    return pl.DataFrame(out, schema=PLANNED_SCHEMA)


def studies() -> pl.DataFrame:
    return known_week().with_columns(
        accession_number=pl.when(pl.col("study_uid") == "u3").then(pl.lit("ACC3"))
    )


def plan_data(days: list[dt.date] = [MON, TUE]) -> render.PlanData:  # noqa: B006
    cover = pl.DataFrame(
        [{"date": d, "machine": "PET GE"} for d in days], schema=planmatch.COVERAGE_SCHEMA
    )
    matches = planmatch.match_plan(steps(), studies(), cover, labels=Settings().descriptions)
    return render.PlanData(matches, cover)


@pytest.fixture
def with_worklist() -> Settings:
    return Settings(worklist={"enabled": True})


def page(settings: Settings, period: str = "hebdomadaire", **kw: Any) -> render.Page:
    built = render.build_page(settings, studies(), "petge", period, END, set(WEEK), **kw)
    assert built is not None
    return built


def test_the_page_panel_counts_the_plan_days_only(with_worklist: Settings) -> None:
    p = page(with_worklist, plan=plan_data())
    assert p.plan is not None
    rows = {r["label"]: r for r in p.plan.iter_rows(named=True)}
    total = rows[planmatch.TOTAL]
    # Monday: 3 steps (2 performed, 1 no-show), 4 studies without a step (u2, u4, u5, u6);
    # Tuesday: 1 step performed (its take 2 a retake, not unplanned); Wednesday to Friday:
    # no plan, so their studies count nowhere here
    assert (total["planned"], total["performed"], total["no_shows"]) == (4, 3, 1)
    assert total["unplanned"] == 4
    assert rows["GA68 PSMA"]["no_shows"] == 1  # the no-show labelled from its description
    # u1 10 min late, u3 5 min early
    assert rows["FDG STAND."]["delay_median_s"] == pytest.approx((10 - 5) / 2 * 60)
    fig = json.loads(p.figure)
    cells = figures.table_cells(fig, "plan-table")
    assert "Planif." in cells and "Absents" in cells and "Total" in cells
    assert "+02:30" in cells  # median of +10:00 and -05:00 (u3 started early)
    notes = [a for a in fig["layout"]["annotations"] if a.get("name") == "no-plan"]
    assert len(notes) == 3 and all("sans plan" in a["text"] for a in notes)
    title = next(a for a in fig["layout"]["annotations"] if a.get("name") == "plan-title")
    assert "2 des 5 jours" in title["text"]
    # the schedule gave room to the panel
    assert fig["layout"]["yaxis"]["domain"][0] > figures.SCHEDULE_Y[0]


def test_planned_slots_are_outlined_behind_the_studies_on_weekly_pages(
    with_worklist: Settings,
) -> None:
    fig = json.loads(page(with_worklist, plan=plan_data()).figure)
    metas = [t.get("meta") for t in fig["data"]]
    assert "plan-performed" in metas and "plan-no_show" in metas
    # behind: before the first study box
    assert metas.index("plan-performed") < metas.index("boxes")
    no_show = fig["data"][metas.index("plan-no_show")]
    assert no_show["line"]["color"] == figures.NO_SHOW_SLOT
    ys = [y for y in figures.decode_array(no_show["y"]) if y == y]
    assert min(ys) == 15.0 and max(ys) == 15.5  # 15:00-15:30 on Monday
    hover = next(t for t in fig["data"] if t.get("meta") == "hover" and "Planifié" in str(t))
    assert any("absent" in text for text in hover["hovertext"])
    # the outlines are drawn on paper too
    printable = figures.printable(fig)
    assert any(s.get("name") == "plan-no_show" for s in printable["layout"]["shapes"])


def test_long_pages_have_the_panel_but_no_outlines(with_worklist: Settings) -> None:
    # in service long before: the quarter is not trimmed to the week of data
    with_worklist.draw.machine["petge"].in_service_from = dt.date(2019, 1, 1)
    long = page(with_worklist, "trimestriel", plan=plan_data())
    fig = json.loads(long.figure)
    metas = {t.get("meta") for t in fig["data"]}
    assert "plan-performed" not in metas
    assert figures.table_cells(fig, "plan-table")


def test_without_a_worklist_the_page_is_exactly_as_before() -> None:
    plain = page(Settings())
    with_plan_given = page(Settings(), plan=plan_data())  # enabled = false: ignored
    assert plain.plan is None and with_plan_given.plan is None
    assert with_plan_given.figure == plain.figure
    fig = json.loads(plain.figure)
    assert fig["layout"]["yaxis"]["domain"] == list(figures.SCHEDULE_Y)
    assert not figures.table_cells(fig, "plan-table")
    assert not any(str(t.get("meta", "")).startswith("plan") for t in fig["data"])


def test_a_worklist_without_any_snapshot_says_no_plan_on_every_page(
    with_worklist: Settings, tmp_path: Path
) -> None:
    with_worklist.paths.data_dir = tmp_path  # nothing matched there yet
    p = page(with_worklist, plan=render.load_plan(with_worklist))
    fig = json.loads(p.figure)
    title = next(a for a in fig["layout"]["annotations"] if a.get("name") == "plan-title")
    assert "aucun plan" in title["text"]
    assert p.plan is not None and p.plan.height == 0
    assert len([a for a in fig["layout"]["annotations"] if a.get("name") == "no-plan"]) == 5


def test_the_plan_summary_rows_are_the_page_totals(with_worklist: Settings) -> None:
    plan = plan_data()
    ov = render.build_overview(with_worklist, studies(), END, set(WEEK), plan=plan)
    assert ov.plan_summary is not None and ov.plan_summary_figure is not None
    for period in ("hebdomadaire", "mensuel"):
        p = page(with_worklist, period, plan=plan)
        assert p.plan is not None
        total = p.plan.filter(pl.col("label") == planmatch.TOTAL).row(0, named=True)
        row = ov.plan_summary.filter(
            (pl.col("machine") == "PET GE") & (pl.col("period") == period)
        ).row(0, named=True)
        for key in ("planned", "performed", "no_shows", "unplanned", "delay_median_s"):
            assert row[key] == total[key], (period, key)
        assert row["plan_days"] == 2
    other = ov.plan_summary.filter(pl.col("machine") == "Intevo")
    assert other["plan_days"].to_list() == [0] * other.height  # no plan there: "sans plan"
    cells = figures.table_cells(json.loads(ov.plan_summary_figure), "plan-summary-table")
    assert "sans plan" in cells and "2/5" in cells
    assert render.build_overview(Settings(), studies(), END, set(WEEK)).plan_summary is None
    # a worklist whose matching failed: the report without the plan, not a stale one
    assert render.build_overview(with_worklist, studies(), END, set(WEEK)).plan_summary is None
    assert page(with_worklist).plan is None


def test_the_workbook_gets_the_plan_sheets_only_with_a_worklist(
    with_worklist: Settings, tmp_path: Path
) -> None:
    plan = plan_data()
    pages = [page(with_worklist, "hebdomadaire", plan=plan)]
    ov = render.build_overview(with_worklist, studies(), END, set(WEEK), plan=plan)
    extra = render.plan_sheets(pages, ov.plan_summary, plan, ["PET GE"], MON, END)
    assert list(extra) == ["plan_summary", "plan", "plan_matches"]
    out = tmp_path / "report.xlsx"
    sheets = render.workbook_sheets(pages, ov.summary)
    wbk.write_report_workbook(out, studies(), ["PET GE"], MON, END, **sheets, extra=extra)
    plan_sheet = pl.read_excel(out, sheet_name="plan")
    assert plan_sheet.filter(pl.col("description") == "TOTAL")["planned"].to_list() == [4]
    matches = pl.read_excel(out, sheet_name="plan_matches")
    assert matches.columns == wbk.PLAN_MATCH_COLUMNS
    assert sorted(set(matches["status"])) == ["no_show", "performed", "unplanned"]
    assert "accession_number" not in pl.read_excel(out, sheet_name="studies").columns
    assert render.plan_sheets(pages, None, None, ["PET GE"], MON, END) == {}


def test_the_html_page_and_summary_show_the_plan_tables(with_worklist: Settings) -> None:
    plan = plan_data()
    html = render.page_tables_html(page(with_worklist, plan=plan), "fr")
    assert "Planifié / réalisé" in html and "Absents" in html and "+02:30" in html
    assert "Planifié" not in render.page_tables_html(page(Settings()), "fr")
    ov = render.build_overview(with_worklist, studies(), END, set(WEEK), plan=plan)
    assert ov.plan_summary is not None
    summary = render.plan_summary_table_html(ov.plan_summary, "en")
    assert "No-shows" in summary and "no plan" in summary


def test_match_overview_in_english(with_worklist: Settings) -> None:
    with_worklist.report.language = "en"
    fig = json.loads(page(with_worklist, plan=plan_data()).figure)
    cells = figures.table_cells(fig, "plan-table")
    assert "No-shows" in cells and "Unplanned" in cells
    header = overview.plan_summary_cells(
        overview.plan_summary_table(planmatch.empty_matches(), plan_data().coverage, []), "en"
    )[0]
    assert "Delay med." in header
