"""The report shell: pages from the study table, PDF merge/outline/metadata, real rendering."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pypdf import PdfReader, PdfWriter
from typer.testing import CliRunner

from pyschedvisu import render
from pyschedvisu.cli import app
from pyschedvisu.config import Settings
from pyschedvisu.store import SeriesStore
from pyschedvisu_core import schema
from pyschedvisu_core.errors import ReportError
from tests.report_data import END, MON, SECRET_PATIENT, frame, injected_week, known_week, study


def blank_pdf() -> bytes:
    w = PdfWriter()
    w.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def fake_page(machine: str, key: str, period: str, label: str) -> render.Page:
    return render.Page(machine, key, period, label, dt.date(2019, 11, 18), END, 3, "{}")


def outline_tree(reader: PdfReader) -> list[Any]:
    def walk(items: list[Any]) -> list[Any]:
        out: list[Any] = []
        for item in items:
            if isinstance(item, list):
                out.append(walk(item))
            else:
                out.append((item.title, reader.get_destination_page_number(item)))
        return out

    return walk(reader.outline)


def test_merge_pdf_outline_report_machine_period_and_metadata() -> None:
    pages = [
        fake_page("PET GE", "petge", "hebdomadaire", "hebdomadaire"),
        fake_page("PET GE", "petge", "mensuel", "mensuel"),
        fake_page("Intevo", "intevo", "hebdomadaire", "hebdomadaire"),
    ]
    data = render.merge_pdf(
        [blank_pdf()] * 3, pages, title="pySchedVisu – 22/11/2019", subject="S", keywords="K1, K2"
    )
    reader = PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 3
    assert outline_tree(reader) == [
        ("pySchedVisu – 22/11/2019", 0),
        [
            ("PET GE", 0),
            [("hebdomadaire", 0), ("mensuel", 1)],
            ("Intevo", 2),
            [("hebdomadaire", 2)],
        ],
    ]
    meta = reader.metadata
    assert (meta.title, meta.subject, meta["/Keywords"]) == (
        "pySchedVisu – 22/11/2019",
        "S",
        "K1, K2",
    )


def test_merge_pdf_rejects_a_broken_page() -> None:
    with pytest.raises(ReportError, match="not a valid PDF"):
        render.merge_pdf(
            [b"not a pdf"],
            [fake_page("PET GE", "petge", "hebdomadaire", "h")],
            title="t",
            subject="s",
            keywords="k",
        )


def test_output_paths() -> None:
    pdf, html = render.output_paths(Path("/r"), END, dt.datetime(2019, 11, 23, 1, 0, 5))
    assert pdf == Path("/r/2019/pyschedvisu_report_2019-11-22_20191123-010005.pdf")
    assert html == pdf.with_suffix(".html")


def test_build_page_from_parquet_and_skipped_pages(tmp_path: Path) -> None:
    path = tmp_path / "studies.parquet"
    known_week("PET GE").write_parquet(path)
    s = Settings()
    page = render.build_page(s, str(path), "petge", "hebdomadaire", END)
    assert page is not None
    assert (page.machine, page.period_label, page.start, page.n_studies) == (
        "PET GE",
        "hebdomadaire",
        dt.date(2019, 11, 18),
        8,
    )
    assert "PET GE" in page.figure and SECRET_PATIENT not in page.figure
    assert render.build_page(s, path, "Intevo", "hebdomadaire", END) is None
    assert render.build_page(s, path, "PET GE", "hebdomadaire", END + dt.timedelta(days=7)) is None
    skipped = render.skipped_pages(s, [page], END)
    assert "PET GE / hebdomadaire" not in skipped and "PET GE / mensuel" in skipped
    assert len(skipped) == len(s.display_machines()) * len(s.report.periods) - 1


def test_build_page_unknown_machine_or_period(tmp_path: Path) -> None:
    s = Settings()
    with pytest.raises(ReportError, match="unknown machine"):
        render.build_page(s, known_week(), "Scanner X", "hebdomadaire", END)
    with pytest.raises(ReportError, match="unknown period"):
        render.build_page(s, known_week(), "PET GE", "decennal", END)


def test_render_report_without_any_page_is_an_error(tmp_path: Path) -> None:
    s = Settings()
    s.paths.output_dir = tmp_path
    with pytest.raises(ReportError, match="no page"):
        render.render_report(s, [None, None], END)


def store_days(data_dir: Path, final: list[dt.date], not_final: list[dt.date] = ()) -> None:
    """Days in a real series store, as retrieval writes them (no series needed here)."""
    store = SeriesStore(data_dir)
    for day, is_final in [(d, True) for d in final] + [(d, False) for d in not_final]:
        store.write_day(
            day,
            schema.empty(schema.SERIES_SCHEMA),
            schema.empty(schema.FAILED_SCHEMA),
            schema.empty(schema.EXCLUDED_SCHEMA),
            {"fingerprint": "test", "final": is_final},
        )


WEEK = [dt.date(2019, 11, 18) + dt.timedelta(days=i) for i in range(5)]


def test_final_days_are_the_days_final_in_the_store(tmp_path: Path) -> None:
    store_days(tmp_path, final=WEEK[:3], not_final=[WEEK[3]])
    (SeriesStore(tmp_path).path(WEEK[2], "manifest")).write_text("{broken")
    assert render.final_days(tmp_path, WEEK[0], WEEK[-1]) == WEEK[:2]
    assert render.final_days(tmp_path, WEEK[1], WEEK[1]) == [WEEK[1]]
    assert render.final_days(tmp_path / "none", WEEK[0], WEEK[-1]) == []


def counts_of(page: render.Page) -> list[tuple[str, float, float, float]]:
    assert page.counts is not None
    bins = page.counts.filter(pl.col("row") == "bin")
    return list(bins.select("label", "slots", "exams", "no_activity").iter_rows())


def test_a_retrieved_idle_day_counts_its_slots_on_the_page(tmp_path: Path) -> None:
    """Regression: a retrieved Wednesday without a study showed Plages 0 and "-"."""
    store_days(tmp_path, final=WEEK)
    s = Settings()
    retrieved = render.final_days(tmp_path, WEEK[0], WEEK[-1])
    studies = pl.concat(
        [known_week(), frame([study(WEEK[3], "08:00", "08:30", "FDG STAND.", "th")])]
    )
    page = render.build_page(s, studies, "petge", "hebdomadaire", END, retrieved)
    assert page is not None
    assert counts_of(page) == [
        ("Lu 18/11", 15, 6, 0),
        ("Ma 19/11", 15, 2, 0),
        ("Me 20/11", 15, 0, 1),  # retrieved, in service (Mon..Thu have studies): 0 %
        ("Je 21/11", 15, 1, 0),
        ("Ve 22/11", 0, 0, 0),  # after the last day with studies: out of service
    ]


def test_in_service_from_and_until_override_the_window(tmp_path: Path) -> None:
    s = Settings()
    s.draw.machine["petge"].in_service_from = WEEK[0]
    s.draw.machine["petge"].in_service_until = WEEK[-1]
    page = render.build_page(s, known_week(), "petge", "hebdomadaire", END, WEEK)
    assert page is not None
    assert [r[1] for r in counts_of(page)] == [15, 15, 15, 15, 15]
    s.draw.machine["petge"].in_service_until = WEEK[2]
    page = render.build_page(s, known_week(), "petge", "hebdomadaire", END, WEEK)
    assert page is not None
    assert [r[1] for r in counts_of(page)] == [15, 15, 15, 0, 0]
    s.draw.machine["petge"].in_service_from = WEEK[1]  # Mon has studies: it counts anyway
    page = render.build_page(s, known_week(), "petge", "hebdomadaire", END, WEEK)
    assert page is not None and page.start == WEEK[0]  # studies are never trimmed away
    assert [r[1] for r in counts_of(page)] == [15, 15, 15, 0, 0]
    s.draw.machine["petge"].in_service_from = dt.date(2019, 11, 4)  # before the data
    page = render.build_page(s, known_week(), "petge", "mensuel", END, WEEK)
    assert page is not None and page.start == dt.date(2019, 11, 4)  # trimmed to the window


def test_a_period_starting_before_the_data_is_trimmed_and_says_so() -> None:
    """Regression: with data from 2019 on, the long-term page (from 2016) had ten empty
    yearly columns and a thin strip of data."""
    s = Settings()
    studies = known_week()
    page = render.build_page(s, studies, "petge", "longueduree", END, WEEK)
    assert page is not None
    assert (page.start, page.period_start) == (MON, dt.date(2016, 1, 1))
    fig = json.loads(page.figure)
    subtitle = next(a["text"] for a in fig["layout"]["annotations"] if a["name"] == "subtitle")
    assert "données depuis le 18/11/2019" in subtitle
    assert page.counts is not None and page.counts["label"].to_list()[:2] == [
        "Lu 18/11",
        "Ma 19/11",
    ]
    # a period whose first business day is the first day of data is not "trimmed"
    weekly = render.build_page(s, studies, "petge", "hebdomadaire", END, WEEK)
    assert weekly is not None and weekly.period_start is None


def test_a_page_identical_to_another_periods_page_is_shown_once() -> None:
    s = Settings()
    pages = [
        render.build_page(s, known_week(), "petge", p, END, WEEK)
        for p in ("hebdomadaire", "annuel", "longueduree")
    ]
    real = [p for p in pages if p is not None]
    shown, aliases = render.identical_pages(real)
    # data from this week only: every period is trimmed to the same days
    assert [p.period for p in shown] == ["hebdomadaire"]
    assert [(a.period, b.period) for a, b in aliases] == [
        ("annuel", "hebdomadaire"),
        ("longueduree", "hebdomadaire"),
    ]


def test_workbook_counts_sheet_gives_the_slots_and_exams_per_day_of_the_rule(
    tmp_path: Path,
) -> None:
    """The counts sheet, read back from the .xlsx, holds what the utilisation rule implies
    day by day: a retrieved idle day its slots, a day not retrieved none, a holiday none."""
    from pyschedvisu import workbook as wbk

    days = [dt.date(2019, 12, 23) + dt.timedelta(days=i) for i in range(5)]  # 24-26 closed
    store_days(tmp_path / "data", final=[days[0], days[1], days[4]])
    rows = [
        study(days[0], "08:00", "08:30", "FDG STAND.", "a"),
        study(days[0], "09:00", "09:30", "FDG STAND.", "b"),
    ]
    studies = pl.concat(
        [frame(rows), frame([study(dt.date(2020, 1, 6), "08:00", "08:20", "OTHER", "z")])]
    )
    s = Settings()
    end = dt.date(2019, 12, 27)
    retrieved = render.final_days(tmp_path / "data", days[0], days[-1])
    page = render.build_page(s, studies, "petge", "hebdomadaire", end, retrieved)
    assert page is not None
    sheets = render.workbook_sheets([page], None)
    out = tmp_path / "report.xlsx"
    wbk.write_report_workbook(
        out, studies, ["PET Siemens", "PET GE"], dt.date(2019, 12, 23), end, **sheets
    )
    counts = pl.read_excel(out, sheet_name="counts")
    assert_frame_equal(
        counts.select(
            "bin_label", "first_day", "days", "slots", "exams", "no_activity_days", "no_data_days"
        ),
        pl.DataFrame(
            {
                "bin_label": ["Lu 23/12", "Ve 27/12"],
                "first_day": [dt.date(2019, 12, 23), dt.date(2019, 12, 27)],
                "days": [1, 1],
                "slots": [15, 15],  # Friday: retrieved, in service (until 06/01), no study
                "exams": [2, 0],
                "no_activity_days": [0, 1],
                "no_data_days": [0, 0],
            }
        ),
        check_dtypes=False,
    )
    assert counts["utilisation_pct"].to_list() == pytest.approx([100 * 2 / 15, 0.0])
    studies_sheet = pl.read_excel(out, sheet_name="studies")
    assert studies_sheet["study_key"].to_list() == ["a_1", "b_1"]  # the report's periods only
    assert "patient_key" not in studies_sheet.columns


# -- real rendering (Chromium through kaleido) ----------------------------------------------


def two_machines() -> pl.DataFrame:
    """The known week on PET GE (with its injections), and a few weeks of Intevo studies (one
    with a retake; no PET: no injection to scan page)."""
    rows = []
    day = dt.date(2019, 10, 28)
    while day <= END:
        if day.weekday() < 5:
            rows.append(study(day, "08:00", "08:45", "OS 3 PHASE", f"i-{day}", 1, machine="Intevo"))
            rows.append(study(day, "09:00", "09:40", "GGL", f"j-{day}", machine="Intevo"))
            rows.append(study(day, "11:30", "12:00", "OS 3 PHASE", f"i-{day}", 2, machine="Intevo"))
        day += dt.timedelta(days=1)
    nm = frame(rows).with_columns(pl.lit("CT,NM").alias("modalities"))
    return pl.concat([injected_week("PET GE"), nm])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real run of the CLI: 2 machines with data x 2 periods."""
    tmp = tmp_path_factory.mktemp("report")
    studies = tmp / "studies.parquet"
    two_machines().write_parquet(studies)
    mp = pytest.MonkeyPatch()
    mp.setenv("PYSCHEDVISU_PATHS__OUTPUT_DIR", str(tmp / "out"))
    mp.setenv("PYSCHEDVISU_PSEUDONYM_KEY", "test-key-not-secret")
    try:
        result = CliRunner().invoke(
            app,
            [
                "report",
                "--end",
                END.isoformat(),
                "--periods",
                "hebdomadaire,mensuel",
                "--studies",
                str(studies),
            ],
        )
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    pdf = Path(next(x for x in lines if x.endswith(".pdf")))
    html = Path(next(x for x in lines if x.endswith(".html")))
    xlsx = Path(next(x for x in lines if x.endswith(".xlsx") and " " not in x))
    return {"pdf": pdf, "html": html, "xlsx": xlsx, "output": result.output, "tmp": tmp}


