"""Retrieval rules (DOMAIN §2): study / series / institution filters and series timing."""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from pydicom import dcmread
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pyschedvisu import reference as ref
from pyschedvisu_core.labels import minify_machine
from pyschedvisu_core.schema import EXCLUDED_SCHEMA, Reason
from pyschedvisu_core.series import (
    SeriesTiming,
    brain_fdg_minutes,
    filter_institutions,
    filter_series,
    filter_studies,
    instances_needed,
    needs_file_headers,
    normalise_institution,
    series_timing,
)

DAY = dt.date(2024, 3, 4)


def excluded(rows: list[tuple[str, str | None, str]], level: str) -> pl.DataFrame:
    """An EXCLUDED_SCHEMA frame of (study_uid, series_uid, reason) rows on DAY."""
    return pl.DataFrame(
        {
            "date": [DAY] * len(rows),
            "level": [level] * len(rows),
            "study_uid": [r[0] for r in rows],
            "series_uid": [r[1] for r in rows],
            "reason": [r[2] for r in rows],
        },
        schema=EXCLUDED_SCHEMA,
    )


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Centre Hospitalier Universitaire Vaudois", "centrehospitalieruniversitairevaudois"),
        ("  PET  CT   CHUV ", "petctchuv"),
        ("Nuclear Medecine,CHUV", "nuclearmedecine,chuv"),
        ("CHUV\x00", "chuv"),
        ("Médecine Nucléaire CHUV Lausanne", "medecinenucleairechuvlausanne"),
        ("Me\u0301decine\tNucle\u0301aire", "medecinenucleaire"),  # already decomposed
        ("HÔPITAL  de\u00a0Morges", "hopitaldemorges"),  # no-break space is whitespace
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_institution(raw: str | None, expected: str | None) -> None:
    assert normalise_institution(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Biograph64_Vision 600", "biograph64vision600"),
        ("Tandem_Discovery_670", "tandemdiscovery670"),
        ("MILLENNIUM MPR", "millenniummpr"),
        ("Symbia Intevo 16", "symbiaintevo16"),
        ("Discovery 690", "discovery690"),
    ],
)
def test_minify_model_matches_reference_machines(raw: str, expected: str) -> None:
    assert minify_machine(raw) == expected


def test_minify_model_of_every_reference_model_is_in_a_machine_group() -> None:
    """The [models] of the reference config minify to exactly the names the [machines] use."""
    models = ["Biograph64", "Biograph64_Vision 600", "Discovery 690", "Tandem_Discovery_670",
              "BrightSpeed", "MILLENNIUM MPR", "Encore2", "Symbia Intevo 16"]  # fmt: skip
    in_groups = {name for names in ref.MACHINES.values() for name in names}
    assert {minify_machine(m) for m in models} == in_groups


@pytest.mark.parametrize(
    ("description", "minutes"),
    [
        ("FDG Cerveau 10min", 10),
        ("PET FDG cerveau 10 min", 10),
        ("fdg_cerveau_15min", 15),
        ("FDG-Cerveau-20 min", 20),
        ("PET 18F-FDG Brain 12min", 12),
        ("FDG cerveau 10mn", 10),
        ("Cerveau FDG 15'", 15),
        ("FDGCerveau10min", 10),
        ("FDG Cérébral 10min", 10),
        ("PET FDG brain 10 min", 10),
        ("FDG CEREBRAL 120 MIN", 120),
        ("FDG Cerveau 121min", None),
        ("FDG Cerveau 2.5min", None),
        ("FDG Cerveau 1000min", None),
        ("FDG Cerveau 10", None),
        ("FDG Corps entier", None),
        ("FDG Cerveau", None),
        ("FET Cerveau 10min", None),
        ("FDG Cerveau 0min", None),
        ("", None),
        (None, None),
    ],
)
def test_brain_fdg_minutes(description: str | None, minutes: int | None) -> None:
    assert brain_fdg_minutes(description) == minutes


@pytest.mark.parametrize(
    ("modality", "n", "expected"),
    [
        ("CT", 40, [1, 40]),
        ("PT", 2, [1, 2]),
        ("PT", 1, [1]),
        ("CT", 0, [1]),
        ("NM", 1, [1]),
        ("NM", 5, [1]),
        ("pt ", 3, [1, 3]),
    ],
)
def test_instances_needed(modality: str, n: int, expected: list[int]) -> None:
    assert instances_needed(modality, n) == expected


# --------------------------------------------------------------------------- studies


