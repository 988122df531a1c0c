"""A department whose names are not the reference ones (issue 16), served by a real Orthanc.

The Seeland department (the synthetic days under another hospital's institution, scanner
models, StationNames and German study descriptions; two identical SPECT/CT cameras):

- ``discover --write-config`` drafts a config; with its descriptions labelled (the one edit),
  ``retrieve`` + ``extract`` + ``evaluate`` reach 100 % on every study of the scanners, each
  physical scanner its own machine;
- with the reference config, every command names what did not match (institutions, scanner
  combinations, descriptions) and exits as documented;
- never a patient id or name in what is printed or written.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import load_settings
from pyschedvisu.retrieval import forget_capabilities
from tests import seeland
from tests.conftest import free_port
from tests.fixtures.orthanc import Orthanc

pytestmark = [pytest.mark.integration, pytest.mark.slow]

START, END = seeland.DAYS[0].isoformat(), seeland.DAYS[-1].isoformat()


@pytest.fixture(autouse=True)
def _fresh_probe_memory() -> None:
    forget_capabilities()


def config(path: Path, orthanc: Orthanc, data: Path, **pacs: Any) -> Path:
    extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in pacs.items())
    path.write_text(
        f"""
[pacs]
port = {orthanc.dicom_port}
called_ae = "{orthanc.aet}"
move_port = {free_port()}
move_bind = "127.0.0.1"
max_ops_per_s = 400.0
{extra}
[paths]
data_dir = "{data.as_posix()}"
""",
        encoding="utf-8",
    )
    return path


def run(cfg: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def no_patient_data(*texts: str) -> None:
    for value in seeland.patient_values():
        for text in texts:
            assert not re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", text), value


def test_discover_drafts_a_config_that_reports_another_department_in_full(
    seeland_dir: Path, orthanc_factory: Callable[..., Orthanc], tmp_path: Path
) -> None:
    orthanc = orthanc_factory(seeland_dir, "Always")
    cfg = config(tmp_path / "start.toml", orthanc, tmp_path / "data")
    draft = tmp_path / "seeland.toml"

    res = run(cfg, "discover", "--start", START, "--end", END, "--write-config", str(draft))
    assert res.exit_code == 0, res.output
    out = res.output
    # what the PACS holds, told against the reference config: nothing of it matches
    for name in ("Kantonsspital Seeland", "kantonsspitalseeland", "NM/CT 870 DR", "NUK-SPECT2",
                 "GE-870-1102", "Skelettszintigraphie", "NONE (mixed case)", "EXTRINSEQUE"):  # fmt: skip
        assert name in out, name
    assert "2024-03-04..2024-03-06" in out
    text = draft.read_text(encoding="utf-8")
    no_patient_data(out, text)
    assert run(cfg, "config", "validate", str(draft)).exit_code == 0

    # the one edit: name the labels of the descriptions the draft lists
    final = seeland.label_draft(draft, tmp_path / "final.toml")
    settings = load_settings(final)
    assert settings.retrieve.accepted_institutions[-1] == "mixed"
    spects = {g: e for g, e in settings.machines.items() if "SPECT" in g and "_NoCT" not in g}
    assert sorted(spects) == ["NM/CT 870 DR NUK-SPECT1", "NM/CT 870 DR NUK-SPECT2"]

    assert run(final, "retrieve", "--start", START, "--end", END).exit_code == 0
    res = run(final, "extract")
    assert res.exit_code == 0, res.output
    truth = seeland.truth(settings)
    truth_path = tmp_path / "truth.parquet"
    truth.write_parquet(truth_path)
    res = run(final, "evaluate", "--truth", str(truth_path))
    assert res.exit_code == 0, res.output
    assert "recall          100.0000%" in res.output
    assert "label accuracy  100.0000%" in res.output
    # every study of the department's scanners counted, on its own scanner: the five
    # scanners are five machines (the two identical cameras included), one each
    scanner = seeland.scanners_of()
    pairs = {(scanner[u], m) for u, m in truth.select("study_uid", "machine").iter_rows()}
    assert len(pairs) == len({s for s, _ in pairs}) == len({m for _, m in pairs}) == 5
    assert truth.height >= 120 and (truth["description"] != "OTHER").mean() > 0.9  # type: ignore[operator]


def test_discover_reads_one_header_per_series_where_the_pacs_does_not_index_models(
    seeland_dir: Path, orthanc_factory: Callable[..., Orthanc], tmp_path: Path
) -> None:
    """Orthanc on its database only (StorageAccessOnFind "Never") answers no
    ManufacturerModelName: discover says so; --headers moves one instance per series (C-GET)
    and drafts the same machines as from an Orthanc that reads its files."""
    never = orthanc_factory(seeland_dir, "Never")
    cfg = config(tmp_path / "c.toml", never, tmp_path / "data")
    never.set_modality("PYSCHEDVISU", "127.0.0.1", load_settings(cfg).pacs.move_port)
    res = run(cfg, "discover", "--start", START, "--end", START)
    assert res.exit_code == 0, res.output
    assert "run again with --headers" in res.output
    res = run(cfg, "discover", "--start", START, "--end", END, "--headers", "--write-config",
              str(tmp_path / "never.toml"))  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "equipment of" in res.output and "NUK-SPECT1" in res.output
    no_patient_data(res.output)
    always = orthanc_factory(seeland_dir, "Always")
    cfg = config(tmp_path / "a.toml", always, tmp_path / "data-a")
    res = run(cfg, "discover", "--start", START, "--end", END, "--write-config",
              str(tmp_path / "always.toml"))  # fmt: skip
    assert res.exit_code == 0, res.output
    by_headers = load_settings(tmp_path / "never.toml")
    by_index = load_settings(tmp_path / "always.toml")
    assert by_headers.machines == by_index.machines
    assert by_headers.retrieve.accepted_institutions == by_index.retrieve.accepted_institutions
    assert len(by_index.display_machines()) == 5


def test_reference_config_against_another_department_names_what_did_not_match(
    seeland_dir: Path, orthanc_factory: Callable[..., Orthanc], tmp_path: Path
) -> None:
    """Documented exits: retrieve 0 (every day retrieved, warnings), extract 0."""
    orthanc = orthanc_factory(seeland_dir, "Always")
    data = tmp_path / "data"
    cfg = config(tmp_path / "reference.toml", orthanc, data)

    # 1. institutions: every study of the department is another institution's
    res = run(cfg, "retrieve", "--start", START, "--end", END)
    assert res.exit_code == 0, res.output
    assert res.output.count("WARNING: no studies kept") == 3
    assert "studies excluded by institution" in res.output
    assert "kantonsspitalseeland (" in res.output and "ksseelandpet-ct (" in res.output
    res = run(cfg, "extract")
    assert res.exit_code == 0, res.output
    assert "3 business day(s) with no studies kept" in res.output
    assert "institution_not_accepted" in res.output and "ksseeland (" in res.output
    no_patient_data(res.output)

    # 2. scanners: the institutions accepted, the reference [machines] match none of them
    draft = tmp_path / "draft.toml"
    assert run(cfg, "discover", "--start", START, "--end", END, "--write-config", str(draft)).exit_code == 0  # fmt: skip
    accepted = load_settings(draft).retrieve.accepted_institutions
    cfg2 = tmp_path / "institutions.toml"
    cfg2.write_text(
        cfg.read_text() + f"\n[retrieve]\naccepted_institutions = {json.dumps(accepted)}\n"
    )
    assert run(cfg2, "retrieve", "--start", START, "--end", END, "--force").exit_code == 0
    res = run(cfg2, "extract")
    assert res.exit_code == 0, res.output
    assert "studies left out as mixed cases" in res.output
    assert "discoverymi (" in res.output and "vereosct,vereospet (" in res.output
    assert "business day(s) with no study on a configured machine" in res.output
    assert "total              0" in res.output or re.search(r"total\s+0\b", res.output)

    # 3. descriptions: the drafted machines, no label named: every study OTHER, named
    res = run(draft, "retrieve", "--start", START, "--end", END)
    assert res.exit_code == 0, res.output
    res = run(draft, "extract")
    assert res.exit_code == 0, res.output
    no_patient_data(res.output)
    studies = pl.read_parquet(Path(load_settings(draft).paths.data_dir) / "studies.parquet")
    assert studies.height > 100 and set(studies["description"]) == {"OTHER"}
    told = re.search(r"(\d+) studies labelled OTHER, .*?: (.*)", res.output)
    assert told is not None and int(told[1]) == studies.height
    assert "Discovery MI: e1fdgpet/ctrumpf (" in told[2] and "more" in told[2]


def test_two_days_told_with_their_first_and_last_day(
    seeland_dir: Path, orthanc_factory: Callable[..., Orthanc], tmp_path: Path
) -> None:
    """Weekends are not asked; business days without any study are named; the first / last
    day seen follow the days surveyed."""
    orthanc = orthanc_factory(seeland_dir, "Always")
    cfg = config(tmp_path / "c.toml", orthanc, tmp_path / "data")
    res = run(cfg, "discover", "--start", "2024-03-05", "--end", "2024-03-10")
    assert res.exit_code == 0, res.output
    assert "4 of 4 business day(s) surveyed" in res.output
    assert "2 business day(s) with no study at all: 2024-03-07, 2024-03-08" in res.output
    assert "2024-03-05..2024-03-06" in res.output and "2024-03-04" not in res.output
    assert dt.date(2024, 3, 9).isoformat() not in res.output
