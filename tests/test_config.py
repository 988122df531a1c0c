from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import (
    NON_SETTING_ENV,
    Settings,
    _env_candidates,
    default_toml,
    load_settings,
    scan_environment,
)
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
        (
            "[uptake.FDG]\nmin_minutes = 80\nmax_minutes = 70\n",
            "uptake.FDG: min_minutes <= target_minutes <= max_minutes",
        ),
        ("[uptake.X]\nmin_minutes = 50\n", "uptake.X: set both min_minutes and max_minutes"),
        ('[uptake.X]\ntracers = ["(("]\n', "uptake.X.tracers: invalid regex '(('"),
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
    assert load_settings(target) == load_settings()  # the defaults (+ the tests' log_dir)
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


# -- every source of config error: one line, exit 2, never a traceback ---------------------


def one_line_exit_2(args: list[str], expected: str) -> str:
    """Run the CLI; it must exit 2 with exactly one line, which holds ``expected``."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_bad_json_in_an_env_list_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: PYSCHEDVISU_EMAIL__RECIPIENTS='[a@b' gave a traceback."""
    monkeypatch.setenv("PYSCHEDVISU_EMAIL__RECIPIENTS", "[a@b")
    line = one_line_exit_2(["config", "validate"], "not valid JSON")
    assert line.startswith("PYSCHEDVISU_EMAIL__RECIPIENTS (environment): email.recipients: ")


def test_config_given_as_a_directory_is_one_line(tmp_path: Path) -> None:
    """Regression: --config <a directory> gave a traceback."""
    line = one_line_exit_2(["--config", str(tmp_path), "config", "validate"], "is a directory")
    assert line.startswith(f"{tmp_path}: ")


def test_undecodable_config_file_is_one_line(tmp_path: Path) -> None:
    """Regression: a Latin-1 TOML file gave a UnicodeDecodeError traceback."""
    cfg = tmp_path / "latin1.toml"
    cfg.write_bytes('[pacs]\nhost = "hôpital"\n'.encode("latin-1"))
    line = one_line_exit_2(["--config", str(cfg), "config", "validate"], "not UTF-8")
    assert line == f"{cfg}: not UTF-8 text (byte 0xf4 on line 2): save the file as UTF-8"
    # the same file in UTF-8 (with the BOM some editors write) is fine
    cfg.write_bytes('\ufeff[pacs]\nhost = "hôpital"\n'.encode())
    assert load_settings(cfg).pacs.host == "hôpital"


def test_missing_config_file_is_one_line(tmp_path: Path) -> None:
    one_line_exit_2(
        ["--config", str(tmp_path / "nope.toml"), "retrieve", "--start", "2024-03-04"],
        "file not found",
    )


@pytest.mark.parametrize(
    ("variable", "closest"),
    [
        ("PYSCHEDVISU_PACS_PORT", "PYSCHEDVISU_PACS__PORT (pacs.port)"),  # one underscore
        ("PYSCHEDVISU_NOSECT__X", "closest: PYSCHEDVISU_"),
        ("PYSCHEDVISU_EMAIL__RECIPIENT", "PYSCHEDVISU_EMAIL__RECIPIENTS (email.recipients)"),
        ("PYSCHEDVISU_PSEUDONYM_KEYS", "PYSCHEDVISU_PSEUDONYM_KEY (the pseudonymisation key"),
    ],
)
def test_env_variable_that_sets_nothing_is_an_error_naming_the_closest(
    monkeypatch: pytest.MonkeyPatch, variable: str, closest: str
) -> None:
    """Regression: PYSCHEDVISU_NOSECT__X and PYSCHEDVISU_PACS_PORT were silently ignored."""
    monkeypatch.setenv(variable, "99999")
    line = one_line_exit_2(["config", "show"], "no such setting")
    assert line.startswith(f"{variable} (environment): ") and closest in line


def test_pyschedvisu_variables_that_are_not_settings_are_allowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in NON_SETTING_ENV:
        monkeypatch.setenv(name, "x")
    monkeypatch.delenv("PYSCHEDVISU_CONFIG")
    monkeypatch.setenv("PYSCHEDVISU_SITE", "default")  # a site name is checked (test_sites.py)
    # a key variable named by the config is allowed too, whatever its name
    cfg = tmp_path / "c.toml"
    cfg.write_text('[privacy]\nkey_env = "PYSCHEDVISU_KEY_2026"\n')
    monkeypatch.setenv("PYSCHEDVISU_KEY_2026", "x")
    assert load_settings(cfg).privacy.key_env == "PYSCHEDVISU_KEY_2026"
    with pytest.raises(
        ConfigError, match=r"PYSCHEDVISU_KEY_2026 \(environment\): key_2026: no such"
    ):
        load_settings()


