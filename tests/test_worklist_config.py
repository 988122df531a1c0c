"""The [worklist] section: off by default, one line per problem, a warning for the demo's."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import Settings, load_settings
from pyschedvisu_core.errors import ConfigError

runner = CliRunner()


def test_the_worklist_is_off_by_default_with_the_reference_stations() -> None:
    s = Settings()
    assert s.worklist.enabled is False
    assert set(s.worklist.machine) == set(s.display_machines())
    assert s.worklist.machine["petge"].station_aes == ["PETCT_D690"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "[worklist.machine.petct]\nstation_aes = ['X']\n",
            "worklist.machine.petct: no machine 'petct' in [machines]",
        ),
        (
            "[worklist.machine.petge]\nstation_aes = ['A_VERY_LONG_AE_TITLE']\n",
            "worklist.machine.petge.station_aes: Value error, 'A_VERY_LONG_AE_TITLE' is not an AE",
        ),
        ("[worklist]\nmatch_window_minutes = 0\n", "worklist.match_window_minutes"),
    ],
)
def test_a_bad_worklist_setting_is_one_line_naming_it(
    tmp_path: Path, body: str, expected: str
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert any(expected.replace("Value error, ", "") in p for p in err.value.problems), (
        err.value.problems
    )


def test_an_enabled_worklist_still_on_the_demo_pacs_is_warned_about(tmp_path: Path) -> None:
    cfg = tmp_path / "dept.toml"
    cfg.write_text(
        '[pacs]\nhost = "pacs.hopital.example"\nport = 104\ncalled_ae = "HOPITALPACS"\n'
        '[retrieve]\naccepted_institutions = ["hopitaldelexemple", "mixed"]\n'
        "[worklist]\nenabled = true\n"
    )
    result = runner.invoke(app, ["--config", str(cfg), "config", "validate"])
    assert result.exit_code == 0
    assert f"warning: {cfg}: worklist.called_ae: still the demo PACS" not in result.output
    assert "warning: built-in defaults: worklist.called_ae: still the demo PACS" in result.output
    cfg.write_text(cfg.read_text() + 'host = "ris.hopital.example"\ncalled_ae = "RISMWL"\n')
    result = runner.invoke(app, ["--config", str(cfg), "config", "validate"])
    assert "warning" not in result.output


def test_a_worklist_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSCHEDVISU_WORKLIST__ENABLED", "true")
    monkeypatch.setenv("PYSCHEDVISU_WORKLIST__MACHINE__PETGE__STATION_AES", "PET1,PET2")
    s = load_settings()
    assert s.worklist.enabled is True
    assert s.worklist.machine["petge"].station_aes == ["PET1", "PET2"]
    assert s.worklist.machine["petsiemens"].station_aes == ["PETCT_VISION"]  # kept
