"""The outreach fleet in the model: tenants, warm-up schedules, sender accounts (inventory and
CSV through one validator), the engine's settings, and the tenants reaching the feedback loop."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.filter.model import feedback_settings
from ansible_collections.bulkmail.infra.plugins.filter.model import model as model_filter
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import (
    TenantMap,
    default_tenants,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    MODEL_VARIABLES,
    model_summary,
    parse_model,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from ansible_collections.bulkmail.infra.plugins.module_utils.model.outreach import (
    MAX_PROBLEMS_PER_FILE,
    AccountContext,
    OutreachSettings,
    csv_paths,
    parse_accounts_csv,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.choice import (
    Account,
    Campaign,
    DomainStatus,
    choose_account,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.failover import (
    OWN_SMTP,
    FailoverPolicy,
    Route,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.health import HealthPolicy
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.rotation import Rotation
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.warmup import (
    WarmupSchedule,
)
from model_inventory import (
    LAB_VARIABLES,
    lab_hosts,
    lab_inventory,
    lab_model,
    problem,
    problems,
)

ACME_DOMAINS = ["acme-mail.test", "acme-news.test"]
TENANTS = [{"name": "acme", "domains": ACME_DOMAINS}]
CSV_PATH = "accounts/acme.csv"


def domain(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "dkim_selectors": ["lab2026a"],
        "dmarc": {"policy": "none", "rua": f"mailto:dmarc@{name}"},
        "return_path_domain": f"bounces.{name}",
    }


def fleet(files: dict[str, str] | None = None, **changes: Any) -> dict[str, Any]:
    """The lab with acme's two domains and tenant, `changes` applied, and `files` given."""
    variables: dict[str, Any] = {
        "bulkmail_domains": [*LAB_VARIABLES["bulkmail_domains"], *map(domain, ACME_DOMAINS)],
        "bulkmail_tenants": TENANTS,
        **changes,
    }
    inputs = lab_inventory(**variables)
    inputs["files"] = dict(files or {})
    return inputs


def anna(**changes: Any) -> dict[str, Any]:
    return {
        "address": "anna@acme-mail.test",
        "route": "own",
        "first_day": "2026-11-20",
        **changes,
    }


def test_they_are_model_variables_and_absent_changes_nothing() -> None:
    for name in (
        "bulkmail_tenants",
        "bulkmail_warmup_schedules",
        "bulkmail_sender_accounts",
        "bulkmail_outreach",
    ):
        assert name in MODEL_VARIABLES
    model = lab_model()
    names = [d.name for d in model.domains]
    assert model.tenants == {name: (name,) for name in names}
    assert model.domain_tenants == {name: name for name in names}
    assert model.sender_accounts == ()
    assert model.warmup_schedules == {"default": WarmupSchedule()}
    assert model.outreach == OutreachSettings(HealthPolicy(), Rotation(), FailoverPolicy())
    assert feedback_settings(lab_inventory())["tenants"] == default_tenants(names)
    assert feedback_settings(lab_inventory())["tenants"] == {
        "domains": {"agency.test": "agency.test", "example.test": "example.test",
                    "shop.test": "shop.test"}
    }  # fmt: skip


def test_a_valid_fleet() -> None:
    schedules = {"slow": {"curve": [10, 12, 14, 16, 18, 20]}}
    accounts = [
        anna(tenant="acme", backup="relay:relay1", warmup="default"),
        {"address": "Ben@acme-news.test", "route": "relay:relay2", "backup": "own",
         "warmup": "slow", "first_day": date(2026, 11, 21)},
        {"address": "app@shop.test", "route": "own", "first_day": "2026-12-01",
         "tenant": "shop.test"},
    ]  # fmt: skip
    model = parse_model(
        fleet(bulkmail_warmup_schedules=schedules, bulkmail_sender_accounts=accounts)
    )
    assert model.tenants == {
        "acme": ("acme-mail.test", "acme-news.test"),
        "example.test": ("example.test",),
        "shop.test": ("shop.test",),
        "agency.test": ("agency.test",),
    }
    assert model.warmup_schedules == {
        "slow": WarmupSchedule(curve=(10, 12, 14, 16, 18, 20)),
        "default": WarmupSchedule(),
    }
    first, second, third = model.sender_accounts
    assert (first.address, first.tenant, first.domain) == ("anna@acme-mail.test", "acme",
                                                           "acme-mail.test")  # fmt: skip
    assert (first.route, first.backup, first.first_day) == (
        OWN_SMTP,
        Route("relay1", "relay"),
        date(2026, 11, 20),
    )
    # The tenant follows from the domain; the address is one lower-case key everywhere.
    assert (second.address, second.tenant, second.warmup) == ("ben@acme-news.test", "acme",
                                                              "slow")  # fmt: skip
    assert (second.route, second.backup) == (Route("relay2", "relay"), OWN_SMTP)
    assert third.tenant == "shop.test" and third.backup is None
    assert second.account == Account(
        name="ben@acme-news.test",
        tenant="acme",
        domain="acme-news.test",
        first_day=date(2026, 11, 21),
        schedule=WarmupSchedule(curve=(10, 12, 14, 16, 18, 20)),
        route=Route("relay2", "relay"),
        backup=OWN_SMTP,
    )
    summary = model_summary(model)
    assert summary["tenants"]["acme"] == ACME_DOMAINS
    assert summary["sender_accounts"] == 3


