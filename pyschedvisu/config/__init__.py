"""The one settings model of pySchedVisu (TOML file + environment overrides).

Precedence, highest first: environment variables ``PYSCHEDVISU_<SECTION>__<KEY>``, the
TOML file (``--config`` or ``PYSCHEDVISU_CONFIG``), then the defaults below, which
describe the reference department and its demo PACS. :func:`load_settings` applies
them; ``Settings(**values)`` alone is the defaults plus ``values`` (no environment).

From the environment, a list is a JSON list or a comma-separated string, a table is a
JSON object that *replaces* the file's table, anything else is the plain value. A
variable starting with ``PYSCHEDVISU_`` that is not a setting is an error, unless it
is one of :data:`NON_SETTING_ENV` (or named by ``privacy.key_env`` / ``email.*_env``).

Secrets (SMTP password, pseudonymisation key) are never read from the file: only the
*names* of the environment variables or Prefect Secret blocks that hold them.

The model is one :class:`Settings` root; its modules:

* :mod:`.sections`, :mod:`.report_sections`: the section models, every key documented;
* :mod:`.settings`: the :class:`Settings` root, its whole-config checks, plain values for
  the core;
* :mod:`.environment`: environment variables -> overrides, the unknown-variable check;
* :mod:`.loading`: the file, the sites of a config, one line per problem;
* :mod:`.writing`: the commented default TOML file (``pyschedvisu config init``).
"""

from __future__ import annotations

from pyschedvisu.config.environment import (
    CONFIG_ENV,
    ENV_NAME_SETTINGS,
    ENV_PREFIX,
    NON_SETTING_ENV,
    SITE_ENV,
    EnvOverride,
    EnvScan,
    apply_overrides,
    scan_environment,
    unknown_variable_problem,
)
from pyschedvisu.config.environment import (
    _env_candidates as _env_candidates,
)
from pyschedvisu.config.loading import (
    DEFAULTS_LABEL,
    SITE_PATHS,
    LoadedConfig,
    Network,
    config_path,
    config_warnings,
    load_config,
    load_network,
    load_settings,
    read_config_file,
    select_site,
    site_data,
    site_ids,
)
from pyschedvisu.config.report_sections import (
    DrawSettings,
    EmailSettings,
    MachineDraw,
    NetworkSettings,
    PeriodDef,
    ReportSettings,
    UptakeSettings,
)
from pyschedvisu.config.sections import (
    CalendarSettings,
    ExtractSettings,
    LoggingSettings,
    MachineEntry,
    PacsSettings,
    PathsSettings,
    PrivacySettings,
    RetrieveSettings,
    Section,
    TakesSettings,
    WorklistMachineSettings,
    WorklistSettings,
)
from pyschedvisu.config.settings import (
    SITE_ID,
    Settings,
    display_machine,
    plain_machines,
    uptake_windows,
)
from pyschedvisu.config.writing import (
    _toml_key as _toml_key,
)
from pyschedvisu.config.writing import (
    _toml_value as _toml_value,
)
from pyschedvisu.config.writing import (
    default_toml,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULTS_LABEL",
    "ENV_NAME_SETTINGS",
    "ENV_PREFIX",
    "NON_SETTING_ENV",
    "SITE_ENV",
    "SITE_ID",
    "SITE_PATHS",
    "CalendarSettings",
    "DrawSettings",
    "EmailSettings",
    "EnvOverride",
    "EnvScan",
    "ExtractSettings",
    "LoadedConfig",
    "LoggingSettings",
    "MachineDraw",
    "MachineEntry",
    "Network",
    "NetworkSettings",
    "PacsSettings",
    "PathsSettings",
    "PeriodDef",
    "PrivacySettings",
    "ReportSettings",
    "RetrieveSettings",
    "Section",
    "Settings",
    "TakesSettings",
    "UptakeSettings",
    "WorklistMachineSettings",
    "WorklistSettings",
    "apply_overrides",
    "config_path",
    "config_warnings",
    "default_toml",
    "display_machine",
    "load_config",
    "load_network",
    "load_settings",
    "plain_machines",
    "read_config_file",
    "scan_environment",
    "select_site",
    "site_data",
    "site_ids",
    "unknown_variable_problem",
    "uptake_windows",
]