def studies_frame(rows: list[tuple[str, str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [DAY] * len(rows),
            "study_uid": [r[0] for r in rows],
            "patient_id": [r[1] for r in rows],
            "study_description": [r[2] for r in rows],
            "study_time": ["0830"] * len(rows),  # passed through untouched
        },
        schema_overrides={"patient_id": pl.String, "study_description": pl.String},
    )


def test_filter_studies_each_rule() -> None:
    studies = studies_frame(
        [
            ("s1", "123456", "PET-CT FDG Tronc"),
            ("s2", "12ab", "PET-CT FDG Tronc"),  # not all digits
            ("s3", "123456", "EXTRINSEQUE"),
            ("s4", "123456", " extrinseque "),  # padding and case do not matter
            ("s5", None, "OS 3 phases"),  # no patient id: rejected
            ("s6", "654321", None),  # no description: kept
            ("s7", "123456", "EXTRINSEQUE CT"),  # exact compare only
            ("s8", "PHANTOM", "EXTRINSEQUE"),  # patient id checked first
            ("s9", "12345 ", "Bone"),  # padded id still all digits
        ]
    )
    kept, out = filter_studies(
        studies, patient_id_pattern=r"^\d+$", description_exclude=["EXTRINSEQUE"]
    )
    assert_frame_equal(kept, studies.filter(pl.col("study_uid").is_in(["s1", "s6", "s7", "s9"])))
    assert_frame_equal(
        out,
        excluded(
            [
                ("s2", None, Reason.PATIENT_ID),
                ("s3", None, Reason.STUDY_DESCRIPTION),
                ("s4", None, Reason.STUDY_DESCRIPTION),
                ("s5", None, Reason.PATIENT_ID),
                ("s8", None, Reason.PATIENT_ID),
            ],
            "study",
        ),
    )


def test_filter_studies_patient_id_must_fully_match() -> None:
    studies = studies_frame([("a", "123", "x"), ("b", "123x", "x"), ("c", "x123", "x")])
    kept, _ = filter_studies(studies, patient_id_pattern=r"\d+", description_exclude=[])
    assert kept["study_uid"].to_list() == ["a"]


def test_filter_studies_python_only_regex_falls_back() -> None:
    """A look-ahead is valid for ``re`` (the config validator) but not for polars' engine."""
    studies = studies_frame([("a", "123", "x"), ("b", "000", "x"), ("c", "12a", "x")])
    kept, out = filter_studies(studies, patient_id_pattern=r"(?!0+$)\d+", description_exclude=[])
    assert kept["study_uid"].to_list() == ["a"]
    assert out["study_uid"].to_list() == ["b", "c"]


def test_filter_studies_empty_frame() -> None:
    kept, out = filter_studies(
        studies_frame([]), patient_id_pattern=r"^\d+$", description_exclude=["EXTRINSEQUE"]
    )
    assert kept.height == 0
    assert out.schema == pl.Schema(EXCLUDED_SCHEMA)


# --------------------------------------------------------------------------- series

PATTERNS = list(ref.SERIES_DESCRIPTION_EXCLUDE)
PROTOCOLS = list(ref.SERIES_PROTOCOL_EXCLUDE)
MODALITIES = ["NM", "PT", "CT"]


def series_frame(
    rows: list[tuple[str, str | None, str | None, str | None, int | None]],
) -> pl.DataFrame:
    """Rows of (series_uid, modality, series_description, protocol_name, n_instances)."""
    return pl.DataFrame(
        {
            "date": [DAY] * len(rows),
            "study_uid": ["st"] * len(rows),
            "series_uid": [r[0] for r in rows],
            "modality": [r[1] for r in rows],
            "series_description": [r[2] for r in rows],
            "protocol_name": [r[3] for r in rows],
            "n_instances": [r[4] for r in rows],
            "extra": list(range(len(rows))),  # passthrough column
        },
        schema_overrides={
            "modality": pl.String,
            "series_description": pl.String,
            "protocol_name": pl.String,
            "n_instances": pl.Int32,
        },
    )


def test_filter_series_each_rule() -> None:
    series = series_frame(
        [
            ("1", "PT", "PET WB", "PET FDG", 200),
            ("2", "SR", "Dose report", None, 1),  # modality
            ("3", None, "x", None, 1),  # null modality
            ("4", "CT", "MIP coronal", None, 50),  # ^mip.*
            ("5", "CT", "Patient Protocol", None, 1),  # .+protocol$
            ("6", "PT", "PET Statistics", None, 1),  # .+statistics$
            ("7", "CT", "SAGITAL", None, 1),  # ^sagitals?$ case-insensitive
            ("8", "CT", "sagital reformat", None, 1),  # $ in the pattern: not excluded
            ("9", "NM", "SCREEN CAPTURE", "Shunt_Foie_PoumonNEW", 1),  # description first
            ("10", "NM", "Planar", "SCREENCAPTURE", 1),  # protocol
            ("11", "NM", "Planar", "screencapture", 1),  # protocol compare is exact
            ("12", "NM", "Recon", None, 3),  # NM derived
            ("13", "CT", "Recon", None, 3),  # only NM counts instances
            ("14", "NM", None, None, None),  # nulls never match
            ("15", "CT", "CT AC axial", None, 100),  # .*axial( fuse)?d?$
            ("16", "CT", "  coronal ", None, 100),  # padding stripped
            ("17", "PT", "Fused PET", None, 100),  # ^fused.+
            ("18", "PT", "xfused PET", None, 100),  # anchored at the start
        ]
    )
    kept, out = filter_series(
        series, description_exclude=PATTERNS, protocol_exclude=PROTOCOLS, modalities=MODALITIES
    )
    keep = ["1", "8", "11", "13", "14", "18"]
    assert_frame_equal(kept, series.filter(pl.col("series_uid").is_in(keep)))
    assert_frame_equal(
        out,
        excluded(
            [
                ("st", "2", Reason.MODALITY),
                ("st", "3", Reason.MODALITY),
                ("st", "4", Reason.SERIES_DESCRIPTION),
                ("st", "5", Reason.SERIES_DESCRIPTION),
                ("st", "6", Reason.SERIES_DESCRIPTION),
                ("st", "7", Reason.SERIES_DESCRIPTION),
                ("st", "9", Reason.SERIES_DESCRIPTION),
                ("st", "10", Reason.PROTOCOL),
                ("st", "12", Reason.NM_DERIVED),
                ("st", "15", Reason.SERIES_DESCRIPTION),
                ("st", "16", Reason.SERIES_DESCRIPTION),
                ("st", "17", Reason.SERIES_DESCRIPTION),
            ],
            "series",
        ),
    )


def test_filter_series_no_pattern_excludes_nothing() -> None:
    """Regression: an empty alternation ``^(?:)`` would have matched every description."""
    series = series_frame([("1", "PT", "PET WB", None, 10), ("2", "CT", "MIP", None, 10)])
    kept, out = filter_series(
        series, description_exclude=[], protocol_exclude=[], modalities=MODALITIES
    )
    assert_frame_equal(kept, series)
    assert out.height == 0


def test_filter_series_pattern_with_alternation_is_grouped() -> None:
    """``a|b`` must be anchored as a whole: ``^(?:a|b)``, not ``^a|b``."""
    series = series_frame([("1", "PT", "x b", None, 1), ("2", "PT", "b x", None, 1)])
    kept, _ = filter_series(
        series, description_exclude=["a|b"], protocol_exclude=[], modalities=MODALITIES
    )
    assert kept["series_uid"].to_list() == ["1"]


def test_filter_series_python_only_regex_falls_back() -> None:
    series = series_frame([("1", "PT", "mip", None, 1), ("2", "PT", "mip keep", None, 1)])
    kept, out = filter_series(
        series, description_exclude=[r"mip(?! keep)"], protocol_exclude=[], modalities=MODALITIES
    )
    assert kept["series_uid"].to_list() == ["2"]
    assert out["reason"].to_list() == [Reason.SERIES_DESCRIPTION]


def reference_series_reason(
    row: dict[str, object], patterns: list[str], protocols: list[str]
) -> str | None:
    """Row-by-row statement of DOMAIN §2.2, the oracle for the vectorised filter."""
    modality = row["modality"]
    desc = row["series_description"]
    proto = row["protocol_name"]
    n = row["n_instances"]
    if not isinstance(modality, str) or modality.strip(" \x00") not in MODALITIES:
        return Reason.MODALITY
    if isinstance(desc, str) and any(
        re.match(p, desc.strip(" \x00"), re.IGNORECASE) for p in patterns
    ):
        return Reason.SERIES_DESCRIPTION
    if isinstance(proto, str) and proto.strip(" \x00") in protocols:
        return Reason.PROTOCOL
    if modality.strip(" \x00") == "NM" and isinstance(n, int) and n > 1:
        return Reason.NM_DERIVED
    return None


words = st.sampled_from(
    ["mip", "MIP", "pet", "wb", "fusion", "fused", "axial", "coronal", "statistics", "report",
     "sagital", "static", "screen", "capture", "save", "screens", "ct", "ac", " ", "  ", "_"]
)  # fmt: skip
# DICOM LO/SH values hold no control characters (and Python's ``$`` would match before "\n").
printable = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=8)
descriptions = st.one_of(st.none(), st.lists(words, max_size=5).map(" ".join), printable)
series_rows = st.lists(
    st.tuples(
        st.sampled_from(["PT", "CT", "NM", "SR", "OT", "PT "]) | st.none(),
        descriptions,
        st.sampled_from([None, "SCREENCAPTURE", "Volumetrix MI", "PET FDG", "screencapture"]),
        st.integers(0, 5) | st.none(),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(series_rows)
def test_filter_series_partition_and_oracle(
    rows: list[tuple[str | None, str | None, str | None, int | None]],
) -> None:
    series = series_frame([(str(i), *r) for i, r in enumerate(rows)])
    kept, out = filter_series(
        series, description_exclude=PATTERNS, protocol_exclude=PROTOCOLS, modalities=MODALITIES
    )
    kept_ids = set(kept["series_uid"].to_list())
    out_ids = set(out["series_uid"].to_list())
    assert kept_ids.isdisjoint(out_ids)
    assert kept_ids | out_ids == set(series["series_uid"].to_list())
    assert kept.height + out.height == series.height
    assert_frame_equal(kept, series.filter(pl.col("series_uid").is_in(list(kept_ids))))
    expected = {
        row["series_uid"]: reference_series_reason(row, PATTERNS, PROTOCOLS)
        for row in series.iter_rows(named=True)
    }
    got = dict(zip(out["series_uid"].to_list(), out["reason"].to_list(), strict=True))
    assert got == {k: v for k, v in expected.items() if v is not None}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.text(alphabet="0123456789ab ", max_size=6) | st.none(),
                          st.sampled_from(["EXTRINSEQUE", "extrinseque ", "Bone", None])),
                max_size=20))  # fmt: skip
