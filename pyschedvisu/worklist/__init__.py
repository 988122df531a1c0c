"""Planned against performed (DOMAIN §7): the Modality Worklist next to the PACS.

    store.py     snapshots of a day and the plan folded from them (<data_dir>/worklist/)
    snapshot.py  take_snapshot: one C-FIND round on the worklist, kept atomically, folded
    matches.py   update_matches: every plan against the study table -> plan_matches.parquet

Identifiers and answers are read by :mod:`pyschedvisu_core.worklist`, matched by
:mod:`pyschedvisu_core.planmatch`; the C-FIND goes through the PACS client's adapter
(:mod:`pyschedvisu.adapters.worklist`), configured from ``[worklist]``.
"""
