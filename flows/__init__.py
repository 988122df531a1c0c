"""Prefect flows of pySchedVisu: they compose the tasks of ``tasks/`` and nothing else.

- :func:`flows.weekly.weekly_report`: retrieve the needed days, extract, build, render, e-mail.
- :func:`flows.backfill.backfill`: retrieve and extract a range of days.

Deployed from ``prefect.yaml`` (weekly cron + manual backfill); ``pyschedvisu run`` runs
them in Prefect's local mode.
"""
