"""Domain rotation: which of a tenant's domains send this week, and which rest.

What rotation means here: capacity and health management under the client's own identity.
A domain that has sent for its `period` rests for its `cooldown` and sends nothing, so no
domain carries the tenant's whole volume week after week and a domain whose reputation slips
gets time back. It is never a way to dilute reputation: every domain keeps its SPF, DKIM and
DMARC, its unsubscribe and its suppression list, mail goes out under the client's real name,
and the same recipients are not spread over fresh domains to escape a block. Spamhaus lists
senders who do that as "snowshoe" spam.

Each domain's history is one fact: `rotation_start`, when its first active period began
(None: not in rotation yet). From it the phase follows at any time, with no stored state to
drift: active for `period`, resting for `cooldown`, and again. `staggered_starts` spreads a
tenant's domains over the cycle so that, with the defaults (a week on, a week off), half of
them send at any time and the active set changes weekly.

Accounts join automatically: an account is in rotation when its domain is active, it is
healthy and within its warm-up quota (choice.py); nobody lists them, so a mailbox whose
warm-up completes sends at its full limit the next day (and joins `warm_only` campaigns).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from .clock import require_utc, start_of_day

DEFAULT_PERIOD = timedelta(weeks=1)
DEFAULT_COOLDOWN = timedelta(weeks=1)
ACTIVE = "active"
COOLDOWN = "cooldown"
WAITING = "waiting"


@dataclass(frozen=True)
class Rotation:
    """How long a domain sends, then rests. `cooldown` 0 turns rotation off (always active)."""

    period: timedelta = DEFAULT_PERIOD
    cooldown: timedelta = DEFAULT_COOLDOWN

    def __post_init__(self) -> None:
        if self.period <= timedelta(0) or self.cooldown < timedelta(0):
            raise ValueError("rotation: period must be positive and cooldown not negative")

    @property
    def cycle(self) -> timedelta:
        return self.period + self.cooldown


@dataclass(frozen=True)
class DomainHistory:
    name: str
    tenant: str
    rotation_start: datetime | None


@dataclass(frozen=True)
class Phase:
    """Where a domain is at a time: `active`, `cooldown` or `waiting` (not started), and the
    bounds of that phase (`until` None: open-ended)."""

    name: str
    since: datetime | None
    until: datetime | None


def domain_phase(history: DomainHistory, rotation: Rotation, now: datetime) -> Phase:
    """The domain's phase at `now`."""
    now = require_utc(now)
    start = history.rotation_start
    if start is None or now < start:
        return Phase(WAITING, None, start)
    if rotation.cooldown == timedelta(0):
        return Phase(ACTIVE, start, None)
    cycles = (now - start) // rotation.cycle
    begin = start + cycles * rotation.cycle
    if now < begin + rotation.period:
        return Phase(ACTIVE, begin, begin + rotation.period)
    return Phase(COOLDOWN, begin + rotation.period, begin + rotation.cycle)


def active_domains(
    domains: Iterable[DomainHistory], rotation: Rotation, now: datetime
) -> frozenset[str]:
    """The names of the domains in their active phase at `now`."""
    return frozenset(
        history.name for history in domains if domain_phase(history, rotation, now).name == ACTIVE
    )


def staggered_starts(
    domains: Sequence[DomainHistory], rotation: Rotation, epoch: datetime
) -> dict[str, datetime]:
    """A `rotation_start` per domain that spreads each tenant's domains evenly over the cycle
    (in name order, whole days, so phases change at midnight UTC): the k-th of n domains is
    k/n of a cycle into it at `epoch`. Each tenant is spread on its own, so one with a single
    domain still rests, and one with several always has some sending."""
    epoch = require_utc(epoch, "epoch")
    by_tenant: dict[str, list[str]] = {}
    for history in domains:
        by_tenant.setdefault(history.tenant, []).append(history.name)
    starts: dict[str, datetime] = {}
    cycle_days = max(1, rotation.cycle.days)
    for names in by_tenant.values():
        ordered = sorted(set(names))
        for index, name in enumerate(ordered):
            starts[name] = epoch - timedelta(days=index * cycle_days // len(ordered))
    return starts


def cooldown_days(history: DomainHistory, rotation: Rotation, first_day: date, today: date) -> int:
    """Whole UTC days in [first_day, today) that the domain spent in cooldown: the
    `paused_days` of its accounts' warm-up, which must not advance while they do not send.
    Days before its rotation began are not counted: a mailbox's `first_day` is the caller's
    to set when it starts sending."""
    days = 0
    day = first_day
    while day < today:
        if domain_phase(history, rotation, start_of_day(day)).name == COOLDOWN:
            days += 1
        day += timedelta(days=1)
    return days


def rested_per_cooldown(
    history: DomainHistory,
    rotation: Rotation,
    sends: Iterable[datetime],
) -> bool:
    """True when none of `sends` (the domain's send times) fell in a cooldown or before the
    domain's rotation began: the simulation's `domains_rested_per_cooldown`."""
    return all(domain_phase(history, rotation, when).name == ACTIVE for when in sends)
