"""Who may send as which domain: the sender guard's data and its one decision.

OpenDKIM signs a message by its From header for every client it trusts (an authenticated
account, a trusted network, loopback); Postfix's `reject_sender_login_mismatch` checks only the
envelope. Between them, one tenant could send signed, aligned mail as another tenant's domain.
The sender guard (`bulkmail sender-guard`, a milter in front of OpenDKIM) asks `refusal()`
for each message and rejects with 5.7.1 what an identity may not send: the message is then
never signed.

An identity is a submission account (SASL on 587: it sends as the domain of its username) or
a trusted network (`bulkmail_trusted_networks[].domains`: port 25 and the lanes' intakes).
Loopback is the host's operator (sendmail, cron): unrestricted. Any other client is neither
relayed nor signed, so the guard lets its mail through untouched (inbound mail for the host).

`sender_identities(model)` is the data file the daemon reads (plain JSON, no secret);
`Identities.load()` reads it back. Pure Python: no Ansible import.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from typing import Any

from .model import Model
from .model.access import ALL_DOMAINS

# The guard's loopback port on the smtp primaries; Postfix calls it before OpenDKIM.
SENDER_GUARD_PORT = 8893


def sender_identities(model: Model) -> dict[str, Any]:
    """The guard's data: each account's and each trusted network's sending domains (`all` for
    every domain), and each domain's return-path domain (a VERP envelope is the domain's own)."""
    return {
        "accounts": {account.username: [account.domain] for account in model.submission_accounts},
        "networks": {
            network.network: ALL_DOMAINS if network.domains is None else list(network.domains)
            for network in model.trusted_senders
        },
        "domains": {
            domain.name: domain.return_path_domain or domain.name for domain in model.domains
        },
    }


@dataclass(frozen=True)
class Identity:
    """Who sent a message (for the reply) and the domains it may send as (None: any)."""

    who: str
    domains: frozenset[str] | None
    # A SASL account: Postfix checks its envelope sender (reject_sender_login_mismatch).
    account: bool = False


@dataclass(frozen=True)
class Identities:
    accounts: Mapping[str, frozenset[str]]
    networks: tuple[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, frozenset[str] | None], ...
    ]
    return_paths: Mapping[str, str]

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> Identities:
        """From `sender_identities()`'s JSON; a malformed file raises ValueError."""
        try:
            accounts = {
                str(name).lower(): frozenset(str(d).lower() for d in domains)
                for name, domains in dict(data["accounts"]).items()
            }
            networks = tuple(
                (
                    ipaddress.ip_network(str(network)),
                    None if domains == ALL_DOMAINS else frozenset(str(d).lower() for d in domains),
                )
                for network, domains in dict(data["networks"]).items()
            )
            return_paths = {
                str(name).lower(): str(path).lower() for name, path in dict(data["domains"]).items()
            }
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"not a sender identities file: {error}") from error
        return cls(accounts, networks, return_paths)

    def identify(self, account: str | None, client: str | None) -> Identity | None:
        """The identity a message is sent under; None when the guard does not restrict it."""
        if account:
            allowed = self.accounts.get(account.lower(), frozenset())
            return Identity(f"account {account}", allowed, account=True)
        address = _address(client)
        if address is None or address.is_loopback:
            return None
        for network, domains in self.networks:
            if address in network:
                return Identity(f"network {network} (client {address})", domains)
        return None


def _address(client: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not client:
        return None
    text = client.strip("[]")
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _domain(address: str) -> str:
    local, at, domain = address.rpartition("@")
    return domain.lower().rstrip(".") if at and local else ""


def _refuse(identity: Identity, domain: str, where: str) -> str:
    owned = ", ".join(sorted(identity.domains or ())) or "no domain"
    shown = domain or "no domain"
    return f"{identity.who} may not send as {shown} ({where}); it sends as {owned}"


def refusal(
    identity: Identity | None,
    *,
    envelope: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    return_paths: Mapping[str, str] | None = None,
) -> str | None:
    """Why `identity` may not send this message (the 5.7.1 text), or None when it may.

    Every address of every From and Sender header must be of a domain the identity owns.
    A trusted network's envelope sender is checked too (an account's is Postfix's
    `reject_sender_login_mismatch`): its own domain or that domain's return-path domain; the
    null sender (a bounce) passes.
    """
    if identity is None or identity.domains is None:
        return None
    allowed = identity.domains
    for name, value in headers:
        field = name.strip().lower()
        if field not in ("from", "sender"):
            continue
        addresses = [address for _name, address in getaddresses([value]) if address]
        if not addresses:
            return _refuse(identity, "", f"{name.strip()} header without an address")
        for address in addresses:
            domain = _domain(address)
            if domain not in allowed:
                return _refuse(identity, domain, f"{name.strip()} header")
    if envelope is not None and not identity.account:
        sender = envelope.strip().strip("<>")
        if sender:
            domain = _domain(sender)
            paths = return_paths or {}
            if domain not in allowed and domain not in {paths.get(d) for d in allowed}:
                return _refuse(identity, domain, "envelope sender")
    return None
