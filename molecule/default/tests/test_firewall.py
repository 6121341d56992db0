"""The host firewall and fail2ban, against the running lab.

- nmap from the providers (198.51.100.25, the internet) finds open on every lab host's public
  addresses exactly the ports `firewall_rules` derives from the model for that host and that
  client, and every other port filtered (dropped: not even a refusal comes back). It asks the
  well-known ports and every port anything on any lab host listens on (`ss`, loopback
  included): a port nothing listens on cannot be open, and the ports 1-1024 show that the rest
  is dropped, not refused. Not all 65,535: each probe holds a conntrack entry on the Docker host
  for two minutes (docs/decisions.md, "Host firewalls");
- from the application server (10.25.0.100, a trusted network) and from web1 (a db client),
  a connect scan of the internal addresses finds the same: the lanes on smtp1's internal
  address, 5432 for web1 but not for the application server;
- a burst of wrong passwords on 587 gets the providers' address banned from 587 (25 stays
  open to it), and it is unbanned afterwards.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.firewall import (
    firewall_rules,
    open_ports,
)
from conftest import lab_host, tcp_states

STRANGER = "198.51.100.25"  # bulkmail-providers: the internet
CLIENT = "10.25.0.100"  # bulkmail-client: an application server on a trusted network
SMTP1_PUBLIC = "198.51.100.10"
JAIL = "postfix-sasl"
# Ports the lab's hosts listen on in any case (loopback listeners included): asked even if
# `ss` should miss one. Each must be dropped wherever the firewall does not open it.
LISTENERS = {22, 953, 3000, 5432, 8891, 8893, 10028, *range(2525, 2531)}
WELL_KNOWN = range(1, 1025)
UDP_PORTS = {53, 123, 161, 953, 5353}

Flow = tuple[str, int]


def expected(model: Any, source: str) -> dict[str, set[Flow]]:
    """Per public address of every lab host: what `source` may reach there."""
    return {
        address: open_ports(firewall_rules(model, host.inventory_name), source, address)
        for host in model.hosts
        for address in host.public_addresses
    }


@dataclass
class Scan:
    """What nmap found at one address: state -> (protocol, port), and the states of the ports
    it folded away (extraports), state -> count."""

    ports: dict[str, set[Flow]] = field(default_factory=dict)
    folded: dict[str, int] = field(default_factory=dict)

    def tcp(self, state: str) -> set[int]:
        return {port for protocol, port in self.ports.get(state, set()) if protocol == "tcp"}

    def udp(self, state: str) -> set[int]:
        return {port for protocol, port in self.ports.get(state, set()) if protocol == "udp"}

    @property
    def states(self) -> set[str]:
        return set(self.ports) | set(self.folded)


def nmap(providers: Any, *args: str) -> dict[str, Scan]:
    """Run nmap in the providers' container; per address, what it found."""
    cmd = providers.run("nmap -n -Pn -oX - " + " ".join(["%s"] * len(args)), *args)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    found: dict[str, Scan] = {}
    for host in ET.fromstring(cmd.stdout).iter("host"):
        address = host.find("address[@addrtype='ipv4']")
        assert address is not None, cmd.stdout
        scan = found.setdefault(str(address.get("addr")), Scan())
        for port in host.iter("port"):
            state = port.find("state")
            assert state is not None, cmd.stdout
            flow = (str(port.get("protocol")), int(str(port.get("portid"))))
            scan.ports.setdefault(str(state.get("state")), set()).add(flow)
        for extra in host.iter("extraports"):
            scan.folded[str(extra.get("state"))] = int(str(extra.get("count")))
    return found


def tcp(flows: set[Flow]) -> set[int]:
    return {port for protocol, port in flows if protocol == "tcp"}


def port_list(ports: set[int]) -> str:
    """nmap's -p: `1-1024,2525-2530,...`."""
    runs: list[list[int]] = []
    for port in sorted(ports):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def listening(model: Any) -> dict[str, set[Flow]]:
    """What every lab host listens on, any address (`ss`): (protocol, port) by host."""
    found: dict[str, set[Flow]] = {}
    for host in model.hosts:
        flows = found.setdefault(host.inventory_name, set())
        for protocol, flag in (("tcp", "-Hltn"), ("udp", "-Hlun")):
            out = lab_host(host.inventory_name).check_output("ss %s", flag)
            flows |= {
                (protocol, int(line.split()[3].rsplit(":", 1)[1])) for line in out.splitlines()
            }
    return found


@pytest.fixture(scope="module")
def listeners(lab_model: Any) -> dict[str, set[Flow]]:
    return listening(lab_model)


@pytest.fixture(scope="module")
def public_tcp(providers: Any, lab_model: Any, listeners: dict[str, set[Flow]]) -> dict[str, Scan]:
    """The well-known TCP ports and every port a lab host listens on, at every public address."""
    ports = (
        set(WELL_KNOWN) | LISTENERS | {port for flows in listeners.values() for port in tcp(flows)}
    )
    return nmap(providers, "-sS", "-T4", "--max-retries", "3",
                "-p", port_list(ports), *sorted(expected(lab_model, STRANGER)))  # fmt: skip


