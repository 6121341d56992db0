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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Model, ModelError
from ..model.domains import Domain
from ..model.fields import MAX_LABEL_OCTETS, MAX_NAME_LENGTH
from ..model.sending import MIN_QUEUE_LIFETIME_HOURS, Provider, Relay, VolumeProfile
from .config import MasterService, Setting

# Postfix's own defaults, kept as floors: the model only ever raises them.
POSTFIX_PROCESS_LIMIT = 100
POSTFIX_ACTIVE_LIMIT = 20000
# Little's law inputs: a remote SMTP delivery (connect, TLS, DATA) takes about this long,
# and slow receivers (tarpits, 4xx after DATA) need as many agents again.
DELIVERY_SECONDS = 2.0
HEADROOM = 2
# The active queue holds this many minutes of the host's peak, so the queue manager always
# has work for every delivery agent without scanning the incoming queue.
ACTIVE_QUEUE_MINUTES = 10
# Postfix's own default syslog_name: the instance's name, `postfix` for the default one.
INSTANCE_SYSLOG_NAME = "${multi_instance_name?{$multi_instance_name}:{postfix}}"


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
            "provider_suffixes": provider_suffixes(self.providers),
        }


def provider_suffixes(providers: Sequence[Provider]) -> dict[str, list[str]]:
    """Provider name -> MX host suffixes: the table the provider classifier reads."""
    return {p.name: list(p.mx_suffixes) for p in providers if p.mx_suffixes}


def active_queue_limit(profile: VolumeProfile, primaries: int) -> int:
    """qmgr_message_active_limit of one of `primaries` hosts: 10 minutes of its peak."""
    per_host = math.ceil(profile.peak_per_hour / primaries)
    return max(POSTFIX_ACTIVE_LIMIT, math.ceil(per_host * ACTIVE_QUEUE_MINUTES / 60))


# ---------------------------------------------------------------- classification


# A permanent "bad destination" (RFC 3463 X.1.2): the error(8) transport bounces with it.
BAD_DOMAIN_STATUS = "5.1.2"


def recipient_domain_problem(domain: str) -> str | None:
    """Why `domain` can never resolve (an empty label, a label over 63 octets, a name over 253),
    or None. Such a recipient bounces at once; asking DNS would fail the same way every time,
    and a DNS failure defers."""
    if len(domain) > MAX_NAME_LENGTH:
        return f"the domain is {len(domain)} characters long, more than {MAX_NAME_LENGTH}"
    for label in domain.split("."):
        if not label:
            return "the domain has an empty label (two dots in a row, or a leading dot)"
        if len(label.encode("utf-8")) > MAX_LABEL_OCTETS:
            return f"the domain has a label longer than {MAX_LABEL_OCTETS} octets"
    return None


def bad_domain_route(domain: str, problem: str) -> str:
    """The transport-map value that bounces mail for a malformed domain, with its reason."""
    return f"error:{BAD_DOMAIN_STATUS} Bad destination domain {domain[:80]!r}: {problem}"


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
    active = active_queue_limit(profile, primaries)
    size_limit = profile.message_size_limit
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


def relay_tls_policy(relay: Relay) -> str:
    """The smtp_tls_policy_maps entry of a relay's next hop: its certificate is verified.

    `secure match=nexthop`: a chain to a CA in smtp_tls_CAfile (the system's) and the relay's
    host name in the certificate; the name is the configured next hop, never one taken from
    DNS. `fingerprint`: the relay's pinned SHA-256 digests (`tls_fingerprint`), for a relay
    whose certificate no public CA signs; expiry and chain are then not checked.
    """
    if relay.tls_fingerprints:
        return f"fingerprint match={'|'.join(relay.tls_fingerprints)}"
    return "secure match=nexthop"