@pytest.mark.integration
def test_pdf_pages_outline_and_metadata(rendered: dict[str, Any]) -> None:
    pdf: Path = rendered["pdf"]
    assert re.fullmatch(r"pyschedvisu_report_2019-11-22_\d{8}-\d{6}\.pdf", pdf.name)
    assert pdf.parent.name == "2019"
    reader = PdfReader(pdf)
    # summary, trends, 2 machines x 2 periods less PET GE's monthly page: its data start on
    # 18/11, so it is trimmed to the very days of the weekly one, shown once; PET GE's page
    # followed by its injection to scan page
    assert len(reader.pages) == 6
    box = reader.pages[0].mediabox
    assert (
        abs(float(box.width) - 595.3) < 1.5 and abs(float(box.height) - 841.9) < 1.5
    )  # A4 portrait
    tree = outline_tree(reader)
    assert tree[0][0].startswith("pySchedVisu")
    assert tree[1] == [
        ("Synthèse", 0),
        ("Tendances", 1),
        ("PET GE", 2),
        [("hebdomadaire", 2), [("Injection → acquisition", 3)], ("mensuel (= hebdomadaire)", 2)],
        ("Intevo", 4),
        [("hebdomadaire", 4), ("mensuel", 5)],
    ]
    assert "PET GE" in reader.metadata["/Keywords"] and "mensuel" in reader.metadata["/Keywords"]
    assert "skipped (no data): Discovery 670 NM / hebdomadaire" in rendered["output"]
    assert "not repeated (same as another period's page): PET GE / mensuel" in rendered["output"]


