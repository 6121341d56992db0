"""parse_model: the lab's inventory parses, a broken one is refused with every field named."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    MODEL_VARIABLES,
    ModelError,
    ModelErrors,
    model_inputs,
    model_summary,
    parse_model,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.lanes import HANDOFF_HEADROOM
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.plan import plan
from model_inventory import (
    LAB_VARIABLES,
    PASSWORDS,
    RELAY2_PIN,
    SMTP1,
    inventory,
    lab_hosts,
    lab_inventory,
    lab_model,
    lab_variables,
    problem,
    problems,
)

PROVIDERS = ["google", "microsoft", "yahoo", "apple", "default"]


def with_domain(index: int, **changes: Any) -> list[dict[str, Any]]:
    """The lab's domains with `changes` to domain `index` (None removes a key)."""
    domains = lab_variables()["bulkmail_domains"]
    for key, value in changes.items():
        if value is None:
            domains[index].pop(key)
        else:
            domains[index][key] = value
    return domains


def with_relay(name: str, **changes: Any) -> dict[str, Any]:
    relays = lab_variables()["bulkmail_relays"]
    relays[name].update(changes)
    return relays


def with_lanes(**lanes: Any) -> dict[str, Any]:
    return {**LAB_VARIABLES["bulkmail_lanes"], **lanes}


def hosts_with(group: str, name: str, **variables: Any) -> dict[str, list[dict[str, Any]]]:
    """The lab's hosts with `variables` changed on host `name` of `group` (None removes)."""
    hosts = lab_hosts()
    (host,) = [host for host in hosts[group] if host["inventory_hostname"] == name]
    for key, value in variables.items():
        if value is None:
            host.pop(key, None)
        else:
            host[key] = value
    return hosts


# --- the lab -------------------------------------------------------------------------------


def test_the_lab_inventory_parses() -> None:
    model = lab_model()
    assert [domain.name for domain in model.domains] == ["example.test", "shop.test", "agency.test"]
    assert [host.inventory_name for host in model.primaries] == ["smtp1"]
    assert [host.inventory_name for host in model.graveyards] == ["smtp2"]
    assert [host.inventory_name for host in model.dns_hosts] == ["dns1", "dns2"]
    assert [host.inventory_name for host in model.web_hosts] == ["web1"]
    assert [lane.name for lane in model.lanes] == ["transactional", "bulk"]
    assert [provider.name for provider in model.providers] == PROVIDERS
    assert model.trusted_networks == ("10.25.0.96/27",)
    assert [account.domain for account in model.submission_accounts] == [
        "example.test",
        "shop.test",
    ]
    assert model.volume is not None and model.volume.max_message_size_kb == 25600
    summary = model_summary(model)
    assert summary["relays"] == {
        "relay1": "relay1.relays.test:587",
        "relay2": "relay2.relays.test:587",
    }
    assert summary["pool_addresses"] == ["198.51.100.10", "198.51.100.11", "198.51.100.12"]


def test_the_inputs_hold_the_model_s_variables_only() -> None:
    variables = {**LAB_VARIABLES, "bulkmail_secret_dir": "/home/op/.secrets"}
    inputs = model_inputs(variables, {"smtp": ["smtp1"]}, {"smtp1": {"ansible_host": "x"}})
    assert sorted(inputs["variables"]) == sorted(MODEL_VARIABLES)
    assert "ansible_host" not in inputs["hosts"]["smtp1"]


def test_something_else_than_the_inputs_is_refused() -> None:
    with pytest.raises(ModelError, match=r"^bulkmail_model: is not the model's inputs"):
        parse_model(LAB_VARIABLES)


def test_the_summary_holds_no_password() -> None:
    summary = str(model_summary(lab_model()))
    for password in PASSWORDS.values():
        assert password not in summary


# --- broken inventories: the field's path, and the fix -------------------------------------

