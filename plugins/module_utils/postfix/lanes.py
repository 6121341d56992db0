"""Lanes: one Postfix instance per stream, so a saturated bulk queue never delays a password reset.

`bulkmail_lanes` names the streams an smtp primary carries. `transactional` is Postfix's
default instance (/etc/postfix: port 25 from the trusted networks, 587 with SASL); every other
lane is an instance of its own (`postfix-<lane>`: /etc/postfix-<lane>, its own queue, queue
manager, active queue and delivery agents) that the trusted networks feed on the internal
address and the lane's `port`. Each lane sends from the host's address in the lane's pool.

A lane with `fallback: true` hands what its first delivery attempt could not deliver to the
`smtp_fallback` ("graveyard") hosts (`smtp_fallback_relay`): the primary's queue holds only
fresh mail, and the retries live on hosts tuned for them (long backoff, a large active queue).

A lane with `per_provider: true` splits once more, by provider: its instance becomes the
lane's intake (it signs and routes), and each provider of the tuning model's table gets an
instance of its own (`postfix-<lane>-<provider>`, fed on the internal address, `port` + 1 +
its index), which the intake hands the provider's mail to (`handoff`, routed by the provider
classifier's `lane-<lane>` map). A provider that tarpits fills only its own instance's active
queue; the other providers' mail of the same campaign keeps flowing. A dispatcher that signs
mail itself (`bulkmail submit`) may feed a provider's instance directly, from the trusted
networks: one queue and no milter on the way.

Why instances and not transports or fallback relays alone (roles/postfix/README.md has the
measurements): the queue manager's active queue is shared by every transport of an instance;
once a campaign fills it (`qmgr_message_active_limit`), new mail waits in the incoming queue,
whatever transport it would take. A second instance has its own.

Pure Python: no Ansible import. Errors are `ModelError`s naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model.domains import (
    Host,
    ModelError,
    _show,
    parse_host,
    parse_ip_pools,
    raise_collected,
)
from .config import MasterService, Setting

TRANSACTIONAL = "transactional"
LANE_KEYS = ("pool", "port", "fallback", "per_provider")
RESERVED_PORTS = frozenset({25, 465, 587})
_LANE_NAME = re.compile(r"^[a-z][a-z0-9]{0,19}$")
# The graveyard's retry schedule: Postfix's minimal backoff (300 s) would hammer a provider
# that asked us to slow down; Yahoo asks for a retry after about 4 hours.
GRAVEYARD_MIN_BACKOFF = "10m"
GRAVEYARD_MAX_BACKOFF = "4h"
GRAVEYARD_QUEUE_RUN = "5m"
# The graveyard holds the deferred mail of every primary: this many times a primary's queue.
GRAVEYARD_ACTIVE_FACTOR = 4
# Room for the headers a message gains between the host that accepted it and the next one
# (Received, DKIM-Signature): the next hop must never refuse, for its size, what was accepted.
HANDOFF_HEADROOM = 65536
# The transport an intake hands a provider's mail to its provider instance with.
HANDOFF = "handoff"
# Who may feed a lane's own instance: the trusted networks (and loopback); a provider
# instance also takes the intake's handoff, which comes from this host's own address.
_TRUSTED_FEEDERS = Setting(
    "smtpd_client_restrictions", "permit_mynetworks,reject",
    "only bulkmail_trusted_networks (and loopback) feed this lane",
)  # fmt: skip
_HANDOFF_FEEDERS = Setting(
    "smtpd_client_restrictions", "permit_mynetworks,permit_inet_interfaces,reject",
    "bulkmail_trusted_networks (and loopback), and this host's own addresses: the intake",
)  # fmt: skip


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
            f"{_show(port)} is not a TCP port; the trusted networks feed the lane on it, e.g. 2525",
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
            f"lane name {_show(name)} must be lower-case letters and digits (at most 20), "
            f"starting with a letter",
        )
    if not isinstance(settings, Mapping):
        raise ModelError(where, f"{_show(settings)} is not a mapping with at least pool")
    unknown = sorted(str(k) for k in settings if k not in LANE_KEYS)
    if unknown:
        raise ModelError(
            where, f"unknown key(s) {', '.join(unknown)}; known keys are {', '.join(LANE_KEYS)}"
        )
    pool = settings.get("pool")
    if pool not in pools:
        raise ModelError(
            f"{where}.pool",
            f"{_show(pool)} is not a pool of bulkmail_ip_pools ({', '.join(pools)})",
        )
    flags = {}
    for key in ("fallback", "per_provider"):
        flags[key] = settings.get(key, False)
        if not isinstance(flags[key], bool):
            raise ModelError(f"{where}.{key}", f"{_show(flags[key])} is not true or false")
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
        raise ModelError(path, f"{_show(raw)} is not a mapping of lane name to its settings")
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
    return tuple(lanes)


def _s(name: str, value: Any, reason: str) -> Setting:
    return Setting(name, str(value), reason)


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


@dataclass(frozen=True)
class Instance:
    """What the postfix role writes for one Postfix instance of one host."""

    lane: Lane
    main_cf: tuple[Setting, ...]
    master_cf: tuple[tuple[MasterService, bool], ...]
    # A per_provider lane's intake: provider -> the route to its instance (the classifier's
    # `lane-<lane>` map).
    routes: Mapping[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lane": self.lane.name,
            "provider": self.lane.provider,
            "route_map": {self.lane.route_map: dict(self.routes)} if self.routes else {},
            "instance": self.lane.instance,
            "config_directory": self.lane.config_directory,
            "queue_directory": self.lane.queue_directory,
            "data_directory": self.lane.data_directory,
            "main_cf": [setting.as_dict() for setting in self.main_cf],
            "master_cf": [
                service.as_dict() | ({} if present else {"state": "absent"})
                for service, present in self.master_cf
            ],
        }


def _fallback_settings(lane: Lane, graveyards: Sequence[Host]) -> list[Setting]:
    if not lane.fallback:
        return []
    # The public address: the smtp client binds to the lane's public source address for every
    # connection, the handoff included, and a reply from another network would not come back.
    relays = ", ".join(f"[{h.public_ipv4}]:25" for h in graveyards)
    return [
        _s("smtp_fallback_relay", relays,
           f"lane {lane.name}: what the first attempt cannot deliver (4xx, no answer) goes to "
           f"the graveyard hosts, so this queue holds only fresh mail"),
    ]  # fmt: skip


def _lane_instance_settings(lane: Lane) -> list[Setting]:
    """main.cf of a lane's own instance (not the default one): its name, queue, directories."""
    return [
        _s("multi_instance_name", lane.instance, f"lane {lane.name}'s own instance"),
        _s("multi_instance_enable", "yes", "postmulti starts it with the default one"),
        _s("syslog_name", lane.instance, "log lines name the lane"),
        _s("queue_directory", lane.queue_directory,
           "its own queue: a full bulk queue never holds transactional mail back"),
        _s("data_directory", lane.data_directory, "its own caches and locks"),
        _s("smtpd_sasl_auth_enable", "no",
           "fed by the trusted networks only; applications log in on 587"),
    ]  # fmt: skip


