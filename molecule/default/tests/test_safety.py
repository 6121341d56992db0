"""No open relay, no unauthenticated submission, no open resolver, no database for strangers."""

from __future__ import annotations

from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from conftest import lab_host, tcp_states

SMTP_PUBLIC = "198.51.100.10"
SMTP_INTERNAL = "10.25.0.10"
DNS_PUBLIC = "198.51.100.53"
DB_PUBLIC = "198.51.100.5"
DB_INTERNAL = "10.25.0.5"


def test_relay_from_outside_trusted_networks_is_refused(providers: Any) -> None:
    # The providers container sits on the internet side, outside bulkmail_trusted_networks.
    cmd = providers.run(
        "python3 /opt/lab-client/send_mail.py --host %s --port 25 --from someone@stranger.test"
        " --to victim@gmail.test --expect-refusal",
        SMTP_PUBLIC,
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    assert '"code": 554' in cmd.stdout or '"code": 454' in cmd.stdout, cmd.stdout


def test_submission_without_auth_is_refused(client: Any) -> None:
    cmd = client.run(
        "python3 /opt/lab-client/send_mail.py --host %s --port 587 --tls required"
        " --from app@example.test --to alice@gmail.test --expect-refusal",
        SMTP_INTERNAL,
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_submission_with_a_wrong_password_is_refused(client: Any) -> None:
    cmd = client.run(
        "SMTP_PASSWORD=not-the-password python3 /opt/lab-client/send_mail.py --host %s"
        " --port 587 --tls required --user app@example.test --from app@example.test"
        " --to alice@gmail.test --expect-refusal",
        SMTP_INTERNAL,
    )
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_postfix_configuration_checks_clean(smtp1: Any) -> None:
    assert smtp1.run("postfix check").rc == 0
    assert smtp1.service("postfix").is_running
    assert smtp1.service("opendkim").is_running


@pytest.mark.parametrize("name", ["example.com.", "debian.org."])
def test_resolver_refuses_recursion_to_the_provider_network(providers: Any, name: str) -> None:
    # Asked from the providers' own address: the dns tier recurses for the smtp tier only.
    cmd = providers.run(
        "python3 -c 'import dns.message, dns.query, dns.rcode;"
        'r = dns.query.udp(dns.message.make_query("%s", "A"), "%s", timeout=5);'
        "print(dns.rcode.to_text(r.rcode()))'",
        name,
        DNS_PUBLIC,
    )
    assert cmd.stdout.strip() == "REFUSED", cmd.stdout + cmd.stderr


def test_resolver_recurses_for_the_smtp_tier(smtp1: Any) -> None:
    # The smtp host resolves through the dns tier, including names it serves.
    assert smtp1.file("/etc/resolv.conf").contains("nameserver 10.25.0.53")
    assert (
        smtp1.run("getent hosts gmail-smtp-in.l.google.test").stdout.split()[0] == "198.51.100.25"
    )


def test_zone_transfer_is_refused_to_strangers() -> None:
    query = dns.message.make_query("example.test.", "AXFR")
    response = dns.query.tcp(query, DNS_PUBLIC, timeout=5)
    assert response.rcode() in (dns.rcode.REFUSED, dns.rcode.NOTAUTH)


def test_authoritative_answers_without_recursion_flag() -> None:
    response = dns.query.udp(dns.message.make_query("example.test.", "SOA"), DNS_PUBLIC, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AA
    assert not response.flags & dns.flags.RA


@pytest.mark.parametrize(
    ("stranger", "address"),
    [("providers", DB_PUBLIC), ("client", DB_INTERNAL)],
)
def test_postgresql_gives_strangers_no_answer(stranger: str, address: str) -> None:
    # The internet, and an application server that is no smtp or web host: the firewall drops
    # their SYN, so the connection times out. A refusal would mean it reached the host.
    assert tcp_states(lab_host(stranger), [(address, 5432)]) == {(address, 5432): "no answer"}


def test_postgresql_answers_its_clients_on_the_internal_address(smtp1: Any) -> None:
    assert tcp_states(smtp1, [(DB_INTERNAL, 5432), (DB_PUBLIC, 5432)]) == {
        (DB_INTERNAL, 5432): "open",
        (DB_PUBLIC, 5432): "no answer",
    }
