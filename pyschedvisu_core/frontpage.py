"""The frame of the report's one-panel pages (the summary, the planned / performed summary,
the trends and the network pages): the title block, the notes and footer, and the A4 layout
with its rule under the header, in the style of the machine pages."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyschedvisu_core import figures as fig


def _header(
    title: str, subtitle: str, right: str, notes: Sequence[str], notes_y: float
) -> list[dict[str, Any]]:
    return [
        fig._note(0, 1.0, f"<b>{title}</b>", size=22, name="title"),
        fig._note(0, 0.972, subtitle, size=12, color=fig._MUTED, name="subtitle"),
        fig._note(1, 1.0, f"<b>{right}</b>", size=22, xanchor="right", name="machine"),
        fig._note(1, 0.972, "", size=10, color=fig._MUTED, xanchor="right", name="generated"),
        fig._note(0, notes_y, "<br>".join(notes), size=8, color=fig._MUTED, name="notes"),
        fig._note(0, -0.008, "", size=8, color=fig._MUTED, yanchor="top", name="footer"),
    ]


def _layout(annotations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "template": fig._NO_TEMPLATE,
        "width": fig.PAGE_WIDTH,
        "height": fig.PAGE_HEIGHT,
        "margin": {"l": 50, "r": 25, "t": 25, "b": 28},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "font": {"family": fig._FONT, "color": fig._INK, "size": 10},
        "showlegend": False,
        "hovermode": "closest",
        "shapes": [
            {
                "type": "line",
                "xref": "paper",
                "yref": "paper",
                "x0": 0,
                "x1": 1,
                "y0": 0.952,
                "y1": 0.952,
                "line": {"color": fig._HEADER_FILL, "width": 2},
            }
        ],
        "annotations": annotations,
        **extra,
    }