def test_the_engine_chooses_among_the_model_s_accounts() -> None:
    accounts = [anna(), anna(address="carl@acme-news.test"), anna(address="app@shop.test")]
    model = parse_model(fleet(bulkmail_sender_accounts=accounts))
    status = {name: DomainStatus(active=True, dns_ok=True) for name in model.domain_tenants}
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    engine = [account.account for account in model.sender_accounts]
    choice = choose_account(engine, {"anna@acme-mail.test": 5}, {}, status, now,
                            Campaign("c1", "acme"))  # fmt: skip
    assert choice.account is not None and choice.account.name == "carl@acme-news.test"
    assert choice.quota == 30  # day 5 of the default ramp: 20 + 2 x 5
    other = choose_account(engine, {}, {}, status, now, Campaign("c2", "shop.test"))
    assert other.account is not None and other.account.tenant == "shop.test"


def test_the_default_schedule_can_be_given() -> None:
    model = parse_model(
        fleet(bulkmail_warmup_schedules={"default": {"start": 10, "step": 5, "ceiling": 30}})
    )
    assert model.warmup_schedules == {"default": WarmupSchedule(10, 5, 30)}


def test_outreach_settings_map_onto_the_engine_s_policies() -> None:
    settings = {
        "health": {"window_days": 14, "bounce_rate": 0.02, "complaint_rate": "0.0005",
                   "smtp_error_rate": 0.1, "min_sends": 80, "cooldown_days": 5},
        "rotation": {"period_days": 5, "cooldown_days": 2},
        "failover": {"refusals": 2, "storm_failures": 20, "storm_seconds": 30},
    }  # fmt: skip
    outreach = parse_model(fleet(bulkmail_outreach=settings)).outreach
    assert outreach.health == HealthPolicy(
        window=timedelta(days=14),
        bounce_rate=0.02,
        complaint_rate=0.0005,
        smtp_error_rate=0.1,
        min_sends=80,
        cooldown=timedelta(days=5),
    )
    assert outreach.rotation == Rotation(timedelta(days=5), timedelta(days=2))
    assert outreach.failover == FailoverPolicy(
        refusals=2, storm_count=20, storm_window=timedelta(seconds=30)
    )
    # A key left out keeps the engine's default, not a copy of it.
    partial = parse_model(fleet(bulkmail_outreach={"health": {"bounce_rate": 0.05}})).outreach
    assert partial.health.min_sends == HealthPolicy().min_sends
    assert partial.rotation == Rotation() and partial.failover == FailoverPolicy()
    assert parse_model(fleet(bulkmail_outreach={"rotation": {"cooldown_days": 0}})).outreach


