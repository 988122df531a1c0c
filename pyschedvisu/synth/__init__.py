"""The synthetic nuclear-medicine department: DICOM files with their ground truth.

``generate(out, start, end, seed)`` writes ``out/dicom/**`` and ``out/truth/*.parquet``; see
:mod:`pyschedvisu.synth.generate` for the layout and :mod:`pyschedvisu.synth.plan` for the cases.
"""

from __future__ import annotations

from pyschedvisu.synth.generate import VERSION, SynthSummary, combine_truth, generate

__all__ = ["VERSION", "SynthSummary", "combine_truth", "generate"]
