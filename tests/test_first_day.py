"""``retrieve.first_day``: the PACS holds nothing before it, so it is not asked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from flows.weekly import days_before_first_day, needed_days
from pyschedvisu.commands.demo import demo_toml
from pyschedvisu.config import Settings, load_settings
from pyschedvisu.retrieval import retrieval_fingerprint
from tests.test_config import one_line_exit_2

END = dt.date(2026, 11, 27)


def test_the_report_asks_from_january_unless_the_pacs_starts_later() -> None:
    s = Settings()
    s.report.periods = ["hebdomadaire", "annuel"]
    january = s.business_days(dt.date(2026, 1, 1), END)[0]  # Jan 1 and 2 are holidays
    assert needed_days(s, END)[0] == january
    assert days_before_first_day(s, END) == []
    s.retrieve.first_day = dt.date(2026, 6, 8)
    days = needed_days(s, END)
    assert days[0] == dt.date(2026, 6, 8) and days[-1] == END
    # what is left unasked, which the weekly flow says: exactly the days before it
    unasked = days_before_first_day(s, END)
    assert unasked == s.business_days(january, dt.date(2026, 6, 5))
    assert unasked + days == s.business_days(january, END)  # nothing lost between them
    s.retrieve.first_day = dt.date(2020, 1, 1)  # before what the periods reach: no change
    assert needed_days(s, END)[0] == january
    assert days_before_first_day(s, END) == []


def test_first_day_does_not_change_the_days_already_stored() -> None:
    """The days' fingerprint stays: setting it later fetches nothing again."""
    s = Settings()
    before = retrieval_fingerprint(s)
    s.retrieve.first_day = dt.date(2026, 6, 8)
    assert retrieval_fingerprint(s) == before


def test_the_demo_config_says_when_the_department_opened(tmp_path: Path) -> None:
    path = tmp_path / "pyschedvisu.toml"
    path.write_text(demo_toml(tmp_path, 11112, 2026, dt.date(2026, 6, 8)))
    assert load_settings(path).retrieve.first_day == dt.date(2026, 6, 8)
    path.write_text(demo_toml(tmp_path, 11112, 2026))
    assert load_settings(path).retrieve.first_day is None


def test_first_day_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYSCHEDVISU_RETRIEVE__FIRST_DAY", "2026-06-08")
    assert load_settings().retrieve.first_day == dt.date(2026, 6, 8)
    monkeypatch.setenv("PYSCHEDVISU_RETRIEVE__FIRST_DAY", "June 8th")
    line = one_line_exit_2(["config", "validate"], "retrieve.first_day")
    assert line.startswith("PYSCHEDVISU_RETRIEVE__FIRST_DAY (environment): retrieve.first_day: ")
