"""The tuning model: Postfix limits and per-provider transports derived from the volume profile.

Input is the inventory's `bulkmail_volume` (messages per day, peak per hour, message sizes,
queue lifetime), `bulkmail_ip_pools`, `bulkmail_relays` and `bulkmail_providers`, plus how many
primary smtp hosts share the load. Output is a main.cf layer and a master.cf layer for
`postfix_config` (each setting with the one-line reason that the role writes above it), and
the provider MX-suffix table the provider classifier (`transport_for_mx`, served to Postfix
by `bulkmail provider-map`) reads.

Pure Python: no Ansible import. Every error is a `ModelError` whose message starts with the
path of the offending field (`bulkmail_volume.peak_per_hour`) and says how to fix it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..model.domains import (
    ModelError,
    _show,
    parse_domains,
    parse_ip_pools,
    raise_collected,
    validate_domain_name,
)
from .config import MasterService, Setting

# Postfix's own defaults, kept as floors: the model only ever raises them.
POSTFIX_PROCESS_LIMIT = 100
POSTFIX_ACTIVE_LIMIT = 20000
POSTFIX_RECIPIENT_LIMIT = 50
# Little's law inputs: a remote SMTP delivery (connect, TLS, DATA) takes about this long,
# and slow receivers (tarpits, 4xx after DATA) need as many agents again.
DELIVERY_SECONDS = 2.0
HEADROOM = 2
# The active queue holds this many minutes of the host's peak, so the queue manager always
# has work for every delivery agent without scanning the incoming queue.
ACTIVE_QUEUE_MINUTES = 10
# Yahoo asks for a retry after about 4 hours: a shorter lifetime would bounce such mail.
MIN_QUEUE_LIFETIME_HOURS = 5
MAX_QUEUE_LIFETIME_HOURS = 720

VOLUME_KEYS = (
    "messages_per_day",
    "peak_per_hour",
    "message_size_kb",
    "max_message_size_kb",
    "queue_lifetime_hours",
)
RELAY_KEYS = ("host", "port", "username", "password")
PROVIDER_KEYS = (
    "extra_mx_suffixes",
    "concurrency",
    "deliveries_per_connection",
    "recipients_per_message",
    "rate_delay_seconds",
    "failed_cohort_limit",
)
# Postfix's own default syslog_name: the instance's name, `postfix` for the default one.
INSTANCE_SYSLOG_NAME = "${multi_instance_name?{$multi_instance_name}:{postfix}}"
_TRANSPORT_NAME = re.compile(r"^[a-z][a-z0-9]*$")
# Names Postfix already uses for services or parameter prefixes (`default_...`).
_RESERVED_TRANSPORTS = frozenset(
    {"smtp", "relay", "lmtp", "local", "virtual", "error", "retry", "discard", "default"}
)


@dataclass(frozen=True)
class VolumeProfile:
    """`bulkmail_volume`: how much mail the platform sends, and how big it is."""

    messages_per_day: int
    peak_per_hour: int
    message_size_kb: int = 50
    max_message_size_kb: int = 25600
    queue_lifetime_hours: int = 72


@dataclass(frozen=True)
class Relay:
    """One entry of `bulkmail_relays`: an external smarthost with its SASL credentials."""

    name: str
    host: str
    port: int
    username: str
    password: str


@dataclass(frozen=True)
class Provider:
    """A mailbox provider's shaping: recognised by MX host suffix, delivered by its transport."""

    name: str
    mx_suffixes: tuple[str, ...]
    concurrency: int
    deliveries_per_connection: int
    recipients_per_message: int = POSTFIX_RECIPIENT_LIMIT
    rate_delay_seconds: int = 0
    failed_cohort_limit: int = 1
    source: str = "KumoMTA's published default"