def test_outreach_settings_errors() -> None:
    found = problems(
        fleet(
            bulkmail_outreach={
                "health": {"bounce_rate": 3, "min_sends": 0, "window": 7},
                "rotation": {"period_days": "weekly"},
                "failover": {"backoff_seconds": 60, "max_backoff_seconds": 30},
                "speed": {},
            }
        )
    )
    assert found == [
        "bulkmail_outreach: unknown key(s) speed; known keys are health, rotation, failover "
        "(docs/model.md)"
    ]
    found = problems(
        fleet(
            bulkmail_outreach={
                "health": {"bounce_rate": 3, "min_sends": 0},
                "rotation": {"period_days": "weekly"},
                "failover": {"backoff_seconds": 60, "max_backoff_seconds": 30},
            }
        )
    )
    assert found == [
        "bulkmail_outreach.health.bounce_rate: 3 is not a rate between 0 and 1 (0.03 is 3%)",
        "bulkmail_outreach.health.min_sends: 0 is too small; give a number >= 1",
        "bulkmail_outreach.rotation.period_days: 'weekly' is not a whole number",
        "bulkmail_outreach.failover: the values do not agree: backoff must be positive and "
        "max_backoff at least backoff",
    ]
    assert problem(fleet(bulkmail_outreach={"health": {"window": 7}})).startswith(
        "bulkmail_outreach.health: unknown key(s) window; known keys are window_days"
    )


def test_tenant_errors_name_their_field() -> None:
    tenants = [
        {"name": "acme", "domains": ACME_DOMAINS},
        {"name": "Acme Corp", "domains": ["shop.test"]},
        {"name": "global", "domains": ["shop.test"]},
        {"name": "acme", "domains": ["shop.test"]},
        {"name": "beta", "domains": ["acme-news.test", "nowhere.test"]},
        {"name": "gamma"},
        {"name": "delta", "domains": ["shop.test"], "owner": "x"},
    ]
    assert problems(fleet(bulkmail_tenants=tenants)) == [
        "bulkmail_tenants[1].name: 'Acme Corp' is not a tenant name: lower-case letters, "
        "digits and hyphens",
        "bulkmail_tenants[2].name: 'global' is reserved: the suppression tables' rows for "
        "every tenant; choose another",
        "bulkmail_tenants[3].name: 'acme' is declared twice; merge the two",
        "bulkmail_tenants[4].domains[0]: 'acme-news.test' already belongs to tenant 'acme'; "
        "a domain belongs to one tenant only",
        "bulkmail_tenants[4].domains[1]: 'nowhere.test' is not a sending domain of "
        "bulkmail_domains (known: example.test, shop.test, agency.test, acme-mail.test, "
        "acme-news.test)",
        "bulkmail_tenants[5].domains: missing; list the tenant's sending domains",
        "bulkmail_tenants[6]: unknown key(s) owner; known keys are name, domains (docs/model.md)",
    ]


def test_account_errors_name_their_field_all_at_once() -> None:
    accounts = [
        anna(),
        anna(address="bob@shop.test", tenant="acme"),
        anna(address="carl@acme-news.test", tenant="shop.test"),
        anna(address="dora@acme-mail.test", tenant="zeta"),
        anna(address="eve@elsewhere.test"),
        anna(address="finn@acme-mail.test", route="relay:ses"),
        anna(address="gus@acme-mail.test", route="relay:relay1", backup="relay:relay1"),
        anna(address="hal@acme-mail.test", route="own", backup="own", warmup="fast"),
        anna(address="ida@acme-mail.test", route="smtp", first_day="20.11.2026"),
        {"address": "jo@acme-mail.test", "first_day": "2026-11-20", "limit": 30},
        {"address": "kim@acme-mail.test"},
        "lu@acme-mail.test",
    ]
    assert problems(fleet(bulkmail_sender_accounts=accounts)) == [
        "bulkmail_sender_accounts[1].tenant: 'acme' does not own 'shop.test', tenant "
        "'shop.test' does; an account sends for its domain's tenant: give that one, or leave "
        "tenant out",
        "bulkmail_sender_accounts[2].tenant: 'shop.test' does not own 'acme-news.test', tenant "
        "'acme' does; an account sends for its domain's tenant: give that one, or leave tenant "
        "out",
        "bulkmail_sender_accounts[3].tenant: 'zeta' is not a tenant of bulkmail_tenants "
        "(known: acme)",
        "bulkmail_sender_accounts[4].address: 'elsewhere.test' is not a sending domain of "
        "bulkmail_domains; an account sends as its own domain, signed and aligned",
        "bulkmail_sender_accounts[5].route: 'ses' is not a relay of bulkmail_relays (known: "
        "relay1, relay2)",
        "bulkmail_sender_accounts[6].backup: relay:relay1 is the route itself; a backup is "
        "another route (or leave it out)",
        "bulkmail_sender_accounts[7].backup: own is the route itself; a backup is another "
        "route (or leave it out)",
        "bulkmail_sender_accounts[7].warmup: 'fast' is not a schedule of "
        "bulkmail_warmup_schedules (known: default)",
        "bulkmail_sender_accounts[8].route: 'smtp' is not a route: write own (the smtp tier) "
        "or relay:<a bulkmail_relays name>",
        "bulkmail_sender_accounts[8].first_day: '20.11.2026' is not a date such as 2026-11-20 "
        "(ISO 8601)",
        "bulkmail_sender_accounts[9]: unknown key(s) limit; known keys are address, tenant, "
        "route, backup, warmup, first_day (docs/model.md)",
        "bulkmail_sender_accounts[10].route: missing; write own (the smtp tier) or "
        "relay:<a bulkmail_relays name>",
        "bulkmail_sender_accounts[10].first_day: missing; give the warm-up's day 0 as a date "
        "such as 2026-11-20",
        "bulkmail_sender_accounts[11]: 'lu@acme-mail.test' is not an account nor {csv: FILE}",
    ]


