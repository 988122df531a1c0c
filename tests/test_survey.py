"""``discover``'s aggregation (pure): what a PACS holds, told against a config, and the draft."""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import Any

import polars as pl
import pytest

from pyschedvisu.config import Settings, load_settings
from pyschedvisu.config_draft import draft_toml
from pyschedvisu_core import survey, surveydraft
from pyschedvisu_core.survey import SURVEY_SERIES_SCHEMA, SURVEY_STUDY_SCHEMA

MON = dt.date(2024, 3, 4)
DAYS = [MON + dt.timedelta(days=i) for i in range(5)]
OURS = "Kantonsspital Seeland"


def department() -> tuple[pl.DataFrame, pl.DataFrame]:
    """A week: a PET/CT (one model), two identical SPECT/CT told apart by StationName only
    (one of them also seen without CT), a gamma camera, foreign images, excluded series."""
    studies: list[dict[str, Any]] = []
    series: list[dict[str, Any]] = []

    def study(
        day: dt.date,
        desc: str,
        parts: list[tuple[str, str, str | None]],
        *,
        inst: str = OURS,
        reason: str | None = None,
    ) -> None:
        uid = f"st{len(studies)}"
        studies.append({"date": day, "study_uid": uid, "study_description": desc, "reason": reason})
        if reason:
            return
        for k, (modality, model, station) in enumerate(parts):
            series.append(
                {
                    "date": day,
                    "study_uid": uid,
                    "series_uid": f"{uid}.{k}",
                    "modality": modality,
                    "series_description": "acq",
                    "protocol_name": desc,
                    "institution": inst,
                    "n_instances": 1,
                    "study_description": desc,
                    "model": model,
                    "station_name": station,
                    "device_serial_number": None,
                    "reason": None,
                }
            )

    spect = [("NM", "NM/CT 870 DR", None), ("CT", "Optima CT540", None)]
    for day in DAYS:
        for i in range(8):
            study(day, "FDG PET/CT Rumpf" if i % 2 else "PSMA PET/CT", [("CT", "Discovery MI", "PET2"), ("PT", "Discovery MI", "PET2")])  # fmt: skip
        for station in ("NUK-SPECT1", "NUK-SPECT2"):
            for _ in range(4):
                study(day, "Skelettszintigraphie", [(m, mod, station) for m, mod, _ in spect])
        study(day, "Lungenventilation", [("NM", "NM/CT 870 DR", "NUK-SPECT1")])  # no CT
        study(day, "Schilddruese", [("NM", "Infinia", "INF")], inst="KSSeeland")
        study(day, "QC Daily", [], reason="patient_id_rejected")
    # images of another hospital, one study of two scanners, a derived series
    study(MON, "PET-CT", [("PT", "Biograph Vision", "X")], inst="Hopital de Morges")
    study(MON, "Skelett", [("NM", "NM/CT 870 DR", "NUK-SPECT1"), ("CT", "Optima CT540", "NUK-SPECT2")])  # fmt: skip
    study(MON, "Skelett", [("NM", "NM/CT 870 DR", "NUK-SPECT1"), ("CT", "Discovery MI", "PET2")])
    series[0] = {**series[0], "series_description": "Fusion PET-CT", "reason": "series_description_excluded"}  # fmt: skip
    return (
        pl.DataFrame(studies, schema=SURVEY_STUDY_SCHEMA),
        pl.DataFrame(series, schema=SURVEY_SERIES_SCHEMA),
    )


def test_institutions_told_raw_and_normalised_with_counts_and_days() -> None:
    _, series = department()
    table = survey.institutions(series, accepted=["kantonsspitalseeland"])
    rows = {r["institution"]: r for r in table.iter_rows(named=True)}
    assert rows[OURS]["normalised"] == "kantonsspitalseeland" and rows[OURS]["accepted"]
    assert rows["KSSeeland"]["accepted"] is False and rows["KSSeeland"]["studies"] == 5
    assert (rows["Hopital de Morges"]["first"], rows["Hopital de Morges"]["last"]) == (MON, MON)


def test_combinations_name_the_group_they_match_or_none() -> None:
    _, series = department()
    machines = {
        "PET": ["discoverymi"],
        "SPECT 1": {"models": ["nm/ct870dr", "optimact540"], "station_names": ["NUK-SPECT1"]},
    }
    table = survey.combinations_table(series, machines, ["kantonsspitalseeland"])
    got = {(r["models"], r["machine_group"]): r for r in table.iter_rows(named=True)}
    assert got[("discoverymi", "PET")]["studies"] == 40
    assert got[("discoverymi", "PET")]["accepted_studies"] == 40
    # the study whose NM and CT carry both stations is camera 1's: no other entry claims it
    spect1 = got[("nm/ct870dr,optimact540", "SPECT 1")]
    assert (spect1["studies"], spect1["station_names"]) == (21, "NUK-SPECT1, NUK-SPECT2")
    # the other camera (no entry for its station): mixed cases
    other = got[("nm/ct870dr,optimact540", None)]
    assert (other["studies"], other["station_names"]) == (20, "NUK-SPECT2")
    assert (other["first"], other["last"]) == (MON, DAYS[-1])
    equip = survey.equipment_table(series)
    assert {r["station_name"] for r in equip.iter_rows(named=True) if r["model"] == "NM/CT 870 DR"} == {"NUK-SPECT1", "NUK-SPECT2"}  # fmt: skip