def _source_address(lane: Lane, address: str) -> Setting:
    return _s("smtp_bind_address", address,
              f"lane {lane.name} sends from this host's address in pool {lane.pool!r}, "
              f"covered by SPF and PTR")  # fmt: skip


def _own_listener(
    listen: str, reason: str, *options: Setting, feeders: Setting = _TRUSTED_FEEDERS
) -> list[tuple[MasterService, bool]]:
    """master.cf of a lane instance: not the default instance's 25 and 587, its own port."""
    return [
        (MasterService("smtp", "inet", "smtpd", "the transactional lane's port 25",
                       private="n", chroot="y"), False),
        (MasterService("submission", "inet", "smtpd", "the transactional lane's 587",
                       private="n", chroot="y"), False),
        (MasterService(listen, "inet", "smtpd", reason, private="n", chroot="y",
                       options=(feeders, *options)), True),
    ]  # fmt: skip


def _intake_routing(
    lane: Lane, providers: Sequence[str], socket: str, listen: str
) -> tuple[list[Setting], list[tuple[MasterService, bool]], dict[str, str]]:
    """A per_provider lane's intake: route each provider's mail to the provider's instance."""
    routes = {
        str(sub.provider): f"{HANDOFF}:[{listen}]:{sub.port}"
        for sub in lane.provider_lanes(providers)
    }
    main_cf = [
        _s("transport_maps", f"socketmap:{socket}:{lane.route_map}",
           f"the intake only routes: each provider's mail (by the recipient domain's MX) to "
           f"that provider's instance of lane {lane.name}, so a slow one fills only its own "
           f"queue"),
    ]  # fmt: skip
    handoff = MasterService(
        HANDOFF, "unix", "smtp",
        f"hands lane {lane.name}'s mail to its provider instances on this host",
        chroot="y",
        options=(
            Setting("syslog_name", f"{lane.instance}/{HANDOFF}", "log lines name the handoff"),
            Setting("smtp_bind_address", "",
                    "the handoff stays on this host: no public source address"),
            Setting("smtp_fallback_relay", "",
                    "a provider instance that is down keeps its mail here, not the graveyard"),
            Setting("smtp_tls_security_level", "none", "this host to itself: nothing to encrypt"),
        ),
    )  # fmt: skip
    return main_cf, [(handoff, True)], routes


