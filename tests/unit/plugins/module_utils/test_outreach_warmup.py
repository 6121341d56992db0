"""Warm-up schedules: a mailbox's (or an IP's) daily limit on each day of its life."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import (
    ModelError,
    ModelErrors,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.warmup import (
    WarmupSchedule,
    daily_limit,
    ip_daily_limit,
    ip_is_warm,
    is_warm,
    parse_ip_warmup,
    parse_schedule,
)

FIRST = date(2026, 3, 2)


def day(n: int) -> date:
    return FIRST + timedelta(days=n)


def test_default_ramp_is_20_plus_2_a_day_up_to_40() -> None:
    schedule = WarmupSchedule()
    assert [daily_limit(schedule, FIRST, day(n)) for n in range(12)] == [
        20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 40,
    ]  # fmt: skip
    assert schedule.days_to_warm == 10
    assert not is_warm(schedule, FIRST, day(9))
    assert is_warm(schedule, FIRST, day(10))


def test_nothing_before_the_first_day() -> None:
    assert daily_limit(WarmupSchedule(), FIRST, day(-1)) == 0
    assert not is_warm(WarmupSchedule(), FIRST, day(-1))


def test_a_ramp_whose_step_overshoots_stops_at_the_ceiling() -> None:
    schedule = WarmupSchedule(start=10, step=7, ceiling=30)
    assert [daily_limit(schedule, FIRST, day(n)) for n in range(5)] == [10, 17, 24, 30, 30]
    assert schedule.days_to_warm == 3


def test_a_curve_holds_its_last_value() -> None:
    schedule = WarmupSchedule(curve=(10, 15, 25))
    assert [daily_limit(schedule, FIRST, day(n)) for n in range(5)] == [10, 15, 25, 25, 25]
    assert is_warm(schedule, FIRST, day(2))
    assert not is_warm(schedule, FIRST, day(1))
    assert schedule.full_limit == 25


def test_paused_days_do_not_count_as_warming() -> None:
    # a week of rotation cooldown: the receivers saw nothing, so the ramp waits
    assert daily_limit(WarmupSchedule(), FIRST, day(12), paused_days=7) == 30
    assert not is_warm(WarmupSchedule(), FIRST, day(12), paused_days=7)
    assert daily_limit(WarmupSchedule(), FIRST, day(3), paused_days=9) == 20
    with pytest.raises(ValueError, match="paused_days"):
        daily_limit(WarmupSchedule(), FIRST, day(3), paused_days=-1)


def test_parse_defaults_and_values() -> None:
    assert parse_schedule(None) == WarmupSchedule(20, 2, 40)
    assert parse_schedule({}) == WarmupSchedule(20, 2, 40)
    assert parse_schedule({"start": "10", "step": 5}) == WarmupSchedule(10, 5, 40)
    assert parse_schedule({"curve": [5, 10, 10, 30]}) == WarmupSchedule(curve=(5, 10, 10, 30))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"step": 0}, "warmup.step: 0 is too small; give a number >= 1"),
        ({"step": -2}, "warmup.step: -2 is negative; give a number >= 1"),
        ({"start": "lots"}, "warmup.start: 'lots' is not a whole number"),
        ({"start": True}, "warmup.start: True (bool) is not a whole number"),
        ({"ceiling": 10}, "warmup.ceiling: 10 is below warmup.start (20)"),
        ({"stpe": 2}, "warmup: unknown key(s) stpe; known keys are start, step, ceiling, curve"),
        ({"curve": [10, 20], "step": 2}, "warmup.curve: given with step"),
        ({"curve": []}, "warmup.curve: [] (list) is not a list of daily limits"),
        ({"curve": "10,20"}, "warmup.curve: '10,20' is not a list of daily limits"),
        ({"curve": [10, 0]}, "warmup.curve[1]: 0 is too small; give a number >= 1"),
        ({"curve": [10, 30, 20]}, "warmup.curve[2]: 20 is below the day before (30)"),
        ([20, 2, 40], "warmup: [20, 2, 40] (list) is not a mapping"),
    ],
)
def test_parse_errors_name_the_field(raw: object, message: str) -> None:
    with pytest.raises(ModelError) as caught:
        parse_schedule(raw)
    assert str(caught.value).startswith(message)


def test_parse_reports_every_bad_field_at_once() -> None:
    with pytest.raises(ModelErrors) as caught:
        parse_schedule({"start": 0, "step": "x"}, "bulkmail_accounts.a1.warmup")
    text = str(caught.value)
    assert "bulkmail_accounts.a1.warmup.start: 0 is too small" in text
    assert "bulkmail_accounts.a1.warmup.step: 'x' is not a whole number" in text


def test_an_ip_has_a_schedule_per_provider_with_a_default() -> None:
    schedules = parse_ip_warmup(
        {
            "google": {"start": 500, "step": 500, "ceiling": 20000},
            "default": {"curve": [1000, 5000, 50000]},
        },
        "bulkmail_pool.198.51.100.10.warmup",
    )
    assert ip_daily_limit(schedules, "google", FIRST, day(2)) == 1500
    assert ip_daily_limit(schedules, "yahoo", FIRST, day(1)) == 5000
    assert ip_is_warm(schedules, "yahoo", FIRST, day(2))
    assert not ip_is_warm(schedules, "google", FIRST, day(2))
    # no schedule for the provider and no default: the IP's warm-up does not limit it
    assert ip_daily_limit({}, "google", FIRST, day(0)) is None
    assert ip_is_warm({}, "google", FIRST, day(0))
    assert parse_ip_warmup(None) == {}


def test_ip_schedule_errors_name_the_provider() -> None:
    with pytest.raises(ModelError, match=r"^ip_warmup\.yahoo\.step: 0 is too small"):
        parse_ip_warmup({"google": {}, "yahoo": {"step": 0}})
    with pytest.raises(ModelError, match=r"^ip_warmup: \[\] \(list\) is not a mapping"):
        parse_ip_warmup([])


def test_a_schedule_built_in_code_is_checked_too() -> None:
    with pytest.raises(ValueError, match="not a warm-up ramp"):
        WarmupSchedule(start=30, ceiling=20)
    with pytest.raises(ValueError, match="curve: empty"):
        WarmupSchedule(curve=())
