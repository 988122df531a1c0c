"""Machine groups named by model set and, for identical scanners, StationName / serial (DOMAIN §7)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyschedvisu.synth.truth import Rules
from pyschedvisu.synth.truth import _group as oracle_group
from pyschedvisu_core import schema
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.machines import identifier, machine_specs, match_group
from pyschedvisu_core.studies import MIXED, build_studies, split_mixed

SPECT = ["nm830", "ct540"]
MACHINES: dict[str, Any] = {
    "SPECT 1": {"models": SPECT, "station_names": ["NUK-SPECT1"]},
    "SPECT 2": {"models": SPECT, "station_names": ["NUK-SPECT2"], "device_serial_numbers": []},
    "SPECT 1_NoCT": {"models": ["nm830"], "station_names": ["NUK-SPECT1"]},
    "SPECT 2_NoCT": {"models": ["nm830"], "device_serial_numbers": ["GE-870-1102"]},
    "PET": ["pet"],
}


@pytest.mark.parametrize(
    ("models", "stations", "serials", "group"),
    [
        (["NM830", "CT540"], ["NUK-SPECT1"], [], "SPECT 1"),
        (["NM 830", "CT_540"], ["nuk-spect2 "], ["x"], "SPECT 2"),  # names compare minified
        (["NM830", "CT540"], ["NUK-SPECT3"], [], None),  # an unknown scanner of that model
        (["NM830", "CT540"], [], [], None),  # no station at all: cannot tell which
        (["NM830", "CT540"], ["NUK-SPECT1", "NUK-SPECT2"], [], None),  # both: never guessed
        (["NM830"], ["NUK-SPECT1"], [], "SPECT 1_NoCT"),
        (["NM830"], [], ["GE-870-1102"], "SPECT 2_NoCT"),  # by serial number alone
        (["PET"], ["ANY"], ["ANY"], "PET"),  # a bare entry: any station
        (["PET", "CT540"], [], [], None),
    ],
)
def test_study_matches_the_entry_of_its_models_and_identifiers(
    models: list[str], stations: list[str], serials: list[str], group: str | None
) -> None:
    assert match_group(MACHINES, models, stations, serials) == group


def test_a_bare_entry_is_the_catch_all_of_its_model_set_and_the_specific_one_wins() -> None:
    machines = {"Other SPECT": SPECT, "SPECT 1": {"models": SPECT, "station_names": ["S1"]}}
    assert match_group(machines, SPECT, ["S1"]) == "SPECT 1"
    assert match_group(machines, SPECT, ["S9"]) == "Other SPECT"
    assert match_group(machines, SPECT) == "Other SPECT"
    # station and serial both named beat station alone
    both = {
        "A": {"models": SPECT, "station_names": ["S1"]},
        "B": {"models": SPECT, "station_names": ["S1"], "device_serial_numbers": ["42"]},
    }
    assert match_group(both, SPECT, ["S1"], ["42"]) == "B"
    assert match_group(both, SPECT, ["S1"], ["43"]) == "A"


def test_identifiers_are_normalised_like_model_names_but_keep_their_punctuation() -> None:
    assert identifier(" NUK-SPECT 1\x00") == "nuk-spect1"
    assert identifier("   ") is None
    (spec,) = machine_specs({"X": {"models": ["Symbia T16", "b"], "station_names": "S 1"}})
    assert (spec.models, spec.stations) == ("b,symbiat16", ("s1",))


# -- the synthetic department's truth is an independent oracle of the same rule -------------

_models = st.sets(st.sampled_from(["nm830", "ct540", "pet", "ctx"]), min_size=1, max_size=3)
_ids = st.sets(st.sampled_from(["S1", "S2", "s 1", "42"]), max_size=2)
_entry = st.one_of(
    _models.map(sorted),
    st.fixed_dictionaries(
        {"models": _models.map(sorted)},
        optional={"station_names": _ids.map(sorted), "device_serial_numbers": _ids.map(sorted)},
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["A", "B", "C", "D"]), _entry, min_size=1, max_size=4),
    _models,
    _ids,
    _ids,
)
def test_core_lookup_agrees_with_the_synthetic_truth(
    machines: dict[str, Any], models: set[str], stations: set[str], serials: set[str]
) -> None:
    rules = Rules(machines=machines, descriptions={}, retake_split_s=3540)
    want = oracle_group(
        rules,
        {minify_machine(m) for m in models},
        {i for s in stations if (i := identifier(s))},
        {i for s in serials if (i := identifier(s))},
    )
    assert match_group(machines, sorted(models), sorted(stations), sorted(serials)) == want


# -- in the study table --------------------------------------------------------------------

D = dt.date(2024, 3, 4)


def _t(h: int, m: int = 0) -> dt.datetime:
    return dt.datetime.combine(D, dt.time(h, m))


def _series(rows: list[tuple[str, str, str, str | None, int, int]]) -> pl.DataFrame:
    """(study, patient, model, station, start minute, end minute) from 08:00."""
    return pl.DataFrame(
        [
            {
                "date": D,
                "patient_key": patient,
                "study_uid": study,
                "series_uid": f"{study}-{i}",
                "study_description": "Skelett",
                "series_description": "acq",
                "protocol_name": None,
                "institution": "ksseeland",
                "modality": "CT" if model.startswith("CT") else "NM",
                "n_instances": 1,
                "machine": model,
                "start": _t(8) + dt.timedelta(minutes=a),
                "end": _t(8) + dt.timedelta(minutes=b),
                "station_name": station,
                "device_serial_number": None,
            }
            for i, (study, patient, model, station, a, b) in enumerate(rows)
        ],
        schema=schema.SERIES_SCHEMA,
    )


def _build(frame: pl.DataFrame, machines: dict[str, Any]) -> pl.DataFrame:
    return build_studies(
        frame,
        machines=machines,
        labels={"spect1": {"OS": ["skelett"]}, "spect2": {"OS": ["skelett"]}, "pet": {}},
        prep_minutes={"spect1": 10, "spect2": 10},
        retake_split_s=3540,
    ).collect()


def test_two_identical_scanners_are_two_schedules_that_never_cut_each_other() -> None:
    # A on scanner 1 has a pause between its two series; B is scanned meanwhile on scanner 2:
    # B cuts A into takes on one scanner, not on two
    frame = _series(
        [
            ("A", "p1", "NM830", "NUK-SPECT1", 0, 20),
            ("A", "p1", "CT540", "NUK-SPECT1", 50, 55),
            ("B", "p2", "NM830", "NUK-SPECT2", 25, 40),
            ("B", "p2", "CT540", "NUK-SPECT2", 41, 45),
            ("C", "p3", "NM830", "NUK-SPECT1", 25, 40),  # scanner 1 before the pause ends
        ]
    )
    out = _build(frame, MACHINES).sort("study_key")
    assert out.select("study_key", "machine").rows() == [
        ("A_1", "SPECT 1"),
        ("A_2", "SPECT 1"),  # cut by C (another patient on the same scanner), not by B
        ("B_1", "SPECT 2"),
        ("C_1", "SPECT 1"),  # no CT: SPECT 1_NoCT, the same display machine
    ]
    # one model set without identifiers: the two scanners were one schedule, B cut A too
    merged = _build(frame, {"SPECT": SPECT, "SPECT_NoCT": ["nm830"]})
    assert set(merged["machine"]) == {"SPECT"}


def test_unknown_or_ambiguous_scanner_is_a_mixed_case_that_names_its_stations() -> None:
    frame = _series(
        [
            ("A", "p1", "NM830", "NUK-SPECT3", 0, 20),
            ("A", "p1", "CT540", "NUK-SPECT3", 21, 25),
            ("B", "p2", "NM830", "NUK-SPECT1", 30, 40),  # NM on one scanner, CT on the other
            ("B", "p2", "CT540", "NUK-SPECT2", 41, 45),
        ]
    )
    out = _build(frame, MACHINES)
    _, mixed = (f.collect() for f in split_mixed(out))
    assert set(out["machine"]) == {MIXED}
    assert mixed.sort("study_uid").select("models", "stations", "serials").rows() == [
        ("ct540,nm830", "nuk-spect3", ""),
        ("ct540,nm830", "nuk-spect1,nuk-spect2", ""),
    ]