BROKEN_VARIABLES = [
    pytest.param(
        {"bulkmail_domains": with_domain(1, name="Shop.test")},
        "bulkmail_domains[1].name: 'Shop.test' must be written in lower case: 'shop.test'",
        id="domain-name",
    ),
    pytest.param(
        {"bulkmail_domains": with_domain(0, dmarc=None)},
        "bulkmail_domains[0].dmarc: missing; bulk senders must publish DMARC",
        id="domain-without-dmarc",
    ),
    pytest.param(
        {"bulkmail_domains": with_domain(2, relay=["relay1"])},
        "bulkmail_domains[2]: unknown key(s) relay; known keys are name, dkim_selectors, dmarc, "
        "return_path_domain, spf_include, relays, mta_sts, tls_rpt (docs/model.md)",
        id="domain-unknown-key",
    ),
    pytest.param(
        {"bulkmail_domains": [*with_domain(0), with_domain(0)[0]]},
        "bulkmail_domains[3].name: 'example.test' is already listed at bulkmail_domains[0]",
        id="domain-twice",
    ),
    pytest.param(
        {"bulkmail_ip_pools": {"transactional": ["198.51.100.10"], "bulk": []}},
        "bulkmail_ip_pools.bulk: is empty; list at least one address or remove the pool",
        id="pool-empty",
    ),
    pytest.param(
        {"bulkmail_ip_pools": {"transactional": ["198.51.100.10"],
                               "bulk": ["198.51.100.11", "198.51.100.300"]}},
        "bulkmail_ip_pools.bulk[1]: '198.51.100.300' is not a valid IPv4 address",
        id="pool-address",
    ),
    pytest.param(
        {"bulkmail_ip_pools": {"transactional": ["198.51.100.10"],
                               "bulk": ["198.51.100.11", "198.51.100.12", "198.51.100.13"]}},
        "bulkmail_ip_pools.bulk[2]: 198.51.100.13 is not an address (bulkmail_public_ipv4 or "
        "bulkmail_extra_ipv4) of any smtp host (smtp1: 198.51.100.10, 198.51.100.11; smtp2: "
        "198.51.100.12); add it to the host that owns it or remove it from the pool",
        id="pool-address-of-no-host",
    ),
    pytest.param(
        {"bulkmail_volume": None},
        "bulkmail_volume: missing; give at least messages_per_day and peak_per_hour",
        id="volume-missing",
    ),
    pytest.param(
        {"bulkmail_volume": {"messages_per_day": 20000, "peak_per_hour": 100}},
        "bulkmail_volume.peak_per_hour: 100 x 24 h = 2400 is less than messages_per_day 20000",
        id="volume-peak-below-average",
    ),
    pytest.param(
        {"bulkmail_volume": {"messages_per_day": 20000, "peak_per_hour": 5000, "per_hour": 1}},
        "bulkmail_volume: unknown key(s) per_hour; known keys are messages_per_day, "
        "peak_per_hour, message_size_kb, max_message_size_kb, queue_lifetime_hours "
        "(docs/model.md)",
        id="volume-unknown-key",
    ),
    pytest.param(
        {"bulkmail_relays": with_relay("relay2", port=70000)},
        "bulkmail_relays.relay2.port: 70000 is not a TCP port (1-65535)",
        id="relay-port",
    ),
    pytest.param(
        {"bulkmail_relays": with_relay("relay1", host="relay1")},
        "bulkmail_relays.relay1.host: 'relay1' is not a fully qualified domain name",
        id="relay-host",
    ),
    pytest.param(
        {"bulkmail_domains": with_domain(2, relays=["relay1", "relay3"])},
        "bulkmail_domains[2].relays[1]: 'relay3' is not a relay of bulkmail_relays "
        "(known: relay1, relay2)",
        id="relay-named-by-a-domain-but-not-defined",
    ),
    pytest.param(
        {"bulkmail_providers": {"google": {"extra_mx_suffixes": ["google.test"]}}},
        "bulkmail_providers.google.extra_mx_suffixes[0]: 'google.test' must be an MX host "
        "suffix such as .google.com",
        id="provider-suffix",
    ),
    pytest.param(
        {"bulkmail_providers": {"yahoo": {"extra_mx_suffixes": [".google.test"]},
                                "google": {"extra_mx_suffixes": [".google.test"]}}},
        "bulkmail_providers: MX suffix .google.test is claimed by both",
        id="provider-suffix-twice",
    ),
    pytest.param(
        {"bulkmail_providers": {"google": {"speed": 1}}},
        "bulkmail_providers.google: unknown key(s) speed; known keys are extra_mx_suffixes,",
        id="provider-unknown-key",
    ),
    pytest.param(
        {"bulkmail_lanes": {"bulk": LAB_VARIABLES["bulkmail_lanes"]["bulk"]}},
        "bulkmail_lanes: the 'transactional' lane is missing",
        id="lane-transactional-missing",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(news={"pool": "news", "port": 2600})},
        "bulkmail_lanes.news.pool: 'news' is not a pool of bulkmail_ip_pools (transactional, bulk)",
        id="lane-pool",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(news={"pool": "bulk", "port": 2528})},
        "bulkmail_lanes.news.port: 2528 is also a port of lane bulk (a per_provider lane takes "
        "its port and one more per provider, 5 here)",
        id="lane-in-a-per-provider-range",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(news={"pool": "bulk", "port": 2531}),
         "bulkmail_providers": {**LAB_VARIABLES["bulkmail_providers"],
                                "zoho": {"concurrency": 2, "deliveries_per_connection": 10}}},
        "bulkmail_lanes.news.port: 2531 is also a port of lane bulk (a per_provider lane takes "
        "its port and one more per provider, 6 here)",
        id="lane-range-grows-with-the-providers",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(bulk={"pool": "bulk", "port": 65533, "per_provider": True})},
        "bulkmail_lanes.bulk.port: 65533 + 5 provider instances passes 65535; lower it",
        id="lane-range-past-65535",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(bulk={"pool": "bulk", "port": 583, "per_provider": True})},
        "bulkmail_lanes.bulk.port: its provider instances would take 587, the transactional "
        "lane's",
        id="lane-range-over-587",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(bulk={"pool": "bulk", "port": 2525, "per_provider": 1})},
        "bulkmail_lanes.bulk.per_provider: 1 (int) is not true or false",
        id="lane-per-provider-not-a-flag",
    ),
    pytest.param(
        {"bulkmail_lanes": with_lanes(transactional={"pool": "transactional", "port": 2500})},
        "bulkmail_lanes.transactional.port: the transactional lane is fed on 25 and 587",
        id="lane-transactional-port",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "message"), BROKEN_VARIABLES)
