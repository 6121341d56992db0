"""One clock for the services and the simulation: every decision takes `now` from it.

Why: the dispatcher, the policy service and a 30-day simulation must agree on what "today"
is, and a simulation compresses days into minutes by setting the time, never by sleeping.
Only `SystemClock` reads the system's time; the rest of the package takes `now` as an
argument and refuses a naive datetime (a local time would shift "today" by the host's zone).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the services share: the current time, aware and in UTC."""

    def now(self) -> datetime: ...


def require_utc(when: datetime, what: str = "now") -> datetime:
    """`when` in UTC; a naive datetime is refused, since its zone would be a guess."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what}: {when.isoformat()} has no time zone; pass an aware UTC time")
    return when.astimezone(UTC)


def utc_day(when: datetime) -> date:
    """The UTC calendar day of `when`: daily quotas reset at midnight UTC on every host."""
    return require_utc(when).date()


def start_of_day(day: date) -> datetime:
    """Midnight UTC at the start of `day`."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class SystemClock:
    """The real time, for the services."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SimulatedClock:
    """A time the simulation sets: it moves only forward, and only when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = require_utc(start, "start")

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` (never backwards: a decision made later must not see an
        earlier time, or windows and cooldowns would run in reverse)."""
        if delta < timedelta(0):
            raise ValueError(f"advance: {delta} is negative; a clock does not go back")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> datetime:
        """Jump to `when`, which must not be before the current time."""
        target = require_utc(when, "when")
        if target < self._now:
            raise ValueError(
                f"when: {target.isoformat()} is before {self._now.isoformat()}; "
                "a clock does not go back"
            )
        self._now = target
        return self._now
