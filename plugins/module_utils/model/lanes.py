"""Lanes (`bulkmail_lanes`): the streams an smtp primary carries, each its own Postfix instance.

What a lane becomes in Postfix (instances, listeners, the graveyard, the per-provider split)
is `postfix/lanes.py`; why instances at all is docs/decisions.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ModelError, raise_collected
from .fields import check_keys, show
from .hosts import Host

TRANSACTIONAL = "transactional"
LANE_KEYS = ("pool", "port", "fallback", "per_provider")
RESERVED_PORTS = frozenset({25, 465, 587})
_LANE_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")

# The provider classifier's socketmap that routes a per_provider lane's mail (`lane-bulk`).
ROUTE_MAP_PREFIX = "lane-"


def route_map_name(lane: str) -> str:
    """The classifier's map of a lane; also the lane's key in the routes file."""
    return f"{ROUTE_MAP_PREFIX}{lane}"


@dataclass(frozen=True)
class Lane:
    """One stream: its pool, where it is fed, whether it hands retries to the graveyard."""

    name: str
    pool: str
    port: int | None = None
    fallback: bool = False
    per_provider: bool = False
    # Set on a provider instance of a per_provider lane: the provider it delivers to.
    provider: str | None = None

    @property
    def instance(self) -> str:
        """The Postfix instance name (`-` is the default instance, as systemd's postfix@-)."""
        return "-" if self.name == TRANSACTIONAL else f"postfix{self.suffix}"

    @property
    def suffix(self) -> str:
        if self.name == TRANSACTIONAL:
            return ""
        return f"-{self.name}" + (f"-{self.provider}" if self.provider else "")

    @property
    def route_map(self) -> str:
        """The provider classifier's map that routes this lane's mail to its providers."""
        return route_map_name(self.name)

    def ports(self, providers: Sequence[str]) -> range:
        """The ports the lane takes: its own, then one per provider instance."""
        if self.port is None:
            return range(0)
        return range(self.port, self.port + 1 + (len(providers) if self.per_provider else 0))

    def provider_lanes(self, providers: Sequence[str]) -> list[Lane]:
        """A per_provider lane's instance per provider (port + 1 + the provider's index);
        none for another lane."""
        if not self.per_provider:
            return []
        if self.port is None:
            raise ModelError(f"bulkmail_lanes.{self.name}.port", "a per_provider lane needs one")
        return [
            Lane(self.name, self.pool, self.port + 1 + index, self.fallback, False, provider)
            for index, provider in enumerate(providers)
        ]

    @property
    def config_directory(self) -> str:
        return f"/etc/postfix{self.suffix}"

    @property
    def queue_directory(self) -> str:
        return f"/var/spool/postfix{self.suffix}"

    @property
    def data_directory(self) -> str:
        return f"/var/lib/postfix{self.suffix}"


def _lane_port(name: str, port: Any, where: str) -> int | None:
    if name == TRANSACTIONAL:
        if port is not None:
            raise ModelError(f"{where}.port", "the transactional lane is fed on 25 and 587")
        return None
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ModelError(
            f"{where}.port",
            f"{show(port)} is not a TCP port; the trusted networks feed the lane on it, e.g. 2525",
        )
    if port in RESERVED_PORTS:
        raise ModelError(
            f"{where}.port", f"{port} is the transactional lane's; choose another, e.g. 2525"
        )
    return port


def _lane(name: Any, settings: Any, path: str, pools: Mapping[str, Sequence[str]]) -> Lane:
    where = f"{path}.{name}"
    if not isinstance(name, str) or not _LANE_NAME.match(name):
        raise ModelError(
            path,
            f"lane name {show(name)} must be lower-case letters and digits (at most 20), "
            f"starting with a letter",
        )
    if not isinstance(settings, Mapping):
        raise ModelError(where, f"{show(settings)} is not a mapping with at least pool")
    check_keys(settings, LANE_KEYS, where)
    pool = settings.get("pool")
    if pool not in pools:
        raise ModelError(
            f"{where}.pool",
            f"{show(pool)} is not a pool of bulkmail_ip_pools ({', '.join(pools)})",
        )
    flags = {}
    for key in ("fallback", "per_provider"):
        flags[key] = settings.get(key, False)
        if not isinstance(flags[key], bool):
            raise ModelError(f"{where}.{key}", f"{show(flags[key])} is not true or false")
    if flags["per_provider"] and name == TRANSACTIONAL:
        raise ModelError(
            f"{where}.per_provider",
            "the transactional lane is one instance; split a bulk lane by provider instead",
        )
    port = _lane_port(name, settings.get("port"), where)
    return Lane(name, pool, port, flags["fallback"], flags["per_provider"])


def parse_lanes(
    raw: Any,
    pools: Mapping[str, Sequence[str]],
    path: str = "bulkmail_lanes",
    providers: Sequence[str] = (),
) -> tuple[Lane, ...]:
    """Parse `bulkmail_lanes`; empty means one lane, the default instance, as before lanes.

    `providers` (the tuning model's provider names) size the port ranges of per_provider lanes.
    """
    if raw is None or raw == {}:
        return ()
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{show(raw)} is not a mapping of lane name to its settings")
    if TRANSACTIONAL not in raw:
        raise ModelError(
            path,
            f"the {TRANSACTIONAL!r} lane is missing: it is Postfix's default instance (ports 25 "
            f"and 587); every other lane is fed beside it",
        )
    lanes: list[Lane] = []
    errors: list[ModelError] = []
    for name, settings in raw.items():
        try:
            lane = _lane(name, settings, path, pools)
            taken = lane.ports(providers)
            if taken and taken[-1] > 65535:
                raise ModelError(
                    f"{path}.{name}.port",
                    f"{lane.port} + {len(taken) - 1} provider instances passes 65535; lower it",
                )
            reserved = set(taken[1:]) & RESERVED_PORTS
            if reserved:
                raise ModelError(
                    f"{path}.{name}.port",
                    f"its provider instances would take {min(reserved)}, the transactional "
                    f"lane's; choose another, e.g. 2525",
                )
            for other in lanes:
                shared = set(taken) & set(other.ports(providers))
                if shared:
                    raise ModelError(
                        f"{path}.{name}.port",
                        f"{min(shared)} is also a port of lane {other.name} (a per_provider "
                        f"lane takes its port and one more per provider, "
                        f"{len(providers)} here)",
                    )
            lanes.append(lane)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    # The default instance (transactional) first, whatever the inventory's order: the
    # plan, the instance list and postmulti's directories all start from it.
    return tuple(sorted(lanes, key=lambda lane: lane.name != TRANSACTIONAL))


def lane_address(host: Host, lane: Lane, pools: Mapping[str, Sequence[str]]) -> str:
    """The host's one address in the lane's pool: the lane's mail leaves from it."""
    mine = [a for a in host.public_addresses if a in pools[lane.pool]]
    where = f"hostvars[{host.inventory_name!r}]"
    if not mine:
        raise ModelError(
            f"{where}.bulkmail_extra_ipv4",
            f"{host.inventory_name} has no address in pool {lane.pool!r} (lane {lane.name}); "
            f"give it one (bulkmail_extra_ipv4) and list it in bulkmail_ip_pools.{lane.pool}",
        )
    if len(mine) > 1:
        raise ModelError(
            f"bulkmail_ip_pools.{lane.pool}",
            f"{host.inventory_name} has {len(mine)} addresses in pool {lane.pool!r} "
            f"({', '.join(mine)}); a lane sends from one address per host: keep one",
        )
    return mine[0]