def test_the_internet_finds_exactly_the_ports_the_model_opens(
    public_tcp: dict[str, Scan], lab_model: Any
) -> None:
    for address, flows in expected(lab_model, STRANGER).items():
        scan = public_tcp[address]
        assert scan.tcp("open") == tcp(flows), (address, scan)
        # Every other port asked, what the host listens on included (the milters, 5432, the
        # lanes...), gets no answer at all: dropped, not refused by the host's kernel.
        assert scan.states <= {"open", "filtered"}, (address, scan)


def test_the_graveyard_takes_no_submission_and_the_database_no_stranger(
    public_tcp: dict[str, Scan],
) -> None:
    assert 587 in public_tcp["198.51.100.10"].tcp("open")
    assert public_tcp["198.51.100.12"].tcp("open") == {25}
    assert public_tcp["198.51.100.5"].tcp("open") == set()


def test_only_the_name_servers_answer_udp(
    providers: Any, lab_model: Any, listeners: dict[str, set[Flow]]
) -> None:
    wanted = expected(lab_model, STRANGER)
    ports = UDP_PORTS | {port for flows in listeners.values() for p, port in flows if p == "udp"}
    found = nmap(providers, "-sU", "--max-retries", "2",
                 "-p", port_list(ports), *sorted(wanted))  # fmt: skip
    for address, flows in wanted.items():
        scan = found[address]
        assert scan.udp("open") == {port for protocol, port in flows if protocol == "udp"}, scan
        # A closed UDP port answers with ICMP port unreachable: the firewall let it through.
        assert "closed" not in scan.states, (address, scan)


def internal_targets(
    model: Any, scanner: str, listeners: dict[str, set[Flow]]
) -> list[tuple[str, int]]:
    """Every host's internal address but the scanner's, with every TCP port any lab host
    listens on or the firewall opens anywhere."""
    ports = LISTENERS | {port for flows in listeners.values() for port in tcp(flows)}
    ports |= {
        port
        for host in model.hosts
        for rule in firewall_rules(model, host.inventory_name)
        if rule.protocol == "tcp"
        for port in rule.ports
    }
    return [
        (str(host.internal_ipv4), port)
        for host in model.hosts
        if host.internal_ipv4 and host.internal_ipv4 != scanner
        for port in sorted(ports)
    ]


@pytest.mark.parametrize(("scanner", "source"), [("client", CLIENT), ("web1", "10.25.0.80")])
def test_the_internal_network_finds_exactly_the_ports_the_model_opens(
    lab_model: Any, listeners: dict[str, set[Flow]], scanner: str, source: str
) -> None:
    targets = internal_targets(lab_model, source, listeners)
    states = tcp_states(lab_host(scanner), targets, source=source)
    by_address = {str(host.internal_ipv4): host.inventory_name for host in lab_model.hosts}
    for (address, port), state in sorted(states.items()):
        rules = firewall_rules(lab_model, by_address[address])
        allowed = ("tcp", port) in open_ports(rules, source, address)
        assert state == ("open" if allowed else "no answer"), (scanner, address, port, state)


# --- fail2ban ------------------------------------------------------------------------------

# Wrong passwords with AUTH PLAIN after STARTTLS, one connection each, as a guesser would.
BURST = r"""
import base64, smtplib, ssl, sys
host, tries = sys.argv[1], int(sys.argv[2])
context = ssl._create_unverified_context()
for attempt in range(tries):
    try:
        with smtplib.SMTP(host, 587, timeout=15) as smtp:
            smtp.starttls(context=context)
            smtp.ehlo("guesser.test")
            token = base64.b64encode(f"\0app@example.test\0wrong-{attempt}".encode()).decode()
            print(attempt, smtp.docmd("AUTH", "PLAIN " + token)[0])
    except (OSError, smtplib.SMTPException) as error:
        print(attempt, type(error).__name__)
"""


def banned(smtp1: Any) -> str:
    return smtp1.check_output("fail2ban-client status %s", JAIL)


def unban(smtp1: Any) -> None:
    smtp1.run("fail2ban-client set %s unbanip %s", JAIL, STRANGER)


def test_a_password_guesser_is_banned_from_submission(providers: Any, smtp1: Any) -> None:
    unban(smtp1)
    try:
        burst = providers.run("python3 -c %s %s 8", BURST, SMTP1_PUBLIC)
        assert burst.rc == 0, burst.stdout + burst.stderr
        refused = [line for line in burst.stdout.splitlines() if line.endswith(" 535")]
        assert len(refused) >= 5, burst.stdout
        deadline = time.monotonic() + 60
        while STRANGER not in banned(smtp1) and time.monotonic() < deadline:
            time.sleep(2)
        assert STRANGER in banned(smtp1), banned(smtp1) + burst.stdout
        states = tcp_states(providers, [(SMTP1_PUBLIC, 587), (SMTP1_PUBLIC, 25)])
        assert states[(SMTP1_PUBLIC, 587)] in ("refused", "no answer"), states
        # Only 587: the guesser's mail and bounces still arrive on 25.
        assert states[(SMTP1_PUBLIC, 25)] == "open", states
    finally:
        unban(smtp1)
    assert STRANGER not in banned(smtp1)
    assert tcp_states(providers, [(SMTP1_PUBLIC, 587)])[(SMTP1_PUBLIC, 587)] == "open"
