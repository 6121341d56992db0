"""Domain rotation: a week on, a week off, a tenant's domains staggered so some always send."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.rotation import (
    ACTIVE,
    COOLDOWN,
    WAITING,
    DomainHistory,
    Phase,
    Rotation,
    active_domains,
    cooldown_days,
    domain_phase,
    rested_per_cooldown,
    staggered_starts,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC)
WEEK = timedelta(weeks=1)


def at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def test_a_week_on_a_week_off_by_default() -> None:
    history = DomainHistory("d1.test", "acme", T0)
    rotation = Rotation()
    assert domain_phase(history, rotation, at(0)) == Phase(ACTIVE, at(0), at(7))
    assert domain_phase(history, rotation, at(6.99)).name == ACTIVE
    assert domain_phase(history, rotation, at(7)) == Phase(COOLDOWN, at(7), at(14))
    assert domain_phase(history, rotation, at(14)) == Phase(ACTIVE, at(14), at(21))
    assert domain_phase(history, rotation, at(-1)) == Phase(WAITING, None, at(0))


def test_a_domain_not_in_rotation_yet_does_not_send() -> None:
    history = DomainHistory("new.test", "acme", None)
    assert domain_phase(history, Rotation(), at(0)) == Phase(WAITING, None, None)
    assert active_domains([history], Rotation(), at(0)) == frozenset()


def test_no_cooldown_means_no_rotation() -> None:
    history = DomainHistory("d1.test", "acme", T0)
    assert domain_phase(history, Rotation(cooldown=timedelta(0)), at(100)).name == ACTIVE


def test_staggered_per_tenant_so_half_send_and_the_set_changes_weekly() -> None:
    names = [("a1.test", "acme"), ("a2.test", "acme"), ("a3.test", "acme"), ("a4.test", "acme")]
    names.append(("b1.test", "beta"))
    histories = [DomainHistory(name, tenant, None) for name, tenant in names]
    starts = staggered_starts(histories, Rotation(), T0)
    assert starts["a1.test"] == T0 and starts["b1.test"] == T0
    assert [starts[f"a{n}.test"] for n in (2, 3, 4)] == [at(-3), at(-7), at(-10)]
    placed = [DomainHistory(h.name, h.tenant, starts[h.name]) for h in histories]
    week_one = active_domains(placed, Rotation(), at(0))
    week_two = active_domains(placed, Rotation(), at(7))
    assert week_one == {"a1.test", "a2.test", "b1.test"}
    assert week_two == {"a3.test", "a4.test"}
    for day in range(28):
        acme = {n for n in active_domains(placed, Rotation(), at(day)) if n.startswith("a")}
        assert 1 <= len(acme) <= 3, day  # the tenant always has a domain sending


def test_cooldown_days_pause_the_accounts_warm_up() -> None:
    history = DomainHistory("d1.test", "acme", T0)
    first = date(2026, 3, 2)
    assert cooldown_days(history, Rotation(), first, first + timedelta(days=7)) == 0
    assert cooldown_days(history, Rotation(), first, first + timedelta(days=10)) == 3
    assert cooldown_days(history, Rotation(), first, first + timedelta(days=21)) == 7
    waiting = DomainHistory("d2.test", "acme", at(2))
    assert cooldown_days(waiting, Rotation(), first, first + timedelta(days=3)) == 0


def test_rested_per_cooldown_checks_every_send() -> None:
    history = DomainHistory("d1.test", "acme", T0)
    assert rested_per_cooldown(history, Rotation(), [at(0), at(6.5), at(14)])
    assert not rested_per_cooldown(history, Rotation(), [at(0), at(8)])


def test_rotation_is_checked() -> None:
    with pytest.raises(ValueError, match="rotation"):
        Rotation(period=timedelta(0))
    assert Rotation(period=WEEK, cooldown=WEEK).cycle == 2 * WEEK