@pytest.mark.integration
def test_pdf_text_has_machines_periods_and_numbers(rendered: dict[str, Any]) -> None:
    reader = PdfReader(rendered["pdf"])
    texts = [p.extract_text() for p in reader.pages]
    assert "Synthèse" in texts[0] and "Tendances" in texts[1]
    # the summary lists every machine of the config (in its order), with or without studies
    order = ["PET Siemens", "PET GE", "Discovery 670 NM", "Millennium", "Intevo"]
    assert [texts[0].index(m) for m in order] == sorted(texts[0].index(m) for m in order)
    week = texts[2]
    assert "PET GE" in week and "Rapport hebdomadaire" in week and "Semaine 47" in week
    assert "injection (TEP)" in week  # the weekly schedule marks the injections
    uptake = texts[3].replace("\n", " ")
    assert "Injection → acquisition" in uptake and "PET GE" in uptake and "Semaine 47" in uptake
    assert "FDG STAND." in uptake and "55–75 (60)" in uptake and "EANM" in uptake
    assert "AVEC FENÊTRE" in uptake and "SIGNALÉS" in uptake
    assert "Intevo" in texts[4] and "OS 3 PHASE [2]" in texts[4]
    assert "Rapport mensuel" in texts[5] and "Semaines 44-47" in texts[5]
    assert "Inj.→acq." in texts[0] and "60 min" in texts[0]  # the summary's PET columns
    # the page not repeated is named on the summary, pointing at the one shown
    assert "identique à « hebdomadaire »" in texts[0].replace("\n", " ")
    assert "27 %" in week  # overall utilisation of the known week (Wed-Fri: no data)
    assert "sans données" in week
    assert "TROUS" in week and "35:00" in week and "P90" in week