# Starting values from KumoMTA's published shaping (shared PROVIDERS.md). `default` shapes
# every destination no provider claims and is Postfix's own `smtp` transport.
DEFAULT_PROVIDERS: tuple[Provider, ...] = (
    Provider("google", (".google.com", ".googlemail.com"), 5, 50, failed_cohort_limit=5),
    Provider("microsoft", (".olc.protection.outlook.com", ".mail.protection.outlook.com",
                           ".mx.microsoft"), 5, 50),
    Provider("yahoo", (".yahoodns.net",), 10, 20),
    Provider("apple", (".icloud.com",), 10, 5),
    Provider("default", (), 10, 100),
)  # fmt: skip


@dataclass(frozen=True)
class Tuning:
    """What the model derives: a main.cf layer, a master.cf layer, the provider table."""

    main_cf: tuple[Setting, ...]
    master_cf: tuple[MasterService, ...]
    providers: tuple[Provider, ...] = field(default=())
    # Files the main.cf layer names: {path, mode, lines} (the relays' routes and secrets).
    tables: tuple[dict[str, Any], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "main_cf": [setting.as_dict() for setting in self.main_cf],
            "master_cf": [service.as_dict() for service in self.master_cf],
            "tables": [dict(table) for table in self.tables],
            "providers": [p.name for p in self.providers],
            "provider_suffixes": {
                p.name: list(p.mx_suffixes) for p in self.providers if p.mx_suffixes
            },
        }


# --------------------------------------------------------------------------- input


def _count(raw: Mapping[str, Any], key: str, path: str, default: int | None, minimum: int) -> int:
    value = raw.get(key, default)
    where = f"{path}.{key}"
    if value is None:
        raise ModelError(where, "missing; give a whole number")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # templating may hand numbers over as text
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(where, f"{_show(value)} is not a whole number")
    if value < minimum:
        if value < 0:
            raise ModelError(where, f"{value} is negative; give a number >= {minimum}")
        raise ModelError(where, f"{value} is too small; give a number >= {minimum}")
    return value


