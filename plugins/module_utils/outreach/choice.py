"""Which account sends the next message of a campaign.

Filters, in order, each a hard rule: the campaign's tenant's accounts only (one tenant's
mail never leaves under another's identity, whatever else is free), on a domain that sends
(active in rotation, its DNS check passed, not resting for its own health), healthy, within
today's quota. Today's quota is the warm-up limit times the account's health factor times its
domain's, minus what it sent today (UTC).

Among those left, the least-used domain first, then the least-used account in it, both as a
fraction of today's quota; ties go to the name, so a simulation is reproducible. Why not
round-robin: a cursor is shared state every worker would have to lock, it forgets that one
domain has 120 mailboxes and another 80, and it has to be repaired after a cooldown; the
least-used fraction needs nothing but today's counts (which the workers share anyway), fills
domains in proportion to their capacity, and catches up by itself after a pause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from fractions import Fraction

from .clock import require_utc, utc_day
from .failover import OWN_SMTP, Route
from .health import (
    DEFAULT_HEALTH_POLICY,
    Active,
    HealthPolicy,
    HealthState,
    health_factor,
    is_sending,
)
from .warmup import WarmupSchedule, daily_limit, is_warm

NO_ACCOUNTS = "no_accounts"
NO_ACTIVE_DOMAIN = "no_active_domain"
ALL_OUT = "all_out"
NONE_WARM = "none_warm"
ALL_EXHAUSTED = "all_exhausted"
CHOSEN = "chosen"


@dataclass(frozen=True)
class Account:
    """A sender mailbox: whose, on which domain, its warm-up, and where its mail is handed
    over (`route`, and `backup` while the route fails: failover.py)."""

    name: str
    tenant: str
    domain: str
    first_day: date
    schedule: WarmupSchedule = field(default_factory=WarmupSchedule)
    route: Route = OWN_SMTP
    backup: Route | None = None


@dataclass(frozen=True)
class Campaign:
    """`warm_only`: send only from mailboxes whose warm-up is complete (a client who keeps
    warming mailboxes on warm-up traffic); they join on the day they are warm."""

    name: str
    tenant: str
    warm_only: bool = False


@dataclass(frozen=True)
class DomainStatus:
    """What the account choice needs of a domain: in its rotation's active phase, its DNS
    records passing the checker, and its own health state."""

    active: bool
    dns_ok: bool
    health: HealthState = field(default_factory=Active)


@dataclass(frozen=True)
class Choice:
    """The chosen account (None: `reason` says why none), its quota today and its use."""

    account: Account | None
    reason: str
    quota: int = 0
    used: int = 0


def account_quota(
    account: Account,
    state: HealthState,
    now: datetime,
    policy: HealthPolicy = DEFAULT_HEALTH_POLICY,
    *,
    domain_state: HealthState | None = None,
    paused_days: int = 0,
) -> int:
    """Messages the account may send today in all: warm-up limit x health factors, rounded
    down (a quota is never exceeded by rounding)."""
    today = utc_day(now)
    limit = daily_limit(account.schedule, account.first_day, today, paused_days)
    factor = health_factor(state, now, policy)
    if domain_state is not None:
        factor *= health_factor(domain_state, now, policy)
    return int(limit * factor + 1e-9)


def choose_account(
    accounts: Sequence[Account],
    usage_today: Mapping[str, int],
    health: Mapping[str, HealthState],
    domain_states: Mapping[str, DomainStatus],
    now: datetime,
    campaign: Campaign,
    *,
    policy: HealthPolicy = DEFAULT_HEALTH_POLICY,
    paused_days: Mapping[str, int] | None = None,
) -> Choice:
    """The account for the campaign's next message, or None with the reason: `no_accounts`,
    `no_active_domain`, `all_out`, `none_warm`, `all_exhausted`. An account without a health
    state is active; a domain without a status does not send (unknown is not checked)."""
    now = require_utc(now)
    today = utc_day(now)
    paused = paused_days or {}
    own = [account for account in accounts if account.tenant == campaign.tenant]
    if not own:
        return Choice(None, NO_ACCOUNTS)

    def domain_sends(name: str) -> bool:
        status = domain_states.get(name)
        return (
            status is not None
            and status.active
            and status.dns_ok
            and is_sending(status.health, now, policy)
        )

    on_active = [account for account in own if domain_sends(account.domain)]
    if not on_active:
        return Choice(None, NO_ACTIVE_DOMAIN)
    healthy = [
        account
        for account in on_active
        if is_sending(health.get(account.name, Active()), now, policy)
    ]
    if not healthy:
        return Choice(None, ALL_OUT)
    if campaign.warm_only:
        healthy = [
            account
            for account in healthy
            if is_warm(account.schedule, account.first_day, today, paused.get(account.name, 0))
        ]
        if not healthy:
            return Choice(None, NONE_WARM)

    quotas = {
        account.name: account_quota(
            account,
            health.get(account.name, Active()),
            now,
            policy,
            domain_state=domain_states[account.domain].health,
            paused_days=paused.get(account.name, 0),
        )
        for account in healthy
    }
    used = {account.name: max(0, usage_today.get(account.name, 0)) for account in healthy}
    domain_quota: dict[str, int] = {}
    domain_used: dict[str, int] = {}
    for account in healthy:
        domain_quota[account.domain] = domain_quota.get(account.domain, 0) + quotas[account.name]
        domain_used[account.domain] = domain_used.get(account.domain, 0) + used[account.name]
    open_accounts = [account for account in healthy if used[account.name] < quotas[account.name]]
    if not open_accounts:
        return Choice(None, ALL_EXHAUSTED)

    def rank(account: Account) -> tuple[Fraction, Fraction, str, str]:
        return (
            Fraction(domain_used[account.domain], domain_quota[account.domain]),
            Fraction(used[account.name], quotas[account.name]),
            account.domain,
            account.name,
        )

    best = min(open_accounts, key=rank)
    return Choice(best, CHOSEN, quotas[best.name], used[best.name])
