"""Failover: an account's mail leaves by its route (the own smtp tier or an external relay)
and moves to its backup route while the route fails, coming back once a probe succeeds.

Per route, a state machine fed with the outcomes of our submissions to it:

    up --(N refusals or auth failures in a row, or M temporary failures within T)--> failed
    failed --(a probe after `backoff`: accepted)--> up
    failed --(a probe refused or failed)--> failed, backoff doubled (up to `max_backoff`)

Defaults, and why: 3 refusals in a row (one refused submission can be a race with a
credential rotation or a single bad message; three is a relay that says no), a 4xx storm of
10 temporary failures within 60 s (a relay's occasional 4xx is retried by Postfix and means
little; ten a minute is a relay that is throttling or falling over), the first probe after
30 s, doubling up to 10 minutes, so a short blip costs under a minute of detour and a long
outage costs a probe every 10 minutes. Mail moves in well under the issue's 60 s once the
threshold is reached, as each worker asks `route_for` before each hand-over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from .clock import require_utc

SMTP = "smtp"
RELAY = "relay"
ROUTE_KINDS = (SMTP, RELAY)

ACCEPTED = "accepted"
REFUSED = "refused"  # a 5xx to our submission, or the connection refused
AUTH_FAILED = "auth_failed"
TEMP_FAILURE = "temp_failure"  # a 4xx, a timeout, a dropped connection
OUTCOMES = (ACCEPTED, REFUSED, AUTH_FAILED, TEMP_FAILURE)

UP = "up"
FAILED = "failed"

DEFAULT_REFUSALS = 3
DEFAULT_STORM_COUNT = 10
DEFAULT_STORM_WINDOW = timedelta(seconds=60)
DEFAULT_BACKOFF = timedelta(seconds=30)
DEFAULT_MAX_BACKOFF = timedelta(minutes=10)


@dataclass(frozen=True)
class Route:
    """Where an account's mail is handed over: `smtp` (the own tier) or a named relay."""

    name: str
    kind: str = SMTP

    def __post_init__(self) -> None:
        if self.kind not in ROUTE_KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {', '.join(ROUTE_KINDS)}")


OWN_SMTP = Route("smtp", SMTP)


class Routed(Protocol):
    """Anything with a route and a backup route (an Account of choice.py, a model row)."""

    @property
    def route(self) -> Route: ...

    @property
    def backup(self) -> Route | None: ...


@dataclass(frozen=True)
class FailoverPolicy:
    refusals: int = DEFAULT_REFUSALS
    storm_count: int = DEFAULT_STORM_COUNT
    storm_window: timedelta = DEFAULT_STORM_WINDOW
    backoff: timedelta = DEFAULT_BACKOFF
    max_backoff: timedelta = DEFAULT_MAX_BACKOFF

    def __post_init__(self) -> None:
        if self.refusals < 1 or self.storm_count < 1:
            raise ValueError("refusals and storm_count must be at least 1")
        if self.backoff <= timedelta(0) or self.max_backoff < self.backoff:
            raise ValueError("backoff must be positive and max_backoff at least backoff")


@dataclass(frozen=True)
class Outcome:
    """What happened to one submission to `route` at `time`; `probe` when it was the probe
    `route_for` asked for (only a probe's outcome changes a failed route: a message handed
    over before the failure and accepted late is no sign of recovery)."""

    time: datetime
    route: str
    kind: str
    probe: bool = False

    def __post_init__(self) -> None:
        if self.kind not in OUTCOMES:
            raise ValueError(f"kind: {self.kind!r} is not one of {', '.join(OUTCOMES)}")


@dataclass(frozen=True)
class RouteHealth:
    """One route's state; `failed_since`, `reason`, `next_probe` and `backoff` hold while
    failed."""

    status: str = UP
    refusals: int = 0
    temp_failures: tuple[datetime, ...] = ()
    failed_since: datetime | None = None
    reason: str = ""
    next_probe: datetime | None = None
    backoff: timedelta = field(default=DEFAULT_BACKOFF)


@dataclass(frozen=True)
class RouteChoice:
    """The route for the next hand-over; `probe` asks the caller to record `probe_started`
    and to report the outcome; None: both routes failed, retry at `retry_at`."""

    route: Route | None
    reason: str
    probe: bool = False
    retry_at: datetime | None = None


def route_after(
    state: RouteHealth, outcome: Outcome, policy: FailoverPolicy = FailoverPolicy()
) -> RouteHealth:
    """The route's state after `outcome`."""
    when = require_utc(outcome.time, "time")
    if state.status == FAILED:
        if not outcome.probe:
            return state
        if outcome.kind == ACCEPTED:
            return RouteHealth()
        backoff = min(policy.max_backoff, state.backoff * 2)
        return replace(state, next_probe=when + backoff, backoff=backoff)
    if outcome.kind == ACCEPTED:
        return replace(state, refusals=0, temp_failures=_recent(state, when, policy))
    if outcome.kind in (REFUSED, AUTH_FAILED):
        refusals = state.refusals + 1
        if refusals >= policy.refusals:
            return _failed(f"{refusals} {outcome.kind} in a row", when, policy)
        return replace(state, refusals=refusals)
    recent = (*_recent(state, when, policy), when)
    if len(recent) >= policy.storm_count:
        return _failed(
            f"{len(recent)} temporary failures within {policy.storm_window.total_seconds():g} s",
            when,
            policy,
        )
    return replace(state, temp_failures=recent)


def probe_started(state: RouteHealth, now: datetime) -> RouteHealth:
    """Record that a probe was sent at `now`: the next one waits another backoff, so other
    workers keep using the backup meanwhile, and a probe whose result never comes (a crash)
    is simply followed by another."""
    if state.status != FAILED:
        return state
    return replace(state, next_probe=require_utc(now) + state.backoff)


def route_for(
    account: Routed, route_health: Mapping[str, RouteHealth], now: datetime
) -> RouteChoice:
    """The account's route at `now`: its own while up; a probe of it once its backoff is
    over; otherwise its backup (probed in turn if it failed too); None when both are down."""
    now = require_utc(now)
    primary = account.route
    own = route_health.get(primary.name, RouteHealth())
    if own.status == UP:
        return RouteChoice(primary, "primary")
    if own.next_probe is not None and now >= own.next_probe:
        return RouteChoice(primary, f"probe after {own.reason}", probe=True)
    backup = account.backup
    if backup is None:
        return RouteChoice(
            None, f"{primary.name} failed ({own.reason}), no backup", retry_at=own.next_probe
        )
    spare = route_health.get(backup.name, RouteHealth())
    if spare.status == UP:
        return RouteChoice(backup, f"backup: {primary.name} failed ({own.reason})")
    if spare.next_probe is not None and now >= spare.next_probe:
        return RouteChoice(backup, f"probe of the backup after {spare.reason}", probe=True)
    retry = min(when for when in (own.next_probe, spare.next_probe) if when is not None)
    return RouteChoice(None, f"{primary.name} and {backup.name} both failed", retry_at=retry)


def _failed(reason: str, when: datetime, policy: FailoverPolicy) -> RouteHealth:
    return RouteHealth(
        status=FAILED,
        failed_since=when,
        reason=reason,
        next_probe=when + policy.backoff,
        backoff=policy.backoff,
    )


def _recent(state: RouteHealth, when: datetime, policy: FailoverPolicy) -> tuple[datetime, ...]:
    return tuple(time for time in state.temp_failures if when - time < policy.storm_window)
