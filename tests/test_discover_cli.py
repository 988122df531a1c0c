"""``pyschedvisu discover`` through the CLI against the demo PACS (the tiny department)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import load_settings
from pyschedvisu.retrieval import forget_capabilities


@pytest.fixture
def cfg(demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path) -> Path:
    forget_capabilities()
    pacs = demo_pacs(tiny_pacs_dir)
    path = tmp_path / "c.toml"
    path.write_text(
        f'[pacs]\nport = {pacs.port}\ncalled_ae = "{pacs.ae_title}"\nmove_port = 0\n'
        f'[paths]\ndata_dir = "{(tmp_path / "data").as_posix()}"\n'
    )
    return path


def run(cfg: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--config", str(cfg), *args], catch_exceptions=False)


def test_discover_tells_the_reference_department_what_matches(cfg: Path) -> None:
    res = run(cfg, "discover", "--start", "2024-03-04", "--end", "2024-03-06")
    assert res.exit_code == 0, res.output
    out = res.output
    assert "3 of 3 business day(s) surveyed, 3 studies" in out
    assert "1 business day(s) with no study at all: 2024-03-05" in out
    # the PET/CT of 2024-03-04 is the reference PET Siemens, with its label
    assert "biograph64,biograph64vision600" in out and "PET Siemens" in out
    assert "petctfdgtronc" in out
    # the phantom's study is told as excluded, never its PatientID
    assert "patient_id_rejected" in out and "ABC" not in out and "1001" not in out


def test_discover_shows_a_progress_bar_over_days_in_a_terminal(
    cfg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    res = run(cfg, "discover", "--start", "2024-03-04", "--end", "2024-03-06")
    assert res.exit_code == 0, res.output
    # the live bar: done / total days and failures so far, redrawn in place
    assert "\x1b[" in res.output and "3/3" in res.output and "0 failed" in res.output


def test_write_config_refuses_an_existing_file_and_the_draft_validates(
    cfg: Path, tmp_path: Path
) -> None:
    draft = tmp_path / "draft.toml"
    draft.write_text("# mine\n")
    res = run(cfg, "discover", "--start", "2024-03-04", "--write-config", str(draft))
    assert res.exit_code == 2 and "exists already" in res.output
    assert draft.read_text() == "# mine\n"
    res = run(cfg, "discover", "--start", "2024-03-04", "--write-config", str(draft), "--force")
    assert res.exit_code == 0, res.output
    settings = load_settings(draft)
    assert settings.pacs.port == load_settings(cfg).pacs.port
    assert run(cfg, "discover", "--start", "2024-03-05", "--end", "2024-03-04").exit_code == 2


def test_discover_says_why_the_pacs_keeps_us_out(
    demo_pacs: Any, tiny_pacs_dir: Path, tmp_path: Path
) -> None:
    from pyschedvisu.demo_pacs import Behaviour

    pacs = demo_pacs(tiny_pacs_dir, behaviour=Behaviour(reject_calling_aes={"PYSCHEDVISU"}))
    path = tmp_path / "c.toml"
    path.write_text(f'[pacs]\nport = {pacs.port}\ncalled_ae = "{pacs.ae_title}"\nmove_port = 0\n')
    res = run(path, "discover", "--start", "2024-03-04", "--write-config", str(tmp_path / "d.toml"))
    assert res.exit_code == 1
    assert "NOT usable: association rejected permanently" in res.output
    assert "hint: the PACS does not know our AE title 'PYSCHEDVISU'" in res.output
    assert not (tmp_path / "d.toml").exists()
