"""Ten simulated days of a small fleet, deciding with the package's functions on one
simulated clock, as the dispatcher and `make simulate-outreach` will.

Two tenants: acme with 10 accounts on a1.test and a2.test, its mail through the mailgun relay
with the own smtp tier as backup; beta with 5 accounts on b1.test through the own tier.
Domains rotate 4 days on, 2 off, staggered per tenant. Account a07 bounces every third
message on day 3; the mailgun relay refuses everything on day 5 from 00:05 to 00:15. Health
is checked every 15 minutes; each campaign tries a message every 10 seconds until none of its
accounts may send today.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.choice import (
    NO_ACTIVE_DOMAIN,
    Account,
    Campaign,
    DomainStatus,
    choose_account,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.clock import (
    SimulatedClock,
    start_of_day,
    utc_day,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.failover import (
    ACCEPTED,
    OWN_SMTP,
    REFUSED,
    RELAY,
    Outcome,
    Route,
    RouteHealth,
    probe_started,
    route_after,
    route_for,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.health import (
    BOUNCE,
    SENT,
    Active,
    HealthEvent,
    HealthPolicy,
    HealthState,
    Resting,
    Returning,
    counts_for,
    evaluate,
    health_factor,
    health_step,
    window_start,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.rotation import (
    DomainHistory,
    Rotation,
    active_domains,
    cooldown_days,
    domain_phase,
    rested_per_cooldown,
    staggered_starts,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.warmup import daily_limit

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 10
TICK = timedelta(seconds=10)
CHECK = timedelta(minutes=15)
MAILGUN = Route("mailgun", RELAY)
BAD = "a07"
BAD_DAY = 3
OUTAGE = (T0 + timedelta(days=5, minutes=5), T0 + timedelta(days=5, minutes=15))
ROTATION = Rotation(period=timedelta(days=4), cooldown=timedelta(days=2))
POLICY = HealthPolicy()


def first_day(offset: int) -> date:
    return utc_day(T0) + timedelta(days=offset)


def fleet() -> list[Account]:
    # a01-a03, a06, a07 warm; the others young; a10 starts on day 2
    starts = {1: -30, 2: -30, 3: -30, 4: -4, 5: -2, 6: -30, 7: -30, 8: -5, 9: -1, 10: 2}
    accounts = [
        Account(
            f"a{n:02}",
            "acme",
            "a1.test" if n <= 5 else "a2.test",
            first_day(starts[n]),
            route=MAILGUN,
            backup=OWN_SMTP,
        )
        for n in range(1, 11)
    ]
    accounts += [Account(f"b{n:02}", "beta", "b1.test", first_day(-n * 3)) for n in range(1, 6)]
    return accounts


@dataclass(frozen=True)
class Send:
    time: datetime
    account: Account
    campaign: Campaign
    route: Route
    probe: bool


@dataclass
class Run:
    sends: list[Send]
    attempts: list[tuple[datetime, str, str, bool]]  # time, route, outcome, probe
    reasons: Counter[tuple[str, int, str]]  # campaign, day, reason of a refusal to choose
    out: dict[str, datetime]
    crossing: dict[str, datetime]
    histories: list[DomainHistory]
    accounts: list[Account]
    domain_health: dict[str, HealthState] = field(default_factory=dict)


def simulate() -> Run:
    accounts = fleet()
    placeholders = [
        DomainHistory(name, tenant, None)
        for name, tenant in (("a1.test", "acme"), ("a2.test", "acme"), ("b1.test", "beta"))
    ]
    starts = staggered_starts(placeholders, ROTATION, T0)
    histories = [DomainHistory(h.name, h.tenant, starts[h.name]) for h in placeholders]
    campaigns = [Campaign("spring", "acme"), Campaign("launch", "beta")]
    clock = SimulatedClock(T0)
    end = T0 + timedelta(days=DAYS)
    health: dict[str, HealthState] = {}
    domain_health: dict[str, HealthState] = {h.name: Active() for h in histories}
    events: dict[str, list[HealthEvent]] = {}
    domain_events: dict[str, list[HealthEvent]] = {}
    paused_on: dict[date, dict[str, int]] = {}
    usage: Counter[tuple[str, date]] = Counter()
    routes: dict[str, RouteHealth] = {}
    run = Run([], [], Counter(), {}, {}, histories, accounts)
    done_for: dict[str, date] = {}
    next_check = T0

    def check(now: datetime) -> None:
        for name in [account.name for account in accounts]:
            state = health.get(name, Active())
            mine = events.get(name, [])
            counts = counts_for(mine, window_start(state, now, POLICY), now)
            health[name] = health_step(state, counts, now, POLICY)
            if isinstance(health[name], Resting) and not isinstance(state, Resting):
                run.out[name] = now
        for history in histories:
            state = domain_health[history.name]
            mine = domain_events.get(history.name, [])
            counts = counts_for(mine, window_start(state, now, POLICY), now)
            domain_health[history.name] = health_step(state, counts, now, POLICY)

    while clock.now() < end:
        now = clock.now()
        today = utc_day(now)
        if now >= next_check:
            check(now)
            next_check += CHECK
        active = active_domains(histories, ROTATION, now)
        statuses = {
            h.name: DomainStatus(h.name in active, True, domain_health[h.name]) for h in histories
        }
        if today not in paused_on:
            paused_on[today] = {
                a.name: cooldown_days(
                    next(h for h in histories if h.name == a.domain), ROTATION, a.first_day, today
                )
                for a in accounts
            }
        paused = paused_on[today]
        used = {a.name: usage[(a.name, today)] for a in accounts}
        for campaign in campaigns:
            if done_for.get(campaign.name) == today:
                continue
            choice = choose_account(
                accounts, used, health, statuses, now, campaign, paused_days=paused
            )
            if choice.account is None:
                run.reasons[(campaign.name, (today - utc_day(T0)).days, choice.reason)] += 1
                done_for[campaign.name] = today
                continue
            account = choice.account
            way = route_for(account, routes, now)
            assert way.route is not None
            if way.probe:
                routes[way.route.name] = probe_started(
                    routes.get(way.route.name, RouteHealth()), now
                )
            down = way.route == MAILGUN and OUTAGE[0] <= now < OUTAGE[1]
            kind = REFUSED if down else ACCEPTED
            run.attempts.append((now, way.route.name, kind, way.probe))
            routes[way.route.name] = route_after(
                routes.get(way.route.name, RouteHealth()),
                Outcome(now, way.route.name, kind, probe=way.probe),
            )
            if down:
                continue  # not sent: the job is retried; a relay outage is not the account's
            usage[(account.name, today)] += 1
            used[account.name] += 1
            run.sends.append(Send(now, account, campaign, way.route, way.probe))
            mine = events.setdefault(account.name, [])
            kinds = [SENT]
            nth = usage[(account.name, today)]
            if account.name == BAD and (today - utc_day(T0)).days == BAD_DAY and nth % 3 == 0:
                kinds.append(BOUNCE)
            for kind in kinds:
                event = HealthEvent(now, account.name, account.domain, kind)
                mine.append(event)
                domain_events.setdefault(account.domain, []).append(event)
            if account.name not in run.crossing:
                state = health.get(account.name, Active())
                since = window_start(state, now, POLICY)
                if evaluate(counts_for(mine, since, now), POLICY) is not None:
                    run.crossing[account.name] = now
        if all(done_for.get(c.name) == today for c in campaigns):
            midnight = start_of_day(today + timedelta(days=1))
            clock.set(min(next_check, midnight))
        else:
            clock.advance(TICK)
    run.domain_health = domain_health
    return run


@pytest.fixture(scope="module")
def run() -> Run:
    return simulate()


def day_of(when: datetime) -> int:
    return (utc_day(when) - utc_day(T0)).days


def per_day(run: Run) -> Counter[tuple[str, int]]:
    return Counter((send.account.name, day_of(send.time)) for send in run.sends)


def test_it_sends_most_of_what_the_curves_allow(run: Run) -> None:
    # capacity: every account's warm-up limit on every day its domain was active
    history = {h.name: h for h in run.histories}
    capacity = 0
    for account in run.accounts:
        for day in range(DAYS):
            today = utc_day(T0) + timedelta(days=day)
            if domain_phase(history[account.domain], ROTATION, start_of_day(today)).name == (
                "active"
            ):
                paused = cooldown_days(history[account.domain], ROTATION, account.first_day, today)
                capacity += daily_limit(account.schedule, account.first_day, today, paused)
    # all of it but what the bad mailbox did not send: the rest of day 3 after its 11th
    # message, days 4 and 5 resting, then 50% of 40 on day 6 and 80% on day 9
    days = per_day(run)
    assert [days[(BAD, day)] for day in (3, 4, 5, 6, 9)] == [11, 0, 0, 20, 32]
    assert capacity - len(run.sends) == (40 - 11) + 40 + 40 + (40 - 20) + (40 - 32)
    assert {send.account.name for send in run.sends} == {a.name for a in run.accounts}


def test_no_account_over_its_quota_on_any_day(run: Run) -> None:
    history = {h.name: h for h in run.histories}
    for account in run.accounts:
        for day in range(DAYS):
            today = utc_day(T0) + timedelta(days=day)
            paused = cooldown_days(history[account.domain], ROTATION, account.first_day, today)
            limit = daily_limit(account.schedule, account.first_day, today, paused)
            assert per_day(run)[(account.name, day)] <= limit, (account.name, day)


def test_a_young_mailbox_joins_on_its_first_day(run: Run) -> None:
    days = per_day(run)
    assert all(days[("a10", day)] == 0 for day in range(2))
    assert days[("a10", 3)] > 0  # day 2 is a2.test's cooldown


def test_no_cross_tenant_choice(run: Run) -> None:
    assert all(send.account.tenant == send.campaign.tenant for send in run.sends)


def test_misbehaving_account_out_within_a_day_and_back_at_reduced_quota(run: Run) -> None:
    assert set(run.out) == {BAD}
    out = run.out[BAD]
    assert day_of(run.crossing[BAD]) == BAD_DAY
    assert timedelta(0) <= out - run.crossing[BAD] <= timedelta(days=1)
    assert out - run.crossing[BAD] <= CHECK  # in fact within one health check
    after = [send.time for send in run.sends if send.account.name == BAD and send.time > out]
    assert after, "it came back"
    assert min(after) >= out + POLICY.cooldown
    days = per_day(run)
    back_day = day_of(min(after))
    limit = daily_limit(run.accounts[6].schedule, run.accounts[6].first_day, utc_day(min(after)))
    assert health_factor(Returning(out + POLICY.cooldown), min(after), POLICY) == 0.5
    assert 0 < days[(BAD, back_day)] <= limit * 0.5 < limit
    # nothing between going out and coming back
    assert all(not (out < t < out + POLICY.cooldown) for t in after)


def test_one_bad_mailbox_does_not_bench_its_domain(run: Run) -> None:
    assert all(state == Active() for state in run.domain_health.values())


def test_domains_rest_per_cooldown(run: Run) -> None:
    for history in run.histories:
        times = [send.time for send in run.sends if send.account.domain == history.name]
        assert rested_per_cooldown(history, ROTATION, times), history.name
        cooled = {
            day
            for day in range(DAYS)
            if domain_phase(history, ROTATION, T0 + timedelta(days=day, hours=12)).name
            == "cooldown"
        }
        assert len(cooled) >= 2, history.name  # every domain rested at least once
        assert not {day_of(t) for t in times} & cooled
    # beta has a single domain: it sends nothing while it rests, and says why
    assert run.reasons[("launch", 4, NO_ACTIVE_DOMAIN)] == 1
    assert run.reasons[("launch", 5, NO_ACTIVE_DOMAIN)] == 1


def test_failover_to_the_backup_and_back(run: Run) -> None:
    refused = [t for t, route, kind, probe in run.attempts if kind == REFUSED]
    assert refused and refused[0] >= OUTAGE[0]
    acme = [s for s in run.sends if s.campaign.tenant == "acme"]
    on_backup = [s.time for s in acme if s.route == OWN_SMTP]
    assert on_backup
    assert min(on_backup) - refused[0] <= timedelta(seconds=60)
    assert all(t >= refused[0] for t in on_backup)
    # while failed, the relay saw only probes
    failed_at = refused[2]
    recovered = min(
        t
        for t, route, kind, probe in run.attempts
        if route == "mailgun" and probe and kind == ACCEPTED
    )
    assert recovered >= OUTAGE[1]
    assert all(
        probe
        for t, route, kind, probe in run.attempts
        if route == "mailgun" and failed_at < t < recovered
    )
    # and mail moved back: after the successful probe, acme's mail takes the relay again
    later = [s for s in acme if s.time > recovered]
    assert later and all(s.route == MAILGUN for s in later)
