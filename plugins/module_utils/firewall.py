"""The host firewall: which ports each host opens, and to whom, derived from the model.

docs/ports.md is the table in words; `firewall_rules(model, host)` is the same table as data,
and roles/nftables writes it as the `accept` rules of the `inet bulkmail` table (input policy
drop; established flows, loopback and ICMP essentials pass; output is open). Each tier opens
the ports it serves, to the addresses that may use them:

- every host: SSH from `bulkmail_admin_networks` (unless `bulkmail_admin_ssh: false`);
- smtp primaries: 25 and 587 from anyone; each lane's intake on the internal address from the
  trusted networks, a per_provider lane's provider instances from the trusted networks and
  the host's own addresses (the intake's handoff);
- graveyards (`smtp_fallback`): 25 from anyone, nothing else;
- dns: 53 over UDP and TCP from anyone (BIND's ACLs decide recursion and transfers);
- db: 5432 on the internal address from the smtp and web hosts' internal addresses;
- web: 443 from anyone.

`ban_exempt(model)` is who fail2ban never bans (loopback, the operator's trusted networks and
the admin networks);
`open_ports(rules, source, destination)` what a client at `source` reaches, for the lab's scan.

Pure Python: no Ansible import. Errors are `ModelError`s naming the field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .model import Model, ModelError
from .model.hosts import Host

TCP = "tcp"
UDP = "udp"
SSH_PORT = 22
SMTP_PORT = 25
SUBMISSION_PORT = 587
DNS_PORT = 53
HTTPS_PORT = 443
POSTGRESQL_PORT = 5432
LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class Rule:
    """One accepted flow: `ports` over `protocol`, from `sources` (None: anyone) to
    `destination` (None: any address of the host), and why."""

    protocol: str
    ports: tuple[int, ...]
    reason: str
    sources: tuple[str, ...] | None = None
    destination: str | None = None

    def admits(self, source: str, destination: str) -> bool:
        """Whether a client at `source` reaches these ports at the host's `destination`."""
        if self.destination is not None and destination != self.destination:
            return False
        if self.sources is None:
            return True
        address = ipaddress.ip_address(source)
        return any(address in ipaddress.ip_network(network) for network in self.sources)

    @property
    def statements(self) -> tuple[str, ...]:
        """The rule in nftables' language: one statement per address family it admits."""
        match = f"{self.protocol} dport {_port_set(self.ports)} accept"
        to = f"ip daddr {self.destination} " if self.destination else ""
        if self.sources is None:
            return (f"{to}{match}",)
        if not self.sources:
            raise ValueError(f"{self.reason}: a rule for nobody would be a rule for anyone")
        v4 = _collapsed(self.sources, 4)
        v6 = [] if self.destination else _collapsed(self.sources, 6)
        statements = [f"{to}ip saddr {_set(v4)} {match}"] if v4 else []
        statements += [f"ip6 saddr {_set(v6)} {match}"] if v6 else []
        return tuple(statements)

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "ports": list(self.ports),
            "sources": None if self.sources is None else list(self.sources),
            "destination": self.destination,
            "reason": self.reason,
            "nft": list(self.statements),
        }


def _collapsed(networks: Iterable[str], version: int) -> list[str]:
    """The networks of one family, merged: each address once in the set, as `nft list` shows it."""
    family = [net for net in map(ipaddress.ip_network, networks) if net.version == version]
    return [
        str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)
        for net in ipaddress.collapse_addresses(family)
    ]