def test_filter_studies_partition_and_oracle(rows: list[tuple[str | None, str | None]]) -> None:
    studies = studies_frame([(str(i), pid, desc) for i, (pid, desc) in enumerate(rows)])
    kept, out = filter_studies(
        studies, patient_id_pattern=r"^\d+$", description_exclude=["EXTRINSEQUE"]
    )
    assert kept.height + out.height == studies.height
    assert set(kept["study_uid"]).isdisjoint(set(out["study_uid"]))
    for uid, (pid, desc) in enumerate(rows):
        if pid is None or not re.fullmatch(r"\d+", pid.strip(" ")):
            want: str | None = Reason.PATIENT_ID
        elif desc is not None and desc.strip().lower() == "extrinseque":
            want = Reason.STUDY_DESCRIPTION
        else:
            want = None
        got = out.filter(pl.col("study_uid") == str(uid))["reason"].to_list()
        assert got == ([want] if want else [])


# --------------------------------------------------------------------------- institutions

ACCEPTED = list(ref.ACCEPTED_INSTITUTIONS)


def inst_frame(rows: list[tuple[str, str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "date": [DAY] * len(rows),
            "study_uid": [r[0] for r in rows],
            "series_uid": [r[1] for r in rows],
            "institution": [r[2] for r in rows],
            "modality": ["PT"] * len(rows),
        },
        schema_overrides={"institution": pl.String},
    )


def test_filter_institutions_each_case() -> None:
    series = inst_frame(
        [
            ("none", "n1", None),  # no name at all
            ("none", "n2", "  "),
            ("one_ok", "o1", "CHUV"),
            ("one_ok", "o2", "chuv "),  # same name once normalised
            ("one_ok", "o3", None),  # a series without name does not make it mixed
            ("one_bad", "b1", "Hopital de Sion"),
            ("mixed_ok", "m1", "Radiologie CHUV"),
            ("mixed_ok", "m2", "Clinique Cecil"),
            ("mixed_bad", "x1", "Clinique Cecil"),
            ("mixed_bad", "x2", "Hopital de Sion"),
        ]
    )
    kept, out = filter_institutions(series, accepted=ACCEPTED)
    expected = inst_frame(
        [
            ("one_ok", "o1", "chuv"),
            ("one_ok", "o2", "chuv"),
            ("one_ok", "o3", None),  # kept, without a name: dropped from the studies (§3.1)
            ("mixed_ok", "m1", "mixed"),
            ("mixed_ok", "m2", "mixed"),
        ]
    )
    assert_frame_equal(kept, expected)
    assert_frame_equal(
        out,
        excluded(
            [
                ("none", None, Reason.NO_INSTITUTION),
                # the names rejected, normalised: what the operator may need to accept
                ("one_bad", None, f"{Reason.INSTITUTION}: hopitaldesion"),
                ("mixed_bad", None, f"{Reason.INSTITUTION}: cliniquececil, hopitaldesion"),
            ],
            "study",
        ),
    )


def test_filter_institutions_mixed_needs_mixed_accepted() -> None:
    series = inst_frame([("s", "1", "CHUV"), ("s", "2", "Clinique Cecil")])
    kept, out = filter_institutions(series, accepted=["chuv"])
    assert kept.height == 0
    assert out["reason"].to_list() == [f"{Reason.INSTITUTION}: chuv, cliniquececil"]


def test_filter_institutions_accepted_list_is_normalised() -> None:
    series = inst_frame([("s", "1", "PET CT CHUV")])
    kept, _ = filter_institutions(series, accepted=["PET CT CHUV"])
    assert kept["institution"].to_list() == ["petctchuv"]


def test_filter_institutions_accented_name_matches_unaccented_accepted_form() -> None:
    """Regression: "Médecine Nucléaire" was not the accepted "medecinenucleaire..." form."""
    series = inst_frame(
        [
            ("a", "1", "Médecine Nucléaire CHUV Lausanne"),
            ("a", "2", "Medecine Nucleaire CHUV Lausanne"),  # same once unaccented: not mixed
            ("b", "3", "PET CT CHUV"),
        ]
    )
    kept, out = filter_institutions(
        series,
        accepted=["medecinenucleairechuvlausanne", "Pét CT Chuv"],  # list normalised too
    )
    expected = inst_frame(
        [
            ("a", "1", "medecinenucleairechuvlausanne"),
            ("a", "2", "medecinenucleairechuvlausanne"),
            ("b", "3", "petctchuv"),
        ]
    )
    assert_frame_equal(kept, expected)
    assert out.height == 0


def test_filter_institutions_empty_frame() -> None:
    kept, out = filter_institutions(inst_frame([]), accepted=ACCEPTED)
    assert kept.height == 0
    assert out.schema == pl.Schema(EXCLUDED_SCHEMA)


names = st.sampled_from(
    ["CHUV", "chuv ", "Petct CHUV", "Clinique Cecil", "Hopital de Sion", "", None]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), names), max_size=16))
