"""The account choice: the tenant is a hard filter, then active domain, health and quota;
least-used domain first, then least-used account, ties by name."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.choice import (
    ALL_EXHAUSTED,
    ALL_OUT,
    CHOSEN,
    NO_ACCOUNTS,
    NO_ACTIVE_DOMAIN,
    NONE_WARM,
    Account,
    Campaign,
    Choice,
    DomainStatus,
    account_quota,
    choose_account,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.health import (
    BOUNCE_RATE,
    Active,
    Breach,
    Resting,
    Returning,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.warmup import (
    WarmupSchedule,
)

NOW = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
TODAY = date(2026, 3, 12)
WARM = TODAY - timedelta(days=30)  # limit 40
BREACH = Breach(BOUNCE_RATE, 0.06, 0.03, timedelta(days=7), 100, 6)
UP = DomainStatus(active=True, dns_ok=True)
ACME = Campaign("spring", "acme")


def account(name: str, domain: str = "a1.test", tenant: str = "acme", **kw: object) -> Account:
    return Account(name, tenant, domain, kw.pop("first_day", WARM), **kw)  # type: ignore[arg-type]


def test_never_another_tenants_account() -> None:
    accounts = [account("b1", "b.test", "beta")]
    choice = choose_account(accounts, {}, {}, {"b.test": UP}, NOW, ACME)
    assert choice == Choice(None, NO_ACCOUNTS)
    # even when every own account is exhausted and the other tenant's are idle
    accounts.append(account("a1"))
    choice = choose_account(accounts, {"a1": 40}, {}, {"b.test": UP, "a1.test": UP}, NOW, ACME)
    assert choice.reason == ALL_EXHAUSTED


def test_no_active_domain() -> None:
    accounts = [account("a1", "a1.test"), account("a2", "a2.test")]
    states = {
        "a1.test": DomainStatus(active=False, dns_ok=True),  # in cooldown
        "a2.test": DomainStatus(active=True, dns_ok=False),  # DNS check failed
    }
    assert choose_account(accounts, {}, {}, states, NOW, ACME).reason == NO_ACTIVE_DOMAIN
    # a domain the caller knows nothing of does not send either
    assert choose_account(accounts, {}, {}, {}, NOW, ACME).reason == NO_ACTIVE_DOMAIN
    resting = {"a1.test": DomainStatus(True, True, Resting(BREACH, NOW - timedelta(hours=1)))}
    assert choose_account(accounts[:1], {}, {}, resting, NOW, ACME).reason == NO_ACTIVE_DOMAIN


def test_all_out() -> None:
    accounts = [account("a1"), account("a2")]
    health = {name: Resting(BREACH, NOW - timedelta(hours=2)) for name in ("a1", "a2")}
    choice = choose_account(accounts, {}, health, {"a1.test": UP}, NOW, ACME)
    assert choice == Choice(None, ALL_OUT)


def test_a_resting_account_is_skipped() -> None:
    accounts = [account("a1"), account("a2")]
    health = {"a1": Resting(BREACH, NOW - timedelta(hours=2))}
    choice = choose_account(accounts, {"a2": 39}, health, {"a1.test": UP}, NOW, ACME)
    assert choice == Choice(accounts[1], CHOSEN, 40, 39)


def test_quota_is_warm_up_times_health_minus_today() -> None:
    young = account("a1", first_day=TODAY - timedelta(days=2))  # 24
    assert account_quota(young, Active(), NOW) == 24
    assert account_quota(young, Returning(NOW - timedelta(days=1)), NOW) == 14  # 24 x 0.6
    assert account_quota(young, Resting(BREACH, NOW), NOW) == 0
    assert account_quota(young, Active(), NOW, domain_state=Returning(NOW)) == 12
    assert account_quota(young, Active(), NOW, paused_days=2) == 20
    choice = choose_account([young], {"a1": 23}, {}, {"a1.test": UP}, NOW, ACME)
    assert (choice.reason, choice.quota, choice.used) == (CHOSEN, 24, 23)
    assert choose_account([young], {"a1": 24}, {}, {"a1.test": UP}, NOW, ACME).reason == (
        ALL_EXHAUSTED
    )


def test_returning_account_gets_its_reduced_quota() -> None:
    back = account("a1")
    health = {"a1": Returning(NOW - timedelta(hours=3))}
    assert choose_account([back], {"a1": 19}, health, {"a1.test": UP}, NOW, ACME).quota == 20
    assert choose_account([back], {"a1": 20}, health, {"a1.test": UP}, NOW, ACME).account is None


def test_least_used_domain_first_then_least_used_account() -> None:
    accounts = [
        account("a1", "a1.test"),
        account("a2", "a1.test"),
        account("a3", "a2.test"),
        account("a4", "a2.test"),
    ]
    domains = {"a1.test": UP, "a2.test": UP}
    # a1.test: 10 + 0 of 80; a2.test: 6 + 6 of 80. a2 is the least used account overall but
    # a1.test is the less used domain, so a2 it is; then a3 beats a4 by name at a tie
    usage = {"a1": 10, "a2": 0, "a3": 6, "a4": 6}
    assert choose_account(accounts, usage, {}, domains, NOW, ACME).account == accounts[1]
    usage = {"a1": 10, "a2": 10, "a3": 6, "a4": 6}
    assert choose_account(accounts, usage, {}, domains, NOW, ACME).account == accounts[2]


def test_fraction_not_count_so_a_young_mailbox_is_not_overused() -> None:
    accounts = [account("a1", first_day=TODAY), account("a2")]  # quotas 20 and 40
    usage = {"a1": 10, "a2": 15}  # 50% against 37.5%
    assert choose_account(accounts, usage, {}, {"a1.test": UP}, NOW, ACME).account == accounts[1]


def test_ties_are_broken_by_name_whatever_the_input_order() -> None:
    accounts = [account(name, domain) for name, domain in [("a9", "b.test"), ("a2", "a.test")]]
    domains = {"a.test": UP, "b.test": UP}
    for ordered in (accounts, accounts[::-1]):
        choice = choose_account(ordered, {}, {}, domains, NOW, ACME)
        assert choice.account is not None and choice.account.name == "a2"


def test_warm_only_campaign_takes_warm_mailboxes_and_they_join_on_the_day() -> None:
    young = account("a1", first_day=TODAY - timedelta(days=9))
    campaign = Campaign("cold", "acme", warm_only=True)
    assert choose_account([young], {}, {}, {"a1.test": UP}, NOW, campaign).reason == NONE_WARM
    tomorrow = NOW + timedelta(days=1)
    choice = choose_account([young], {}, {}, {"a1.test": UP}, tomorrow, campaign)
    assert choice.account == young and choice.quota == 40


def test_an_account_with_a_curve() -> None:
    curved = account("a1", first_day=TODAY, schedule=WarmupSchedule(curve=(5, 10)))
    assert choose_account([curved], {"a1": 4}, {}, {"a1.test": UP}, NOW, ACME).quota == 5
