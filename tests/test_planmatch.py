"""Planned steps matched to performed studies: the rules, then properties that pin them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from pyschedvisu_core import planmatch as pm
from pyschedvisu_core import schema
from pyschedvisu_core.worklist import PLANNED_SCHEMA

DAY = dt.date(2024, 3, 4)
LABELS = {"petge": {"FDG": ["petfdg.*"], "PSMA": ["psma.*"]}}


def at(hhmm: str, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmm))


def steps(*rows: dict[str, Any]) -> pl.DataFrame:
    out = []
    for i, r in enumerate(rows):
        start = r.get("scheduled_start", at("08:00"))
        base = {k: None for k in PLANNED_SCHEMA}
        base.update(
            date=DAY,
            machine="PET GE",
            step_key=f"s{i}",
            scheduled_start=start,
            first_scheduled_start=start,
            first_seen=at("06:00"),
            last_seen=at("06:00"),
            n_seen=1,
            added_same_day=False,
            rescheduled=False,
            scheduled_description="PET FDG",
        )
        base.update(r)
        out.append(base)
    return pl.DataFrame(out, schema=PLANNED_SCHEMA)


def studies(*rows: dict[str, Any]) -> pl.DataFrame:
    out = []
    for i, r in enumerate(rows):
        base = {k: None for k in schema.STUDY_SCHEMA}
        uid = r.get("study_uid", f"u{i}")
        take = r.get("take", 1)
        base.update(
            date=DAY,
            machine="PET GE",
            machine_group="PET GE",
            study_uid=uid,
            take=take,
            study_key=f"{uid}_{take}",
            description="FDG",
            start=at("08:10"),
            end=at("08:40"),
        )
        base.update(r)
        base["study_key"] = f"{base['study_uid']}_{base['take']}"
        out.append(base)
    return pl.DataFrame(out, schema=schema.STUDY_SCHEMA)


COVER = pl.DataFrame({"date": [DAY], "machine": ["PET GE"]})


def match(p: pl.DataFrame, s: pl.DataFrame, cover: pl.DataFrame = COVER, **kw: Any) -> pl.DataFrame:
    return pm.match_plan(p, s, cover, labels=LABELS, **kw)


def test_uid_then_accession_then_patient_each_on_what_is_left() -> None:
    p = steps(
        {"study_uid": "u0", "accession_number": "X9", "scheduled_start": at("08:00")},
        {"accession_number": "A1", "scheduled_start": at("09:00")},
        {"patient_key": "p2", "scheduled_start": at("10:00")},
        {"patient_key": "p3", "scheduled_start": at("11:00"), "accession_number": "A3"},
    )
    s = studies(
        {"study_uid": "u0", "accession_number": "A1", "start": at("08:05")},
        {"accession_number": "A1", "start": at("09:20"), "patient_key": "p1"},
        {"patient_key": "p2", "start": at("10:30"), "end": at("11:00")},
        {"patient_key": "p3", "start": at("11:02")},  # accession differs: by patient
    )
    got = match(p, s)
    rows = {r["step_key"]: r for r in got.iter_rows(named=True)}
    assert [rows[k]["match"] for k in ("s0", "s1", "s2", "s3")] == [
        "uid",
        "accession",  # u0 took the uid rule first, so A1 goes to u1
        "patient",
        "patient",
    ]
    assert [rows[k]["study_key"] for k in ("s0", "s1", "s2", "s3")] == [
        "u0_1",
        "u1_1",
        "u2_1",
        "u3_1",
    ]
    assert rows["s1"]["delay_s"] == 20 * 60
    assert rows["s2"]["actual_end"] == at("11:00")
    assert got["status"].to_list() == ["performed"] * 4


def test_a_step_without_study_is_a_no_show_labelled_from_its_description() -> None:
    p = steps({"scheduled_description": "PSMA Ga68", "accession_number": "A7"})
    got = match(p, studies({"accession_number": "B", "start": at("15:00")}))
    assert got.select("status", "description", "accession_number").rows() == [
        ("no_show", "PSMA", "A7"),
        ("unplanned", "FDG", "B"),
    ]
    no_show = got.row(0, named=True)
    assert no_show["study_key"] is None and no_show["delay_s"] is None


def test_the_patient_rule_needs_the_same_machine_and_the_window() -> None:
    p = steps(
        {"patient_key": "p", "scheduled_start": at("08:00")},
        {"patient_key": "q", "scheduled_start": at("08:00")},
    )
    s = studies(
        {"patient_key": "p", "start": at("12:01")},  # 4 h later: outside a 3 h window
        {"patient_key": "q", "machine": "PET Siemens", "start": at("08:05")},
    )
    cover = pl.DataFrame({"date": [DAY, DAY], "machine": ["PET GE", "PET Siemens"]})
    got = match(p, s, cover)
    assert sorted(got["status"].to_list()) == ["no_show", "no_show", "unplanned", "unplanned"]
    wide = match(p, s, cover, window_s=5 * 3600)
    assert sorted(wide["status"].to_list()) == ["no_show", "performed", "unplanned"]


def test_the_nearest_start_wins_when_one_patient_has_two_steps() -> None:
    p = steps(
        {"patient_key": "p", "scheduled_start": at("08:00")},
        {"patient_key": "p", "scheduled_start": at("13:00")},
    )
    s = studies(
        {"patient_key": "p", "start": at("13:10")},
        {"patient_key": "p", "start": at("08:20")},
    )
    got = match(p, s)
    assert dict(got.select("step_key", "study_key").iter_rows()) == {"s0": "u1_1", "s1": "u0_1"}


def test_retakes_of_one_appointment_count_on_its_row_not_as_unplanned() -> None:
    p = steps({"study_uid": "u", "scheduled_start": at("08:00")})
    s = studies(
        {"study_uid": "u", "take": 1, "start": at("08:05")},
        {"study_uid": "u", "take": 2, "start": at("11:00")},
        {"study_uid": "w", "take": 1, "start": at("13:00")},
        {"study_uid": "w", "take": 2, "start": at("15:00")},
        {"study_uid": "w", "take": 3, "start": at("16:00")},
    )
    got = match(p, s)
    assert got.select("status", "study_key", "retakes").rows() == [
        ("performed", "u_1", 1),
        ("unplanned", "w_1", 2),
    ]


def test_a_day_without_a_plan_has_no_row_not_every_study_unplanned() -> None:
    other = dt.date(2024, 3, 5)
    s = studies(
        {"start": at("08:00", other), "date": other},
        {"machine": "Intevo", "start": at("09:00")},  # a machine without a plan that day
    )
    assert match(steps(), s).height == 0


def test_a_step_moved_to_another_day_counts_where_it_was_seen_last() -> None:
    tomorrow = dt.date(2024, 3, 5)
    p = pl.concat(
        [
            steps({"accession_number": "A", "last_seen": at("09:00")}),
            steps(
                {
                    "accession_number": "A",
                    "date": tomorrow,
                    "scheduled_start": at("08:00", tomorrow),
                    "last_seen": at("16:00"),
                }
            ),
        ]
    )
    s = studies({"accession_number": "A", "date": tomorrow, "start": at("08:30", tomorrow)})
    cover = pl.DataFrame({"date": [DAY, tomorrow], "machine": ["PET GE", "PET GE"]})
    got = match(p, s, cover)
    assert got.select("date", "status").rows() == [(tomorrow, "performed")]


def test_overrun_is_the_actual_duration_beyond_the_scheduled_one() -> None:
    p = steps(
        {
            "study_uid": "u0",
            "scheduled_start": at("08:00"),
            "scheduled_end": at("08:30"),
            "scheduled_duration_s": 1800.0,
        }
    )
    got = match(p, studies({"start": at("08:10"), "end": at("08:50")}))
    row = got.row(0, named=True)
    assert (row["delay_s"], row["scheduled_duration_s"], row["overrun_s"]) == (600, 1800, 600)


def test_the_plan_table_per_description_and_total() -> None:
    p = steps(
        {"study_uid": "u0", "scheduled_start": at("08:00")},
        {"study_uid": "u1", "scheduled_start": at("09:00"), "added_same_day": True},
        {"scheduled_description": "PSMA", "scheduled_start": at("10:00")},
    )
    s = studies(
        {"study_uid": "u0", "start": at("08:10")},
        {"study_uid": "u1", "start": at("09:30")},
        {"study_uid": "u2", "start": at("14:00"), "description": "PSMA"},
    )
    table = pm.plan_table(match(p, s), ["FDG", "PSMA"])
    rows = {r["label"]: r for r in table.iter_rows(named=True)}
    assert list(rows) == ["FDG", "PSMA", "TOTAL"]
    assert rows["FDG"]["planned"] == 2 and rows["FDG"]["performed"] == 2
    assert rows["FDG"]["delay_median_s"] == 20 * 60
    assert rows["FDG"]["delay_p90_s"] == 10 * 60 + 0.9 * 20 * 60
    assert (rows["PSMA"]["no_shows"], rows["PSMA"]["unplanned"]) == (1, 1)
    total = rows["TOTAL"]
    assert (total["planned"], total["performed"], total["no_shows"], total["unplanned"]) == (
        3,
        2,
        1,
        1,
    )
    assert total["added_same_day"] == 1
    assert round(total["realised_pct"], 6) == round(200 / 3, 6)
    assert total["util_plan_pct"] == 100.0


# -- properties ---------------------------------------------------------------------------------

_PATIENTS = st.sampled_from(["p1", "p2", "p3", None])
_UIDS = st.sampled_from(["u1", "u2", "u3", "u4", None])
_ACCS = st.sampled_from(["A1", "A2", "A3", None])
_MINUTES = st.integers(0, 10 * 60)


@st.composite
def plan_and_studies(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame]:
    n_steps = draw(st.integers(0, 8))
    step_rows = [
        {
            "study_uid": draw(_UIDS),
            "accession_number": draw(_ACCS),
            "patient_key": draw(_PATIENTS),
            "machine": draw(st.sampled_from(["PET GE", "PET Siemens"])),
            "scheduled_start": at("07:00") + dt.timedelta(minutes=draw(_MINUTES)),
        }
        for _ in range(n_steps)
    ]
    n_studies = draw(st.integers(0, 8))
    study_rows = []
    uids = draw(st.lists(st.sampled_from(["u1", "u2", "u3", "u4", "u5", "u6"]), max_size=8))
    for i in range(n_studies):
        uid = uids[i] if i < len(uids) else f"x{i}"
        takes = 1 + sum(1 for r in study_rows if r["study_uid"] == uid)
        start = at("07:00") + dt.timedelta(minutes=draw(_MINUTES))
        study_rows.append(
            {
                "study_uid": uid,
                "take": takes,
                "accession_number": draw(_ACCS),
                "patient_key": draw(_PATIENTS),
                "machine": draw(st.sampled_from(["PET GE", "PET Siemens"])),
                "start": start,
                "end": start + dt.timedelta(minutes=20),
            }
        )
    return steps(*step_rows), studies(*study_rows)


COVER_BOTH = pl.DataFrame({"date": [DAY, DAY], "machine": ["PET GE", "PET Siemens"]})


@given(plan_and_studies())
def test_every_study_is_matched_once_or_unplanned_and_no_step_twice(
    data: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    p, s = data
    got = pm.match_plan(p, s, COVER_BOTH, window_s=2 * 3600)
    # every step appears once, performed or no-show
    planned = got.filter(pl.col("status") != "unplanned")
    assert sorted(planned["step_key"].to_list()) == sorted(p["step_key"].to_list())
    # every take 1 appears exactly once: matched by one step, or unplanned
    firsts = sorted(s.filter(pl.col("take") == 1)["study_key"].to_list())
    assert sorted(got["study_key"].drop_nulls().to_list()) == firsts
    # later takes are never a row of their own, they are counted on their take 1
    later = s.filter(pl.col("take") > 1).group_by("study_uid").len()
    by_uid = dict(later.iter_rows())
    for row in got.filter(pl.col("study_key").is_not_null()).iter_rows(named=True):
        uid = row["study_key"].rsplit("_", 1)[0]
        assert row["retakes"] == by_uid.get(uid, 0)
    # what the rules say of each match
    study_of = {r["study_key"]: r for r in s.iter_rows(named=True)}
    step_of = {r["step_key"]: r for r in p.iter_rows(named=True)}
    for row in got.filter(pl.col("status") == "performed").iter_rows(named=True):
        step, study = step_of[row["step_key"]], study_of[row["study_key"]]
        if row["match"] == "uid":
            assert step["study_uid"] == study["study_uid"]
        elif row["match"] == "accession":
            assert step["accession_number"] == study["accession_number"] is not None
        else:
            assert row["match"] == "patient"
            assert step["patient_key"] == study["patient_key"] is not None
            assert step["machine"] == study["machine"]
            assert abs(row["delay_s"]) <= 2 * 3600
        assert row["delay_s"] == (study["start"] - step["scheduled_start"]).total_seconds()


@given(plan_and_studies())
def test_a_step_left_unmatched_had_no_free_study_under_any_rule(
    data: tuple[pl.DataFrame, pl.DataFrame],
) -> None:
    # the rules are exhausted: a no-show and an unplanned study are never a pair the rules
    # would have accepted (by uid, accession, or patient + machine within the window)
    p, s = data
    got = pm.match_plan(p, s, COVER_BOTH, window_s=2 * 3600)
    step_of = {r["step_key"]: r for r in p.iter_rows(named=True)}
    study_of = {r["study_key"]: r for r in s.iter_rows(named=True)}
    no_shows = [step_of[k] for k in got.filter(pl.col("status") == "no_show")["step_key"]]
    unplanned = [study_of[k] for k in got.filter(pl.col("status") == "unplanned")["study_key"]]
    for step in no_shows:
        for study in unplanned:
            assert step["study_uid"] is None or step["study_uid"] != study["study_uid"]
            assert step["accession_number"] is None or (
                step["accession_number"] != study["accession_number"]
            )
            if step["patient_key"] is not None and step["patient_key"] == study["patient_key"]:
                near = abs((study["start"] - step["scheduled_start"]).total_seconds()) <= 7200
                assert step["machine"] != study["machine"] or not near


@given(plan_and_studies())
def test_the_plan_table_total_adds_up(data: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    p, s = data
    got = pm.match_plan(p, s, COVER_BOTH)
    table = pm.plan_table(got, ["FDG"])
    if got.height == 0:
        assert table.height == 0
        return
    total = table.filter(pl.col("label") == "TOTAL").row(0, named=True)
    per = table.filter(pl.col("label") != "TOTAL")
    for col in ("planned", "performed", "no_shows", "unplanned"):
        assert per[col].sum() == total[col]
    assert total["planned"] == p.height
    assert total["performed"] + total["no_shows"] == total["planned"]
