"""Account and domain health: the verdict over a sliding window and the rest-and-return
state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.health import (
    BOUNCE,
    BOUNCE_RATE,
    COMPLAINT,
    COMPLAINT_RATE,
    SENT,
    SMTP_ERROR,
    SMTP_ERROR_RATE,
    Active,
    Breach,
    Counts,
    HealthEvent,
    HealthPolicy,
    Resting,
    Returning,
    count_events,
    counts_for,
    elapse,
    evaluate,
    health_factor,
    health_step,
    is_sending,
    window_start,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
POLICY = HealthPolicy()
BREACH = Breach(BOUNCE_RATE, 0.06, 0.03, timedelta(days=7), 100, 6)


def at(days: float = 0, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def test_defaults_are_the_issues() -> None:
    assert (POLICY.bounce_rate, POLICY.complaint_rate, POLICY.smtp_error_rate) == (
        0.03,
        0.001,
        0.05,
    )
    assert (POLICY.window, POLICY.min_sends, POLICY.cooldown) == (
        timedelta(days=7),
        50,
        timedelta(days=3),
    )
    assert (POLICY.return_factor, POLICY.return_days) == (0.5, 5)


def test_one_bounce_in_three_sends_benches_nobody() -> None:
    assert evaluate(Counts(sent=3, bounces=1)) is None
    assert evaluate(Counts(sent=49, bounces=10)) is None


def test_a_rate_over_its_threshold_is_a_breach_with_its_numbers() -> None:
    assert evaluate(Counts(sent=100, bounces=3)) is None  # 3% is not over 3%
    breach = evaluate(Counts(sent=100, bounces=4))
    assert breach == Breach(BOUNCE_RATE, 0.04, 0.03, timedelta(days=7), 100, 4)
    assert breach is not None
    assert breach.describe() == "bounce_rate 4.00% over 3.00% (4 of 100 sent in 7 days)"
    error = evaluate(Counts(sent=100, smtp_errors=6))
    assert error is not None and error.rate == SMTP_ERROR_RATE


def test_complaints_come_first() -> None:
    breach = evaluate(Counts(sent=200, bounces=10, complaints=1))
    assert breach is not None
    assert (breach.rate, breach.count) == (COMPLAINT_RATE, 1)


def test_thresholds_are_configurable() -> None:
    lenient = HealthPolicy(bounce_rate=0.05, min_sends=10, window=timedelta(hours=36))
    assert evaluate(Counts(sent=100, bounces=4), lenient) is None
    breach = evaluate(Counts(sent=10, bounces=1), lenient)
    assert breach is not None and breach.describe().endswith("in 36 h)")


def test_counting_by_account_and_domain_inside_the_window() -> None:
    events = [
        HealthEvent(at(-8), "a1", "d1.test", BOUNCE),  # outside the window
        HealthEvent(at(-1), "a1", "d1.test", SENT),
        HealthEvent(at(-1), "a1", "d1.test", BOUNCE),
        HealthEvent(at(0), "a2", "d1.test", SENT),
        HealthEvent(at(0), "a2", "d1.test", COMPLAINT),
        HealthEvent(at(0), "b1", "d2.test", SMTP_ERROR),
    ]
    counts = count_events(events, at(-7), at(0))
    assert counts["account:a1"] == Counts(sent=1, bounces=1)
    assert counts["domain:d1.test"] == Counts(sent=2, bounces=1, complaints=1)
    assert counts["domain:d2.test"] == Counts(smtp_errors=1)
    assert counts_for(events[:3], at(-7), at(0)) == Counts(sent=1, bounces=1)
    assert Counts(1, 2, 3, 4) + Counts(1, 1, 1, 1) == Counts(2, 3, 4, 5)
    with pytest.raises(ValueError, match="kind"):
        HealthEvent(at(0), "a1", "d1.test", "soft_bounce")


def test_out_on_a_breach_with_the_reason_and_time() -> None:
    state = health_step(Active(), Counts(sent=60, bounces=3), at(0))
    assert isinstance(state, Resting)
    assert state.since == at(0)
    assert state.reason.rate == BOUNCE_RATE
    assert health_factor(state, at(1)) == 0.0
    assert not is_sending(state, at(2, 23))


def test_healthy_stays_active() -> None:
    assert health_step(Active(), Counts(sent=60, bounces=1), at(0)) == Active()


def test_resting_ignores_counts_and_returns_after_the_cooldown() -> None:
    resting = Resting(BREACH, at(0))
    # late bounces of mail sent before the rest change nothing
    assert health_step(resting, Counts(sent=100, bounces=50), at(2)) == resting
    back = health_step(resting, Counts(), at(3))
    assert back == Returning(at(3))
    assert isinstance(back, Returning) and back.previous == BREACH


def test_returning_quota_rises_from_half_to_full_over_five_days() -> None:
    state = Returning(at(0))
    factors = [health_factor(state, at(n)) for n in range(7)]
    assert factors == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.0]
    # the factor is per UTC day: a running campaign's quota does not move within a day
    assert health_factor(state, at(0, 14)) == 0.5
    assert elapse(state, at(4, 14)) == state
    assert elapse(state, at(5)) == Active(counted_from=at(0))


def test_the_window_starts_at_the_return_so_old_bounces_do_not_count_twice() -> None:
    resting = Resting(BREACH, at(0))
    assert window_start(Active(), at(10)) == at(3)
    assert window_start(resting, at(4)) == at(3)  # it returned at day 3
    assert window_start(Returning(at(3)), at(4)) == at(3)
    assert window_start(Active(counted_from=at(3)), at(8)) == at(3)
    assert window_start(Active(counted_from=at(3)), at(11)) == at(4)


def test_a_returning_account_that_misbehaves_again_rests_again() -> None:
    state = health_step(Returning(at(0)), Counts(sent=50, bounces=2), at(1))
    assert isinstance(state, Resting) and state.since == at(1)


def test_a_simulation_that_jumps_ahead_agrees_with_one_that_ticks() -> None:
    resting = Resting(BREACH, at(0))
    ticked = resting
    for hour in range(0, 24 * 10, 6):
        ticked = health_step(ticked, Counts(), at(0, hour))
    assert health_step(resting, Counts(), at(9, 18)) == ticked == Active(counted_from=at(3))


def test_zero_return_days_means_full_quota_at_once() -> None:
    policy = HealthPolicy(return_days=0)
    assert health_factor(Returning(at(0)), at(0), policy) == 1.0
    assert elapse(Resting(BREACH, at(0)), at(3), policy) == Active(counted_from=at(3))


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        HealthPolicy(return_factor=0)
    with pytest.raises(ValueError):
        HealthPolicy(window=timedelta(0))
    with pytest.raises(ValueError):
        HealthPolicy(min_sends=0)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        health_step(Active(), Counts(), datetime(2026, 3, 2))
