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
from pypdf import PdfReader, PdfWriter
from typer.testing import CliRunner

from pyschedvisu import render
from pyschedvisu.cli import app
from pyschedvisu.config import Settings
from pyschedvisu_core.errors import ReportError
from tests.report_data import END, SECRET_PATIENT, frame, known_week, study


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


# -- real rendering (Chromium through kaleido) ----------------------------------------------


def two_machines() -> pl.DataFrame:
    """The known week on PET GE, and a few weeks of Intevo studies (one with a retake)."""
    rows = []
    day = dt.date(2019, 10, 28)
    while day <= END:
        if day.weekday() < 5:
            rows.append(study(day, "08:00", "08:45", "OS 3 PHASE", f"i-{day}", 1, machine="Intevo"))
            rows.append(study(day, "09:00", "09:40", "GGL", f"j-{day}", machine="Intevo"))
            rows.append(study(day, "11:30", "12:00", "OS 3 PHASE", f"i-{day}", 2, machine="Intevo"))
        day += dt.timedelta(days=1)
    return pl.concat([known_week("PET GE"), frame(rows)])


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
    return {"pdf": pdf, "html": html, "output": result.output, "tmp": tmp}


@pytest.mark.integration
def test_pdf_pages_outline_and_metadata(rendered: dict[str, Any]) -> None:
    pdf: Path = rendered["pdf"]
    assert re.fullmatch(r"pyschedvisu_report_2019-11-22_\d{8}-\d{6}\.pdf", pdf.name)
    assert pdf.parent.name == "2019"
    reader = PdfReader(pdf)
    assert len(reader.pages) == 4
    box = reader.pages[0].mediabox
    assert (
        abs(float(box.width) - 595.3) < 1.5 and abs(float(box.height) - 841.9) < 1.5
    )  # A4 portrait
    tree = outline_tree(reader)
    assert tree[0][0].startswith("pySchedVisu")
    assert tree[1] == [
        ("PET GE", 0),
        [("hebdomadaire", 0), ("mensuel", 1)],
        ("Intevo", 2),
        [("hebdomadaire", 2), ("mensuel", 3)],
    ]
    assert "PET GE" in reader.metadata["/Keywords"] and "mensuel" in reader.metadata["/Keywords"]
    assert "skipped (no data): Discovery 670 NM / hebdomadaire" in rendered["output"]


@pytest.mark.integration
def test_pdf_text_has_machines_periods_and_numbers(rendered: dict[str, Any]) -> None:
    reader = PdfReader(rendered["pdf"])
    texts = [p.extract_text() for p in reader.pages]
    assert "PET GE" in texts[0] and "Rapport hebdomadaire" in texts[0] and "Semaine 47" in texts[0]
    assert "Rapport mensuel" in texts[1] and "Semaines 44-47" in texts[1]
    assert "Intevo" in texts[2] and "OS 3 PHASE [2]" in texts[2]
    assert "27 %" in texts[0]  # overall utilisation of the known week
    assert "TROUS" in texts[0] and "35:00" in texts[0]


@pytest.mark.integration
def test_no_patient_identifier_anywhere(rendered: dict[str, Any]) -> None:
    raw = rendered["pdf"].read_bytes()
    text = "".join(p.extract_text() for p in PdfReader(rendered["pdf"]).pages)
    html = rendered["html"].read_text(encoding="utf-8")
    for needle in (SECRET_PATIENT, "u1_1", "i-2019-11-18"):
        assert needle not in text and needle not in html
        assert needle.encode() not in raw


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
        ["pdftoppm", "-r", "20", "-f", "1", "-l", "1", "-gray", str(rendered["pdf"])],
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
    assert len(re.findall(r'<section id="page-\d+">', html)) == 4
    assert '<a href="#page-3">mensuel</a>' in html and "<h2>Intevo</h2>" in html
    figs = re.findall(r'<script type="application/json" id="fig-\d+">(.*?)</script>', html, re.S)
    assert len(figs) == 4
    fig = json.loads(figs[0].replace("<\\/", "</"))
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
    assert result["html"] is None and result["pages"] == 1
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
