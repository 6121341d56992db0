"""Who may send: the trusted networks (port 25 and the lanes, no password) and the
submission accounts (587, SASL), with the secrets they carry."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ModelError, raise_collected
from .fields import (
    check_keys,
    cidr_network,
    require_str,
    secret,
    show,
    single_line,
    str_list,
)

# Wider than this, a "trusted network" is someone else's network too: every host in it may
# relay through the stack, and it signs what they send. Wider needs a named override.
WIDEST_TRUSTED_PREFIX = 16
ACCOUNT_KEYS = ("username", "password")


@dataclass(frozen=True)
class SubmissionAccount:
    """One SASL login on 587; its domain is the part after the '@'."""

    username: str
    password: str

    @property
    def domain(self) -> str:
        return self.username.rpartition("@")[2]


# `domains: all` in a trusted network: its hosts send as every sending domain (the operator's
# own dispatcher); anything else is a list of the domains they may send as.
ALL_DOMAINS = "all"
NETWORK_KEYS = ("network", "domains")


@dataclass(frozen=True)
class TrustedNetwork:
    """A network whose hosts submit without SASL (port 25, the lanes' intakes), and the sending
    domains its mail may carry in From and Sender; `domains` is None for every domain."""

    network: str
    domains: tuple[str, ...] | None

    def may_send_as(self, domain: str) -> bool:
        return self.domains is None or domain in self.domains


def _network_domains(raw: Any, where: str) -> tuple[str, ...] | None:
    """The list's shape; that each is a sending domain is `check_network_domains`'."""
    if raw == ALL_DOMAINS:
        return None
    if raw is None or isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise ModelError(
            where,
            f"{show(raw)} is neither a list of sending domains nor {ALL_DOMAINS!r}: name the "
            "domains this network's hosts send as",
        )
    if not raw:
        raise ModelError(where, "is empty: a network that sends as no domain needs no trust")
    names: list[str] = []
    for position, name in enumerate(raw):
        require_str(name, f"{where}[{position}]", "a sending domain")
        if name in names:
            raise ModelError(f"{where}[{position}]", f"{name!r} is listed twice")
        names.append(name)
    return tuple(names)


def parse_trusted_networks(
    raw: Any,
    allow_wide: Any = None,
    path: str = "bulkmail_trusted_networks",
    wide_path: str = "bulkmail_trusted_networks_allow_wide",
) -> tuple[TrustedNetwork, ...]:
    """`[{network, domains}]`: IPv4 networks (CIDR, no host bits) that may submit without SASL,
    each with the sending domains it may send as (or `all`); /0 never, wider than /16 only
    when also listed in `bulkmail_trusted_networks_allow_wide`."""
    if raw is None:
        return ()
    wide: dict[str, str] = {}
    for index, item in enumerate(str_list(allow_wide or [], wide_path)):
        where = f"{wide_path}[{index}]"
        text = single_line(item, where, "a network such as 10.0.0.0/8")
        try:
            wide[str(ipaddress.ip_network(text))] = where
        except ValueError:
            raise ModelError(
                where, f"{text!r} is not a network in CIDR form such as 10.0.0.0/8"
            ) from None
    networks: list[TrustedNetwork] = []
    listed: set[str] = set()
    errors: list[ModelError] = []
    for index, entry in enumerate(str_list(raw, path)):
        where = f"{path}[{index}]"
        try:
            if isinstance(entry, str):
                raise ModelError(
                    where,
                    f"{entry!r} names no domains: write {{network: {entry}, domains: [...]}} "
                    f"with the sending domains its hosts send as, or domains: {ALL_DOMAINS} for "
                    "the operator's own dispatcher (mail from it is signed as any domain)",
                )
            if not isinstance(entry, Mapping):
                raise ModelError(where, f"{show(entry)} is not a mapping with network, domains")
            check_keys(entry, NETWORK_KEYS, where)
            at = f"{where}.network"
            # Listed as written (even /0), so the allow_wide check never asks to list it again.
            with contextlib.suppress(ValueError):
                listed.add(str(ipaddress.ip_network(str(entry.get("network")), strict=False)))
            network = cidr_network(
                entry.get("network"),
                at,
                example="192.0.2.96/27",
                every_address="the smtp tier would relay and sign for anyone (an open relay); "
                "list the networks your applications send from",
            )
            if network.version != 4:
                raise ModelError(
                    at,
                    f"{str(network)!r} is IPv6, but Postfix listens on IPv4 only (the model has "
                    "IPv4 addresses only); remove it",
                )
            if network.prefixlen < WIDEST_TRUSTED_PREFIX and str(network) not in wide:
                raise ModelError(
                    at,
                    f"{network} is wider than /{WIDEST_TRUSTED_PREFIX} ({network.num_addresses} "
                    f"addresses may relay without a password); narrow it, or list it in "
                    f"{wide_path} as well to say it is meant",
                )
            overlap = next(
                (n for n in networks if ipaddress.ip_network(n.network).overlaps(network)), None
            )
            if overlap is not None:
                raise ModelError(
                    at,
                    f"{network} overlaps {overlap.network}, listed before: a host would belong "
                    "to two networks with different domains; list each address once",
                )
            allowed = _network_domains(entry.get("domains"), f"{where}.domains")
            networks.append(TrustedNetwork(str(network), allowed))
        except ModelError as error:
            errors.append(error)
    for network_text, where in wide.items():
        if network_text not in listed:
            errors.append(
                ModelError(
                    where, f"{network_text} is not in {path}; list it there, or remove it here"
                )
            )
    raise_collected(errors)
    return tuple(networks)


def check_network_domains(
    networks: Sequence[TrustedNetwork],
    domains: Sequence[str],
    path: str = "bulkmail_trusted_networks",
) -> list[ModelError]:
    """Each trusted network's domains are sending domains of the model."""
    known = ", ".join(domains) or "none"
    return [
        ModelError(
            f"{path}[{index}].domains[{position}]",
            f"{name!r} is not a sending domain (known: {known})",
        )
        for index, network in enumerate(networks)
        for position, name in enumerate(network.domains or ())
        if name not in domains
    ]


def parse_submission_accounts(
    raw: Any, domains: Sequence[str], path: str = "bulkmail_submission_accounts"
) -> tuple[SubmissionAccount, ...]:
    """`[{username: app@<sending domain>, password}]`: each account sends as its own domain."""
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise ModelError(path, f"{show(raw)} is not a list of {{username, password}}")
    accounts: list[SubmissionAccount] = []
    errors: list[ModelError] = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        try:
            if not isinstance(item, Mapping):
                raise ModelError(where, f"{show(item)} is not a mapping with username, password")
            check_keys(item, ACCOUNT_KEYS, where)
            username = single_line(item.get("username"), f"{where}.username", "an address")
            local, at, domain = username.rpartition("@")
            if not at or not local or domain not in domains:
                raise ModelError(
                    f"{where}.username",
                    f"{username!r} is not an address of a sending domain "
                    f"({', '.join(domains)}): the account sends as its domain",
                )
            if any(account.username == username for account in accounts):
                raise ModelError(f"{where}.username", f"{username!r} is listed twice")
            password = secret(
                item.get("password"),
                f"{where}.password",
                'keep it in vault, e.g. password: "{{ vault_submission_app_password }}"',
            )
            accounts.append(SubmissionAccount(username, password))
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return tuple(accounts)
