"""The injection as a PT / NM header tells it (DOMAIN §8): the Radiopharmaceutical Information
Sequence read robustly, every bad value null with its reason."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pyschedvisu_core.radiopharm import Issue, issue_codes, read_radiopharm
from tests.fixtures.pacs import radiopharm_item, raw_dataset

D = dt.date(2024, 3, 4)


def header(item: Dataset | None = None, *, empty: bool = False, **attrs: Any) -> Dataset:
    ds = Dataset()
    for k, v in attrs.items():
        setattr(ds, k, v)
    if empty:
        ds.RadiopharmaceuticalInformationSequence = Sequence([])
    elif item is not None:
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
    return ds


FDG = {
    "tracer": "Fludeoxyglucose F^18^",
    "nuclide": "^18^Fluorine",
    "start_datetime": "20240304071512.250000",
    "dose": "250000000",
    "half_life": "6586.2",
}


# -- the header --------------------------------------------------------------------------


def test_pet_dose_is_read_in_bq_and_nm_dose_in_mbq() -> None:
    pet = read_radiopharm("PT", D, [header(radiopharm_item(**FDG))])
    assert pet is not None and pet.issue is None
    assert (pet.tracer, pet.radionuclide) == ("Fludeoxyglucose F^18^", "^18^Fluorine")
    assert pet.injected_at == dt.datetime(2024, 3, 4, 7, 15, 12, 250000)
    assert (pet.activity_mbq, pet.half_life_s) == (250.0, 6586.2)
    nm = read_radiopharm("NM", D, [header(radiopharm_item(**{**FDG, "dose": "740.5"}))])
    assert nm is not None and nm.activity_mbq == 740.5
    assert read_radiopharm("CT", D, [header(radiopharm_item(**FDG))]) is None


def test_start_time_alone_is_on_the_series_date_else_the_header_dates_else_the_day() -> None:
    item = radiopharm_item(**{**FDG, "start_datetime": None, "start_time": "0715"})
    stamp = dt.datetime(2024, 3, 5, 7, 15)
    assert read_radiopharm("PT", D, [header(item)], dt.date(2024, 3, 5)).injected_at == stamp  # type: ignore[union-attr]
    found = read_radiopharm("PT", D, [header(item, SeriesDate="20240305")])
    assert found is not None and found.injected_at == stamp
    found = read_radiopharm("PT", D, [header(item, StudyDate="20240305")])
    assert found is not None and found.injected_at == stamp
    found = read_radiopharm("PT", D, [header(item)])
    assert found is not None and found.injected_at == dt.datetime(2024, 3, 4, 7, 15)
    # a garbled DT gives way to a good TM
    both = radiopharm_item(**{**FDG, "start_datetime": "2024O304", "start_time": "071500"})
    found = read_radiopharm("PT", D, [header(both)])
    assert found is not None and found.injected_at == dt.datetime(2024, 3, 4, 7, 15)
    assert found.issue is None


@pytest.mark.parametrize(
    ("changes", "codes", "null"),
    [
        ({"start_datetime": None}, [Issue.INJECTION_MISSING], "injected_at"),
        ({"start_datetime": "2024O3040715"}, [Issue.INJECTION_UNPARSEABLE], "injected_at"),
        (
            {"start_datetime": None, "start_time": "25:61:00"},
            [Issue.INJECTION_UNPARSEABLE],
            "injected_at",
        ),
        ({"start_datetime": "20240304"}, [Issue.INJECTION_UNPARSEABLE], "injected_at"),
        ({"dose": "-250000000"}, [Issue.DOSE_NOT_POSITIVE], "activity_mbq"),
        ({"dose": "0"}, [Issue.DOSE_NOT_POSITIVE], "activity_mbq"),
        ({"dose": "N/A"}, [Issue.DOSE_UNPARSEABLE], "activity_mbq"),
        ({"dose": "nan"}, [Issue.DOSE_UNPARSEABLE], "activity_mbq"),
        ({"dose": "1e999"}, [Issue.DOSE_UNPARSEABLE], "activity_mbq"),
        ({"dose": "250000000000000"}, [Issue.DOSE_IMPLAUSIBLE], "activity_mbq"),
        ({"dose": "250"}, [Issue.DOSE_IMPLAUSIBLE], "activity_mbq"),  # MBq in a PET header
        ({"dose": None}, [Issue.DOSE_MISSING], "activity_mbq"),
        ({"half_life": "-1"}, [Issue.HALF_LIFE_UNUSABLE], "half_life_s"),
        ({"half_life": None}, [Issue.HALF_LIFE_MISSING], "half_life_s"),
        ({"tracer": None}, [Issue.NO_TRACER], "tracer"),
        ({"nuclide": None}, [Issue.NO_RADIONUCLIDE], "radionuclide"),
        (
            {"dose": "abc", "start_datetime": None, "nuclide": None},
            [Issue.NO_RADIONUCLIDE, Issue.INJECTION_MISSING, Issue.DOSE_UNPARSEABLE],
            "activity_mbq",
        ),
    ],
)
def test_a_bad_value_is_null_with_its_reason_and_the_rest_is_read(
    changes: dict[str, Any], codes: list[str], null: str
) -> None:
    found = read_radiopharm("PT", D, [header(radiopharm_item(**{**FDG, **changes}))])
    assert found is not None
    assert issue_codes(found.issue) == codes
    assert getattr(found, null) is None
    if len(codes) == 1:  # the other fields are read
        for name in {"tracer", "radionuclide", "injected_at", "activity_mbq", "half_life_s"}:
            assert (getattr(found, name) is None) == (name == null), name


def test_no_sequence_an_empty_one_or_one_not_returned_leave_every_field_null() -> None:
    for headers, code in (
        ([header(Modality="PT")], Issue.NO_SEQUENCE),
        ([header(empty=True)], Issue.EMPTY_SEQUENCE),
        ([], Issue.NO_SEQUENCE),
    ):
        found = read_radiopharm("PT", D, headers)
        assert found is not None and issue_codes(found.issue) == [code]
        assert (found.tracer, found.injected_at, found.activity_mbq) == (None, None, None)
    found = read_radiopharm("NM", D, [header(radiopharm_item(**FDG))], returned=False)
    assert found is not None and issue_codes(found.issue) == [Issue.NOT_RETURNED]
    assert found.activity_mbq is None


def test_the_first_header_holding_the_sequence_counts() -> None:
    found = read_radiopharm("PT", D, [header(), header(radiopharm_item(**FDG))])
    assert found is not None and found.activity_mbq == 250.0


def test_garbage_anywhere_in_the_sequence_never_raises() -> None:
    """Raw values of any shape, as a file or an answer brings them, in every field."""
    item = raw_dataset(
        {
            "Radiopharmaceutical": "\xff\xfe\x00",
            "RadionuclideTotalDose": "\xff\xfe",
            "RadiopharmaceuticalStartDateTime": "99999999999999",
            "RadiopharmaceuticalStartTime": "\x00\x00",
            "RadionuclideHalfLife": "1\\2",
            "RadionuclideCodeSequence": [{"CodingSchemeDesignator": "SRT"}],
        }
    )
    found = read_radiopharm("PT", D, [header(item)])
    assert found is not None
    assert (found.radionuclide, found.activity_mbq, found.injected_at) == (None, None, None)
    assert issue_codes(found.issue) == [
        Issue.NO_RADIONUCLIDE,
        Issue.INJECTION_UNPARSEABLE,
        Issue.DOSE_UNPARSEABLE,
        Issue.HALF_LIFE_UNUSABLE,
    ]