def _check_keys(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise ModelError(
            path, f"unknown key(s) {', '.join(unknown)}; known keys are {', '.join(allowed)}"
        )


def parse_volume(raw: Any, path: str = "bulkmail_volume") -> VolumeProfile:
    """Parse `bulkmail_volume`, checking each number and that the numbers agree."""
    if not isinstance(raw, Mapping):
        raise ModelError(
            path,
            f"{_show(raw)} is not a mapping; give at least messages_per_day and peak_per_hour",
        )
    _check_keys(raw, VOLUME_KEYS, path)
    errors: list[ModelError] = []
    values: dict[str, int] = {}
    limits = {
        "messages_per_day": (None, 1),
        "peak_per_hour": (None, 1),
        "message_size_kb": (VolumeProfile.message_size_kb, 1),
        "max_message_size_kb": (VolumeProfile.max_message_size_kb, 64),
        "queue_lifetime_hours": (VolumeProfile.queue_lifetime_hours, MIN_QUEUE_LIFETIME_HOURS),
    }
    for key, (default, minimum) in limits.items():
        try:
            values[key] = _count(raw, key, path, default, minimum)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    profile = VolumeProfile(**values)
    if profile.peak_per_hour * 24 < profile.messages_per_day:
        raise ModelError(
            f"{path}.peak_per_hour",
            f"{profile.peak_per_hour} x 24 h = {profile.peak_per_hour * 24} is less than "
            f"messages_per_day {profile.messages_per_day}; the peak hour is at least the "
            f"average ({math.ceil(profile.messages_per_day / 24)}), raise it",
        )
    if profile.peak_per_hour > profile.messages_per_day:
        raise ModelError(
            f"{path}.peak_per_hour",
            f"{profile.peak_per_hour} is more than messages_per_day "
            f"{profile.messages_per_day}; the peak hour is part of the day, lower it",
        )
    if profile.message_size_kb > profile.max_message_size_kb:
        raise ModelError(
            f"{path}.message_size_kb",
            f"the average {profile.message_size_kb} is more than max_message_size_kb "
            f"{profile.max_message_size_kb}; the average message must fit the limit",
        )
    if profile.queue_lifetime_hours > MAX_QUEUE_LIFETIME_HOURS:
        raise ModelError(
            f"{path}.queue_lifetime_hours",
            f"{profile.queue_lifetime_hours} is more than {MAX_QUEUE_LIFETIME_HOURS} (30 days); "
            f"mail that old is news to no one, lower it",
        )
    return profile


def parse_relays(raw: Any, path: str = "bulkmail_relays") -> tuple[Relay, ...]:
    """Parse `bulkmail_relays`: name -> {host, port, username, password}; credentials required."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{_show(raw)} is not a mapping of relay name to its settings")
    relays: list[Relay] = []
    errors: list[ModelError] = []
    for name, settings in raw.items():
        where = f"{path}.{name}"
        try:
            if not isinstance(name, str) or not _TRANSPORT_NAME.match(name):
                raise ModelError(
                    path, f"relay name {_show(name)} must be lower-case letters and digits"
                )
            if not isinstance(settings, Mapping):
                raise ModelError(where, f"{_show(settings)} is not a mapping with host, port, "
                                        f"username, password")  # fmt: skip
            _check_keys(settings, RELAY_KEYS, where)
            host = validate_domain_name(settings.get("host"), f"{where}.host")
            port = _count(settings, "port", where, 587, 1)
            if port > 65535:
                raise ModelError(f"{where}.port", f"{port} is not a TCP port (1-65535)")
            credentials = {}
            for key in ("username", "password"):
                value = settings.get(key)
                if not isinstance(value, str) or not value.strip():
                    raise ModelError(
                        f"{where}.{key}",
                        f"missing; a relay needs SASL credentials: keep them in vault, e.g. "
                        f'{key}: "{{{{ vault_relay_{name}_{key} }}}}"',
                    )
                if any(c.isspace() for c in value):
                    raise ModelError(f"{where}.{key}", "must not contain whitespace")
                credentials[key] = value
            relays.append(Relay(name, host, port, credentials["username"],
                                credentials["password"]))  # fmt: skip
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return tuple(relays)


def _suffix(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("."):
        raise ModelError(where, f"{_show(value)} must be an MX host suffix such as .google.com")
    return "." + validate_domain_name(value[1:], where)


def parse_providers(
    raw: Any, path: str = "bulkmail_providers", base: Sequence[Provider] = DEFAULT_PROVIDERS
) -> tuple[Provider, ...]:
    """The provider table: `base` with `bulkmail_providers` overrides and added MX suffixes.

    A name not in `base` adds a provider (its own transport); `extra_mx_suffixes` adds to the
    provider's suffixes, the numbers replace its starting values.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{_show(raw)} is not a mapping of provider name to shaping")
    providers = {p.name: p for p in base}
    errors: list[ModelError] = []
    numbers = {
        "concurrency": 1,
        "deliveries_per_connection": 1,
        "recipients_per_message": 1,
        "rate_delay_seconds": 0,
        "failed_cohort_limit": 1,
    }
    for name, settings in raw.items():
        where = f"{path}.{name}"
        try:
            if not isinstance(name, str) or not _TRANSPORT_NAME.match(name):
                raise ModelError(
                    path, f"provider name {_show(name)} must be lower-case letters and digits"
                )
            if settings is None:
                settings = {}
            if not isinstance(settings, Mapping):
                raise ModelError(where, f"{_show(settings)} is not a mapping")
            _check_keys(settings, PROVIDER_KEYS, where)
            current = providers.get(name)
            if current is None:
                if name in _RESERVED_TRANSPORTS:
                    raise ModelError(path, f"{name!r} is a Postfix service name; choose another")
                missing = [k for k in ("concurrency", "deliveries_per_connection")
                           if k not in settings]  # fmt: skip
                if missing:
                    raise ModelError(where, f"a new provider needs {' and '.join(missing)}")
                current = Provider(name, (), 1, 1, source="the inventory")
            extra = settings.get("extra_mx_suffixes", [])
            if isinstance(extra, str) or not isinstance(extra, Iterable):
                raise ModelError(f"{where}.extra_mx_suffixes", "must be a list of suffixes")
            if extra and name == "default":
                raise ModelError(
                    f"{where}.extra_mx_suffixes", "default shapes what no provider claims; "
                    "give the suffixes to a named provider")  # fmt: skip
            suffixes = list(current.mx_suffixes)
            for index, item in enumerate(extra):
                suffix = _suffix(item, f"{where}.extra_mx_suffixes[{index}]")
                if suffix not in suffixes:
                    suffixes.append(suffix)
            changes: dict[str, Any] = {"mx_suffixes": tuple(suffixes)}
            for key, minimum in numbers.items():
                if key in settings:
                    changes[key] = _count(settings, key, where, None, minimum)
            if any(key in settings for key in numbers):
                changes["source"] = "the inventory (bulkmail_providers)"
            providers[name] = replace(current, **changes)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    owners: dict[str, str] = {}
    for provider in providers.values():
        for suffix in provider.mx_suffixes:
            if suffix in owners:
                raise ModelError(
                    path,
                    f"MX suffix {suffix} is claimed by both {owners[suffix]} and "
                    f"{provider.name}; give it to one",
                )
            owners[suffix] = provider.name
    if "default" not in providers:
        raise ModelError(path, "the default provider is missing")
    return tuple(providers.values())


# ---------------------------------------------------------------- classification


def transport_for_mx(mx_host: str, suffixes: Mapping[str, Iterable[str]]) -> str | None:
    """The provider whose MX suffix the host name ends with (the longest wins), or None.

    `suffixes` is provider name -> MX host suffixes (`Tuning.as_dict()["provider_suffixes"]`).
    """
    host = mx_host.strip().rstrip(".").lower()
    best: tuple[int, str] | None = None
    for provider, names in suffixes.items():
        for suffix in names:
            suffix = suffix.lower().rstrip(".")
            if (host.endswith(suffix) or host == suffix.lstrip(".")) and (
                best is None or len(suffix) > best[0]
            ):
                best = (len(suffix), provider)
    return None if best is None else best[1]


# ------------------------------------------------------------------------ derive


def _s(name: str, value: Any, reason: str) -> Setting:
    return Setting(name, str(value), reason)


def volume_settings(profile: VolumeProfile, primaries: int) -> list[Setting]:
    """main.cf limits for one of `primaries` hosts sharing `profile`'s peak."""
    per_host = math.ceil(profile.peak_per_hour / primaries)
    rate = per_host / 3600
    agents = math.ceil(rate * DELIVERY_SECONDS * HEADROOM)
    processes = max(POSTFIX_PROCESS_LIMIT, agents)
    active = max(POSTFIX_ACTIVE_LIMIT, math.ceil(per_host * ACTIVE_QUEUE_MINUTES / 60))
    size_limit = profile.max_message_size_kb * 1024
    peak_hour_bytes = per_host * profile.message_size_kb * 1024
    minfree = max(2 * size_limit, peak_hour_bytes)
    lifetime = profile.queue_lifetime_hours
    share = (
        f"peak {profile.peak_per_hour}/h over {primaries} primar{'y' if primaries == 1 else 'ies'}"
    )
    return [
        _s("default_process_limit", processes,
           f"{share} = {rate:.1f} msg/s; x {DELIVERY_SECONDS:g} s per delivery x {HEADROOM} "
           f"headroom = {agents} agents (floor: Postfix's {POSTFIX_PROCESS_LIMIT})"),
        _s("qmgr_message_active_limit", active,
           f"{ACTIVE_QUEUE_MINUTES} min of this host's peak ({per_host}/h) in memory "
           f"(floor: Postfix's {POSTFIX_ACTIVE_LIMIT})"),
        _s("qmgr_message_recipient_limit", active,
           "as many recipients in memory as messages: no less than the active queue"),
        _s("message_size_limit", size_limit,
           f"bulkmail_volume.max_message_size_kb = {profile.max_message_size_kb}"),
        _s("queue_minfree", minfree,
           f"refuse (4xx) before the disk cannot hold an hour of peak "
           f"({per_host} x {profile.message_size_kb} KB) or 2 maximal messages"),
        _s("maximal_queue_lifetime", f"{lifetime}h",
           f"bulkmail_volume.queue_lifetime_hours; >= {MIN_QUEUE_LIFETIME_HOURS} h so Yahoo's "
           f"4 h retry fits"),
        _s("bounce_queue_lifetime", f"{min(lifetime, 24)}h",
           "our own bounce notices are worth less than mail: give up within a day"),
    ]  # fmt: skip


def provider_settings(providers: Sequence[Provider]) -> list[Setting]:
    """main.cf per-destination limits of each provider's transport (the qmgr reads these)."""
    settings: list[Setting] = []
    for p in providers:
        transport = "smtp" if p.name == "default" else p.name
        who = "destinations no provider claims" if p.name == "default" else p.name
        settings += [
            _s(f"{transport}_destination_concurrency_limit", p.concurrency,
               f"{who}: at most {p.concurrency} parallel deliveries per domain ({p.source})"),
            _s(f"{transport}_destination_rate_delay", f"{p.rate_delay_seconds}s",
               f"{who}: " + ("no pacing, the concurrency limit paces" if not p.rate_delay_seconds
                             else f"one delivery per {p.rate_delay_seconds} s per domain")
               + f" ({p.source})"),
            _s(f"{transport}_destination_recipient_limit", p.recipients_per_message,
               f"{who}: recipients per message transaction ({p.source})"),
        ]  # fmt: skip
        if p.failed_cohort_limit != 1:
            settings.append(_s(
                f"{transport}_destination_concurrency_failed_cohort_limit",
                p.failed_cohort_limit,
                f"{who}: back off only after {p.failed_cohort_limit} consecutive failed "
                f"connections ({p.source})",
            ))  # fmt: skip
    default = next(p for p in providers if p.name == "default")
    settings.append(_s(
        "smtp_connection_reuse_count_limit", default.deliveries_per_connection,
        f"deliveries per connection where no provider's transport says otherwise "
        f"({default.source})",
    ))  # fmt: skip
    return settings


def provider_services(providers: Sequence[Provider]) -> list[MasterService]:
    """One master.cf smtp service per named provider: its process cap and connection reuse."""
    services = []
    for p in providers:
        if p.name == "default":
            continue
        services.append(MasterService(
            p.name, "unix", "smtp",
            f"delivers to {p.name} (MX under {', '.join(p.mx_suffixes) or 'the inventory'}): "
            f"at most {p.concurrency} connections from this host",
            chroot="y", maxproc=str(p.concurrency),
            options=(
                Setting("syslog_name", f"{INSTANCE_SYSLOG_NAME}/{p.name}",
                        "log lines name the instance (lane) and the provider's transport"),
                Setting("smtp_connection_reuse_count_limit", str(p.deliveries_per_connection),
                        f"{p.deliveries_per_connection} deliveries per connection ({p.source})"),
            ),
        ))  # fmt: skip
    return services


def provider_map_settings(provider_map: str | None) -> list[Setting]:
    """transport_maps pointing at the provider classifier, when one is configured."""
    if not provider_map:
        return []
    return [
        _s("transport_maps", provider_map,
           "the provider is chosen by the recipient domain's MX host (bulkmail provider-map), "
           "so Workspace and Microsoft 365 domains are shaped as Google and Microsoft"),
    ]  # fmt: skip


SENDER_RELAY_MAP = "/etc/postfix/sender_relay"
RELAY_PASSWORD_MAP = "/etc/postfix/relay_passwd"
RELAY_TLS_POLICY_MAP = "/etc/postfix/relay_tls_policy"


def _nexthop(relay: Relay) -> str:
    return f"[{relay.host}]:{relay.port}"


def relay_routes(
    domains: Any, relays: Sequence[Relay]
) -> tuple[list[Setting], list[dict[str, Any]]]:
    """Sender-dependent relays: each domain's `relays`, in failover order, with their SASL logins.

    The route is a `FILTER relay:<next hops>` action on the sender's domain
    (`check_sender_access` in `smtpd_data_restrictions`), not `sender_dependent_relayhost_maps`:
    the provider classifier is a transport map, and a transport map's answer (`google:`) wins
    over the sender-dependent relayhost (measured in the lab: mail from a relayed domain went
    straight to Gmail's MX). A FILTER decides the transport and next hop for the whole
    message, above transport maps. The next hops are a list (Postfix 3.5+ tries them in order:
    the backup when the first does not answer); the password table is keyed by next hop, so
    each relay gets its own credentials; the TLS policy makes TLS mandatory towards relays, so
    no password crosses the network in clear.
    """
    if domains is None:
        return [], []
    by_name = {relay.name: relay for relay in relays}
    routes: list[str] = []
    errors: list[ModelError] = []
    parsed = parse_domains(domains)
    for index, domain in enumerate(parsed):
        for position, name in enumerate(domain.relays):
            if name not in by_name:
                known = ", ".join(by_name) or "none"
                errors.append(ModelError(
                    f"bulkmail_domains[{index}].relays[{position}]",
                    f"{_show(name)} is not a relay of bulkmail_relays (known: {known})",
                ))  # fmt: skip
        if domain.relays and not errors:
            hops = ", ".join(_nexthop(by_name[name]) for name in domain.relays)
            routes.append(f"{domain.name} FILTER relay:{hops}")
    raise_collected(errors)
    if not routes:
        return [], []
    used = sorted({name for d in parsed for name in d.relays})
    passwords = [f"{_nexthop(by_name[n])} {by_name[n].username}:{by_name[n].password}"
                 for n in used]  # fmt: skip
    policies = [f"{_nexthop(by_name[name])} encrypt" for name in used]
    settings = [
        _s("smtpd_data_restrictions", f"check_sender_access texthash:{SENDER_RELAY_MAP}",
           "senders of domains with relays (bulkmail_domains[].relays) leave through them, "
           "the next relay when the first does not answer"),
        _s("smtp_sasl_auth_enable", "yes",
           "log in to the relays; no other receiver is asked (no password for it)"),
        _s("smtp_sasl_password_maps", f"texthash:{RELAY_PASSWORD_MAP}",
           "each relay's own credentials (bulkmail_relays, from vault), by next hop"),
        _s("smtp_sasl_security_options", "noanonymous", "plain-text mechanisms, never anonymous"),
        _s("smtp_sasl_tls_security_options", "noanonymous", "the same inside TLS"),
        _s("smtp_tls_policy_maps", f"texthash:{RELAY_TLS_POLICY_MAP}",
           "TLS is mandatory towards the relays: no password crosses the network in clear"),
    ]  # fmt: skip
    tables = [
        {"path": SENDER_RELAY_MAP, "mode": "0644", "lines": routes},
        {"path": RELAY_PASSWORD_MAP, "mode": "0600", "lines": passwords, "secret": True},
        {"path": RELAY_TLS_POLICY_MAP, "mode": "0644", "lines": policies},
    ]
    return settings, tables


def postfix_tuning(
    volume: Any,
    *,
    ip_pools: Any,
    relays: Any = None,
    providers: Any = None,
    primaries: int = 1,
    provider_map: str | None = None,
    domains: Any = None,
) -> Tuning:
    """Derive the tuning layers; every input is checked first, all problems reported at once."""
    errors: list[ModelError] = []
    parsed: dict[str, Any] = {}
    steps = {
        "volume": lambda: parse_volume(volume),
        "pools": lambda: parse_ip_pools(ip_pools),
        "relays": lambda: parse_relays(relays),
        "providers": lambda: parse_providers(providers),
    }
    for key, step in steps.items():
        try:
            parsed[key] = step()
        except ModelError as error:
            errors.append(error)
    if isinstance(primaries, bool) or not isinstance(primaries, int) or primaries < 1:
        errors.append(ModelError("groups['smtp']", "no primary smtp host shares the volume"))
    raise_collected(errors)
    table: tuple[Provider, ...] = parsed["providers"]
    relay_settings, tables = relay_routes(domains, parsed["relays"])
    main_cf = (
        volume_settings(parsed["volume"], primaries)
        + provider_settings(table)
        + provider_map_settings(provider_map)
        + relay_settings
    )
    return Tuning(tuple(main_cf), tuple(provider_services(table)), table, tuple(tables))
