"""Adapters of the shell towards the outside world (PACS over DIMSE, capabilities cache)."""
