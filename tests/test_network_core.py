"""The network view's pure part: what a site publishes, and the network's sums."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu_core import network as net
from pyschedvisu_core import network_pages as netpages
from pyschedvisu_core import overview

END = dt.date(2024, 3, 8)
MONDAY = dt.date(2024, 3, 4)


def summary(rows: list[dict[str, object]]) -> pl.DataFrame:
    base = {
        "period": "hebdomadaire",
        "period_label": "hebdomadaire",
        "first_day": MONDAY,
        "last_day": END,
        "gaps": 0,
        "median_duration_s": None,
        "retakes": 0,
        "no_activity_days": 0,
        "no_data_days": 0,
        "previous_first_day": None,
        "previous_last_day": None,
        "previous_exams": None,
        "change_pct": None,
        "utilisation_pct": None,
    }
    return pl.DataFrame([{**base, **r} for r in rows], schema=overview.SUMMARY_SCHEMA)


def weekly(rows: list[tuple[str, dt.date, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "machine": pl.String(),
            "monday": pl.Date(),
            "exams": pl.Int64(),
            "slots": pl.Int64(),
        },
        orient="row",
    )


@pytest.mark.parametrize(
    ("modalities", "expected"),
    [
        (["CT,PT", "PT"], "PET/CT"),
        (["PT"], "PET"),
        (["NM", "CT,NM"], "SPECT/CT"),
        (["NM"], "NM"),
        (["CT"], net.OTHER_TYPE),
        ([], net.OTHER_TYPE),
    ],
)
def test_machine_type_from_the_modalities(modalities: list[str], expected: str) -> None:
    assert net.machine_type_of(modalities) == expected


def test_configured_machine_type_wins() -> None:
    studies = pl.DataFrame({"machine": ["PET GE", "Intevo"], "modalities": ["CT,PT", "NM"]})
    types = net.machine_types(studies, ["PET GE", "Intevo", "Idle"], {"Intevo": "SPECT/CT"})
    assert types == {"PET GE": "PET/CT", "Intevo": "SPECT/CT", "Idle": net.OTHER_TYPE}


def site_a() -> pl.DataFrame:
    return net.site_aggregates(
        "a",
        END,
        summary(
            [
                {
                    "machine": "PET GE",
                    "exams": 20,
                    "slots": 25,
                    "gaps": 3,
                    "median_duration_s": 1500.0,
                    "retakes": 1,
                    "previous_exams": 18,
                    "change_pct": 100 * 2 / 18,
                },
                {
                    "machine": "Intevo",
                    "exams": 9,
                    "slots": 12,
                    "gaps": 1,
                    "median_duration_s": 2400.0,
                },
            ]
        ),
        weekly([("PET GE", MONDAY, 20, 25), ("Intevo", MONDAY, 9, 12)]),
        {"PET GE": "PET/CT", "Intevo": "SPECT/CT"},
        no_shows=pl.DataFrame({"period": ["hebdomadaire"], "machine": ["PET GE"], "no_shows": [2]}),
        missing_days=1,
    )


def site_b() -> pl.DataFrame:
    return net.site_aggregates(
        "b",
        END,
        summary(
            [
                {
                    "machine": "Discovery MI",
                    "exams": 31,
                    "slots": 30,
                    "gaps": 2,
                    "median_duration_s": 1320.0,
                    "retakes": 4,
                    "previous_exams": 28,
                    "change_pct": 100 * 3 / 28,
                },
            ]
        ),
        weekly(
            [
                ("Discovery MI", MONDAY, 31, 30),
                ("Discovery MI", MONDAY - dt.timedelta(weeks=1), 28, 30),
            ]
        ),
        {"Discovery MI": "PET/CT"},
    )


def test_site_aggregates_hold_numbers_only() -> None:
    rows = site_a()
    assert dict(rows.schema) == net.AGGREGATE_SCHEMA
    assert "patient_key" not in rows.columns and "study_uid" not in rows.columns
    periods = rows.filter(pl.col("kind") == net.PERIOD)
    assert periods.select("machine", "machine_type", "exams", "no_shows").rows() == [
        ("PET GE", "PET/CT", 20, 2),
        ("Intevo", "SPECT/CT", 9, None),
    ]
    weeks = rows.filter(pl.col("kind") == net.WEEK)
    assert weeks["period"].to_list() == ["2024-03-04", "2024-03-04"]
    assert weeks["last_day"].to_list() == [END, END]
    assert set(rows["missing_days"].to_list()) == {1}


def test_records_round_trip_through_json() -> None:
    rows = pl.concat([site_a(), site_b()])
    records = json.loads(json.dumps(net.to_records(rows), allow_nan=False))
    assert net.from_records(records).equals(rows)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ("not rows", "a list of rows"),
        ([{"site": "a"}], "row 1 has no 'end'"),
    ],
)
def test_unreadable_records_are_named(records: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        net.from_records(records)  # type: ignore[arg-type]


def test_a_value_of_the_wrong_type_is_named() -> None:
    (row, *_) = net.to_records(site_b())
    with pytest.raises(ValueError, match="wrong type"):
        net.from_records([{**row, "exams": "many"}])


def test_network_table_sums_the_sites_per_machine_type() -> None:
    table = net.network_table(pl.concat([site_b(), site_a()]), ["a", "b"])
    assert dict(table.schema) == net.NETWORK_SCHEMA
    rows = table.select("machine_type", "row", "site", "machine", "exams", "slots").rows()
    assert rows == [
        ("PET/CT", "machine", "a", "PET GE", 20, 25),
        ("PET/CT", "machine", "b", "Discovery MI", 31, 30),
        ("PET/CT", "network", "network", None, 51, 55),
        ("SPECT/CT", "machine", "a", "Intevo", 9, 12),
        ("SPECT/CT", "network", "network", None, 9, 12),
    ]
    pet = table.filter((pl.col("machine_type") == "PET/CT") & (pl.col("row") == "network")).row(
        0, named=True
    )
    assert pet["utilisation_pct"] == pytest.approx(100 * 51 / 55)
    assert pet["gaps"] == 5 and pet["retakes"] == 5
    assert pet["previous_exams"] == 46 and pet["change_pct"] == pytest.approx(100 * 5 / 46)
    assert pet["median_duration_s"] is None  # a median cannot be added up
    assert pet["no_shows"] is None  # site b does not know its no-shows
    spect = table.filter(pl.col("machine_type") == "SPECT/CT")
    assert spect["median_duration_s"].to_list() == [2400.0, None]
    assert spect["change_pct"].to_list() == [None, None]


def test_no_shows_add_up_where_every_machine_knows_them() -> None:
    a = site_a()
    b = site_b().with_columns(
        no_shows=pl.when(pl.col("kind") == net.PERIOD).then(pl.lit(3, dtype=pl.Int64()))
    )
    table = net.network_table(pl.concat([a, b]), ["a", "b"])
    pet = table.filter(pl.col("machine_type") == "PET/CT")
    assert pet["no_shows"].to_list() == [2, 3, 5]


def test_network_trend_per_type_site_and_week() -> None:
    trend = net.network_trend(pl.concat([site_a(), site_b()]), ["a", "b"])
    pet = trend.filter(pl.col("machine_type") == "PET/CT")
    assert pet.select("site", "monday", "exams", "slots").rows() == [
        ("a", MONDAY, 20, 25),
        ("b", MONDAY - dt.timedelta(weeks=1), 28, 30),
        ("b", MONDAY, 31, 30),
        ("network", MONDAY - dt.timedelta(weeks=1), 28, 30),
        ("network", MONDAY, 51, 55),
    ]


site_numbers = st.lists(
    st.tuples(
        st.sampled_from(["PET/CT", "SPECT/CT", "NM"]),
        st.integers(0, 400),  # exams
        st.integers(0, 400),  # slots
        st.integers(0, 50),  # gaps
        st.integers(0, 40),  # retakes
    ),
    min_size=1,
    max_size=4,
)


@given(st.lists(site_numbers, min_size=1, max_size=5))
def test_every_network_total_is_the_sum_of_its_sites(sites: list[list[tuple]]) -> None:
    frames = []
    for i, machines in enumerate(sites):
        rows = [
            {"machine": f"M{j}", "exams": e, "slots": s, "gaps": g, "retakes": r}
            for j, (_, e, s, g, r) in enumerate(machines)
        ]
        types = {f"M{j}": t for j, (t, *_) in enumerate(machines)}
        frames.append(net.site_aggregates(f"s{i}", END, summary(rows), weekly([]), types))
    ids = [f"s{i}" for i in range(len(sites))]
    table = net.network_table(pl.concat(frames), ids)
    for mtype in {t for machines in sites for t, *_ in machines}:
        part = table.filter(pl.col("machine_type") == mtype)
        machines = part.filter(pl.col("row") == "machine")
        (total,) = part.filter(pl.col("row") == "network").iter_rows(named=True)
        expected = [
            (e, s, g, r) for machines_ in sites for (t, e, s, g, r) in machines_ if t == mtype
        ]
        assert machines.height == len(expected)
        for k, column in enumerate(("exams", "slots", "gaps", "retakes")):
            assert total[column] == sum(x[k] for x in expected)
        slots = total["slots"]
        assert total["utilisation_pct"] == (
            pytest.approx(100 * total["exams"] / slots) if slots else None
        )


def test_pages_are_plain_json_figures() -> None:
    rows = pl.concat([site_a(), site_b()])
    table = net.network_table(rows, ["a", "b"])
    trend = net.network_trend(rows, ["a", "b"])
    pages = netpages.period_pages(table, title="Réseau test", end=END, lang="fr", notes=["note"])
    pages += netpages.trends_pages(trend, title="Réseau test", end=END, lang="fr")
    assert [p.period for p in pages] == ["hebdomadaire", None]
    for page in pages:
        json.dumps(page.figure, allow_nan=False)
    texts = json.dumps(pages[0].figure, ensure_ascii=False)
    assert "Réseau" in texts and "Discovery MI" in texts and "PET/CT" in texts


def test_a_long_period_table_continues_on_the_next_page() -> None:
    rows = [
        {"machine": f"M{j}", "exams": j, "slots": 10} for j in range(netpages.ROWS_PER_PAGE + 5)
    ]
    frame = net.site_aggregates("a", END, summary(rows), weekly([]), {})
    pages = netpages.period_pages(net.network_table(frame, ["a"]), title="t", end=END)
    assert [(p.period, p.first) for p in pages] == [("hebdomadaire", True), ("hebdomadaire", False)]
    assert pages[0].title.endswith("(1/2)") and pages[1].title.endswith("(2/2)")


def test_site_notes_name_absent_sites_and_missing_days() -> None:
    notes = net.site_notes(["a", "b", "c"], {"a": site_a(), "b": site_b()}, "en")
    assert notes == [
        "Sites without numbers for this week (their weekly report did not complete): c.",
        "a: 1 day(s) of the week could not be read from the PACS.",
    ]