def test_filter_institutions_partition_and_oracle(rows: list[tuple[str, str | None]]) -> None:
    series = inst_frame([(study, str(i), name) for i, (study, name) in enumerate(rows)])
    kept, out = filter_institutions(series, accepted=ACCEPTED)
    # every series is either kept or belongs to exactly one excluded study
    assert set(kept["study_uid"]).isdisjoint(set(out["study_uid"]))
    assert (
        kept.height + series.filter(pl.col("study_uid").is_in(out["study_uid"])).height
        == series.height
    )
    assert out["study_uid"].n_unique() == out.height
    for study in {r[0] for r in rows}:
        found = {normalise_institution(n) for s, n in rows if s == study} - {None}
        if not found:
            want, value = Reason.NO_INSTITUTION, None
        elif len(found) == 1:
            (value,) = found
            want = None if value in ACCEPTED else Reason.INSTITUTION
        else:
            value = "mixed"
            want = None if found & set(ACCEPTED) else Reason.INSTITUTION
        if want == Reason.INSTITUTION:  # followed by the names rejected, sorted
            want += ": " + ", ".join(sorted(n for n in found if n is not None))
        if want is None:
            mine = kept.filter(pl.col("study_uid") == study).select("series_uid", "institution")
            for uid, got in mine.iter_rows():
                # a series without a name of its own is kept without one (§3.1 drops it)
                assert got == (value if normalise_institution(rows[int(uid)][1]) else None)
        else:
            assert out.filter(pl.col("study_uid") == study)["reason"].to_list() == [want]


# --------------------------------------------------------------------------- headers


def put_raw(ds: Dataset, keyword: str, value: bytes) -> None:
    """Store ``value`` as the undecoded bytes of ``keyword`` (what a file / network read gives)."""
    tag = Tag(tag_for_keyword(keyword))
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def header(
    number: int | None = 1,
    time: str | bytes | None = "083000",
    model: str | None = "Biograph64_Vision 600",
    image_type: str = "ORIGINAL\\PRIMARY",
    date: str | None = None,
    **extra: object,
) -> Dataset:
    ds = Dataset()
    if number is not None:
        ds.InstanceNumber = number
    if isinstance(time, bytes):
        put_raw(ds, "AcquisitionTime", time)
    elif time is not None:
        ds.AcquisitionTime = time
    if model is not None:
        ds.ManufacturerModelName = model
    ds.ImageType = image_type.split("\\")
    if date is not None:
        ds.AcquisitionDate = date
    for keyword, value in extra.items():
        if isinstance(value, bytes):
            put_raw(ds, keyword, value)
        else:
            setattr(ds, keyword, value)
    return ds


def at(hh: int, mm: int, ss: int = 0, us: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hh, mm, ss, us)


def test_timing_ct_first_and_last() -> None:
    timing = series_timing("CT", DAY, [header(1, "083000"), header(40, "083512.5")])
    assert timing == SeriesTiming(at(8, 30), at(8, 35, 12, 500000), "Biograph64_Vision 600")


def test_timing_ct_reversed_times_are_swapped() -> None:
    timing = series_timing("CT", DAY, [header(1, "084500"), header(40, "083000")])
    assert (timing.start, timing.end, timing.failed) == (at(8, 30), at(8, 45), None)


