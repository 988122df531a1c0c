"""Several departments in one config: ``[sites.<id>]`` tables, ``--site``, the ``site`` column."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyschedvisu.cli import app
from pyschedvisu.config import Settings, load_network, load_settings
from pyschedvisu_core import schema
from pyschedvisu_core.errors import ConfigError

runner = CliRunner()

NETWORK = """
[pacs]
port = 104
called_ae = "PACS"
[paths]
data_dir = "{root}/data"
output_dir = "{root}/reports"
[retrieve]
accepted_institutions = ["hospital"]
[report]
language = "en"

[sites.lausanne.pacs]
host = "pacs.lausanne.test"

[sites.geneve.pacs]
host = "pacs.geneve.test"
port = 4242
[sites.geneve.calendar]
timezone = "Europe/Paris"
[sites.geneve.paths]
data_dir = "{root}/geneve-store"
[sites.geneve.email]
recipients = ["chef@geneve.test"]
[sites.geneve.machines]
"Discovery MI" = ["discoverymi"]
[sites.geneve.descriptions.discoverymi]
FDG = ["fdg.*"]
[sites.geneve.draw.machine.discoverymi]
slots_per_weekday = [6, 6, 6, 6, 4]
"""


@pytest.fixture
def network_toml(tmp_path: Path) -> Path:
    path = tmp_path / "network.toml"
    path.write_text(NETWORK.format(root=tmp_path.as_posix()))
    return path


def test_a_site_shares_the_top_level_and_overrides_what_it_sets(
    network_toml: Path, tmp_path: Path
) -> None:
    lausanne = load_settings(network_toml, site="lausanne")
    geneve = load_settings(network_toml, site="geneve")
    assert (lausanne.site, geneve.site) == ("lausanne", "geneve")
    # [pacs] merges key by key: the port and AE title of the top level stay where not set
    assert (lausanne.pacs.host, lausanne.pacs.port, lausanne.pacs.called_ae) == (
        "pacs.lausanne.test",
        104,
        "PACS",
    )
    assert (geneve.pacs.host, geneve.pacs.port, geneve.pacs.called_ae) == (
        "pacs.geneve.test",
        4242,
        "PACS",
    )
    assert lausanne.retrieve.accepted_institutions == geneve.retrieve.accepted_institutions
    assert lausanne.report.language == geneve.report.language == "en"
    assert (lausanne.calendar.timezone, geneve.calendar.timezone) == (
        "Europe/Zurich",
        "Europe/Paris",
    )
    # a table of named entries is replaced: geneve has its one machine, lausanne the defaults
    assert geneve.display_machines() == ["discoverymi"]
    assert lausanne.display_machines() == Settings().display_machines()
    assert geneve.email.recipients == ["chef@geneve.test"] and lausanne.email.recipients == []
    # paths: each site its own folders, under the top level's unless it sets them
    assert lausanne.paths.data_dir == tmp_path / "data" / "lausanne"
    assert lausanne.paths.output_dir == tmp_path / "reports" / "lausanne"
    assert geneve.paths.data_dir == tmp_path / "geneve-store"
    assert geneve.paths.output_dir == tmp_path / "reports" / "geneve"
    assert lausanne.sites == geneve.sites == {}


def test_the_one_department_config_is_site_default_unchanged(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[pacs]\nhost = "pacs.local"\n[paths]\ndata_dir = "/srv/data"\n')
    settings = load_settings(cfg)
    assert settings.site == schema.DEFAULT_SITE == "default"
    assert settings == load_settings(cfg, site="default")
    assert settings.paths.data_dir == Path("/srv/data")  # no folder per site
    network = load_network(cfg)
    assert list(network.sites) == ["default"] and not network.has_sites
    assert network.sites["default"].settings == settings


def test_a_config_with_sites_needs_one_named(network_toml: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(network_toml)
    (line,) = err.value.problems
    assert "2 sites (lausanne, geneve)" in line and "--site" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--site", "zurich"],
            "site 'zurich': no such site in {cfg}; known sites: lausanne, geneve",
        ),
        ([], "{cfg}: sites: the config holds 2 sites (lausanne, geneve)"),
    ],
)
def test_bad_or_missing_site_is_one_line_exit_2(
    network_toml: Path, args: list[str], expected: str
) -> None:
    result = runner.invoke(app, ["--config", str(network_toml), *args, "config", "show"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected.format(cfg=network_toml)), lines
    assert "Traceback" not in result.output


def test_a_site_for_a_one_department_config_names_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSCHEDVISU_SITE", "geneve")
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "site 'geneve': no such site in built-in defaults; known sites: default "
        "(the config has no [sites.<id>] table)"
    )


def test_site_option_and_variable_choose_the_site(
    network_toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(
        app, ["--config", str(network_toml), "--site", "geneve", "config", "show"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# site geneve")
    assert 'host = "pacs.geneve.test"' in result.output
    monkeypatch.setenv("PYSCHEDVISU_SITE", "lausanne")
    result = runner.invoke(app, ["--config", str(network_toml), "config", "show"])
    assert result.exit_code == 0, result.output
    assert 'host = "pacs.lausanne.test"' in result.output
    # the command's choice does not outlive it
    import os

    assert os.environ["PYSCHEDVISU_SITE"] == "lausanne"


def test_validate_checks_every_site(network_toml: Path) -> None:
    result = runner.invoke(app, ["--config", str(network_toml), "config", "validate"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == ["site lausanne", "site geneve"]
    assert all(
        line.startswith(f"site {s}: {network_toml}") and line.endswith(": OK")
        for s, line in zip(("lausanne", "geneve"), lines, strict=True)
    )


def test_a_problem_in_a_site_table_is_named_by_its_key(network_toml: Path) -> None:
    text = network_toml.read_text().replace("port = 4242", "port = 4242\nprot = 1")
    network_toml.write_text(text)
    result = runner.invoke(app, ["--config", str(network_toml), "config", "validate"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"{network_toml}: sites.geneve.pacs.prot: unknown key: remove it or check its "
        "spelling (see `pyschedvisu config init`)"
    ]


def test_site_values_from_the_environment(
    network_toml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYSCHEDVISU_SITES__GENEVE__PACS__PORT", "1234")
    monkeypatch.setenv("PYSCHEDVISU_PACS__CALLED_AE", "ENVPACS")
    geneve = load_settings(network_toml, site="geneve")
    lausanne = load_settings(network_toml, site="lausanne")
    assert (geneve.pacs.port, geneve.pacs.called_ae) == (1234, "ENVPACS")
    assert (lausanne.pacs.port, lausanne.pacs.called_ae) == (104, "ENVPACS")
    monkeypatch.setenv("PYSCHEDVISU_SITES__GENEVE__PACS__PORT", "99999")
    with pytest.raises(ConfigError) as err:
        load_settings(network_toml, site="geneve")
    assert err.value.problems == [
        "PYSCHEDVISU_SITES__GENEVE__PACS__PORT (environment): sites.geneve.pacs.port: "
        "Input should be less than or equal to 65535 (got '99999')"
    ]


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("[sites.Geneve]\n", "sites.Geneve: not a site id"),
        ('site = "x"\n', "site: not a key of the file"),
        (
            '[sites.a.paths]\ndata_dir = "/d"\n[sites.b.paths]\ndata_dir = "/d"\n',
            "sites.b.paths.data_dir: /d is the data dir of a, b: each site needs its own",
        ),
    ],
)
def test_bad_site_tables_are_one_line(tmp_path: Path, table: str, expected: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(table)
    with pytest.raises(ConfigError) as err:
        load_network(cfg)
    assert len(err.value.problems) == 1 and expected in err.value.problems[0], err.value


def test_an_unknown_section_key_of_a_site_is_merged_into_any_section(tmp_path: Path) -> None:
    """Whatever the section (one added later included), a site's table merges into it."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[takes]\noverlap_tolerance_s = 30\n[sites.a.takes]\noverlap_tolerance_s = 90\n[sites.b]\n"
    )
    network = load_network(cfg)
    assert network.sites["a"].settings.takes.overlap_tolerance_s == 90
    assert network.sites["b"].settings.takes.overlap_tolerance_s == 30
    assert network.top.settings.takes.overlap_tolerance_s == 30
    assert network.has_sites