def test_a_domain_s_own_tenant_may_be_named_and_accounts_need_no_tenants() -> None:
    inputs = lab_inventory(bulkmail_sender_accounts=[anna(address="a@shop.test")])
    (account,) = parse_model(inputs).sender_accounts
    assert account.tenant == "shop.test"


CSV = """\ufeffaddress,tenant,route,backup,warmup,first_day
anna@acme-mail.test,acme,own,relay:relay1,default,2026-11-20

"ben@acme-mail.test",,"relay:relay2",own,,2026-11-21
carl@acme-news.test,,own,,,2026-11-22
"""


def test_a_csv_import() -> None:
    inputs = fleet({CSV_PATH: CSV}, bulkmail_sender_accounts=[{"csv": CSV_PATH}])
    accounts = parse_model(inputs).sender_accounts
    assert [(a.address, a.tenant, a.route, a.backup, a.warmup, a.first_day) for a in accounts] == [
        ("anna@acme-mail.test", "acme", OWN_SMTP, Route("relay1", "relay"), "default",
         date(2026, 11, 20)),
        ("ben@acme-mail.test", "acme", Route("relay2", "relay"), OWN_SMTP, "default",
         date(2026, 11, 21)),
        ("carl@acme-news.test", "acme", OWN_SMTP, None, "default", date(2026, 11, 22)),
    ]  # fmt: skip
    assert accounts[2].source == "accounts/acme.csv line 5"
    assert csv_paths(inputs["variables"]["bulkmail_sender_accounts"]) == [CSV_PATH]


def test_optional_columns_may_be_left_out_in_any_order() -> None:
    text = "first_day,route,address\r\n2026-11-20,own,anna@acme-mail.test\r\n"
    (account,) = parse_model(
        fleet({CSV_PATH: text}, bulkmail_sender_accounts=[{"csv": CSV_PATH}])
    ).sender_accounts
    assert (account.tenant, account.backup, account.warmup) == ("acme", None, "default")


def test_csv_errors_name_the_file_and_line() -> None:
    text = (
        "address,route,backup,first_day\n"
        "anna@acme-mail.test,own,,2026-11-20\n"
        'ben@acme-mail.test,"relay:relay1,relay2",,2026-11-20\n'
        "carl@acme-mail.test,own,own,2026-11-20\n"
        "dora@shop.test,own,,2026-11-20,extra\n"
        "anna@acme-mail.test,own,,2026-11-20\n"
        "eve@acme-mail.test,own,,tomorrow\n"
    )
    inputs = fleet({CSV_PATH: text}, bulkmail_sender_accounts=[{"csv": CSV_PATH}])
    assert problems(inputs) == [
        # The quoted comma stays in its cell: the error is the route's, not a shifted column's.
        "accounts/acme.csv line 3: route: 'relay1,relay2' is not a relay of bulkmail_relays "
        "(known: relay1, relay2)",
        "accounts/acme.csv line 4: backup: own is the route itself; a backup is another route "
        "(or leave it out)",
        'accounts/acme.csv line 5: 5 cells for 4 columns; quote a cell that holds a comma ("...")',
        "accounts/acme.csv line 7: first_day: 'tomorrow' is not a date such as 2026-11-20 "
        "(ISO 8601)",
    ]
    # Once the rows parse, the duplicate is found (an address is checked against the others).
    fixed = "\n".join(line for index, line in enumerate(text.splitlines()) if index in (0, 1, 5))
    assert problem(fleet({CSV_PATH: fixed}, bulkmail_sender_accounts=[{"csv": CSV_PATH}])) == (
        "accounts/acme.csv line 3: address: 'anna@acme-mail.test' is declared at "
        "accounts/acme.csv line 2 already; an address is one account"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("address,route,first_day,limit\n", "accounts/acme.csv line 1: header: unknown "
         "column(s) limit; known are address, tenant, route, backup, warmup, first_day"),
        ("address,first_day\n", "accounts/acme.csv line 1: header: no route column"),
        ("address,route,route,first_day\n",
         "accounts/acme.csv line 1: header: column(s) route given twice"),
        ("", "accounts/acme.csv: is empty; the first line names the columns: "
         "address,tenant,route,backup,warmup,first_day"),
        ('address,route,first_day\n"anna@acme-mail.test"x,own,2026-11-20\n',
         "accounts/acme.csv line 2: not CSV: ',' expected after '\"'"),
    ],
)  # fmt: skip
def test_a_malformed_csv(text: str, message: str) -> None:
    inputs = fleet({CSV_PATH: text}, bulkmail_sender_accounts=[{"csv": CSV_PATH}])
    assert problem(inputs) == message


