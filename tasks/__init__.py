"""Prefect tasks: thin wrappers over the shell (caching, retries, concurrency tags)."""