def test_timing_ct_across_midnight_without_dates_ends_the_next_day() -> None:
    """Regression: 23:50 then 00:10 with no AcquisitionDate was swapped into 23 h 40 min."""
    timing = series_timing("CT", DAY, [header(1, "235000"), header(40, "001000")])
    next_day = DAY + dt.timedelta(days=1)
    assert (timing.start, timing.end, timing.failed) == (at(23, 50), at(0, 10, day=next_day), None)
    # reversed numbering (instance 1 last acquired): the same 20 minutes
    timing = series_timing("CT", DAY, [header(1, "001000"), header(40, "235000")])
    assert (timing.start, timing.end) == (at(23, 50), at(0, 10, day=next_day))
    # with their own dates both are believed, and nothing orders them (issue 15: this made
    # a 23 h 40 study): failed, the times kept for whoever looks at the failed series
    dated = [header(1, "235000", date="20240304"), header(40, "001000", date="20240304")]
    timing = series_timing("CT", DAY, dated)
    assert (timing.start, timing.end) == (at(0, 10, day=DAY), at(23, 50, day=DAY))
    assert timing.failed is not None and timing.failed.startswith(Reason.UNORDERED_TIMES + ": ")
    # dated across midnight by their own dates: 20 minutes, believed
    crossing = [header(1, "235000", date="20240304"), header(40, "001000", date="20240305")]
    timing = series_timing("CT", DAY, crossing)
    assert (timing.start, timing.end, timing.failed) == (
        at(23, 50),
        at(0, 10, day=DAY + dt.timedelta(days=1)),
        None,
    )


def test_timing_from_acquisition_datetime_when_acquisition_time_is_missing() -> None:
    first = header(1, None, AcquisitionDateTime="20240304082500.5+0100")
    last = header(40, None, AcquisitionDateTime="20240304084500")
    timing = series_timing("PT", DAY, [first, last])
    assert (timing.start, timing.end, timing.failed) == (at(8, 25, 0, 500000), at(8, 45), None)
    # dated by AcquisitionDateTime: no midnight guess (00:10 and 23:50 of one day stay so)
    late = [
        header(1, None, AcquisitionDateTime="20240304001000"),
        header(2, "235000", date="20240304"),
    ]
    timing = series_timing("PT", DAY, late)
    assert (timing.start, timing.end) == (at(0, 10), at(23, 50))
    assert timing.failed is not None and timing.failed.startswith(Reason.UNORDERED_TIMES)
    # a usable AcquisitionTime wins; neither: the series fails as before
    assert series_timing(
        "PT", DAY, [header(1, "083000", AcquisitionDateTime="20240304090000")]
    ).start == at(8, 30)
    assert series_timing("PT", DAY, [header(1, None)]).failed is not None


def test_timing_headers_in_arrival_order_are_sorted_by_instance_number() -> None:
    """C-MOVE delivers in any order; the brain-FDG rule needs the true first instance."""
    first = header(1, "100000")
    last = header(30, "093000")  # the wrong time brain-FDG series carry
    desc = "FDG Cerveau 10min"
    a = series_timing("PT", DAY, [last, first], series_description=desc)
    b = series_timing("PT", DAY, [first, last], series_description=desc)
    assert a == b == SeriesTiming(at(10, 0), at(10, 10), "Biograph64_Vision 600")


def test_timing_single_instance_series() -> None:
    one = header(1, "081500")
    assert series_timing("CT", DAY, [one, one]) == series_timing("CT", DAY, [one])
    assert series_timing("CT", DAY, [one]).start == series_timing("CT", DAY, [one]).end == at(8, 15)


def test_timing_pt_brain_fdg_ignores_last_instance() -> None:
    headers = [header(1, "101500"), header(30, b"garbage")]
    timing = series_timing("PT", DAY, headers, series_description="PET FDG cerveau 10 min")
    assert timing == SeriesTiming(at(10, 15), at(10, 25), "Biograph64_Vision 600")


def test_timing_brain_fdg_description_read_from_header() -> None:
    headers = [header(1, "101500", SeriesDescription="fdg_cerveau_15min"), header(30, "090000")]
    assert series_timing("PT", DAY, headers).end == at(10, 30)


def test_timing_brain_fdg_rule_is_for_pt_only() -> None:
    headers = [header(1, "101500"), header(30, "102000")]
    timing = series_timing("CT", DAY, headers, series_description="FDG Cerveau 10min")
    assert timing.end == at(10, 20)


def test_timing_truncated_and_fraction_times() -> None:
    timing = series_timing("PT", DAY, [header(1, "08"), header(2, "0830")])
    assert (timing.start, timing.end) == (at(8, 0), at(8, 30))
    timing = series_timing("PT", DAY, [header(1, b"083015.123456 "), header(2, b"0831")])
    assert (timing.start, timing.end) == (at(8, 30, 15, 123456), at(8, 31))


def test_timing_date_fallbacks() -> None:
    other, series_day, header_day = dt.date(2024, 3, 5), dt.date(2024, 3, 6), dt.date(2024, 3, 7)
    ds = header(1, "0900", date="20240305")
    assert series_timing("CT", DAY, [ds]).start == at(9, 0, day=other)
    ds = header(1, "0900", SeriesDate="20240307")
    assert series_timing("CT", DAY, [ds], series_date=series_day).start == at(9, 0, day=series_day)
    assert series_timing("CT", DAY, [ds]).start == at(9, 0, day=header_day)
    assert series_timing("CT", DAY, [header(1, "0900")]).start == at(9, 0)
    ds = header(1, "0900", AcquisitionDate=b"2024XX05")  # garbled date: next source
    assert series_timing("CT", DAY, [ds]).start == at(9, 0)


@pytest.mark.parametrize(
    ("first_time", "last_time", "reason", "detail"),
    [
        (None, "090000", Reason.NO_START, "AcquisitionTime missing"),
        (b"", "090000", Reason.NO_START, "AcquisitionTime missing"),
        (b"9h30", "090000", Reason.NO_START, "AcquisitionTime unparseable"),
        (b"256000", "090000", Reason.NO_START, "AcquisitionTime unparseable"),
        ("083000", None, Reason.NO_END, "AcquisitionTime missing"),
        ("083000", b"\xff\xfe", Reason.NO_END, "AcquisitionTime unparseable"),
    ],
)
def test_timing_missing_or_garbled_times_fail_with_the_tag(
    first_time: str | bytes | None, last_time: str | bytes | None, reason: str, detail: str
) -> None:
    timing = series_timing("PT", DAY, [header(1, first_time), header(20, last_time)])
    assert timing.excluded is None
    assert timing.failed == f"{reason}: {detail}"
    assert timing.machine == "Biograph64_Vision 600"  # what could be read is kept


