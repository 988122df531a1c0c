"""Per-run stamps (the page itself is cacheable) and the print form of a figure: hover-only
traces dropped, line traces drawn as one path shape each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyschedvisu_core.figures.spec import HOVER_META
from pyschedvisu_core.figures.style import _INK, decode_array, wrap


def stamp(
    fig: dict[str, Any],
    *,
    generated: str = "",
    footer: str = "",
    extra_notes: Sequence[str] = (),
) -> dict[str, Any]:
    """A copy of a figure dict with the generation time, footer and data-quality notes set."""
    layout = dict(fig.get("layout", {}))
    anns = []
    for ann in layout.get("annotations", []):
        ann = dict(ann)
        if ann.get("name") == "generated":
            ann["text"] = generated
        elif ann.get("name") == "footer":
            ann["text"] = footer
        elif ann.get("name") == "notes" and extra_notes:
            ann["text"] = ann["text"] + "".join(f"<br><b>{wrap('⚠ ' + n)}</b>" for n in extra_notes)
        anns.append(ann)
    layout["annotations"] = anns
    return {**fig, "layout": layout}


def _svg_path(xs: Sequence[float], ys: Sequence[float], close: bool) -> str:
    """An SVG path in data coordinates, one subpath per NaN-separated run of points."""
    parts: list[str] = []
    run: list[str] = []
    for x, y in zip(xs, ys, strict=True):
        if x != x or y != y:  # NaN: the end of a run
            if run:
                parts.append("M" + "L".join(run) + ("Z" if close else ""))
                run = []
            continue
        run.append(f"{round(x, 3):g},{round(y, 3):g}")
    if run:
        parts.append("M" + "L".join(run) + ("Z" if close else ""))
    return "".join(parts)


def _as_shape(trace: dict[str, Any], layer: str) -> dict[str, Any] | None:
    """One path shape drawing a line trace (``mode="lines"``), else None.

    Plotly.js draws every NaN-separated run of a line trace as its own SVG element, so a
    trace of 3000 boxes costs 3000 styled elements; a path shape is one element with as
    many subpaths, the same drawing at a fraction of the cost (and of the PDF's). Even a
    single-run trace (a violin, a curve) costs more as a trace than as a shape.
    """
    if trace.get("type", "scatter") != "scatter" or trace.get("mode") != "lines":
        return None
    xs, ys = decode_array(trace.get("x", [])), decode_array(trace.get("y", []))
    if len(xs) != len(ys):
        return None
    filled = trace.get("fill") == "toself"
    line = dict(trace.get("line", {}))
    if "color" not in line:
        line["color"] = trace.get("fillcolor", _INK)
    shape: dict[str, Any] = {
        "type": "path",
        "path": _svg_path(xs, ys, filled),
        "xref": trace.get("xaxis", "x"),
        "yref": trace.get("yaxis", "y"),
        "line": line,
        "opacity": trace.get("opacity", 1),
        "layer": layer,
        "name": str(trace.get("meta", "")),
    }
    if filled:
        # Boxes of one label overlap: "evenodd" (plotly's default) would punch holes.
        shape.update(fillcolor=trace.get("fillcolor", line["color"]), fillrule="nonzero")
    return shape


def printable(fig: dict[str, Any]) -> dict[str, Any]:
    """A copy of a figure dict for paper: the same drawing, lighter to render.

    Hover-only traces go (nothing to show on paper). Line traces (boxes, hatching, gap
    lines, table cells, violins and their means, curves) become one path shape each, in
    trace order: between the grid and the traces, or above the traces when a trace of their
    subplot comes before them (the means over the violin points). A trace with a legend
    entry stays, emptied, for that entry.
    """
    data: list[dict[str, Any]] = []
    shapes = list(fig.get("layout", {}).get("shapes", []))
    drawn: set[tuple[str, str]] = set()  # subplots with a trace drawn so far
    for trace in fig.get("data", []):
        if trace.get("meta") == HOVER_META:
            continue
        axes = (str(trace.get("xaxis", "x")), str(trace.get("yaxis", "y")))
        shape = _as_shape(trace, "above" if axes in drawn else "between")
        if shape is None:
            data.append(trace)
            drawn.add(axes)
            continue
        shapes.append(shape)
        if trace.get("showlegend"):
            data.append({**trace, "x": [None], "y": [None]})
    return {**fig, "data": data, "layout": {**fig.get("layout", {}), "shapes": shapes}}