@pytest.mark.integration
def test_no_patient_identifier_anywhere(rendered: dict[str, Any]) -> None:
    raw = rendered["pdf"].read_bytes()
    text = "".join(p.extract_text() for p in PdfReader(rendered["pdf"]).pages)
    html = rendered["html"].read_text(encoding="utf-8")
    for needle in (SECRET_PATIENT, "u1_1", "i-2019-11-18"):
        assert needle not in text and needle not in html
        assert needle.encode() not in raw
    workbook = pl.read_excel(rendered["xlsx"], sheet_id=0)
    assert list(workbook) == ["studies", "counts", "durations", "summary", "uptake"]
    assert "injected_at" in workbook["studies"].columns
    assert set(workbook["uptake"]["machine"]) == {"PET GE"}
    assert "patient_key" not in workbook["studies"].columns
    for sheet in workbook.values():
        for column in sheet.columns:
            if sheet[column].dtype == pl.String:
                assert not sheet[column].str.contains(SECRET_PATIENT).any()


@pytest.mark.integration
def test_page_rendered_to_png_is_not_blank(rendered: dict[str, Any]) -> None:
    out = rendered["tmp"] / "page"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "40", "-f", "1", "-l", "1", str(rendered["pdf"]), str(out)],
        check=True,
        timeout=60,
    )
    png = next(rendered["tmp"].glob("page*.png"))
    ppm = subprocess.run(
        ["pdftoppm", "-r", "20", "-f", "3", "-l", "3", "-gray", str(rendered["pdf"])],
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout
    # PGM: header "P5\nW H\n255\n" then pixels; a drawn page has many non-white pixels.
    header_end = ppm.index(b"255\n") + 4
    pixels = ppm[header_end:]
    dark = sum(1 for b in pixels if b < 200)
    assert png.stat().st_size > 5_000
    assert dark > len(pixels) * 0.05


@pytest.mark.integration
def test_html_is_self_contained_and_navigable(rendered: dict[str, Any]) -> None:
    html = rendered["html"].read_text(encoding="utf-8")
    assert html.count("Plotly.newPlot") == 1  # one renderer for all pages
    # plotly.js is inlined once: no external script or stylesheet to fetch
    assert "<script src=" not in html and "<link " not in html
    assert html.count("plotly.js v") == 1
    assert len(re.findall(r'<section id="page-\d+">', html)) == 6
    assert '<a href="#page-0">Synthèse</a>' in html and '<a href="#page-1">Tendances</a>' in html
    assert '<a href="#page-5">mensuel</a>' in html and "<h2>Intevo</h2>" in html
    assert '<a href="#page-2">mensuel (= hebdomadaire)</a>' in html
    assert '<a href="#page-3">&nbsp;&nbsp;↳ Injection → acquisition</a>' in html
    figs = re.findall(r'<script type="application/json" id="fig-\d+">(.*?)</script>', html, re.S)
    assert len(figs) == 6
    # the tables as real (sortable) HTML tables, and the workbook beside the file
    # (summary, counts + durations of 3 pages, the injection to scan numbers)
    assert html.count('<table class="data">') == 1 + 3 * 2 + 1
    assert "<td>40 %</td>" not in html and '<td data-v="40">40 %</td>' in html
    assert f'href="{rendered["xlsx"].name}" download' in html
    assert rendered["xlsx"].parent == rendered["html"].parent
    fig = json.loads(figs[2].replace("<\\/", "</"))
    hover = [t for t in fig["data"] if t.get("meta") == "hover"]
    assert any(
        "FDG STAND.<br>18/11/2019<br>08:00 – 08:30 (30 min)" in t["hovertext"] for t in hover
    )


@pytest.mark.integration
def test_report_without_html_prints_the_notes_rendered_while_chromium_starts(
    tmp_path: Path,
) -> None:
    # The figures are stamped in a thread while Chromium starts and the HTML is built
    # while the pages render: with the HTML off, only the PDF is written, notes included.
    s = Settings()
    s.paths.output_dir = tmp_path
    s.report.html = False
    page = render.build_page(s, known_week("PET GE"), "petge", "hebdomadaire", END)
    result = render.render_report(s, [page], END, notes=["2 jours manquants: 19/11"])
    # no study table: no summary; the headers told no injection: no injection to scan page
    assert result["html"] is None and result["pages"] == 1
    assert Path(result["xlsx"]).exists()
    assert not list(tmp_path.rglob("*.html"))
    text = PdfReader(result["pdf"]).pages[0].extract_text()
    assert "2 jours manquants: 19/11" in text and "PET GE" in text


@pytest.mark.integration
def test_a_page_that_cannot_be_prepared_is_a_report_error(tmp_path: Path) -> None:
    s = Settings()
    s.paths.output_dir = tmp_path
    broken = render.Page("PET GE", "petge", "hebdomadaire", "hebdo", END, END, 1, "{not json")
    with pytest.raises(ReportError):
        render.render_report(s, [broken], END)
    assert not list(tmp_path.rglob("*.pdf"))


def test_summary_rows_agree_with_the_pages_count_tables(tmp_path: Path) -> None:
    store_days(tmp_path, final=WEEK[:3])
    s = Settings()
    studies = two_machines()
    retrieved = render.final_days(tmp_path, dt.date(2019, 1, 1), END)
    overview = render.build_overview(s, studies, END, retrieved)
    rows = {(r["machine"], r["period"]): r for r in overview.summary.iter_rows(named=True)}
    # every machine of the config, in its order, for every period
    names = [s.machine_names()[k] for k in s.display_machines()]
    assert overview.summary["machine"].to_list()[: len(names)] == names
    for machine in ("petge", "intevo"):
        for period in ("hebdomadaire", "mensuel"):
            page = render.build_page(s, studies, machine, period, END, retrieved)
            assert page is not None and page.counts is not None
            total = page.counts.filter(pl.col("row") == "total").row(0, named=True)
            row = rows[(page.machine, period)]
            assert (row["exams"], row["slots"]) == (total["exams"], total["slots"])
            assert row["utilisation_pct"] == pytest.approx(total["util"])
            assert (row["no_activity_days"], row["no_data_days"]) == (
                total["no_activity"],
                total["no_data"],
            )