def test_timing_missing_model_fails() -> None:
    timing = series_timing("CT", DAY, [header(1, model=None), header(2, model="   ")])
    assert timing.failed is not None and timing.failed.startswith(Reason.NO_MACHINE)
    assert timing.start == at(8, 30)


def test_timing_model_stripped_and_taken_from_any_header() -> None:
    timing = series_timing("CT", DAY, [header(1, model=None), header(2, model="Discovery 690 ")])
    assert (timing.machine, timing.failed) == ("Discovery 690", None)


def test_timing_secondary_image_type_is_excluded() -> None:
    headers = [header(1), header(9, image_type="DERIVED\\SECONDARY\\AXIAL")]
    assert series_timing("PT", DAY, headers) == SeriesTiming(
        None, None, None, excluded=Reason.SECONDARY
    )
    raw = header(1, image_type="ORIGINAL")
    put_raw(raw, "ImageType", b"DERIVED\\secondary ")
    assert series_timing("CT", DAY, [raw]).excluded == Reason.SECONDARY


def test_timing_no_headers_is_not_retrieved() -> None:
    timing = series_timing("CT", DAY, [])
    assert timing.failed is not None and timing.failed.startswith(Reason.NOT_RETRIEVED)


def test_timing_garbled_instance_numbers_keep_given_order() -> None:
    a, b = header(None, "0900"), header(None, "0930")
    put_raw(a, "InstanceNumber", b"x")
    assert series_timing("CT", DAY, [a, b]) == SeriesTiming(
        at(9, 0), at(9, 30), "Biograph64_Vision 600"
    )


# NM ----------------------------------------------------------------------


def nm(**extra: object) -> Dataset:
    return header(1, "100000", model="Tandem_Discovery_670", **extra)


def item(**values: object) -> Dataset:
    ds = Dataset()
    for keyword, value in values.items():
        if isinstance(value, bytes):
            put_raw(ds, keyword, value)
        else:
            setattr(ds, keyword, value)
    return ds


def test_timing_nm_phases() -> None:
    ds = nm(
        PhaseInformationSequence=DicomSequence(
            [
                item(ActualFrameDuration=1000, NumberOfFramesInPhase=60),
                item(ActualFrameDuration=b"2000 ", NumberOfFramesInPhase=30),
            ]
        ),
        NumberOfFrames=90,
        ActualFrameDuration=1,  # ignored: the phases win
    )
    timing = series_timing("NM", DAY, [ds])
    assert timing == SeriesTiming(at(10, 0), at(10, 2), "Tandem_Discovery_670")


def test_timing_nm_rotation_with_frames() -> None:
    ds = nm(
        RotationInformationSequence=DicomSequence(
            [item(ActualFrameDuration=15000, NumberOfFramesInRotation=60)] * 2
        )
    )
    assert series_timing("NM", DAY, [ds]).end == at(10, 30)


def test_timing_nm_rotation_with_radial_positions() -> None:
    ds = nm(
        RotationInformationSequence=DicomSequence(
            [item(ActualFrameDuration=20000, RadialPosition=[200.0] * 32)]
        )
    )
    assert series_timing("NM", DAY, [ds]).end == at(10, 10, 40)
    raw = nm(RotationInformationSequence=DicomSequence([item(ActualFrameDuration=b"20000")]))
    put_raw(raw.RotationInformationSequence[0], "RadialPosition", b"200.5\\201\\202 ")
    assert series_timing("NM", DAY, [raw]).end == at(10, 1)


def test_timing_nm_rotation_frame_duration_from_top_level() -> None:
    ds = nm(
        ActualFrameDuration=b"10000",
        RotationInformationSequence=DicomSequence([item(NumberOfFramesInRotation=6)]),
    )
    assert series_timing("NM", DAY, [ds]).end == at(10, 1)


@pytest.mark.parametrize("duration", [b"1000", b"1000.0 ", 1000])
def test_timing_nm_frames(duration: object) -> None:
    ds = nm(ActualFrameDuration=duration, NumberOfFrames=b"90")
    assert series_timing("NM", DAY, [ds]) == SeriesTiming(
        at(10, 0), at(10, 1, 30), "Tandem_Discovery_670"
    )


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        ({}, "ActualFrameDuration unusable"),
        ({"ActualFrameDuration": b"abc", "NumberOfFrames": b"10"}, "ActualFrameDuration unusable"),
        (
            {"ActualFrameDuration": b"1e400", "NumberOfFrames": b"10"},
            "ActualFrameDuration unusable",
        ),
        ({"ActualFrameDuration": b"-5", "NumberOfFrames": b"10"}, "ActualFrameDuration unusable"),
        ({"ActualFrameDuration": b"1000", "NumberOfFrames": b"2.5"}, "NumberOfFrames unusable"),
        (
            {"ActualFrameDuration": b"1e300", "NumberOfFrames": b"1000000"},
            "implausible duration",
        ),
        ({"ActualFrameDuration": b"100000000", "NumberOfFrames": b"1000"}, "implausible duration"),
        (
            {"PhaseInformationSequence": DicomSequence([item(ActualFrameDuration=b"??")])},
            "PhaseInformationSequence item 1: ActualFrameDuration unusable",
        ),
        (
            {"PhaseInformationSequence": DicomSequence([item(ActualFrameDuration=b"100")])},
            "NumberOfFramesInPhase unusable",
        ),
        (
            {"RotationInformationSequence": DicomSequence([item(ActualFrameDuration=b"100")])},
            "no NumberOfFramesInRotation nor RadialPosition",
        ),
    ],
)
def test_timing_nm_without_usable_duration_fails(extra: dict[str, object], detail: str) -> None:
    timing = series_timing("NM", DAY, [nm(**extra)])
    assert timing.start == at(10, 0)
    assert timing.end is None
    assert timing.failed is not None
    assert timing.failed.startswith(Reason.NO_END + ": ")
    assert detail in timing.failed


