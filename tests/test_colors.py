"""Report colours: contrast on white and distances between the colours of one page (DOMAIN §4).

Distances are CIEDE2000 (:func:`pyschedvisu_core.colors.delta_e`), checked against the
reference pairs of Sharma, Wu & Dalal (2005).
"""

from __future__ import annotations

import itertools

import pytest

from pyschedvisu.config import Settings
from pyschedvisu_core import colors as C
from pyschedvisu_core import schedule as sch

# (L1, a1, b1, L2, a2, b2, ΔE00): pairs 1, 7, 13, 17, 19, 25, 31, 34 of the published table.
SHARMA = [
    (50.0, 2.6772, -79.7751, 50.0, 0.0, -82.7485, 2.0425),
    (50.0, 0.0, 0.0, 50.0, -1.0, 2.0, 2.3669),
    (50.0, 2.4900, -0.0010, 50.0, -2.4900, 0.0011, 7.2195),
    (50.0, 2.5, 0.0, 73.0, 25.0, -18.0, 27.1492),
    (50.0, 2.5, 0.0, 50.0, 3.1736, 0.5854, 1.0000),
    (60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644),
    (90.8027, -2.0831, 1.4410, 91.1528, -1.6435, 0.0447, 1.4441),
    (2.0776, 0.0795, -1.1350, 0.9033, -0.0636, -0.5514, 0.9082),
]


@pytest.mark.parametrize("pair", SHARMA)
def test_ciede2000_matches_the_published_reference_pairs(pair: tuple[float, ...]) -> None:
    l1, a1, b1, l2, a2, b2, want = pair
    assert C.delta_e_lab((l1, a1, b1), (l2, a2, b2)) == pytest.approx(want, abs=1e-4)
    assert C.delta_e_lab((l2, a2, b2), (l1, a1, b1)) == pytest.approx(want, abs=1e-4)


def test_contrast_of_black_white_and_a_known_grey() -> None:
    assert C.contrast_on_white("#000000") == pytest.approx(21.0)
    assert C.contrast_on_white("white") == pytest.approx(1.0)
    assert C.contrast_on_white("#767676") == pytest.approx(4.54, abs=0.01)  # WCAG's classic


def test_colour_strings_parse_or_fail_loudly() -> None:
    assert C.to_rgb("#D46300") == C.to_rgb("rgb(212, 99, 0)") == (212, 99, 0)
    assert C.to_rgb("#fff") == C.to_rgb("white") == (255, 255, 255)
    assert C.to_rgb("gold") == (255, 215, 0)
    with pytest.raises(ValueError, match="not a colour"):
        C.to_rgb("goldish")


def page_colors(settings: Settings, machine_key: str) -> dict[str, str]:
    """Every description colour a page of the machine can show: its labels, the later-take
    shades of its split descriptions, OTHER."""
    order = list(settings.descriptions[machine_key])
    labels = [*order, sch.OTHER]
    labels += [f"{d} [2]" for d in order if d in settings.draw.retake_descriptions]
    return {lab: sch.color_of(lab, order, settings.draw.colors) for lab in labels}


MACHINES = Settings().display_machines()


@pytest.mark.parametrize("machine", MACHINES)
def test_every_description_colour_has_contrast_3_to_1_on_white(machine: str) -> None:
    for label, color in page_colors(Settings(), machine).items():
        assert C.contrast_on_white(color) >= C.MIN_CONTRAST, (label, color)


@pytest.mark.parametrize("machine", MACHINES)
def test_any_two_colours_of_one_page_differ_by_delta_e_10(machine: str) -> None:
    colours = page_colors(Settings(), machine)
    assert len(colours) >= 10  # the labels, OTHER and the later takes: a real test
    for (la, ca), (lb, cb) in itertools.combinations(colours.items(), 2):
        assert C.delta_e(ca, cb) >= C.MIN_DELTA_E, (la, ca, lb, cb, C.delta_e(ca, cb))


def test_the_2019_palette_was_barely_visible_on_white() -> None:
    """Regression: "gold", "pink", "lightblue"... were barely visible on white."""
    old = ["orange", "gold", "red", "pink", "brown", "orchid", "cornflowerblue", "lightblue"]
    assert [c for c in old if C.contrast_on_white(c) < C.MIN_CONTRAST] == [
        "orange",
        "gold",
        "pink",
        "orchid",
        "cornflowerblue",
        "lightblue",
    ]
