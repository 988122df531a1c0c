"""pySchedVisu: the imperative shell (config, CLI, adapters for PACS, files, SMTP)."""

__version__ = "0.1.0"
