"""The synthetic nuclear-medicine department: DICOM files with their ground truth.

``generate(out, start, end, seed)`` writes ``out/dicom/**`` and ``out/truth/*.parquet``; see
:mod:`pyschedvisu.synth.generate` for the layout and :mod:`pyschedvisu.synth.plan` for the cases.
``department=SEELAND`` writes the same days under another hospital's names
(:mod:`pyschedvisu.synth.department`).
"""

from __future__ import annotations

from pyschedvisu.synth.department import DEPARTMENTS, SEELAND, Department
from pyschedvisu.synth.generate import VERSION, SynthSummary, combine_truth, generate, truth_frames

__all__ = [
    "DEPARTMENTS",
    "SEELAND",
    "VERSION",
    "Department",
    "SynthSummary",
    "combine_truth",
    "generate",
    "truth_frames",
]
