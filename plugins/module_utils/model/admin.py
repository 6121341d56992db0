"""Who administers the hosts: `bulkmail_admin_networks`, and the host firewall's two switches.

The firewall (`plugins/module_utils/firewall.py`, roles/nftables) opens SSH on every host to
the admin networks only; fail2ban never bans them. Both switches live in the model, not in a
role, because the check that matters runs here, before any host changes: a firewall that
opens SSH to nobody locks the operator out of every host at once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ModelError, raise_collected
from .fields import cidr_network, show, str_list

NETWORKS = "bulkmail_admin_networks"
FIREWALL = "bulkmail_firewall"
SSH = "bulkmail_admin_ssh"


@dataclass(frozen=True)
class Administration:
    """The admin networks, whether the hosts are firewalled, whether SSH is how they are run."""

    networks: tuple[str, ...] = ()
    firewall: bool = True
    ssh: bool = True


def _switch(raw: Any, path: str) -> bool:
    if raw is None:
        return True
    if not isinstance(raw, bool):
        raise ModelError(path, f"{show(raw)} is not true or false")
    return raw


def _network(entry: Any, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return cidr_network(
        entry,
        where,
        example="192.0.2.0/28",
        every_address="SSH would be open to the whole internet; list the networks you "
        "administer the hosts from",
    )


def parse_admin_networks(raw: Any, path: str = NETWORKS) -> tuple[str, ...]:
    """IPv4 or IPv6 networks (CIDR, no host bits, never /0) the hosts are administered from."""
    if raw is None:
        return ()
    networks: list[str] = []
    errors: list[ModelError] = []
    for index, entry in enumerate(str_list(raw, path)):
        where = f"{path}[{index}]"
        try:
            network = str(_network(entry, where))
            if network in networks:
                raise ModelError(where, f"{network} is listed twice; list it once")
            networks.append(network)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return tuple(networks)


def parse_administration(raw: Mapping[str, Any], *, has_hosts: bool) -> Administration:
    """`bulkmail_admin_networks`, `bulkmail_firewall` and `bulkmail_admin_ssh` of the model's
    variables; refuses a firewall that would let nobody in over SSH."""
    errors: list[ModelError] = []
    parsed: dict[str, Any] = {}
    for key, path, parse in (
        ("networks", NETWORKS, parse_admin_networks),
        ("firewall", FIREWALL, _switch),
        ("ssh", SSH, _switch),
    ):
        try:
            parsed[key] = parse(raw.get(path), path)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    admin = Administration(**parsed)
    if has_hosts and admin.firewall and admin.ssh and not admin.networks:
        raise ModelError(
            NETWORKS,
            f"missing or empty, but {FIREWALL} is on and opens SSH (22) on every host to these "
            f"networks only: nobody could log in. List the networks you administer from "
            f"(e.g. [192.0.2.0/28]), or set {SSH}: false if the hosts are not reached over SSH",
        )
    return admin