def test_a_broken_variable_is_named_with_the_fix(changes: dict[str, Any], message: str) -> None:
    assert problem(lab_inventory(**changes)).startswith(message)


BROKEN_HOSTS = [
    pytest.param(
        hosts_with("smtp", "smtp1", bulkmail_hostname=None),
        "hostvars['smtp1'].bulkmail_hostname: missing; every smtp host needs its FQDN and "
        "public address (MX, PTR, SPF, HELO)",
        id="smtp-host-without-hostname",
    ),
    pytest.param(
        hosts_with("dns", "dns2", bulkmail_public_ipv4=None),
        "hostvars['dns2'].bulkmail_public_ipv4: missing; every dns host needs its FQDN and "
        "public address (NS and SOA records)",
        id="dns-host-without-address",
    ),
    pytest.param(
        hosts_with("web", "web1", bulkmail_public_ipv4=None),
        "hostvars['web1'].bulkmail_public_ipv4: missing; the web hosts serve the MTA-STS "
        "policies at their public address",
        id="web-host-without-address",
    ),
    pytest.param(
        hosts_with("db", "db1", bulkmail_internal_ipv4="10.25.0.300"),
        "hostvars['db1'].bulkmail_internal_ipv4: '10.25.0.300' is not a valid IPv4 address",
        id="host-address",
    ),
    pytest.param(
        hosts_with("db", "db1", bulkmail_hostname="mta1.example.test"),
        "hostvars['db1'].bulkmail_hostname: 'mta1.example.test' is also the hostname of smtp1; "
        "give each host its own FQDN",
        id="hostname-twice",
    ),
    pytest.param(
        hosts_with("smtp_fallback", "smtp2", bulkmail_extra_ipv4=["198.51.100.11"]),
        "hostvars['smtp2'].bulkmail_extra_ipv4: 198.51.100.11 is also a public address of "
        "smtp1; each smtp host needs its own addresses for their PTR records",
        id="address-twice",
    ),
]


@pytest.mark.parametrize(("hosts", "message"), BROKEN_HOSTS)
def test_a_broken_host_is_named_with_the_fix(
    hosts: dict[str, list[dict[str, Any]]], message: str
) -> None:
    assert problem(inventory(lab_variables(), **hosts)).startswith(message)


def test_a_problem_of_a_host_in_several_groups_is_reported_once() -> None:
    # smtp2 is an smtp host, a graveyard and a host of the inventory: one problem, one line.
    hosts = hosts_with("smtp_fallback", "smtp2", bulkmail_internal_ipv4="10.25.0.300")
    assert problems(inventory(lab_variables(), **hosts)) == [
        "hostvars['smtp2'].bulkmail_internal_ipv4: '10.25.0.300' is not a valid IPv4 address "
        "(write e.g. '198.51.100.10')"
    ]


