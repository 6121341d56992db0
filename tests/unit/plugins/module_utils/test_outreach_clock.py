"""The shared clock: a simulation sets the time, never sleeps, and never goes back."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.clock import (
    Clock,
    SimulatedClock,
    SystemClock,
    require_utc,
    start_of_day,
    utc_day,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_system_clock_gives_an_aware_utc_time() -> None:
    now = SystemClock().now()
    assert now.utcoffset() == timedelta(0)


def test_simulated_clock_compresses_days_by_setting_the_time() -> None:
    clock: Clock = SimulatedClock(T0)
    assert clock.now() == T0
    assert isinstance(clock, SimulatedClock)
    assert clock.advance(timedelta(days=30)) == T0 + timedelta(days=30)
    assert clock.set(T0 + timedelta(days=31)) == clock.now()


def test_simulated_clock_does_not_go_back() -> None:
    clock = SimulatedClock(T0)
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="does not go back"):
        clock.set(T0 - timedelta(seconds=1))


def test_a_naive_time_is_refused_and_another_zone_converted() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        SimulatedClock(datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="now: "):
        require_utc(datetime(2026, 3, 2))
    paris = datetime(2026, 3, 2, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    assert require_utc(paris) == datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    # "today" is the UTC day on every host, whatever its zone
    assert utc_day(paris) == date(2026, 3, 1)
    assert start_of_day(date(2026, 3, 1)) == datetime(2026, 3, 1, tzinfo=UTC)