def test_every_pyschedvisu_variable_the_project_reads_is_allowed() -> None:
    """The allow-list holds every PYSCHEDVISU_ variable read or set outside the settings."""
    root = Path(__file__).resolve().parents[1]
    pattern = re.compile(
        r"""(?:environ(?:\.get)?[\[(]\s*|envvar=|setenv\(\s*|\$\{?|^\s*)["']?(PYSCHEDVISU_[A-Z0-9_]+)""",
        re.MULTILINE,
    )
    files = [root / "prefect.yaml", *(root / "docker").iterdir()]
    files += [
        p
        for d in ("pyschedvisu", "flows", "tasks", "tests", "bench")
        for p in (root / d).rglob("*.py")
    ]
    found: set[str] = set()
    for path in files:
        if path.is_file():
            found.update(pattern.findall(path.read_text(errors="replace")))
    assert {"PYSCHEDVISU_HOME", "PYSCHEDVISU_CONFIG", "PYSCHEDVISU_TEST_ORTHANC"} <= found
    settings = set(_env_candidates()) - set(NON_SETTING_ENV)
    deliberate = {  # this module's own examples of variables that set nothing
        "PYSCHEDVISU_PACS_PORT",
        "PYSCHEDVISU_NOSECT__X",
        "PYSCHEDVISU_EMAIL__RECIPIENT",
        "PYSCHEDVISU_PSEUDONYM_KEYS",
        "PYSCHEDVISU_KEY_2026",
    }
    unknown = {
        name
        for name in found - deliberate
        if name not in NON_SETTING_ENV
        and name not in settings
        and not name.endswith("_")
        and scan_environment({name: "1"}).unknown
    }
    assert not unknown, f"add them to config.NON_SETTING_ENV (or make them settings): {unknown}"


# -- environment values as documented -----------------------------------------------------