def _size_headroom(size_limit: int | None, sender: str) -> list[Setting]:
    """message_size_limit of a host that takes over mail `sender` accepted."""
    if size_limit is None:
        return []
    return [
        _s("message_size_limit", size_limit + HANDOFF_HEADROOM,
           f"{sender}'s limit + {HANDOFF_HEADROOM // 1024} KB for the headers added on the way: "
           f"a handoff never bounces for size what {sender} accepted"),
    ]  # fmt: skip


def _provider_instance(
    sub: Lane,
    address: str,
    listen: str,
    graveyards: Sequence[Host],
    size_limit: int | None = None,
) -> Instance:
    """One provider's instance of a per_provider lane: fed by the intake, signs nothing."""
    main_cf = [
        _source_address(sub, address),
        *_lane_instance_settings(sub),
        _s("smtpd_milters", "",
           "the intake or the dispatcher signed the mail; no second signature"),
        _s("non_smtpd_milters", "", "nothing is submitted here with sendmail"),
    ]  # fmt: skip
    main_cf += _size_headroom(size_limit, "the lane's intake")
    # VERP and the relays' routes stay: the intake's mail arrives with its return path
    # already rewritten (no table matches it again), a dispatcher's gets them here.
    main_cf += _fallback_settings(sub, graveyards)
    master_cf = _own_listener(
        f"{listen}:{sub.port}",
        f"lane {sub.name}'s mail for {sub.provider} arrives here from the lane's intake (or a "
        f"signing dispatcher on the trusted networks)",
        Setting("smtpd_relay_restrictions", _HANDOFF_FEEDERS.value, "the same feeders may relay"),
        feeders=_HANDOFF_FEEDERS,
    )
    return Instance(sub, tuple(main_cf), tuple(master_cf))


def primary_instances(
    host: Host,
    lanes: Sequence[Lane],
    pools: Mapping[str, Sequence[str]],
    graveyards: Sequence[Host] = (),
    providers: Sequence[str] = (),
    provider_map_socket: str = "inet:127.0.0.1:10028",
    size_limit: int | None = None,
) -> tuple[Instance, ...]:
    """The instances of a primary smtp host, the default (transactional) one first."""
    if not lanes:
        return ()
    if any(lane.fallback for lane in lanes) and not graveyards:
        lane = next(lane for lane in lanes if lane.fallback)
        raise ModelError(
            f"bulkmail_lanes.{lane.name}.fallback",
            "true, but the smtp_fallback group has no host to fall back to; add one or set "
            "fallback: false",
        )
    split = next((lane for lane in lanes if lane.per_provider), None)
    if split is not None and not providers:
        raise ModelError(
            f"bulkmail_lanes.{split.name}.per_provider",
            "true, but the tuning model has no providers to split by",
        )
    others = [lane for lane in lanes if lane.name != TRANSACTIONAL]
    directories = [
        instance.config_directory
        for lane in others
        for instance in [lane, *lane.provider_lanes(providers)]
    ]
    listen = host.internal_ipv4 or "127.0.0.1"
    instances = []
    for lane in lanes:
        address = lane_address(host, lane, pools)
        main_cf = [_source_address(lane, address)]
        master_cf: list[tuple[MasterService, bool]] = []
        routes: dict[str, str] = {}
        if lane.name == TRANSACTIONAL:
            if others:
                main_cf += [
                    _s("multi_instance_wrapper", "${command_directory}/postmulti -p --",
                       "postfix start/stop/reload act on every lane's instance"),
                    _s("multi_instance_enable", "yes", "the default instance is a lane too"),
                    _s("multi_instance_directories", " ".join(directories),
                       "the other lanes' instances, each with its own queue"),
                ]  # fmt: skip
        else:
            main_cf += _lane_instance_settings(lane)
            master_cf += _own_listener(
                f"{listen}:{lane.port}",
                f"lane {lane.name} is fed here, on the internal address, by the trusted "
                f"networks only",
                Setting("milter_macro_daemon_name", "ORIGINATING",
                        "the signer sees this mail as outgoing"),
            )  # fmt: skip
            if lane.per_provider:
                routing, handoff, routes = _intake_routing(
                    lane, providers, provider_map_socket, listen
                )
                main_cf += routing
                master_cf += handoff
        main_cf += _fallback_settings(lane, graveyards)
        instances.append(Instance(lane, tuple(main_cf), tuple(master_cf), routes))
        instances += [
            _provider_instance(sub, address, listen, graveyards, size_limit)
            for sub in lane.provider_lanes(providers)
        ]
    return tuple(instances)