def test_a_csv_of_bad_rows_reports_the_first_ones_and_a_count() -> None:
    rows = "".join(f"a{index}@acme-mail.test,ses,2026-11-20\n" for index in range(100))
    text = "address,route,first_day\n" + rows
    found = problems(fleet({CSV_PATH: text}, bulkmail_sender_accounts=[{"csv": CSV_PATH}]))
    assert len(found) == MAX_PROBLEMS_PER_FILE + 1
    assert found[0].startswith("accounts/acme.csv line 2: route: 'ses' is not a route")
    assert found[-1] == f"accounts/acme.csv: {100 - MAX_PROBLEMS_PER_FILE} more rows with problems"


def test_duplicates_across_the_inventory_and_csv_files() -> None:
    other = "address,route,first_day\nben@acme-news.test,own,2026-11-20\n"
    entries = [
        anna(),
        {"csv": CSV_PATH},
        {"csv": "accounts/more.csv"},
        anna(address="BEN@acme-news.test"),
    ]
    inputs = fleet({CSV_PATH: CSV, "accounts/more.csv": other}, bulkmail_sender_accounts=entries)
    assert problems(inputs) == [
        "accounts/acme.csv line 2: address: 'anna@acme-mail.test' is declared at "
        "bulkmail_sender_accounts[0] already; an address is one account",
        "bulkmail_sender_accounts[3].address: 'ben@acme-news.test' is declared at "
        "accounts/more.csv line 2 already; an address is one account",
    ]


def test_a_csv_imported_twice_or_not_read() -> None:
    entries = [{"csv": CSV_PATH}, {"csv": CSV_PATH}, {"csv": "accounts/missing.csv"},
               {"csv": "/etc/accounts.csv"}, {"csv": CSV_PATH, "tenant": "acme"}]  # fmt: skip
    assert problems(fleet({CSV_PATH: CSV}, bulkmail_sender_accounts=entries)) == [
        "bulkmail_sender_accounts[1].csv: 'accounts/acme.csv' is imported by "
        "bulkmail_sender_accounts[0] too",
        "bulkmail_sender_accounts[2].csv: the text of 'accounts/missing.csv' is not in the "
        "model's inputs (inputs['files']): playbooks/validate.yml reads each file named here, "
        "relative to the inventory's directory; check that the file exists there",
        "bulkmail_sender_accounts[3].csv: '/etc/accounts.csv' is absolute; give it relative "
        "to the inventory",
        "bulkmail_sender_accounts[4]: unknown key(s) tenant; known keys are csv (docs/model.md)",
    ]


def test_the_model_filter_carries_the_files_into_the_fact() -> None:
    """`bulkmail.infra.model` as playbooks/validate.yml calls it, with the CSV texts."""
    hosts = lab_hosts()
    groups = {group: [host["inventory_hostname"] for host in members]
              for group, members in hosts.items()}  # fmt: skip
    groups["smtp"] += groups["smtp_fallback"]
    hostvars = [dict(host) for members in hosts.values() for host in members]
    groups["all"] = [host["inventory_hostname"] for host in hostvars]
    variables = {key: fleet()["variables"].get(key) for key in MODEL_VARIABLES}
    variables["bulkmail_sender_accounts"] = [{"csv": CSV_PATH}]
    unread = model_filter(variables, groups, hostvars)
    assert unread["problems"].startswith(
        "bulkmail_sender_accounts[0].csv: the text of 'accounts/acme.csv' is not in"
    )
    fact = model_filter(variables, groups, hostvars, {CSV_PATH: CSV})
    assert "problems" not in fact and fact["files"] == {CSV_PATH: CSV}
    assert len(parse_model(fact).sender_accounts) == 3


