"""Health of a sending account or domain: sliding-window rates, the verdict, and the small
state machine that takes a subject out of rotation and brings it back.

    active --(a rate over its threshold)--> resting(reason, since)
    resting --(cooldown elapsed)----------> returning(since)       quota at `return_factor`
    returning --(a rate over)-------------> resting(reason, now)   rising to 1 over N days
    returning --(N days passed)-----------> active(counted_from)

Why a window with a floor: when a subject returns, the bounces that sent it out are still
inside the 7-day window; counting them again would send it straight back out. So each state
says from when events count (`window_start`): a returning or freshly active subject is judged
only on what it sent since it came back.

The same functions serve accounts and domains (a domain's counts are the sum of its accounts'
events); the caller keys the states by account name or domain name. Counting is separate from
judging, so the runtime can count in SQL (`count(*) ... where time >= window_start`) and the
simulation in memory, and both judge with `health_step`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .clock import require_utc, utc_day

SENT = "sent"
BOUNCE = "bounce"  # hard bounces only: a soft one is the recipient's passing trouble
SMTP_ERROR = "smtp_error"  # our submission refused or failed (relay 4xx/5xx, auth, timeout)
COMPLAINT = "complaint"
EVENT_KINDS = (SENT, BOUNCE, SMTP_ERROR, COMPLAINT)

BOUNCE_RATE = "bounce_rate"
COMPLAINT_RATE = "complaint_rate"
SMTP_ERROR_RATE = "smtp_error_rate"

DEFAULT_WINDOW = timedelta(days=7)
# The defaults: 3% hard bounces (Smartlead pauses at a chosen 3-5%, Woodpecker at 2%
# over 28 days) and 0.1% complaints (Gmail: stay under 0.10%, never reach 0.30%).
DEFAULT_BOUNCE_RATE = 0.03
DEFAULT_COMPLAINT_RATE = 0.001
# Our own submissions failing: 5% means one in twenty messages did not leave, far above the
# sporadic timeout, and a relay-wide outage is failover's job (failover.py), not the account's.
DEFAULT_SMTP_ERROR_RATE = 0.05
# Below this many sends a rate says nothing: one bounce in 3 sends is 33% but could be one bad
# address on a fresh list. 50 is under three days of a young mailbox's warm-up (20, 22, 24),
# so a bad mailbox is still caught early, and at 50 a 3% threshold needs 2 bounces, not 1.
DEFAULT_MIN_SENDS = 50
DEFAULT_COOLDOWN = timedelta(days=3)
DEFAULT_RETURN_FACTOR = 0.5
DEFAULT_RETURN_DAYS = 5


@dataclass(frozen=True)
class HealthEvent:
    """One thing that happened to a message of `account` on `domain`, at `time`."""

    time: datetime
    account: str
    domain: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {', '.join(EVENT_KINDS)}")


@dataclass(frozen=True)
class Counts:
    """What a subject did inside its window."""

    sent: int = 0
    bounces: int = 0
    smtp_errors: int = 0
    complaints: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.sent + other.sent,
            self.bounces + other.bounces,
            self.smtp_errors + other.smtp_errors,
            self.complaints + other.complaints,
        )


@dataclass(frozen=True)
class HealthPolicy:
    """Thresholds and timings; model variables later, these defaults until then."""

    window: timedelta = DEFAULT_WINDOW
    bounce_rate: float = DEFAULT_BOUNCE_RATE
    complaint_rate: float = DEFAULT_COMPLAINT_RATE
    smtp_error_rate: float = DEFAULT_SMTP_ERROR_RATE
    min_sends: int = DEFAULT_MIN_SENDS
    cooldown: timedelta = DEFAULT_COOLDOWN
    return_factor: float = DEFAULT_RETURN_FACTOR
    return_days: int = DEFAULT_RETURN_DAYS

    def __post_init__(self) -> None:
        if self.window <= timedelta(0) or self.cooldown < timedelta(0):
            raise ValueError("window must be positive and cooldown not negative")
        if not 0 < self.return_factor <= 1 or self.return_days < 0 or self.min_sends < 1:
            raise ValueError("return_factor in (0, 1], return_days >= 0, min_sends >= 1")


DEFAULT_HEALTH_POLICY = HealthPolicy()


@dataclass(frozen=True)
class Breach:
    """Why a subject left rotation: which rate, its value and threshold, over which window."""

    rate: str
    value: float
    threshold: float
    window: timedelta
    sent: int
    count: int

    def describe(self) -> str:
        """One line for the operator and the policy service's deferral text."""
        return (
            f"{self.rate} {self.value:.2%} over {self.threshold:.2%} "
            f"({self.count} of {self.sent} sent in {_span(self.window)})"
        )


