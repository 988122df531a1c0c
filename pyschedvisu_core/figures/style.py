"""Shared drawing helpers of the figures: colours and font, plain-dict traces (plotly.js reads
them as is), base64 typed arrays, paper annotations and the wrapping of notes."""

from __future__ import annotations

import base64
import math
import struct
from array import array
from collections.abc import Iterable
from typing import Any

_INK = "#1f2d3d"
_MUTED = "#5b6770"
_HEADER_FILL = "#2f3e4e"
_ROW_FILLS = ("#ffffff", "#f1f4f7")
_SUM_FILL = "#dde4ea"
_FONT = "DejaVu Sans, Arial, sans-serif"


#: A plotly trace as a plain dict (plotly.js reads it as is).
Trace = dict[str, Any]
#: What ``template="none"`` becomes in a validated figure: plotly.js defaults, no styling.
_NO_TEMPLATE: dict[str, Any] = {"data": {"scatter": [{"type": "scatter"}]}}


def _scatter(**props: Any) -> Trace:
    # Plain dicts: plotly.py's validation of go.Scatter cost more than building the page.
    return {"type": "scatter", **props}


def _heatmap(**props: Any) -> Trace:
    return {"type": "heatmap", **props}


def typed_array(values: Iterable[float | None]) -> dict[str, str]:
    """A plotly.js typed array (float32, base64); ``None`` becomes NaN (a break in a path)."""
    arr = array("f", (math.nan if v is None else v for v in values))
    return {"dtype": "f4", "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_array(obj: Any) -> list[float]:
    """Values of a plotly data array: a list, a tuple or a ``{"dtype", "bdata"}`` typed array."""
    if isinstance(obj, dict) and "bdata" in obj:
        codes = {
            "f4": "f",
            "f8": "d",
            "i4": "i",
            "u4": "I",
            "i2": "h",
            "u2": "H",
            "i1": "b",
            "u1": "B",
        }
        code = codes[str(obj["dtype"])]
        raw = base64.b64decode(obj["bdata"])
        return [float(v) for v in struct.unpack(f"<{len(raw) // struct.calcsize(code)}{code}", raw)]
    return [math.nan if v is None else float(v) for v in obj]


def _note(
    x: float,
    y: float,
    text: str,
    *,
    size: int,
    color: str = _INK,
    xanchor: str = "left",
    yanchor: str = "top",
    name: str = "",
) -> dict[str, Any]:
    return {
        "xref": "paper",
        "yref": "paper",
        "x": x,
        "y": y,
        "text": text,
        "showarrow": False,
        "xanchor": xanchor,
        "yanchor": yanchor,
        "align": "left",
        "font": {"size": size, "color": color},
        "name": name,
    }


#: Characters per line of the notes (8 px text across the page's 719 px).
NOTE_WIDTH = 152


def wrap(text: str, width: int = NOTE_WIDTH) -> str:
    """``text`` broken with ``<br>`` at spaces before ``width`` characters: plotly.js does not
    wrap annotations, and a long note ran off the page."""
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        if current and len(current) + 1 + len(word) > width:
            lines.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    lines.append(current)
    return "<br>".join(lines)
