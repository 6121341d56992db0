"""Failover: a relay that refuses or storms is left for the backup route, probed after a
backoff that doubles, and used again once a probe is accepted."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.choice import Account
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.failover import (
    ACCEPTED,
    AUTH_FAILED,
    FAILED,
    OWN_SMTP,
    REFUSED,
    RELAY,
    TEMP_FAILURE,
    UP,
    FailoverPolicy,
    Outcome,
    Route,
    RouteChoice,
    RouteHealth,
    probe_started,
    route_after,
    route_for,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MAILGUN = Route("mailgun", RELAY)
ACCOUNT = Account("a1", "acme", "a1.test", date(2026, 2, 1), route=MAILGUN, backup=OWN_SMTP)


def seconds(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def feed(state: RouteHealth, kinds: list[str], start: float = 0, every: float = 1) -> RouteHealth:
    for index, kind in enumerate(kinds):
        state = route_after(state, Outcome(seconds(start + index * every), "mailgun", kind))
    return state


def test_three_refusals_in_a_row_fail_the_relay() -> None:
    state = feed(RouteHealth(), [REFUSED, REFUSED])
    assert state.status == UP
    state = feed(state, [AUTH_FAILED], start=2)
    assert state.status == FAILED
    assert (state.failed_since, state.reason) == (seconds(2), "3 auth_failed in a row")
    assert state.next_probe == seconds(32)


def test_an_acceptance_in_between_resets_the_count() -> None:
    state = feed(RouteHealth(), [REFUSED, REFUSED, ACCEPTED, REFUSED, REFUSED])
    assert state.status == UP and state.refusals == 2


def test_a_4xx_storm_fails_the_relay_but_scattered_4xx_do_not() -> None:
    scattered = feed(RouteHealth(), [TEMP_FAILURE] * 30, every=7)  # one in 7 s: 9 a minute
    assert scattered.status == UP
    storm = feed(RouteHealth(), [TEMP_FAILURE, ACCEPTED] * 10, every=2)
    # failed at the tenth 4xx; the acceptances in between do not reset a storm
    assert storm.status == FAILED and storm.failed_since == seconds(36)
    assert storm.reason == "10 temporary failures within 60 s"


def test_mail_moves_to_the_backup_and_back_after_a_probe() -> None:
    failed = feed(RouteHealth(), [REFUSED] * 3)
    health = {"mailgun": failed}
    assert route_for(ACCOUNT, {}, T0) == RouteChoice(MAILGUN, "primary")
    moved = route_for(ACCOUNT, health, seconds(3))
    assert moved.route == OWN_SMTP and moved.reason.startswith("backup: mailgun failed")
    probe = route_for(ACCOUNT, health, seconds(32))
    assert (probe.route, probe.probe) == (MAILGUN, True)
    # the probe is recorded: the other workers stay on the backup until its result
    probing = probe_started(failed, seconds(32))
    assert route_for(ACCOUNT, {"mailgun": probing}, seconds(33)).route == OWN_SMTP
    # a message handed over before the failure and accepted late is no recovery
    late = route_after(probing, Outcome(seconds(33), "mailgun", ACCEPTED))
    assert late == probing
    recovered = route_after(probing, Outcome(seconds(34), "mailgun", ACCEPTED, probe=True))
    assert recovered == RouteHealth()
    assert route_for(ACCOUNT, {"mailgun": recovered}, seconds(35)).route == MAILGUN


def test_a_failed_probe_doubles_the_backoff_up_to_ten_minutes() -> None:
    state = feed(RouteHealth(), [REFUSED] * 3)
    waits = []
    when = 2.0
    for _round in range(8):
        assert state.next_probe is not None
        when = (state.next_probe - T0).total_seconds()
        state = route_after(
            probe_started(state, seconds(when)),
            Outcome(seconds(when), "mailgun", REFUSED, probe=True),
        )
        assert state.next_probe is not None
        waits.append((state.next_probe - seconds(when)).total_seconds())
    assert waits == [60, 120, 240, 480, 600, 600, 600, 600]
    assert state.status == FAILED


def test_no_backup_or_both_failed_says_when_to_retry() -> None:
    failed = feed(RouteHealth(), [REFUSED] * 3)
    alone = Account("a2", "acme", "a1.test", date(2026, 2, 1), route=MAILGUN)
    choice = route_for(alone, {"mailgun": failed}, seconds(5))
    assert (choice.route, choice.retry_at) == (None, seconds(32))
    smtp_failed = route_after(
        route_after(
            route_after(RouteHealth(), Outcome(seconds(0), "smtp", REFUSED)),
            Outcome(seconds(1), "smtp", REFUSED),
        ),
        Outcome(seconds(10), "smtp", REFUSED),
    )
    both = {"mailgun": failed, "smtp": smtp_failed}
    choice = route_for(ACCOUNT, both, seconds(12))
    assert (choice.route, choice.retry_at) == (None, seconds(32))
    assert choice.reason == "mailgun and smtp both failed"
    # the backup's own probe comes when it is due and the primary's is not
    early = {"mailgun": probe_started(failed, seconds(32)), "smtp": smtp_failed}
    choice = route_for(ACCOUNT, early, seconds(41))
    assert (choice.route, choice.probe) == (OWN_SMTP, True)


def test_policy_is_configurable_and_checked() -> None:
    policy = FailoverPolicy(refusals=1)
    state = route_after(RouteHealth(), Outcome(T0, "mailgun", REFUSED), policy)
    assert state.status == FAILED
    with pytest.raises(ValueError):
        FailoverPolicy(backoff=timedelta(minutes=20))
    with pytest.raises(ValueError):
        Outcome(T0, "mailgun", "bounced")
    with pytest.raises(ValueError):
        Route("ses", "api")