def test_timing_nm_phase_without_frame_duration_uses_top_level() -> None:
    """Regression: a phase item lacking ActualFrameDuration failed instead of using the top level,
    as the rotation branch does."""
    ds = nm(
        ActualFrameDuration=b"2000",
        PhaseInformationSequence=DicomSequence(
            [
                item(NumberOfFramesInPhase=30),  # top level: 30 x 2 s
                item(ActualFrameDuration=500, NumberOfFramesInPhase=120),  # its own: 120 x 0.5 s
            ]
        ),
    )
    assert series_timing("NM", DAY, [ds]) == SeriesTiming(
        at(10, 0), at(10, 2), "Tandem_Discovery_670"
    )
    assert needs_file_headers("NM", ds) is False


@pytest.mark.parametrize(
    "extra",
    [
        {"ActualFrameDuration": b"1000", "NumberOfFrames": b"0"},
        {"ActualFrameDuration": b"0", "NumberOfFrames": b"10"},
        {"PhaseInformationSequence": DicomSequence([item(ActualFrameDuration=0,
                                                         NumberOfFramesInPhase=5)])},
        {"RotationInformationSequence": DicomSequence([item(ActualFrameDuration=100,
                                                            NumberOfFramesInRotation=0)])},
    ],
)  # fmt: skip
def test_timing_nm_zero_length_acquisition_fails_with_its_reason(extra: dict[str, object]) -> None:
    """Regression (issue 15): NumberOfFrames=0 made a zero-length NM study in the report.

    A computed duration of 0 is a number (not a garbled header: the file would say the same,
    no C-GET for it), but no acquisition lasts no time: failed ``zero_duration``, its times kept.
    """
    ds = nm(**extra)
    timing = series_timing("NM", DAY, [ds])
    assert (timing.start, timing.end, timing.machine) == (
        at(10, 0),
        at(10, 0),
        "Tandem_Discovery_670",
    )
    assert timing.failed is not None and timing.failed.startswith(Reason.ZERO_DURATION + ": ")
    assert needs_file_headers("NM", ds) is False


def test_timing_nm_just_over_twelve_hours_is_unusable() -> None:
    ok = nm(ActualFrameDuration=b"1000", NumberOfFrames=b"43200")  # exactly 12 h
    assert series_timing("NM", DAY, [ok]).end == at(22, 0)
    over = nm(ActualFrameDuration=b"1000", NumberOfFrames=b"43201")
    timing = series_timing("NM", DAY, [over])
    assert timing.end is None
    assert timing.failed is not None and "implausible duration" in timing.failed


@pytest.mark.parametrize(
    ("extra", "detail"),
    [
        # IS beyond a signed 32-bit count
        ({"ActualFrameDuration": b"1", "NumberOfFrames": b"2147483648"}, "NumberOfFrames unusable"),
        (
            {"ActualFrameDuration": b"1", "NumberOfFrames": b"99999999999"},
            "NumberOfFrames unusable",
        ),
        ({"ActualFrameDuration": b"1", "NumberOfFrames": 10**400}, "NumberOfFrames unusable"),
        ({"ActualFrameDuration": 10**400, "NumberOfFrames": b"1"}, "ActualFrameDuration unusable"),
        ({"ActualFrameDuration": b"1", "NumberOfFrames": b"1e10"}, "NumberOfFrames unusable"),
        ({"ActualFrameDuration": b"nan", "NumberOfFrames": b"1"}, "ActualFrameDuration unusable"),
        ({"ActualFrameDuration": b"inf", "NumberOfFrames": b"1"}, "ActualFrameDuration unusable"),
        # finite factors whose product overflows timedelta
        ({"ActualFrameDuration": b"1e300", "NumberOfFrames": b"2147483647"}, "implausible"),
    ],
)
def test_timing_is_ds_overflow_and_counts_beyond_int32_are_unknown(
    extra: dict[str, object], detail: str
) -> None:
    """Regression: int()/float()/timedelta() on huge IS/DS values raised OverflowError."""
    timing = series_timing("NM", DAY, [nm(**extra)])
    assert timing.end is None
    assert timing.failed is not None and detail in timing.failed


def test_timing_end_past_year_9999_fails_instead_of_raising() -> None:
    ds = nm(ActualFrameDuration=b"60000", NumberOfFrames=b"120")
    ds.AcquisitionDate = "99991231"
    ds.AcquisitionTime = "235900"
    timing = series_timing("NM", DAY, [ds])
    assert timing.end is None
    assert timing.failed == f"{Reason.NO_END}: start + duration beyond the calendar"
    pt = header(1, "235900", date="99991231")
    fdg = series_timing("PT", DAY, [pt], series_description="FDG Cerveau 10min")
    assert fdg.failed is not None and fdg.failed.startswith(Reason.NO_END)


def test_timing_nm_empty_sequence_falls_back_to_frames() -> None:
    ds = nm(PhaseInformationSequence=DicomSequence([]), ActualFrameDuration=1000, NumberOfFrames=60)
    assert series_timing("NM", DAY, [ds]).end == at(10, 1)


# headers as they come off the wire -----------------------------------------


def through_file(ds: Dataset, implicit: bool, garble: dict[bytes, bytes] | None = None) -> Dataset:
    """Write ``ds``, swap bytes in the file (same length) and read it back.

    Every element is raw again, as after a C-STORE; ``garble`` puts values on disk that pydicom
    would refuse to write (it validates on write).
    """
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.20"
    ds.SOPInstanceUID = "1.2.3.4"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    for old, new in (garble or {}).items():
        assert len(old) == len(new) and data.count(old) == 1
        data = data.replace(old, new)
    return dcmread(io.BytesIO(data))


