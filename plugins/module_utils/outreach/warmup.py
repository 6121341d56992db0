"""Warm-up schedules: how many messages a young mailbox, or a new source IP towards one
provider, may send on each day of its life.

A schedule is model data, written either as a ramp or as a curve:

    warmup: {start: 20, step: 2, ceiling: 40}   # 20 on day 0, 22 on day 1, ... 40 from day 10
    warmup: {curve: [10, 15, 20, 30, 40]}       # one limit per day, the last one held

Defaults come from the field (FEEDBACK.md): vendors cap a young mailbox at 30-40 a day and
ramp it by about 2 a day (Instantly 30 and +2, Smartlead 20-30, lemlist at most 40), so a
mailbox starts at 20 and is warm at 40 after 10 days. A pool address has one schedule per
provider (`ip_warmup: {google: {...}, yahoo: {...}, default: {...}}`), the same type with
other numbers, because each provider judges a new IP on its own.

Day 0 is `first_day`. Days the mailbox did not send through no fault of its own (its domain
in rotation cooldown, the account resting) can be given as `paused_days`: a receiver knows
only the mail it saw, so a pause must not count as warming.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from ..model.errors import ModelError, raise_collected
from ..model.fields import check_keys, show, whole_number

DEFAULT_START = 20
DEFAULT_STEP = 2
DEFAULT_CEILING = 40
SCHEDULE_KEYS = ("start", "step", "ceiling", "curve")
# The key of an IP schedule that applies to providers without one of their own.
DEFAULT_PROVIDER = "default"


@dataclass(frozen=True)
class WarmupSchedule:
    """A ramp (`start` + `step` a day up to `ceiling`) or, when `curve` is set, one limit per
    day with the last one held."""

    start: int = DEFAULT_START
    step: int = DEFAULT_STEP
    ceiling: int = DEFAULT_CEILING
    curve: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.curve is not None and not self.curve:
            raise ValueError("curve: empty; give at least one daily limit or no curve")
        if self.curve is None and (self.start < 1 or self.step < 1 or self.ceiling < self.start):
            raise ValueError(f"not a warm-up ramp: {self}")

    @property
    def full_limit(self) -> int:
        """The daily limit once warm."""
        return self.curve[-1] if self.curve is not None else self.ceiling

    @property
    def days_to_warm(self) -> int:
        """The first day index at which the schedule is complete."""
        if self.curve is not None:
            return len(self.curve) - 1
        return -(-(self.ceiling - self.start) // self.step)


def day_index(first_day: date, today: date, paused_days: int = 0) -> int:
    """Days of warm-up behind `today` (0 on `first_day`, negative before it)."""
    if paused_days < 0:
        raise ValueError(f"paused_days: {paused_days} is negative")
    elapsed = (today - first_day).days
    return elapsed if elapsed < 0 else max(0, elapsed - paused_days)


def daily_limit(
    schedule: WarmupSchedule, first_day: date, today: date, paused_days: int = 0
) -> int:
    """How many messages the mailbox (or IP) may send on `today`: 0 before `first_day`."""
    index = day_index(first_day, today, paused_days)
    if index < 0:
        return 0
    if schedule.curve is not None:
        return schedule.curve[min(index, len(schedule.curve) - 1)]
    return min(schedule.ceiling, schedule.start + schedule.step * index)


def is_warm(schedule: WarmupSchedule, first_day: date, today: date, paused_days: int = 0) -> bool:
    """True once the schedule is complete: the limit no longer rises."""
    return day_index(first_day, today, paused_days) >= schedule.days_to_warm


def parse_schedule(raw: Any, path: str = "warmup") -> WarmupSchedule:
    """A validated schedule from model data (absent: the defaults); every problem is named by
    its field (`warmup.step: 0 is too small; give a number >= 1`), all reported at once."""
    if raw is None:
        return WarmupSchedule()
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{show(raw)} is not a mapping such as {{start: 20, step: 2, ceiling: 40}}"
        )
    check_keys(raw, SCHEDULE_KEYS, path)
    if raw.get("curve") is not None:
        ramp = sorted(key for key in ("start", "step", "ceiling") if key in raw)
        if ramp:
            raise ModelError(
                f"{path}.curve",
                f"given with {', '.join(ramp)}: a schedule is a curve or a ramp, not both; "
                "drop one",
            )
        return WarmupSchedule(curve=_curve(raw["curve"], f"{path}.curve"))
    errors: list[ModelError] = []
    values: dict[str, int] = {}
    for key, default in (
        ("start", DEFAULT_START),
        ("step", DEFAULT_STEP),
        ("ceiling", DEFAULT_CEILING),
    ):
        try:
            values[key] = whole_number(raw, key, path, default, 1)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    if values["ceiling"] < values["start"]:
        raise ModelError(
            f"{path}.ceiling",
            f"{values['ceiling']} is below {path}.start ({values['start']}); "
            "a warm-up rises to its ceiling",
        )
    return WarmupSchedule(**values)


def _curve(raw: Any, path: str) -> tuple[int, ...]:
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence) or not raw:
        raise ModelError(path, f"{show(raw)} is not a list of daily limits such as [10, 20, 30]")
    errors: list[ModelError] = []
    limits: list[int] = []
    for index, value in enumerate(raw):
        try:
            limits.append(whole_number({"day": value}, "day", path, None, 1))
        except ModelError as error:
            errors.append(ModelError(f"{path}[{index}]", error.problem))
            continue
        if len(limits) > 1 and limits[-1] < limits[-2]:
            errors.append(
                ModelError(
                    f"{path}[{index}]",
                    f"{limits[-1]} is below the day before ({limits[-2]}); a warm-up does not "
                    "fall (a rest is the health check's decision, not the curve's)",
                )
            )
    raise_collected(errors)
    return tuple(limits)


def parse_ip_warmup(raw: Any, path: str = "ip_warmup") -> dict[str, WarmupSchedule]:
    """A pool address's schedules by provider name (`google`, `yahoo`, ... or `default`)."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{show(raw)} is not a mapping of provider names to warm-up schedules"
        )
    errors: list[ModelError] = []
    schedules: dict[str, WarmupSchedule] = {}
    for provider, schedule in raw.items():
        if not isinstance(provider, str) or not provider:
            errors.append(ModelError(path, f"{show(provider)} is not a provider name"))
            continue
        try:
            schedules[provider] = parse_schedule(schedule, f"{path}.{provider}")
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return schedules


def ip_daily_limit(
    schedules: Mapping[str, WarmupSchedule],
    provider: str,
    first_day: date,
    today: date,
    paused_days: int = 0,
) -> int | None:
    """How many messages the address may send to `provider` on `today`, by the provider's own
    schedule or else the `default` one; None when neither exists: the address's warm-up does
    not limit that provider (its shaping still does)."""
    schedule = schedules.get(provider, schedules.get(DEFAULT_PROVIDER))
    if schedule is None:
        return None
    return daily_limit(schedule, first_day, today, paused_days)


def ip_is_warm(
    schedules: Mapping[str, WarmupSchedule],
    provider: str,
    first_day: date,
    today: date,
    paused_days: int = 0,
) -> bool:
    """True when the address's schedule for `provider` is complete, or it has none."""
    schedule = schedules.get(provider, schedules.get(DEFAULT_PROVIDER))
    return schedule is None or is_warm(schedule, first_day, today, paused_days)
