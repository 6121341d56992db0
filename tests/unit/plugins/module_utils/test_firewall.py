"""firewall_rules: each host opens what its tiers serve, to whom docs/ports.md says."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils import firewall
from ansible_collections.bulkmail.infra.plugins.module_utils.firewall import (
    Rule,
    ban_exempt,
    firewall_rules,
    open_ports,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    Model,
    ModelError,
    parse_model,
)
from model_inventory import inventory, lab_hosts, lab_model, lab_variables
from test_pure_wall import wall_breaches

STRANGER = "198.51.100.25"  # the lab's providers: the internet
CLIENT = "10.25.0.100"  # the lab's application server, on a trusted network
ADMIN = "10.25.0.2"  # the lab's controller
SSH = ("tcp", 22)


def flows(host: str, **changes: object) -> list[tuple[str, tuple[int, ...], object, object]]:
    rules = firewall_rules(lab_model(**changes), host)
    return [(rule.protocol, rule.ports, rule.sources, rule.destination) for rule in rules]


def nft_of(model: Model, host: str) -> list[str]:
    return [line for rule in firewall_rules(model, host) for line in rule.statements]


def nft(host: str, **changes: object) -> list[str]:
    return nft_of(lab_model(**changes), host)


# --- the lab, tier by tier (docs/ports.md) -------------------------------------------------


def test_a_primary_opens_smtp_and_submission_to_anyone_and_its_lanes_to_the_trusted() -> None:
    own = ("198.51.100.10", "198.51.100.11", "10.25.0.10")
    assert flows("smtp1") == [
        ("tcp", (22,), ("10.25.0.0/28",), None),
        ("tcp", (25,), None, None),
        ("tcp", (587,), None, None),
        ("tcp", (2525,), ("10.25.0.96/27",), "10.25.0.10"),
        ("tcp", (2526, 2527, 2528, 2529, 2530), ("10.25.0.96/27", *own), "10.25.0.10"),
    ]


def test_a_primary_s_rules_in_nftables_language() -> None:
    assert nft("smtp1") == [
        "ip saddr 10.25.0.0/28 tcp dport 22 accept",
        "tcp dport 25 accept",
        "tcp dport 587 accept",
        "ip daddr 10.25.0.10 ip saddr 10.25.0.96/27 tcp dport 2525 accept",
        # 198.51.100.10 and .11, merged into one element.
        "ip daddr 10.25.0.10 ip saddr { 10.25.0.10, 10.25.0.96/27, 198.51.100.10/31 } "
        "tcp dport 2526-2530 accept",
    ]


def test_the_graveyard_opens_smtp_only() -> None:
    assert flows("smtp2") == [("tcp", (22,), ("10.25.0.0/28",), None), ("tcp", (25,), None, None)]


@pytest.mark.parametrize("host", ["dns1", "dns2"])
def test_a_name_server_opens_dns_over_udp_and_tcp_to_anyone(host: str) -> None:
    assert nft(host) == [
        "ip saddr 10.25.0.0/28 tcp dport 22 accept",
        "udp dport 53 accept",
        "tcp dport 53 accept",
    ]


def test_the_database_opens_postgresql_on_its_internal_address_to_smtp_and_web_only() -> None:
    assert flows("db1")[1:] == [
        ("tcp", (5432,), ("10.25.0.10", "10.25.0.12", "10.25.0.80"), "10.25.0.5"),
    ]
    assert nft("db1")[1] == (
        "ip daddr 10.25.0.5 ip saddr { 10.25.0.10, 10.25.0.12, 10.25.0.80 } tcp dport 5432 accept"
    )


def test_the_web_host_opens_https_to_anyone() -> None:
    assert nft("web1")[1:] == ["tcp dport 443 accept"]


# --- what a client reaches ------------------------------------------------------------------

# The lab's public addresses as the internet (the providers) sees them: docs/ports.md.
FROM_THE_INTERNET = {
    ("smtp1", "198.51.100.10"): {("tcp", 25), ("tcp", 587)},
    ("smtp1", "198.51.100.11"): {("tcp", 25), ("tcp", 587)},
    ("smtp2", "198.51.100.12"): {("tcp", 25)},
    ("dns1", "198.51.100.53"): {("tcp", 53), ("udp", 53)},
    ("dns2", "198.51.100.54"): {("tcp", 53), ("udp", 53)},
    ("db1", "198.51.100.5"): set(),
    ("web1", "198.51.100.80"): {("tcp", 443)},
}


@pytest.mark.parametrize(("target", "expected"), FROM_THE_INTERNET.items())
def test_a_stranger_reaches_only_the_public_services(
    target: tuple[str, str], expected: set[tuple[str, int]]
) -> None:
    host, address = target
    assert open_ports(firewall_rules(lab_model(), host), STRANGER, address) == expected


def test_an_application_server_reaches_the_lanes_but_not_the_database() -> None:
    model = lab_model()
    lanes = {("tcp", port) for port in range(2525, 2531)}
    assert open_ports(firewall_rules(model, "smtp1"), CLIENT, "10.25.0.10") == {
        ("tcp", 25),
        ("tcp", 587),
        *lanes,
    }
    # The lanes listen on the internal address only.
    assert not open_ports(firewall_rules(model, "smtp1"), CLIENT, "198.51.100.10") & lanes
    assert open_ports(firewall_rules(model, "db1"), CLIENT, "10.25.0.5") == set()


def test_the_smtp_and_web_hosts_reach_the_database_on_its_internal_address_only() -> None:
    rules = firewall_rules(lab_model(), "db1")
    for client in ("10.25.0.10", "10.25.0.12", "10.25.0.80"):
        # They are in the lab's admin network too, hence SSH.
        assert open_ports(rules, client, "10.25.0.5") - {SSH} == {("tcp", 5432)}
        assert open_ports(rules, client, "198.51.100.5") - {SSH} == set()


def test_the_admin_networks_reach_ssh_on_every_host() -> None:
    model = lab_model()
    for host in model.hosts:
        address = str(host.internal_ipv4)
        assert SSH in open_ports(firewall_rules(model, host.inventory_name), ADMIN, address)
        assert SSH not in open_ports(firewall_rules(model, host.inventory_name), CLIENT, address)


# --- what the model changes ------------------------------------------------------------------


def test_hosts_not_reached_over_ssh_open_no_ssh() -> None:
    assert SSH not in {
        (protocol, port)
        for protocol, ports, _sources, _destination in flows("smtp1", bulkmail_admin_ssh=False)
        for port in ports
    }


def test_sshd_on_another_port() -> None:
    ssh = firewall_rules(lab_model(), "web1", ssh_port=2222)[0]
    assert ssh.statements == ("ip saddr 10.25.0.0/28 tcp dport 2222 accept",)


@pytest.mark.parametrize("port", [0, 65536, "22", True])
def test_an_ssh_port_that_is_not_one_is_refused(port: object) -> None:
    with pytest.raises(ModelError, match=r"^nftables_ssh_port: .* is not a TCP port"):
        firewall_rules(lab_model(), "web1", ssh_port=port)  # type: ignore[arg-type]


def test_ipv6_admin_networks_get_their_own_statement() -> None:
    ssh = firewall_rules(
        lab_model(bulkmail_admin_networks=["192.0.2.0/28", "2001:db8:1::/48"]), "web1"
    )[0]
    assert ssh.statements == (
        "ip saddr 192.0.2.0/28 tcp dport 22 accept",
        "ip6 saddr 2001:db8:1::/48 tcp dport 22 accept",
    )
    assert ssh.admits("2001:db8:1::7", "198.51.100.80")


def test_overlapping_sources_are_merged() -> None:
    # A trusted network that holds the host's internal address: one set element, not two.
    model = lab_model(
        bulkmail_trusted_networks=[{"network": "10.25.0.0/24", "domains": "all"}],
        bulkmail_admin_networks=["10.25.0.0/28", "10.25.0.0/29"],
    )
    rules = firewall_rules(model, "smtp1")
    assert rules[0].statements == ("ip saddr 10.25.0.0/28 tcp dport 22 accept",)
    assert rules[-1].statements == (
        "ip daddr 10.25.0.10 ip saddr { 10.25.0.0/24, 198.51.100.10/31 } "
        "tcp dport 2526-2530 accept",
    )


def test_without_trusted_networks_the_lane_intake_is_closed() -> None:
    model = lab_model(bulkmail_trusted_networks=None)
    ports = [rule.ports for rule in firewall_rules(model, "smtp1")]
    assert (2525,) not in ports
    assert (2526, 2527, 2528, 2529, 2530) in ports  # the intake's handoff, from the host itself


def test_lanes_of_a_primary_without_internal_address_stay_on_loopback() -> None:
    hosts = lab_hosts()
    del hosts["smtp"][0]["bulkmail_internal_ipv4"]
    model = parse_model(inventory(lab_variables(), **hosts))
    assert [rule.ports for rule in firewall_rules(model, "smtp1")] == [(22,), (25,), (587,)]


def test_a_host_of_two_tiers_opens_what_both_serve() -> None:
    hosts = lab_hosts()
    hosts["web"] = [*hosts["web"], hosts["dns"][1]]
    model = parse_model(inventory(lab_variables(), **hosts))
    assert [line.split(" accept")[0] for line in nft_of(model, "dns2")] == [
        "ip saddr 10.25.0.0/28 tcp dport 22",
        "udp dport 53",
        "tcp dport 53",
        "tcp dport 443",
    ]


def test_a_database_nobody_uses_opens_nothing_but_ssh() -> None:
    hosts = lab_hosts()
    for group in ("smtp", "smtp_fallback", "web"):
        hosts[group] = []
    model = parse_model(inventory(lab_variables(bulkmail_lanes=None), **hosts))
    assert [rule.ports for rule in firewall_rules(model, "db1")] == [(22,)]


def test_a_host_the_inventory_does_not_have_is_named() -> None:
    with pytest.raises(ModelError, match=r"^hostvars\['smtp9'\]: is not a host of the inventory"):
        firewall_rules(lab_model(), "smtp9")


def test_a_rule_for_nobody_is_never_written_as_a_rule_for_anyone() -> None:
    with pytest.raises(ValueError, match="a rule for nobody"):
        Rule("tcp", (5432,), "PostgreSQL", sources=()).statements  # noqa: B018


# --- fail2ban ---------------------------------------------------------------------------------


def test_fail2ban_never_bans_loopback_or_the_operator() -> None:
    assert ban_exempt(lab_model()) == ("127.0.0.0/8", "::1/128", "10.25.0.96/27", "10.25.0.0/28")


def test_fail2ban_bans_a_tenant_s_network_like_anyone() -> None:
    model = lab_model(
        bulkmail_trusted_networks=[
            {"network": "10.25.0.96/28", "domains": "all"},
            {"network": "10.25.0.112/28", "domains": ["shop.test"]},
        ]
    )
    assert ban_exempt(model) == ("127.0.0.0/8", "::1/128", "10.25.0.96/28", "10.25.0.0/28")


def test_the_firewall_logic_is_pure() -> None:
    path = Path(firewall.__file__)
    assert wall_breaches(path.read_text(encoding="utf-8"), path.name) == []
