from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import Settings, default_toml, load_settings
from pyschedvisu_core.errors import ConfigError

runner = CliRunner()


def test_default_toml_round_trips_to_the_same_settings() -> None:
    text = default_toml()
    assert Settings(**tomllib.loads(text)) == Settings()
    # Every key is documented: a comment precedes each assignment of the [pacs] section.
    pacs = text.split("[pacs]\n", 1)[1].split("\n[", 1)[0].splitlines()
    for i, line in enumerate(pacs):
        if "=" in line and not line.startswith("#"):
            assert pacs[i - 1].startswith("#"), line


def test_defaults_are_the_reference_department() -> None:
    s = Settings()
    assert s.display_machines() == ["petsiemens", "petge", "discovery670nm", "millennium", "intevo"]
    assert s.machines["Intevo"] == ["encore2", "symbiaintevo16"]
    assert s.draw.machine["millennium"].slots_per_weekday == [1, 7, 6, 3, 2]
    assert s.report.periods[0] == "hebdomadaire" and len(s.report.periods) == 7
    assert s.extract.retake_split_s == 3540


def test_env_overrides_file_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pacs]\nhost = "pacs.local"\nport = 104\n')
    monkeypatch.setenv("PYSCHEDVISU_PACS__PORT", "4242")
    monkeypatch.setenv("PYSCHEDVISU_EMAIL__RECIPIENTS", '["a@example.org", "b@example.org"]')
    s = load_settings(cfg)
    assert (s.pacs.host, s.pacs.port) == ("pacs.local", 4242)
    assert s.email.recipients == ["a@example.org", "b@example.org"]
    assert s.pacs.calling_ae == "PYSCHEDVISU"  # untouched defaults survive a partial section


def test_bad_environment_override_is_named_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pacs]\nhost = "pacs.local"\nport = 104\n')
    monkeypatch.setenv("PYSCHEDVISU_PACS__PORT", "abc")
    monkeypatch.setenv("PYSCHEDVISU_RETRIEVE", '{"bogus": 1}')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    problems = sorted(err.value.problems)
    assert problems[0].startswith("PYSCHEDVISU_PACS__PORT (environment): pacs.port: ")
    assert problems[1].startswith("PYSCHEDVISU_RETRIEVE (environment): retrieve.bogus: unknown key")
    # the file's own mistakes still name the file
    cfg.write_text("[pacs]\nprot = 1\n")
    monkeypatch.delenv("PYSCHEDVISU_PACS__PORT")
    monkeypatch.delenv("PYSCHEDVISU_RETRIEVE")
    with pytest.raises(ConfigError, match=f"{cfg}: pacs.prot: unknown key"):
        load_settings(cfg)


def test_config_file_from_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[extract]\nretake_split_s = 100\n")
    monkeypatch.setenv("PYSCHEDVISU_CONFIG", str(cfg))
    assert load_settings().extract.retake_split_s == 100


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[pacs]\nprot = 1\n", "pacs.prot: unknown key"),
        ('[pacs]\nport = "x"\n', "pacs.port: Input should be a valid integer"),
        (
            '[retrieve]\nseries_description_exclude = ["(("]\n',
            "retrieve.series_description_exclude: invalid regex '(('",
        ),
        (
            '[machines]\n"New Cam" = ["newcam"]\n',
            "descriptions.newcam: machine 'New Cam' has no label table",
        ),
        ('[descriptions.petge]\n"X" = ["a[b"]\n', "descriptions: invalid regex 'a[b'"),
        ('[report]\nperiods = ["hebdo"]\n', "report: unknown period(s) ['hebdo']"),
        ("[pacs\n", "not valid TOML"),
    ],
)
def test_bad_config_names_the_key_and_exits_2(tmp_path: Path, body: str, expected: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(body)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert any(line.startswith(f"{cfg}: ") and expected in line for line in err.value.problems), (
        err.value.problems
    )
    result = runner.invoke(app, ["config", "validate", str(cfg)])
    assert result.exit_code == 2
    assert expected in result.output


def test_several_problems_give_one_line_each(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[pacs]\nport = "x"\nfoo = 1\n[paths]\nbar = 2\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert len(err.value.problems) == 3


def test_config_init_writes_a_valid_file_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "x" / "pyschedvisu.toml"
    assert runner.invoke(app, ["config", "init", str(target)]).exit_code == 0
    assert load_settings(target) == Settings()
    assert runner.invoke(app, ["config", "init", str(target)]).exit_code == 1
    ok = runner.invoke(app, ["--config", str(target), "config", "validate"])
    assert ok.exit_code == 0 and "OK" in ok.output


def test_config_show_reflects_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSCHEDVISU_PACS__CALLED_AE", "HOSPITALPACS")
    out = runner.invoke(app, ["config", "show"])
    assert out.exit_code == 0
    assert 'called_ae = "HOSPITALPACS"' in out.output


def test_no_secret_keys_in_the_model() -> None:
    text = default_toml().lower()
    for line in text.splitlines():
        if line.startswith("#") or "=" not in line:
            continue
        key = line.split("=", 1)[0].strip()
        assert key not in {"password", "secret", "key", "smtp_password"}, key


def test_a_machine_may_name_its_station_and_serial_and_round_trips_inline(
    tmp_path: Path,
) -> None:
    """Identical scanners (DOMAIN §7): a [machines] entry names StationName / serial numbers;
    a bare list stays the same entry naming none (older configs unchanged)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        """
[machines]
"SPECT 1" = { models = ["nm830", "ct540"], station_names = "NUK-SPECT1" }
"SPECT 2" = { models = ["nm830", "ct540"], device_serial_numbers = ["GE-870-1102"] }
"PET" = ["discoverymi"]
[descriptions.spect1]
[descriptions.spect2]
[descriptions.pet]
[draw.machine.spect1]
slots_per_weekday = [7, 7, 7, 7, 7]
[draw.machine.spect2]
slots_per_weekday = [7, 7, 7, 7, 7]
[draw.machine.pet]
slots_per_weekday = [15, 15, 15, 15, 15]
"""
    )
    s = load_settings(cfg)
    spect1 = s.machines["SPECT 1"]
    assert not isinstance(spect1, list) and spect1.station_names == ["NUK-SPECT1"]
    assert s.machines["PET"] == ["discoverymi"]
    assert s.display_machines() == ["spect1", "spect2", "pet"]
    text = default_toml(s)
    assert '"SPECT 1" = { models = ["nm830", "ct540"], station_names = ["NUK-SPECT1"] }' in text
    assert Settings(**tomllib.loads(text)) == s


def test_two_machines_that_cannot_be_told_apart_are_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        """
[machines]
"SPECT 1" = { models = ["nm830", "ct540"], station_names = ["S1"] }
"SPECT 2" = { models = ["CT540", "NM830"], station_names = ["s1"] }
"""
    )
    with pytest.raises(ConfigError, match="'SPECT 1', 'SPECT 2' name the same models"):
        load_settings(cfg)