@pytest.mark.parametrize("implicit", [True, False])
def test_timing_from_read_headers_never_warns_on_garbage(implicit: bool) -> None:
    """Regression: letting pydicom convert a garbled TM/IS warns (an error under pytest)."""
    good = nm(
        ActualFrameDuration="1000",
        PhaseInformationSequence=DicomSequence(
            [item(ActualFrameDuration="500", NumberOfFramesInPhase=120)]
        ),
    )
    good.AcquisitionTime = "100000.5"
    timing = series_timing("NM", DAY, [through_file(good, implicit)])
    assert timing == SeriesTiming(
        at(10, 0, 0, 500000), at(10, 1, 0, 500000), "Tandem_Discovery_670"
    )

    bad = nm(ActualFrameDuration="7777", NumberOfFrames="88")
    bad.AcquisitionTime = "100059"
    read = through_file(bad, implicit, {b"7777": b"1O00", b"88": b"x ", b"100059": b"10:0O "})
    timing = series_timing("NM", DAY, [read])
    assert timing.failed == f"{Reason.NO_START}: AcquisitionTime unparseable"
    assert needs_file_headers("NM", read) is True  # duration unusable too
    # and the elements are still raw: nothing was converted behind our back
    assert isinstance(read.get_item(tag_for_keyword("AcquisitionTime")), RawDataElement)


def test_needs_file_headers() -> None:
    complete = header(1, "083000")
    assert needs_file_headers("PT", complete) is False
    assert needs_file_headers("PT", header(1, None)) is True
    empty_time = header(1, None)
    put_raw(empty_time, "AcquisitionTime", b"")
    assert needs_file_headers("CT", empty_time) is True  # returned empty = not indexed
    assert needs_file_headers("CT", header(1, model=None)) is True
    no_type = header(1)
    del no_type.ImageType
    assert needs_file_headers("CT", no_type) is True  # SECONDARY cannot be ruled out
    # garbled but present: the file holds the same value, fetching it would not help
    assert needs_file_headers("CT", header(1, b"9h30")) is False
    assert needs_file_headers("NM", nm()) is True
    assert needs_file_headers("NM", nm(ActualFrameDuration=1000, NumberOfFrames=60)) is False
    phases = nm(
        PhaseInformationSequence=DicomSequence(
            [item(ActualFrameDuration=1000, NumberOfFramesInPhase=60)]
        )
    )
    assert needs_file_headers("NM", phases) is False


def test_needs_file_headers_when_image_type_is_empty() -> None:
    """Regression: an ImageType returned EMPTY at IMAGE level was taken as "not SECONDARY"."""
    raw_empty = header(1)
    put_raw(raw_empty, "ImageType", b"")
    assert needs_file_headers("CT", raw_empty) is True
    only_padding = header(1)
    put_raw(only_padding, "ImageType", b"\\ ")
    assert needs_file_headers("CT", only_padding) is True
    none_value = header(1)
    none_value.ImageType = None
    assert needs_file_headers("PT", none_value) is True


def test_needs_file_headers_when_model_or_time_is_empty() -> None:
    empty_model = header(1, model=None)
    put_raw(empty_model, "ManufacturerModelName", b"  ")
    assert needs_file_headers("CT", empty_model) is True
    none_model = header(1, model=None)
    none_model.ManufacturerModelName = None
    assert needs_file_headers("CT", none_model) is True
    assert needs_file_headers("CT", header(1, b" \x00")) is True
    none_time = header(1, None)
    none_time.AcquisitionTime = None
    assert needs_file_headers("PT", none_time) is True


def test_header_text_decoding_declared_charset_else_utf8_then_latin1() -> None:
    """Text of raw headers: SpecificCharacterSet when given, else UTF-8, else latin-1."""
    desc = "FDG Cérébral 10min"
    for charset, encoded in [
        (None, desc.encode("utf-8")),
        (None, desc.encode("latin-1")),  # not valid UTF-8: latin-1
        (b"ISO_IR 100", desc.encode("latin-1")),
        (b"ISO_IR 192", desc.encode("utf-8")),
    ]:
        ds = header(1, "083000", model=None, SeriesDescription=encoded)
        put_raw(
            ds,
            "ManufacturerModelName",
            "Modèle Ü".encode("utf-8" if charset != b"ISO_IR 100" else "latin-1"),
        )
        if charset is not None:
            put_raw(ds, "SpecificCharacterSet", charset)
        timing = series_timing("PT", DAY, [ds, header(2, "090000")])
        assert timing == SeriesTiming(at(8, 30), at(8, 40), "Modèle Ü"), charset
    # a declared latin-1 is honoured even where the bytes happen to be valid UTF-8
    ds = header(1, "083000", model=None)
    put_raw(ds, "ManufacturerModelName", "é".encode())
    put_raw(ds, "SpecificCharacterSet", b"ISO_IR 100")
    assert series_timing("CT", DAY, [ds]).machine == "é".encode().decode("latin-1")
    # an unknown charset falls back to UTF-8 then latin-1
    put_raw(ds, "SpecificCharacterSet", b"NOT A CHARSET")
    assert series_timing("CT", DAY, [ds]).machine == "é"


def _all_headers_pass(headers: Sequence[Dataset]) -> bool:
    return all(not needs_file_headers("CT", h) for h in headers)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["CT", "PT", "NM"]),
    st.lists(
        st.tuples(
            st.binary(max_size=12) | st.text(alphabet="0123456789.: ", max_size=14).map(str.encode),
            st.binary(max_size=8),
            st.binary(max_size=6),
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_timing_never_raises_on_arbitrary_bytes(
    modality: str, values: list[tuple[bytes, bytes, bytes]]
) -> None:
    headers = []
    for number, (time, duration, frames) in enumerate(values, 1):
        ds = header(
            number, None, ActualFrameDuration=duration or b" ", NumberOfFrames=frames or b" "
        )
        put_raw(ds, "AcquisitionTime", time)
        headers.append(ds)
    timing = series_timing(modality, DAY, headers, series_description="FDG cerveau 10min")
    assert (timing.failed is None) == (timing.start is not None and timing.end is not None)
    if timing.failed is None:
        assert timing.start is not None and timing.end is not None
        assert timing.start <= timing.end
    needs_file_headers(modality, headers[0])
