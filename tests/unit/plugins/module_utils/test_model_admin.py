"""bulkmail_admin_networks, bulkmail_firewall, bulkmail_admin_ssh: SSH's networks, checked first."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import model_summary, parse_model
from model_inventory import lab_inventory, lab_model, lab_variables, problem, problems

NO_ONE = (
    "bulkmail_admin_networks: missing or empty, but bulkmail_firewall is on and opens SSH (22) "
    "on every host to these networks only: nobody could log in."
)


def test_the_lab_is_administered_from_the_controller_s_range() -> None:
    model = lab_model()
    assert model.admin.networks == ("10.25.0.0/28",)
    assert model.admin.firewall and model.admin.ssh
    summary = model_summary(model)
    assert summary["firewall"] is True
    assert summary["admin_networks"] == ["10.25.0.0/28"]


@pytest.mark.parametrize("networks", [None, []])
def test_a_firewall_that_lets_nobody_in_over_ssh_is_refused(networks: Any) -> None:
    message = problem(lab_inventory(bulkmail_admin_networks=networks))
    assert message.startswith(NO_ONE)
    # The message names both ways out.
    assert "192.0.2.0/28" in message
    assert "bulkmail_admin_ssh: false" in message


def test_hosts_not_reached_over_ssh_need_no_admin_network() -> None:
    model = lab_model(bulkmail_admin_networks=None, bulkmail_admin_ssh=False)
    assert model.admin.networks == ()
    assert not model.admin.ssh


def test_without_the_firewall_no_admin_network_is_needed() -> None:
    assert not lab_model(bulkmail_admin_networks=None, bulkmail_firewall=False).admin.firewall


def test_a_model_without_hosts_needs_no_admin_network() -> None:
    # A filter that knows only the domains passes the variables alone (parse_model's docstring).
    variables = lab_variables(bulkmail_admin_networks=None, bulkmail_lanes=None)
    assert parse_model({"variables": variables}).admin.networks == ()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("0.0.0.0/0", "'0.0.0.0/0' is every address: SSH would be open to the whole internet"),
        ("::/0", "'::/0' is every address"),
        ("10.25.0.1/28", "'10.25.0.1/28' has host bits set; write 10.25.0.0/28 instead"),
        ("10.25.0.0/33", "'10.25.0.0/33' is not a network in CIDR form"),
        ("office", "'office' is not a network in CIDR form"),
        ("10.25.0.0/28\n", "ends with a newline"),
        (28, "28 (int) is not a network such as 192.0.2.0/28"),
    ],
)
def test_an_admin_network_that_is_not_one_is_refused_by_its_index(entry: Any, message: str) -> None:
    found = problem(lab_inventory(bulkmail_admin_networks=["192.0.2.0/28", entry]))
    assert found.startswith(f"bulkmail_admin_networks[1]: {message}"), found


def test_every_bad_admin_network_is_named() -> None:
    found = problems(lab_inventory(bulkmail_admin_networks=["0.0.0.0/0", "192.0.2.0/28", "x"]))
    assert [message.split(":")[0] for message in found] == [
        "bulkmail_admin_networks[0]",
        "bulkmail_admin_networks[2]",
    ]


def test_an_admin_network_listed_twice_is_refused() -> None:
    found = problem(lab_inventory(bulkmail_admin_networks=["192.0.2.0/28", "192.0.2.0/28"]))
    assert found == "bulkmail_admin_networks[1]: 192.0.2.0/28 is listed twice; list it once"


def test_ipv6_admin_networks_and_single_addresses_are_networks_too() -> None:
    model = lab_model(bulkmail_admin_networks=["2001:db8:1::/48", "192.0.2.7", "192.0.2.8/32"])
    assert model.admin.networks == ("2001:db8:1::/48", "192.0.2.7/32", "192.0.2.8/32")


def test_one_admin_network_may_be_written_alone() -> None:
    assert lab_model(bulkmail_admin_networks="192.0.2.0/28").admin.networks == ("192.0.2.0/28",)


@pytest.mark.parametrize("key", ["bulkmail_firewall", "bulkmail_admin_ssh"])
def test_the_switches_are_true_or_false(key: str) -> None:
    assert problem(lab_inventory(**{key: "no"})) == f"{key}: 'no' is not true or false"