def test_a_primary_needs_an_address_in_every_lane_s_pool() -> None:
    hosts = hosts_with("smtp", "smtp1", bulkmail_extra_ipv4=None)
    pools = {"transactional": ["198.51.100.10"], "bulk": ["198.51.100.12"]}
    assert problem(inventory(lab_variables(bulkmail_ip_pools=pools), **hosts)) == (
        "hostvars['smtp1'].bulkmail_extra_ipv4: smtp1 has no address in pool 'bulk' (lane bulk); "
        "give it one (bulkmail_extra_ipv4) and list it in bulkmail_ip_pools.bulk"
    )


def test_a_lane_that_falls_back_needs_a_graveyard() -> None:
    hosts = lab_hosts() | {"smtp_fallback": []}
    pools = {"transactional": ["198.51.100.10"], "bulk": ["198.51.100.11"]}
    assert problem(inventory(lab_variables(bulkmail_ip_pools=pools), **hosts)) == (
        "bulkmail_lanes.bulk.fallback: true, but the smtp_fallback group has no host to fall "
        "back to; add one or set fallback: false"
    )


def test_every_problem_is_reported_at_once() -> None:
    inputs = lab_inventory(
        bulkmail_domains=with_domain(1, name="Shop.test"),
        bulkmail_volume={"messages_per_day": -1, "peak_per_hour": 10},
        bulkmail_relays=with_relay("relay1", password=""),
        bulkmail_trusted_networks=[trusted("10.25.0.96/33")],
    )
    with pytest.raises(ModelErrors) as caught:
        parse_model(inputs)
    paths = [error.path for error in caught.value.errors]
    assert paths == [
        "bulkmail_domains[1].name",
        "bulkmail_volume.messages_per_day",
        "bulkmail_relays.relay1.password",
        "bulkmail_trusted_networks[0].network",
    ]
    assert str(caught.value).startswith("4 problems in the inventory model:\n- bulkmail_domains")


def test_the_cross_checks_report_every_problem_at_once() -> None:
    pools = {
        "transactional": ["198.51.100.10"],
        "bulk": ["198.51.100.11", "198.51.100.12", "198.51.100.13"],
    }
    inputs = lab_inventory(
        bulkmail_ip_pools=pools, bulkmail_domains=with_domain(2, relays=["relay3"])
    )
    found = problems(inputs)
    assert [message.partition(":")[0] for message in found] == [
        "bulkmail_ip_pools.bulk[2]",
        "bulkmail_domains[2].relays[0]",
    ]


# --- who may relay: bulkmail_trusted_networks ----------------------------------------------


def trusted(network: str, domains: object = "all") -> dict[str, object]:
    return {"network": network, "domains": domains}


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ("10.0.1.0/33", "'10.0.1.0/33' is not a network in CIDR form such as 192.0.2.96/27"),
        ("not-a-net", "'not-a-net' is not a network in CIDR form such as 192.0.2.96/27"),
        ("2001:db8::/32", "'2001:db8::/32' is IPv6, but Postfix listens on IPv4 only"),
        ("10.25.0.97/27", "'10.25.0.97/27' has host bits set; write 10.25.0.96/27 instead"),
        ("0.0.0.0/0", "'0.0.0.0/0' is every address: the smtp tier would relay and sign for "
                      "anyone (an open relay)"),
        ("10.0.0.0/8", "10.0.0.0/8 is wider than /16 (16777216 addresses may relay without a "
                       "password); narrow it, or list it in bulkmail_trusted_networks_allow_wide "
                       "as well to say it is meant"),
        ("10.25.0.96/27\n", "ends with a newline"),
    ],
)  # fmt: skip
def test_a_trusted_network_the_model_does_not_allow_is_refused(network: str, message: str) -> None:
    inputs = lab_inventory(bulkmail_trusted_networks=[trusted("192.0.2.0/24"), trusted(network)])
    assert problem(inputs).startswith(f"bulkmail_trusted_networks[1].network: {message}")


def test_every_address_is_refused_even_when_allowed_wide() -> None:
    inputs = lab_inventory(
        bulkmail_trusted_networks=[trusted("0.0.0.0/0")],
        bulkmail_trusted_networks_allow_wide=["0.0.0.0/0"],
    )
    found = problems(inputs)
    assert found[0].startswith("bulkmail_trusted_networks[0].network: '0.0.0.0/0' is every address")
    # It is listed in bulkmail_trusted_networks: no message may say to list it there.
    assert not [message for message in found if "is not in bulkmail_trusted_networks" in message]