def test_descriptions_per_machine_get_their_label_or_other() -> None:
    studies, series = department()
    table = survey.descriptions_table(
        studies,
        series,
        {"PET": ["discoverymi"]},
        {"pet": {"FDG": ["fdgpet/ctrumpf"]}},
        ["kantonsspitalseeland"],
    )
    labels = {r["description"]: r["label"] for r in table.iter_rows(named=True)}
    assert labels == {"FDG PET/CT Rumpf": "FDG", "PSMA PET/CT": "OTHER"}


def test_excluded_values_never_a_patient_id() -> None:
    studies, series = department()
    table = survey.excluded_table(studies, series)
    rows = {(r["reason"], r["value"]): r["count"] for r in table.iter_rows(named=True)}
    assert rows == {
        ("patient_id_rejected", ""): 5,
        ("series_description_excluded", "Fusion PET-CT"): 1,
    }


def test_draft_institutions_machines_identical_scanners_no_ct_and_left_out() -> None:
    studies, series = department()
    d = surveydraft.draft(studies, series)
    assert d.accepted == ["kantonsspitalseeland", "ksseeland", "mixed"]  # not the 1-study one
    table = d.machines_table()
    assert table["Discovery MI"] == ["discoverymi"]
    assert table["NM/CT 870 DR NUK-SPECT1"] == {
        "models": ["nm/ct870dr", "optimact540"],
        "station_names": ["NUK-SPECT1"],
    }
    assert table["NM/CT 870 DR NUK-SPECT2"] == {
        "models": ["nm/ct870dr", "optimact540"],
        "station_names": ["NUK-SPECT2"],
    }
    # seen without CT on camera 1; camera 2 never was, but its _NoCT entry is drafted too
    assert table["NM/CT 870 DR NUK-SPECT1_NoCT"] == {
        "models": ["nm/ct870dr"],
        "station_names": ["NUK-SPECT1"],
    }
    assert "NM/CT 870 DR NUK-SPECT2_NoCT" in table and table["Infinia"] == ["infinia"]
    assert sorted(d.names) == ["discoverymi", "infinia", "nm/ct870drnuk-spect1", "nm/ct870drnuk-spect2"]  # fmt: skip
    # the studies of two scanners are no scanner of their own
    assert sorted((m, n, why.split(" ")[0]) for m, _, n, why in d.left_out) == [
        ("discoverymi,nm/ct870dr", 1, "models"),
        ("nm/ct870dr,optimact540", 1, "StationNames"),
    ]
    assert d.gap_minutes["discoverymi"] == 30 and d.gap_minutes["infinia"] == 60
    assert d.slots["discoverymi"] == [8, 8, 8, 8, 8]
    pets = {s.pattern: s.studies for s in d.suggestions["discoverymi"]}
    assert pets == {"fdgpet/ctrumpf": 20, "psmapet/ct": 20}


def test_the_draft_written_as_toml_validates_and_keeps_the_pacs_settings(tmp_path: Any) -> None:
    studies, series = department()
    settings = Settings(pacs={"host": "pacs.seeland.test", "port": 104, "called_ae": "SEEPACS"})
    text = draft_toml(settings, surveydraft.draft(studies, series), title="test")
    path = tmp_path / "draft.toml"
    path.write_text(text)
    loaded = load_settings(path)
    assert (loaded.pacs.host, loaded.pacs.port) == ("pacs.seeland.test", 104)
    assert loaded.descriptions["discoverymi"] == {}  # the labels are the user's to name
    assert '# "FDG PET/CT Rumpf" = ["fdgpet/ctrumpf"]  # 20 studies' in text
    assert "'Hopital de Morges' -> hopitaldemorges: 1" in text
    assert tomllib.loads(text)["machines"]["NM/CT 870 DR NUK-SPECT2"]["station_names"] == [
        "NUK-SPECT2"
    ]


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_draft_of_nothing_or_of_foreign_images_only_still_validates(share: float, tmp_path: Any) -> None:  # fmt: skip
    studies, series = department()
    d = surveydraft.draft(studies, series, min_institution_share=share + 1e-9)
    path = tmp_path / "d.toml"
    path.write_text(draft_toml(Settings(), d, title="test"))
    load_settings(path)
    if share:
        assert d.accepted == ["mixed"] and d.machines == []


def test_draft_counts_an_institution_spelt_two_ways_as_one_name() -> None:
    studies, series = department()
    # half of the PET/CT studies spell it with accents: one name for the rule, one share
    spelt = series.with_columns(
        pl.when(pl.col("study_uid").str.slice(2).cast(pl.Int32) % 2 == 0)
        .then(pl.col("institution").str.replace("Seeland", "Séeland"))
        .otherwise(pl.col("institution"))
        .alias("institution")
    )
    d = surveydraft.draft(studies, spelt, min_institution_share=0.6)
    assert d.accepted == ["kantonsspitalseeland", "mixed"]
    shares = {raw: share for raw, _, _, share, _ in d.institutions}
    assert shares["Kantonsspital Séeland"] == shares[OURS] > 0.6