def test_parse_accounts_csv_alone() -> None:
    context = AccountContext(
        domain_tenants={"acme-mail.test": "acme"},
        tenants=("acme",),
        relays=("ses",),
        schedules={"default": WarmupSchedule()},
    )
    text = "address,route,first_day\nanna@acme-mail.test,relay:ses,2026-11-20\n"
    (account,) = parse_accounts_csv(text, "a.csv", context)
    assert account.route == Route("ses", "relay")
    with pytest.raises(ModelError, match=r"^a.csv line 2: route: 'mailgun' is not a relay"):
        parse_accounts_csv(text.replace("ses", "mailgun"), "a.csv", context)


def test_1200_accounts_parse_well_under_a_second() -> None:
    """The agency's fleet: 1,200 mailboxes on 12 domains of 3 tenants, half from CSV."""
    names = [f"d{index}.test" for index in range(12)]
    tenants = [{"name": f"t{index}", "domains": names[index * 4 : index * 4 + 4]}
               for index in range(3)]  # fmt: skip
    rows = [(f"box{number}@{names[number % 12]}", "relay:relay1" if number % 3 else "own")
            for number in range(1200)]  # fmt: skip
    text = "address,route,backup,first_day\n" + "".join(
        f"{address},{route},{'own' if route != 'own' else ''},2026-11-20\n"
        for address, route in rows[600:]
    )
    entries = [{"address": a, "route": r, "first_day": "2026-11-20"} for a, r in rows[:600]]
    domains = [*LAB_VARIABLES["bulkmail_domains"], *map(domain, names)]
    inputs = lab_inventory(
        bulkmail_domains=domains,
        bulkmail_tenants=tenants,
        bulkmail_sender_accounts=[*entries, {"csv": CSV_PATH}],
    )
    inputs["files"] = {CSV_PATH: text}
    start = time.perf_counter()
    model = parse_model(inputs)
    elapsed = time.perf_counter() - start
    assert len(model.sender_accounts) == 1200
    assert {a.tenant for a in model.sender_accounts} == {"t0", "t1", "t2"}
    assert elapsed < 0.5, f"{elapsed:.3f} s"


# --- the tenants in the feedback loop -------------------------------------------------------


def test_the_feedback_loop_s_tenant_map_follows_bulkmail_tenants() -> None:
    settings = feedback_settings(fleet())
    assert settings["tenants"] == {
        "domains": {
            "acme-mail.test": "acme",
            "acme-news.test": "acme",
            "agency.test": "agency.test",
            "example.test": "example.test",
            "shop.test": "shop.test",
        }
    }
    tenants = TenantMap.load(settings["tenants"])
    # The return-path domain is a subdomain: it follows its parent to acme.
    assert tenants.tenant_for_domain("bounces.acme-mail.test") == "acme"
    assert tenants.tenant_for_sender("news+x=y.test@bounces.acme-news.test") == "acme"
    assert tenants.tenant_for_sender("app@shop.test") == "shop.test"
    assert tenants.tenant_for_domain("bounces.example.test") == "example.test"


def test_default_tenants_without_and_with_tenants() -> None:
    names = ["Example.test", "acme-mail.test"]
    assert default_tenants(names) == {
        "domains": {"acme-mail.test": "acme-mail.test", "example.test": "example.test"}
    }
    assert default_tenants(names, {"acme": ["acme-mail.test"]}) == {
        "domains": {"acme-mail.test": "acme", "example.test": "example.test"}
    }


@pytest.mark.parametrize("first", ["outreach.warmup", "outreach.choice", "model.outreach", "model"])
def test_the_model_and_the_engine_import_in_either_order(first: str) -> None:
    """warmup imports the model's errors and the model imports warmup: neither order fails."""
    code = f"import ansible_collections.bulkmail.infra.plugins.module_utils.{first}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ":".join(path for path in sys.path if path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