def graveyard_settings(
    primaries: Sequence[Host], active_limit: int, size_limit: int | None = None
) -> list[Setting]:
    """main.cf of an `smtp_fallback` host: relay for the primaries, retry patiently."""
    senders = [address for host in primaries for address in host.public_addresses]
    return [
        *_size_headroom(size_limit, "a primary"),
        _s("mynetworks", " ".join(["127.0.0.0/8", *[f"{a}/32" for a in senders]]),
           "only the primaries' sending addresses hand mail over; nobody else relays here"),
        _s("smtpd_milters", "", "mail arrives signed by the primaries; no second signature"),
        _s("non_smtpd_milters", "", "nothing is submitted here directly"),
        _s("minimal_backoff_time", GRAVEYARD_MIN_BACKOFF,
           "a provider that deferred once is not asked again within minutes"),
        _s("maximal_backoff_time", GRAVEYARD_MAX_BACKOFF,
           "Yahoo asks for a retry after about 4 hours; others settle sooner"),
        _s("queue_run_delay", GRAVEYARD_QUEUE_RUN, "the deferred queue is scanned as often"),
        _s("qmgr_message_active_limit", active_limit * GRAVEYARD_ACTIVE_FACTOR,
           f"the retries of every primary: {GRAVEYARD_ACTIVE_FACTOR} x a primary's active queue"),
        _s("qmgr_message_recipient_limit", active_limit * GRAVEYARD_ACTIVE_FACTOR,
           "as many recipients in memory as messages"),
    ]  # fmt: skip


def postfix_instances(
    host: Any,
    *,
    lanes: Any,
    ip_pools: Any,
    graveyards: Sequence[Any] = (),
    primaries: Sequence[Any] = (),
    active_limit: int = 20000,
    providers: Sequence[str] = (),
    provider_map_socket: str = "inet:127.0.0.1:10028",
    size_limit: int | None = None,
) -> list[dict[str, Any]]:
    """Plain-data instances for one smtp host (what the postfix role loops over).

    A host in `graveyards` gets one instance, the default one, with the graveyard's settings;
    a primary gets one per lane; without lanes, one default instance with no extra layer.
    """
    pools = parse_ip_pools(ip_pools)
    names = [str(p) for p in providers]
    parsed_lanes = parse_lanes(lanes, pools, providers=names)
    me = parse_host(host, group="smtp")
    yards = tuple(parse_host(h, i, group="smtp_fallback") for i, h in enumerate(graveyards))
    if me.inventory_name in {h.inventory_name for h in yards}:
        firsts = tuple(parse_host(h, i, group="smtp") for i, h in enumerate(primaries))
        lane = Lane(TRANSACTIONAL, "")
        layer = graveyard_settings(firsts, active_limit, size_limit)
        return [Instance(lane, tuple(layer), ()).as_dict() | {"graveyard": True}]
    instances = primary_instances(
        me, parsed_lanes, pools, yards, names, provider_map_socket, size_limit
    )
    if not instances:
        return [Instance(Lane(TRANSACTIONAL, ""), (), ()).as_dict() | {"graveyard": False}]
    return [instance.as_dict() | {"graveyard": False} for instance in instances]