def test_env_list_as_a_comma_separated_string(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: a comma-separated PYSCHEDVISU_EMAIL__RECIPIENTS gave a 40-line traceback."""
    monkeypatch.setenv("PYSCHEDVISU_EMAIL__RECIPIENTS", "a@example.org, b@example.org")
    monkeypatch.setenv("PYSCHEDVISU_RETRIEVE__STUDY_MODALITIES", "PT")
    monkeypatch.setenv("PYSCHEDVISU_DRAW__MACHINE__PETGE__SLOTS_PER_WEEKDAY", "1,2,3,4,5")
    s = load_settings()
    assert s.email.recipients == ["a@example.org", "b@example.org"]
    assert s.retrieve.study_modalities == ["PT"]
    assert s.draw.machine["petge"].slots_per_weekday == [1, 2, 3, 4, 5]
    assert s.draw.machine["intevo"].slots_per_weekday == [7, 7, 7, 7, 7]  # other machines kept
    result = runner.invoke(app, ["config", "show"])
    assert 'recipients = ["a@example.org", "b@example.org"]' in result.output


def test_env_table_replaces_the_file_table_instead_of_merging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a table set by env was merged into the file's table."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[retrieve]\nretries_per_day = 5\nstudy_modalities = ["PT"]\n'
        '[report.machine_pictures]\npetge = "ge.png"\n'
    )
    monkeypatch.setenv("PYSCHEDVISU_RETRIEVE", '{"retries_per_day": 1}')
    monkeypatch.setenv("PYSCHEDVISU_REPORT__MACHINE_PICTURES", '{"intevo": "intevo.png"}')
    s = load_settings(cfg)
    assert s.retrieve.retries_per_day == 1
    assert s.retrieve.study_modalities == ["PT", "NM"]  # the default, not the file's
    assert s.report.machine_pictures == {"intevo": Path("intevo.png")}
    # a key of a table merges into the file's table
    monkeypatch.delenv("PYSCHEDVISU_RETRIEVE")
    monkeypatch.setenv("PYSCHEDVISU_RETRIEVE__RETRIES_PER_DAY", "2")
    s = load_settings(cfg)
    assert (s.retrieve.retries_per_day, s.retrieve.study_modalities) == (2, ["PT"])


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "PYSCHEDVISU_CALENDAR__EXTRA_CLOSED_DAYS",
            "12-24,13-45",
            "calendar.extra_closed_days: '13-45' is not a MM-DD day",
        ),
        (
            "PYSCHEDVISU_RETRIEVE",
            '{"retries_per_day": "many"}',
            "retrieve.retries_per_day: Input should be a valid integer",
        ),
        ("PYSCHEDVISU_RETRIEVE", "retries_per_day=1", "retrieve: not valid JSON"),
        (
            "PYSCHEDVISU_MACHINES",
            '{"New Cam": ["newcam"]}',
            "descriptions.newcam: machine 'New Cam' has no label table",
        ),
        (
            "PYSCHEDVISU_PACS__PORT",
            "99999",
            "pacs.port: Input should be less than or equal to 65535",
        ),
        ("PYSCHEDVISU_PACS__RETRIEVAL", "ftp", "pacs.retrieval: Input should be"),
    ],
)
def test_bad_env_value_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    """A list, a table and a scalar: one line `VAR (environment): section.key: problem`, exit 2."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pacs]\nhost = "pacs.local"\n')
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["--config", str(cfg), "extract"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert all(line.startswith(f"{variable} (environment): ") for line in lines), lines
    assert any(expected in line for line in lines), lines
    assert "Traceback" not in result.output and str(cfg) not in result.output


def test_bad_log_level_is_one_line() -> None:
    one_line_exit_2(["--log-level", "loud", "config", "show"], "--log-level: logging.level: ")


# -- config validate says what it validated ----------------------------------------------


def test_config_validate_without_a_file_says_built_in_defaults_and_warns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYSCHEDVISU_PATHS__LOG_DIR")
    result = runner.invoke(app, ["config", "validate"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "built-in defaults (no --config, PYSCHEDVISU_CONFIG unset): OK" in lines
    assert any(
        line.startswith("warning: built-in defaults: pacs.called_ae: still the demo PACS")
        for line in lines
    ), lines
    assert any(
        "retrieve.accepted_institutions: still the reference department's" in line for line in lines
    ), lines
    monkeypatch.setenv("PYSCHEDVISU_PACS__PORT", "104")
    result = runner.invoke(app, ["config", "validate"])
    assert (
        "built-in defaults (no --config, PYSCHEDVISU_CONFIG unset) + environment PYSCHEDVISU_PACS__PORT: OK"
        in result.output
    )


def test_config_validate_of_a_new_department_has_no_warning(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "dept.toml"
    cfg.write_text(
        '[pacs]\nhost = "pacs.hopital.example"\nport = 104\ncalled_ae = "HOPITALPACS"\n'
        '[retrieve]\naccepted_institutions = ["hopitaldelexemple", "mixed"]\n'
    )
    result = runner.invoke(app, ["--config", str(cfg), "config", "validate"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"{cfg} + environment PYSCHEDVISU_PATHS__LOG_DIR: OK"  # the tests' own log folder
    ]
    # the warnings name what set the value
    cfg.write_text('[pacs]\ncalled_ae = "DEMOPACS"\n')
    result = runner.invoke(app, ["--config", str(cfg), "config", "validate"])
    assert f"warning: {cfg}: pacs.called_ae: still the demo PACS" in result.output


def test_config_validate_refuses_a_weak_pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSCHEDVISU_PSEUDONYM_KEY", "x")
    line = one_line_exit_2(["config", "validate"], "too weak")
    assert line.startswith("PYSCHEDVISU_PSEUDONYM_KEY (environment): privacy.key_env: ")
    assert "openssl rand -hex 32" in line


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


def test_uptake_defaults_are_the_eanm_fdg_window_documented_and_replaceable(tmp_path: Path) -> None:
    from pyschedvisu.config import uptake_windows

    s = Settings()
    fdg = s.uptake["FDG"]
    assert (fdg.min_minutes, fdg.target_minutes, fdg.max_minutes) == (55.0, 60.0, 75.0)
    assert fdg.activity_ref_mbq is None and "EANM FDG PET/CT guideline v2.0" in fdg.source
    assert fdg.descriptions == ["FDG STAND.", "FDG CORPS", "FDG ORL"]
    assert [w.name for w in uptake_windows(s)] == ["FDG", "FDG CERV.", "SARCOIDOSE"]
    text = default_toml()
    block = text.split("[uptake.FDG]\n", 1)[1].split("\n[", 1)[0]
    assert "min_minutes = 55.0" in block and "# activity_ref_mbq =  (unset)" in block
    for line in block.splitlines():  # every key documented
        if "=" in line and not line.startswith("#"):
            assert block.splitlines()[block.splitlines().index(line) - 1].startswith("#"), line
    # a file's [uptake] replaces the defaults; uptake = {} sets no target at all
    cfg = tmp_path / "u.toml"
    cfg.write_text(
        '[uptake.PSMA]\ndescriptions = ["GA68 PSMA"]\nmin_minutes = 50.0\nmax_minutes = 70.0\nactivity_ref_mbq = 150\n'
    )
    (psma,) = uptake_windows(load_settings(cfg))
    assert (psma.min_s, psma.max_s, psma.activity_ref_mbq) == (3000.0, 4200.0, 150.0)
    cfg.write_text("uptake = {}\n")
    assert uptake_windows(load_settings(cfg)) == ()
