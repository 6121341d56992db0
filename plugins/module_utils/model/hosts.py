"""Hosts: the bulkmail_* variables of each inventory host, and what must hold between them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ModelError, raise_collected
from .fields import show, validate_domain_name, validate_ipv4


@dataclass(frozen=True)
class Host:
    inventory_name: str
    hostname: str | None = None
    public_ipv4: str | None = None
    internal_ipv4: str | None = None
    # Further public addresses (`bulkmail_extra_ipv4`): pool addresses beyond the first, for
    # example the bulk lane's source address next to the transactional one.
    extra_ipv4: tuple[str, ...] = ()

    @property
    def public_addresses(self) -> tuple[str, ...]:
        """Every public address of the host, bulkmail_public_ipv4 first."""
        first = (self.public_ipv4,) if self.public_ipv4 else ()
        return first + self.extra_ipv4


def parse_host(raw: Any, index: int = 0, *, group: str = "hosts") -> Host:
    """Read the bulkmail_* variables of one host (a hostvars entry or a plain mapping)."""
    if isinstance(raw, Host):
        return raw
    if not isinstance(raw, Mapping):
        raise ModelError(f"{group}[{index}]", f"{show(raw)} is not a host's variables")
    inventory_name = raw.get("inventory_hostname") or raw.get("inventory_name")
    if not inventory_name:
        inventory_name = f"{group}[{index}]"
    path = f"hostvars[{str(inventory_name)!r}]"
    hostname = raw.get("bulkmail_hostname")
    if hostname is not None:
        hostname = validate_domain_name(hostname, f"{path}.bulkmail_hostname")
    addresses: dict[str, str | None] = {}
    for key in ("bulkmail_public_ipv4", "bulkmail_internal_ipv4"):
        value = raw.get(key)
        addresses[key] = None if value is None else validate_ipv4(value, f"{path}.{key}")
    extra = raw.get("bulkmail_extra_ipv4") or []
    if isinstance(extra, str) or not isinstance(extra, Iterable):
        raise ModelError(
            f"{path}.bulkmail_extra_ipv4", f"{show(extra)} is not a list of IPv4 addresses"
        )
    extra_ipv4: list[str] = []
    for position, value in enumerate(extra):
        where = f"{path}.bulkmail_extra_ipv4[{position}]"
        address = validate_ipv4(value, where)
        if address == addresses["bulkmail_public_ipv4"] or address in extra_ipv4:
            raise ModelError(where, f"{address} is listed twice for this host")
        extra_ipv4.append(address)
    return Host(
        inventory_name=str(inventory_name),
        hostname=hostname,
        public_ipv4=addresses["bulkmail_public_ipv4"],
        internal_ipv4=addresses["bulkmail_internal_ipv4"],
        extra_ipv4=tuple(extra_ipv4),
    )


def parse_hosts(
    raw: Any, *, group: str, require: Sequence[str] = (), why: str = ""
) -> tuple[Host, ...]:
    """Parse a list of hosts; `require` names bulkmail_* variables each of them must set."""
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise ModelError(group, f"{show(raw)} is not a list of hosts' variables")
    hosts: list[Host] = []
    errors: list[ModelError] = []
    for index, item in enumerate(raw):
        try:
            host = parse_host(item, index, group=group)
            path = f"hostvars[{host.inventory_name!r}]"
            for variable in require:
                if getattr(host, variable.removeprefix("bulkmail_")) is None:
                    raise ModelError(f"{path}.{variable}", f"missing; {why}")
            hosts.append(host)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return tuple(hosts)


def parse_smtp_hosts(raw: Any) -> tuple[Host, ...]:
    return parse_hosts(
        raw,
        group="smtp",
        require=("bulkmail_hostname", "bulkmail_public_ipv4"),
        why="every smtp host needs its FQDN and public address (MX, PTR, SPF, HELO)",
    )


def parse_dns_hosts(raw: Any) -> tuple[Host, ...]:
    return parse_hosts(
        raw,
        group="dns",
        require=("bulkmail_hostname", "bulkmail_public_ipv4"),
        why="every dns host needs its FQDN and public address (NS and SOA records)",
    )


def merge_hosts(*groups: Iterable[Host]) -> tuple[Host, ...]:
    """Hosts of several groups, each once (a host may be in several groups)."""
    seen: dict[str, Host] = {}
    for hosts in groups:
        for host in hosts:
            seen.setdefault(host.inventory_name, host)
    return tuple(seen.values())


def check_hosts(
    smtp_hosts: Sequence[Host],
    dns_hosts: Sequence[Host],
    hosts: Sequence[Host],
    ip_pools: Mapping[str, Sequence[str]],
) -> list[ModelError]:
    """Each host its own FQDN, each smtp host its own addresses, each pool address a host's."""
    errors: list[ModelError] = []
    owners: dict[str, str] = {}
    for host in merge_hosts(smtp_hosts, dns_hosts, hosts):
        if host.hostname is None:
            continue
        other = owners.setdefault(host.hostname, host.inventory_name)
        if other != host.inventory_name:
            errors.append(
                ModelError(
                    f"hostvars[{host.inventory_name!r}].bulkmail_hostname",
                    f"{host.hostname!r} is also the hostname of {other}; give each host its "
                    "own FQDN",
                )
            )
    senders: dict[str, str] = {}
    for host in smtp_hosts:
        for address in host.public_addresses:
            other = senders.setdefault(address, host.inventory_name)
            if other != host.inventory_name:
                key = "public_ipv4" if address == host.public_ipv4 else "extra_ipv4"
                errors.append(
                    ModelError(
                        f"hostvars[{host.inventory_name!r}].bulkmail_{key}",
                        f"{address} is also a public address of {other}; each smtp "
                        "host needs its own addresses for their PTR records",
                    )
                )
    if smtp_hosts:
        known = "; ".join(
            f"{host.inventory_name}: {', '.join(host.public_addresses)}" for host in smtp_hosts
        )
        for pool, addresses in ip_pools.items():
            for index, address in enumerate(addresses):
                if address not in senders:
                    errors.append(
                        ModelError(
                            f"bulkmail_ip_pools.{pool}[{index}]",
                            f"{address} is not an address (bulkmail_public_ipv4 or "
                            f"bulkmail_extra_ipv4) of any smtp host ({known}); add it to "
                            f"the host that owns it or remove it from the pool",
                        )
                    )
    return errors
