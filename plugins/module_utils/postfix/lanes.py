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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Model, ModelError
from ..model.hosts import Host
from ..model.lanes import TRANSACTIONAL, Lane, lane_address
from .config import MasterService, Setting

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


def _s(name: str, value: Any, reason: str) -> Setting:
    return Setting(name, str(value), reason)


@dataclass(frozen=True)
class Instance:
    """What the postfix role writes for one Postfix instance of one host."""

    lane: Lane
    main_cf: tuple[Setting, ...]
    master_cf: tuple[tuple[MasterService, bool], ...]
    # A per_provider lane's intake: provider -> the route to its instance (the classifier's
    # `lane-<lane>` map).
    routes: Mapping[str, str] = field(default_factory=dict)
    graveyard: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "lane": self.lane.name,
            "graveyard": self.graveyard,
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


def _lane_routes(lane: Lane, providers: Sequence[str], listen: str) -> dict[str, str]:
    return {
        str(sub.provider): f"{HANDOFF}:[{listen}]:{sub.port}"
        for sub in lane.provider_lanes(providers)
    }


def _listen_address(host: Host) -> str:
    """Where a host's lane instances listen: its internal address (loopback without one)."""
    return host.internal_ipv4 or "127.0.0.1"


def lane_routes(model: Model, name: str) -> dict[str, dict[str, str]]:
    """The classifier's `lane-<lane>` maps of smtp host `name`: provider -> its instance."""
    if model.is_graveyard(name):
        return {}
    providers = [provider.name for provider in model.providers]
    listen = _listen_address(model.host(name))
    return {
        lane.route_map: _lane_routes(lane, providers, listen)
        for lane in model.lanes
        if lane.per_provider
    }


def _intake_routing(
    lane: Lane, providers: Sequence[str], socket: str, listen: str
) -> tuple[list[Setting], list[tuple[MasterService, bool]], dict[str, str]]:
    """A per_provider lane's intake: route each provider's mail to the provider's instance."""
    routes = _lane_routes(lane, providers, listen)
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
    provider_map_socket: str = "",
    size_limit: int | None = None,
) -> tuple[Instance, ...]:
    """The instances of a primary smtp host, the default (transactional) one first."""
    if not lanes:
        return ()
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
    listen = _listen_address(host)
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
    model: Model,
    name: str,
    *,
    active_limit: int,
    size_limit: int,
    provider_map_socket: str,
) -> tuple[Instance, ...]:
    """The Postfix instances of smtp host `name`, the default one first.

    A graveyard gets one instance, the default one, with the graveyard's settings; a primary
    gets one per lane; without lanes, one default instance with no extra layer.
    """
    lane = Lane(TRANSACTIONAL, "")
    if model.is_graveyard(name):
        layer = graveyard_settings(model.primaries, active_limit, size_limit)
        # It signs nothing and holds no key: an account's mail must go to a primary.
        closed = MasterService("submission", "inet", "smtpd",
                               "no submission on a graveyard: it holds no DKIM key",
                               private="n", chroot="y")  # fmt: skip
        return (Instance(lane, tuple(layer), ((closed, False),), graveyard=True),)
    providers = [provider.name for provider in model.providers]
    instances = primary_instances(
        model.host(name),
        model.lanes,
        model.ip_pools,
        model.graveyards,
        providers,
        provider_map_socket,
        size_limit,
    )
    return instances or (Instance(lane, (), ()),)