def test_a_network_allowed_wide_must_be_trusted_too() -> None:
    inputs = lab_inventory(bulkmail_trusted_networks_allow_wide=["10.0.0.0/8"])
    assert problem(inputs).startswith(
        "bulkmail_trusted_networks_allow_wide[0]: 10.0.0.0/8 is not in bulkmail_trusted_networks"
    )


def test_a_wide_network_is_accepted_when_also_listed_as_meant() -> None:
    model = lab_model(
        bulkmail_trusted_networks=[trusted("10.0.0.0/8")],
        bulkmail_trusted_networks_allow_wide=["10.0.0.0/8"],
    )
    assert model.trusted_networks == ("10.0.0.0/8",)


def test_a_16_is_accepted() -> None:
    assert lab_model(bulkmail_trusted_networks=[trusted("10.25.0.0/16")]).trusted_networks == (
        "10.25.0.0/16",
    )


def test_a_bare_network_must_name_its_domains() -> None:
    assert problem(lab_inventory(bulkmail_trusted_networks=["10.25.0.96/27"])).startswith(
        "bulkmail_trusted_networks[0]: '10.25.0.96/27' names no domains: write "
        "{network: 10.25.0.96/27, domains: [...]}"
    )


@pytest.mark.parametrize(
    ("domains", "path", "message"),
    [
        ([], "domains", "is empty: a network that sends as no domain needs no trust"),
        ("every", "domains", "'every' is neither a list of sending domains nor 'all'"),
        (None, "domains", "None (NoneType) is neither a list of sending domains nor 'all'"),
        (["shop.test", "shop.test"], "domains[1]", "'shop.test' is listed twice"),
        (["other.test"], "domains[0]", "'other.test' is not a sending domain (known: "
                                       "example.test, shop.test, agency.test)"),
    ],
)  # fmt: skip
def test_a_trusted_network_names_sending_domains(domains: object, path: str, message: str) -> None:
    inputs = lab_inventory(bulkmail_trusted_networks=[trusted("10.25.0.96/27", domains)])
    assert problem(inputs).startswith(f"bulkmail_trusted_networks[0].{path}: {message}")


def test_trusted_networks_may_not_overlap() -> None:
    inputs = lab_inventory(
        bulkmail_trusted_networks=[trusted("10.25.0.0/24"), trusted("10.25.0.96/27", ["shop.test"])]
    )
    assert problem(inputs).startswith(
        "bulkmail_trusted_networks[1].network: 10.25.0.96/27 overlaps 10.25.0.0/24, listed before"
    )


def test_a_network_keeps_its_domains() -> None:
    model = lab_model(
        bulkmail_trusted_networks=[
            trusted("10.25.0.96/28"),
            trusted("10.25.0.112/28", ["shop.test"]),
        ]
    )
    first, second = model.trusted_senders
    assert first.domains is None and first.may_send_as("example.test")
    assert second.domains == ("shop.test",) and not second.may_send_as("example.test")
    assert model.trusted_networks == ("10.25.0.96/28", "10.25.0.112/28")


# --- secrets: present, no placeholder, one line, never echoed ------------------------------

SECRETS = [
    pytest.param(
        lambda value: {"bulkmail_submission_accounts": [
            {"username": "app@example.test", "password": value}]},
        "bulkmail_submission_accounts[0].password",
        id="submission-account",
    ),
    pytest.param(
        lambda value: {"bulkmail_relays": with_relay("relay1", password=value)},
        "bulkmail_relays.relay1.password",
        id="relay",
    ),
    pytest.param(
        lambda value: {"bulkmail_db_app_password": value},
        "bulkmail_db_app_password",
        id="db-app",
    ),
    pytest.param(
        lambda value: {"bulkmail_db_reader_password": value},
        "bulkmail_db_reader_password",
        id="db-reader",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "path"), SECRETS)
@pytest.mark.parametrize(
    ("value", "problem_text"),
    [
        ("", "missing or empty"),
        ("CHANGE-ME", "is a placeholder, not a password"),
        ("changeme", "is a placeholder, not a password"),
        ("abc123\n", "ends with a newline"),
    ],
)
def test_a_weak_or_broken_password_is_refused_without_echoing_it(
    changes: Any, path: str, value: str, problem_text: str
) -> None:
    message = problem(lab_inventory(**changes(value)))
    assert message.startswith(f"{path}: {problem_text}")
    assert "vault" in message or "newline" in message  # says where a password belongs
    if value:
        assert value.strip() not in message
        assert value.strip().lower() not in message.lower()