def relay_routes(
    domains: Sequence[Domain], relays: Sequence[Relay]
) -> tuple[list[Setting], list[dict[str, Any]]]:
    """Sender-dependent relays: each domain's `relays`, in failover order, with their SASL logins.

    The route is a `FILTER relay:<next hops>` action on the sender's domain
    (`check_sender_access` in `smtpd_data_restrictions`), not `sender_dependent_relayhost_maps`:
    the provider classifier is a transport map, and a transport map's answer (`google:`) wins
    over the sender-dependent relayhost (measured in the lab: mail from a relayed domain went
    straight to Gmail's MX). A FILTER decides the transport and next hop for the whole
    message, above transport maps. The next hops are a list (Postfix 3.5+ tries them in order:
    the backup when the first does not answer); the password table is keyed by next hop, so
    each relay gets its own credentials.

    The TLS policy verifies each relay before it gets them (`relay_tls_policy`): Postfix
    defers the message, before AUTH, when the certificate does not verify; and the SASL
    options allow the plain-text mechanisms (PLAIN, LOGIN: all most relays offer) only inside
    TLS whose certificate was verified, so even a weakened policy never hands a password to
    whoever answers on the path.
    """
    by_name = {relay.name: relay for relay in relays}
    routes = [
        f"{domain.name} FILTER relay:{', '.join(_nexthop(by_name[name]) for name in domain.relays)}"
        for domain in domains
        if domain.relays
    ]
    if not routes:
        return [], []
    used = sorted({name for d in domains for name in d.relays})
    passwords = [f"{_nexthop(by_name[n])} {by_name[n].username}:{by_name[n].password}"
                 for n in used]  # fmt: skip
    policies = [f"{_nexthop(by_name[name])} {relay_tls_policy(by_name[name])}" for name in used]
    settings = [
        _s("smtpd_data_restrictions", f"check_sender_access texthash:{SENDER_RELAY_MAP}",
           "senders of domains with relays (bulkmail_domains[].relays) leave through them, "
           "the next relay when the first does not answer"),
        _s("smtp_sasl_auth_enable", "yes",
           "log in to the relays; no other receiver is asked (no password for it)"),
        _s("smtp_sasl_password_maps", f"texthash:{RELAY_PASSWORD_MAP}",
           "each relay's own credentials (bulkmail_relays, from vault), by next hop"),
        _s("smtp_sasl_security_options", "noanonymous, noplaintext",
           "without TLS no mechanism that sends the password readable (PLAIN, LOGIN)"),
        _s("smtp_sasl_tls_security_options", "noanonymous, noplaintext",
           "nor inside TLS whose certificate was not verified: whoever answers could read it"),
        _s("smtp_sasl_tls_verified_security_options", "noanonymous",
           "PLAIN and LOGIN (what relays offer) only to a relay whose certificate verified"),
        _s("smtp_tls_policy_maps", f"texthash:{RELAY_TLS_POLICY_MAP}",
           "each relay's certificate is verified (CA and name, or its pinned digest) before "
           "AUTH; one that fails keeps the mail queued and gets no password"),
        _s("smtp_tls_fingerprint_digest", "sha256",
           "bulkmail_relays.<name>.tls_fingerprint pins are SHA-256 digests"),
    ]  # fmt: skip
    tables = [
        {"path": SENDER_RELAY_MAP, "mode": "0644", "lines": routes},
        {"path": RELAY_PASSWORD_MAP, "mode": "0600", "lines": passwords, "secret": True},
        {"path": RELAY_TLS_POLICY_MAP, "mode": "0644", "lines": policies},
    ]
    return settings, tables


def postfix_tuning(model: Model, *, primaries: int, provider_map: str | None = None) -> Tuning:
    """Derive the tuning layers of one of `primaries` hosts from a parsed model."""
    if model.volume is None:
        raise ModelError("bulkmail_volume", "missing; the smtp tier is sized from it")
    if primaries < 1:
        raise ModelError("groups['smtp']", "no primary smtp host shares the volume")
    table = model.providers
    relay_settings, tables = relay_routes(model.domains, model.relays)
    main_cf = (
        volume_settings(model.volume, primaries)
        + provider_settings(table)
        + provider_map_settings(provider_map)
        + relay_settings
    )
    return Tuning(tuple(main_cf), tuple(provider_services(table)), table, tuple(tables))