class HealthState:
    """One of `Active`, `Resting`, `Returning` (a base class, not a union alias: the states
    are matched with isinstance)."""

    __slots__ = ()


@dataclass(frozen=True)
class Active(HealthState):
    """In rotation; events before `counted_from` (its return) do not count."""

    counted_from: datetime | None = None


@dataclass(frozen=True)
class Resting(HealthState):
    """Out of rotation since `since`, for `reason`: it sends nothing."""

    reason: Breach
    since: datetime


@dataclass(frozen=True)
class Returning(HealthState):
    """Back since `since` at a reduced quota that rises day by day."""

    since: datetime
    previous: Breach | None = field(default=None, compare=False)


def count_events(
    events: Iterable[HealthEvent], since: datetime, until: datetime
) -> dict[str, Counts]:
    """Counts per account and per domain (both keys in one map: `account:NAME`,
    `domain:NAME`) of the events in [since, until]."""
    tallies: dict[str, list[int]] = {}
    slot = EVENT_KINDS.index
    for event in events:
        if since <= event.time <= until:
            for key in (f"account:{event.account}", f"domain:{event.domain}"):
                tallies.setdefault(key, [0, 0, 0, 0])[slot(event.kind)] += 1
    return {key: Counts(*values) for key, values in tallies.items()}


def counts_for(events: Iterable[HealthEvent], since: datetime, until: datetime) -> Counts:
    """The counts of `events` (already one subject's) in [since, until]."""
    tally = [0, 0, 0, 0]
    for event in events:
        if since <= event.time <= until:
            tally[EVENT_KINDS.index(event.kind)] += 1
    return Counts(*tally)


def evaluate(counts: Counts, policy: HealthPolicy = DEFAULT_HEALTH_POLICY) -> Breach | None:
    """The first rate over its threshold, complaints first (the strongest signal a provider
    acts on), then bounces, then our own SMTP errors; None when healthy or too few sends."""
    if counts.sent < policy.min_sends:
        return None
    for rate, count, threshold in (
        (COMPLAINT_RATE, counts.complaints, policy.complaint_rate),
        (BOUNCE_RATE, counts.bounces, policy.bounce_rate),
        (SMTP_ERROR_RATE, counts.smtp_errors, policy.smtp_error_rate),
    ):
        value = count / counts.sent
        if value > threshold:
            return Breach(rate, value, threshold, policy.window, counts.sent, count)
    return None


def elapse(
    state: HealthState, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH_POLICY
) -> HealthState:
    """The transitions that time alone makes: a rest ends after the cooldown (at the exact
    time, so a simulation that jumps ahead agrees with one that ticks), a return completes on
    the `return_days`-th UTC day after it began."""
    now = require_utc(now)
    if isinstance(state, Resting) and now >= state.since + policy.cooldown:
        state = Returning(state.since + policy.cooldown, state.reason)
    if isinstance(state, Returning) and _days_back(state, now) >= policy.return_days:
        state = Active(counted_from=state.since)
    return state


def window_start(
    state: HealthState, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH_POLICY
) -> datetime:
    """From when the subject's events count at `now`: the window, but never before its return."""
    start = require_utc(now) - policy.window
    current = elapse(state, now, policy)
    floor = current.counted_from if isinstance(current, Active) else current.since
    return start if floor is None or floor < start else floor


def health_step(
    state: HealthState, counts: Counts, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH_POLICY
) -> HealthState:
    """The state at `now`, given the counts since `window_start(state, now, policy)`."""
    current = elapse(state, now, policy)
    if isinstance(current, Resting):
        return current
    breach = evaluate(counts, policy)
    return Resting(breach, require_utc(now)) if breach is not None else current


def health_factor(
    state: HealthState, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH_POLICY
) -> float:
    """The share of the warm-up limit the subject may send today: 1 active, 0 resting, and
    from `return_factor` rising evenly to 1 over `return_days` UTC days when returning (per
    day, so a day's quota does not change under a running campaign)."""
    current = elapse(state, now, policy)
    if isinstance(current, Active):
        return 1.0
    if isinstance(current, Resting):
        return 0.0
    if policy.return_days == 0:
        return 1.0
    progress = min(1.0, _days_back(current, now) / policy.return_days)
    return policy.return_factor + (1.0 - policy.return_factor) * progress


def is_sending(
    state: HealthState, now: datetime, policy: HealthPolicy = DEFAULT_HEALTH_POLICY
) -> bool:
    """True when the subject is in rotation (active or returning) at `now`."""
    return not isinstance(elapse(state, now, policy), Resting)


def _days_back(state: Returning, now: datetime) -> int:
    return (utc_day(now) - utc_day(state.since)).days


def _span(window: timedelta) -> str:
    if window % timedelta(days=1) == timedelta(0):
        return f"{window.days} days"
    return f"{window.total_seconds() / 3600:g} h"