def test_no_problem_message_holds_a_password() -> None:
    # Every part broken at once, each next to a good password: none of those is echoed.
    inputs = lab_inventory(
        bulkmail_domains=with_domain(1, name="Shop.test"),
        bulkmail_relays=with_relay("relay2", port=0),
        bulkmail_db_app_password="Db-App w8Jd6",
    )
    text = str(problems(inputs))
    for password in [*PASSWORDS.values(), "Db-App w8Jd6"]:
        assert password not in text


def test_a_submission_account_sends_as_a_sending_domain_only() -> None:
    accounts = [*LAB_VARIABLES["bulkmail_submission_accounts"],
                {"username": "app@other.test", "password": "Other-Pw-3x"}]  # fmt: skip
    assert problem(lab_inventory(bulkmail_submission_accounts=accounts)) == (
        "bulkmail_submission_accounts[2].username: 'app@other.test' is not an address of a "
        "sending domain (example.test, shop.test, agency.test): the account sends as its domain"
    )


# --- the plan of the lab's smtp hosts ------------------------------------------------------


def size_limits(instance: dict[str, Any]) -> list[str]:
    return [s["value"] for s in instance["main_cf"] if s["name"] == "message_size_limit"]


def test_the_primary_runs_an_instance_per_lane_and_per_provider() -> None:
    instances = plan(lab_model(), "smtp1").as_dict()["instances"]
    assert [instance["instance"] for instance in instances] == [
        "-",
        "postfix-bulk",
        *[f"postfix-bulk-{provider}" for provider in PROVIDERS],
    ]
    assert not any(instance["graveyard"] for instance in instances)


def test_the_graveyard_runs_one_instance() -> None:
    (yard,) = plan(lab_model(), "smtp2").as_dict()["instances"]
    assert (yard["instance"], yard["graveyard"]) == ("-", True)


@pytest.mark.parametrize("max_kb", [25600, 10240])
def test_message_size_limit_is_written_once_per_main_cf_from_the_volume(max_kb: int) -> None:
    volume = {**LAB_VARIABLES["bulkmail_volume"], "max_message_size_kb": max_kb}
    model = lab_model(bulkmail_volume=volume)
    limit = max_kb * 1024
    primary = plan(model, "smtp1").as_dict()["instances"]
    (yard,) = plan(model, "smtp2").as_dict()["instances"]
    # Where mail is accepted, the volume's limit; where a handoff arrives, room for headers.
    expected = [[str(limit)]] * 2 + [[str(limit + HANDOFF_HEADROOM)]] * len(PROVIDERS)
    assert [size_limits(instance) for instance in primary] == expected
    assert size_limits(yard) == [str(limit + HANDOFF_HEADROOM)]


@pytest.mark.parametrize("name", ["smtp1", "smtp2"])
def test_relay_passwords_are_in_the_secret_tables_only(name: str) -> None:
    planned = plan(lab_model(), name).as_dict()
    (secret,) = planned.pop("secret_tables")
    assert secret["path"] == "/etc/postfix/relay_passwd" and secret["mode"] == "0600"
    assert secret["lines"] == [
        f"[relay1.relays.test]:587 lab-agency:{PASSWORDS['relay1']}",
        f"[relay2.relays.test]:587 lab-agency:{PASSWORDS['relay2']}",
    ]
    rest = str(planned)
    for password in PASSWORDS.values():
        assert password not in rest


@pytest.mark.parametrize("name", ["smtp1", "smtp2"])
def test_each_lab_relay_is_verified_before_it_gets_a_password(name: str) -> None:
    tables = {t["path"]: t for t in plan(lab_model(), name).as_dict()["tables"]}
    assert tables["/etc/postfix/relay_tls_policy"]["lines"] == [
        "[relay1.relays.test]:587 secure match=nexthop",  # signed by the lab CA
        f"[relay2.relays.test]:587 fingerprint match={RELAY2_PIN}",  # pinned
    ]


def test_only_smtp_hosts_have_a_plan() -> None:
    with pytest.raises(ModelError, match=r"^hostvars\['dns1'\]: is not in the smtp group"):
        plan(lab_model(), "dns1")


def test_the_lab_primary_listens_on_its_internal_address() -> None:
    routes = plan(lab_model(), "smtp1").as_dict()["lane_routes"]
    internal = SMTP1["bulkmail_internal_ipv4"]
    assert routes == {
        "lane-bulk": {
            provider: f"handoff:[{internal}]:{2526 + index}"
            for index, provider in enumerate(PROVIDERS)
        }
    }