def _set(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _port_set(ports: Sequence[int]) -> str:
    """`25`, `2526-2530` or `{ 25, 2525-2530 }`: runs of ports as ranges."""
    runs: list[list[int]] = []
    for port in sorted(set(ports)):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    items = [str(first) if first == last else f"{first}-{last}" for first, last in runs]
    return _set(items)


def _names(hosts: Iterable[Host]) -> set[str]:
    return {host.inventory_name for host in hosts}


def _lane_rules(model: Model, host: Host) -> list[Rule]:
    """A primary's lane instances. They listen on the internal address (postfix/lanes.py),
    on loopback without one, which the firewall always lets through."""
    listen = host.internal_ipv4
    if listen is None:
        return []
    providers = [provider.name for provider in model.providers]
    own = tuple(dict.fromkeys([*host.public_addresses, listen]))
    rules = []
    for lane in model.lanes:
        if lane.port is None:
            continue
        if model.trusted_networks:
            rules.append(
                Rule(TCP, (lane.port,), f"lane {lane.name}'s instance: the trusted networks "
                     "feed it", model.trusted_networks, listen)
            )  # fmt: skip
        subs = lane.provider_lanes(providers)
        if subs:
            rules.append(
                Rule(TCP, tuple(sub.port for sub in subs if sub.port is not None),
                     f"lane {lane.name}'s provider instances: the intake's handoff from this "
                     "host, signing dispatchers on the trusted networks",
                     (*model.trusted_networks, *own), listen)
            )  # fmt: skip
    return rules


def _smtp_rules(model: Model, host: Host) -> list[Rule]:
    rules = [Rule(TCP, (SMTP_PORT,), "SMTP: mail and bounces from anyone; only mynetworks relay")]
    if model.is_graveyard(host.inventory_name):
        return rules
    rules.append(Rule(TCP, (SUBMISSION_PORT,), "submission: TLS, then SASL, from anyone"))
    return rules + _lane_rules(model, host)


def _db_rules(model: Model, host: Host) -> list[Rule]:
    clients = tuple(
        dict.fromkeys(
            client.internal_ipv4
            for client in (*model.smtp_hosts, *model.web_hosts)
            if client.internal_ipv4 is not None
        )
    )
    if not clients:
        return []
    return [
        Rule(TCP, (POSTGRESQL_PORT,), "PostgreSQL: the smtp and web hosts' internal addresses "
             "(pg_hba.conf admits the same)", clients, host.internal_ipv4)
    ]  # fmt: skip


def _check_port(port: Any, path: str) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ModelError(path, f"{port!r} is not a TCP port; sshd's Port, e.g. 22")
    return port


def firewall_rules(model: Model, host_name: str, *, ssh_port: int = SSH_PORT) -> tuple[Rule, ...]:
    """The accept rules of host `host_name`: what each of its tiers serves, to whom."""
    host = model.host(host_name)
    rules: list[Rule] = []
    if model.admin.ssh and model.admin.networks:
        rules.append(
            Rule(TCP, (_check_port(ssh_port, "nftables_ssh_port"),),
                 "SSH from bulkmail_admin_networks", model.admin.networks)
        )  # fmt: skip
    if host_name in _names(model.smtp_hosts):
        rules += _smtp_rules(model, host)
    if host_name in _names(model.dns_hosts):
        rules += [
            Rule(UDP, (DNS_PORT,), "DNS: authoritative for anyone, recursion for the smtp tier"),
            Rule(TCP, (DNS_PORT,), "DNS over TCP: large answers; transfers to the secondaries"),
        ]
    if host_name in _names(model.db_hosts):
        rules += _db_rules(model, host)
    if host_name in _names(model.web_hosts):
        rules.append(Rule(TCP, (HTTPS_PORT,), "HTTPS: the MTA-STS policies, for anyone"))
    return tuple(dict.fromkeys(rules))


def open_ports(rules: Iterable[Rule], source: str, destination: str) -> set[tuple[str, int]]:
    """(protocol, port) a client at `source` reaches at the host's address `destination`."""
    return {
        (rule.protocol, port)
        for rule in rules
        if rule.admits(source, destination)
        for port in rule.ports
    }


def ban_exempt(model: Model) -> tuple[str, ...]:
    """Who fail2ban never bans: loopback, the operator's trusted networks (`domains: all`, its
    own dispatchers) and the admin networks. A tenant's trusted network is banned like anyone
    (from 587 only; its port 25 and lanes stay open), as the AUTH rate limit holds it too."""
    return tuple(dict.fromkeys([*LOOPBACK, *model.operator_networks, *model.admin.networks]))
