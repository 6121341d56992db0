"""Primary and secondary name servers: who serves which copy, who may transfer, with which key.

Pure Python, no Ansible import. The bind role asks `plan_zone_transfers` for one dns host's
part: the primary sends NOTIFY to the secondaries and allows AXFR/IXFR only to a secondary's
address signed with the TSIG key; a secondary fetches from the primary with that key and
allows transfers to nobody. Errors name the variable to fix and never show the secret.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..model.errors import ModelError
from ..model.hosts import Host, parse_dns_hosts

TSIG_ALGORITHM = "hmac-sha256"
# RFC 8945 6: a key at least as long as the hash output (32 bytes for SHA-256) is recommended;
# tsig-keygen makes exactly that. Below 16 bytes is refused outright.
MIN_SECRET_BYTES = 16
_KEY_NAME = re.compile(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class TransferPlan:
    """One dns host's part in the zone transfers (what named.conf.local places)."""

    role: str  # "primary" or "secondary"
    primary: str  # inventory name of the primary
    primary_address: str  # where secondaries fetch from and NOTIFY comes from
    secondary_addresses: tuple[str, ...]  # where NOTIFY goes and transfers may come from
    key_name: str
    algorithm: str = TSIG_ALGORITHM

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["secondary_addresses"] = list(self.secondary_addresses)
        return data


def transfer_address(host: Host) -> str:
    """The address name servers talk to each other on: internal when the host has one."""
    address = host.internal_ipv4 or host.public_ipv4
    if address is None:  # parse_dns_hosts requires the public address
        raise ModelError(f"hostvars[{host.inventory_name!r}].bulkmail_public_ipv4", "missing")
    return address


def validate_tsig_key_name(value: Any, path: str = "bind_tsig_key_name") -> str:
    if not isinstance(value, str) or not _KEY_NAME.match(value):
        raise ModelError(
            path,
            f"{value!r} is not a TSIG key name; use lower-case letters, digits, '-' and '.' "
            "(e.g. 'bulkmail-transfer')",
        )
    return value


def validate_tsig_secret(value: Any, path: str = "bind_tsig_secret") -> str:
    """A base64 secret of at least 16 bytes (tsig-keygen -a hmac-sha256 makes 32)."""
    fix = "generate one with `tsig-keygen -a hmac-sha256` and use its secret"
    if not isinstance(value, str) or not value.strip():
        raise ModelError(path, f"missing or not a string; {fix}")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ModelError(path, f"is not valid base64; {fix}") from None
    if len(raw) < MIN_SECRET_BYTES:
        raise ModelError(path, f"is {len(raw)} bytes, fewer than {MIN_SECRET_BYTES}; {fix}")
    return value.strip()


def plan_zone_transfers(
    dns_hosts: Sequence[Any],
    this_host: str,
    primary: str | None = None,
    key_name: str = "bulkmail-transfer",
) -> TransferPlan:
    """`dns_hosts` as hostvars (the group's order); `primary` defaults to the first of them."""
    hosts = parse_dns_hosts(dns_hosts)
    if not hosts:
        raise ModelError("groups['dns']", "is empty; put at least one host in the dns group")
    names = [host.inventory_name for host in hosts]
    primary_name = names[0] if primary in (None, "") else primary
    if primary_name not in names:
        raise ModelError(
            "bind_primary",
            f"{primary_name!r} is not in the dns group ({', '.join(names)}); name one of them",
        )
    if this_host not in names:
        raise ModelError(
            "inventory_hostname",
            f"{this_host!r} is not in the dns group ({', '.join(names)}); run the bind role on "
            "the dns hosts only",
        )
    key = validate_tsig_key_name(key_name)
    by_name = {host.inventory_name: host for host in hosts}
    secondaries = tuple(
        transfer_address(host) for host in hosts if host.inventory_name != primary_name
    )
    return TransferPlan(
        role="primary" if this_host == primary_name else "secondary",
        primary=primary_name,
        primary_address=transfer_address(by_name[str(primary_name)]),
        secondary_addresses=secondaries,
        key_name=key,
    )


def render_tsig_key(key_name: str, secret: str) -> str:
    """The `key` clause named includes, as tsig-keygen prints it."""
    name = validate_tsig_key_name(key_name)
    value = validate_tsig_secret(secret)
    return f'key "{name}" {{\n\talgorithm {TSIG_ALGORITHM};\n\tsecret "{value}";\n}};\n'
