"""Pure transforms of pySchedVisu: polars frames in, frames out; figures from frames.

Nothing in this package does I/O or imports Prefect; the shell (``pyschedvisu``,
``tasks``, ``flows``) feeds it plain values.
"""
