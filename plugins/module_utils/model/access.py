"""Who may send: the trusted networks (port 25 and the lanes, no password) and the
submission accounts (587, SASL), with the secrets they carry."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ModelError, raise_collected
from .fields import check_keys, secret, show, single_line, str_list

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


def parse_trusted_networks(
    raw: Any,
    allow_wide: Any = None,
    path: str = "bulkmail_trusted_networks",
    wide_path: str = "bulkmail_trusted_networks_allow_wide",
) -> tuple[str, ...]:
    """IPv4 networks (CIDR, no host bits) that may submit without SASL; /0 never, wider than
    /16 only when also listed in `bulkmail_trusted_networks_allow_wide`."""
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
    networks: list[str] = []
    listed: set[str] = set()
    errors: list[ModelError] = []
    for index, entry in enumerate(str_list(raw, path)):
        where = f"{path}[{index}]"
        try:
            text = single_line(entry, where, "a network such as 192.0.2.96/27")
            try:
                network = ipaddress.ip_network(text, strict=False)
                listed.add(str(network))
            except ValueError:
                raise ModelError(
                    where, f"{text!r} is not a network in CIDR form such as 192.0.2.96/27"
                ) from None
            if network.version != 4:
                raise ModelError(
                    where,
                    f"{text!r} is IPv6, but Postfix listens on IPv4 only (the model has IPv4 "
                    "addresses only); remove it",
                )
            if "/" in text and str(network) != text:
                raise ModelError(where, f"{text!r} has host bits set; write {network} instead")
            if network.prefixlen == 0:
                raise ModelError(
                    where,
                    f"{text!r} is every address: the smtp tier would relay and sign for anyone "
                    "(an open relay); list the networks your applications send from",
                )
            if network.prefixlen < WIDEST_TRUSTED_PREFIX and str(network) not in wide:
                raise ModelError(
                    where,
                    f"{network} is wider than /{WIDEST_TRUSTED_PREFIX} ({network.num_addresses} "
                    f"addresses may relay without a password); narrow it, or list it in "
                    f"{wide_path} as well to say it is meant",
                )
            if str(network) in networks:
                raise ModelError(where, f"{network} is listed twice; list it once")
            networks.append(str(network))
        except ModelError as error:
            errors.append(error)
    for network, where in wide.items():
        if network not in listed:
            errors.append(
                ModelError(where, f"{network} is not in {path}; list it there, or remove it here")
            )
    raise_collected(errors)
    return tuple(networks)


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
