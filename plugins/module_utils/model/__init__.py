"""The inventory model: one parse_model() validates the whole inventory, every door reads it.

`model_inputs()` takes from an inventory exactly what the model reads (the bulkmail_*
variables, the groups, each host's names and addresses); `parse_model()` validates it in one
pass and reports every problem at once, each `ModelError` naming the field's path and the fix.
`playbooks/validate.yml` stores the inputs as the `bulkmail_model` fact once they parse;
filters, modules and the runtime build their `Model` from that fact with `parse_model()`, so
what is deployed is what was validated (docs/decisions.md, "One model").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .access import (
    ALL_DOMAINS,
    SubmissionAccount,
    TrustedNetwork,
    check_network_domains,
    parse_submission_accounts,
    parse_trusted_networks,
)
from .admin import Administration, parse_administration
from .archive import LogArchive, parse_log_archive
from .domains import Domain, parse_domains, parse_ip_pools, pool_addresses
from .errors import ModelError, ModelErrors, raise_collected
from .extras import ROLE_VARIABLES, check_role_extras
from .feedback import Feedback, check_feedback, parse_feedback, parse_unsubscribe_keys
from .fields import secret, show
from .hosts import Host, check_hosts, parse_dns_hosts, parse_hosts, parse_smtp_hosts
from .lanes import Lane, lane_address, parse_lanes
from .outreach import (
    AccountContext,
    OutreachSettings,
    SenderAccount,
    all_tenants,
    domain_tenants,
    parse_outreach,
    parse_sender_accounts,
    parse_tenants,
    parse_warmup_schedules,
)
from .sending import (
    DEFAULT_PROVIDERS,
    Provider,
    Relay,
    VolumeProfile,
    parse_providers,
    parse_relays,
    parse_volume,
)

if TYPE_CHECKING:
    from ..outreach.warmup import WarmupSchedule

# The inventory variables the model reads; nothing else of an inventory reaches a plan.
MODEL_VARIABLES = (
    "bulkmail_domains",
    "bulkmail_ip_pools",
    "bulkmail_volume",
    "bulkmail_relays",
    "bulkmail_providers",
    "bulkmail_lanes",
    "bulkmail_trusted_networks",
    "bulkmail_trusted_networks_allow_wide",
    "bulkmail_admin_networks",
    "bulkmail_admin_ssh",
    "bulkmail_firewall",
    "bulkmail_submission_accounts",
    "bulkmail_feedback",
    "bulkmail_log_archive",
    "bulkmail_unsubscribe_keys",
    "bulkmail_erasure_keys",
    "bulkmail_db_app_password",
    "bulkmail_db_ingest_password",
    "bulkmail_db_reader_password",
    "bulkmail_db_unsubscribe_password",
    "bulkmail_tenants",
    "bulkmail_warmup_schedules",
    "bulkmail_sender_accounts",
    "bulkmail_outreach",
)
HOST_VARIABLES = (
    "bulkmail_hostname",
    "bulkmail_public_ipv4",
    "bulkmail_internal_ipv4",
    "bulkmail_extra_ipv4",
    *ROLE_VARIABLES,  # the roles' extra inputs, checked here before any host changes
)
GROUPS = ("smtp", "smtp_fallback", "dns", "db", "web")
DB_PASSWORDS = (
    "bulkmail_db_app_password",
    "bulkmail_db_ingest_password",
    "bulkmail_db_reader_password",
    "bulkmail_db_unsubscribe_password",
)


@dataclass(frozen=True)
class Model:
    """The whole inventory, validated: what every role, filter and runtime command reads."""

    domains: tuple[Domain, ...]
    ip_pools: dict[str, tuple[str, ...]]
    smtp_hosts: tuple[Host, ...] = ()
    dns_hosts: tuple[Host, ...] = ()
    hosts: tuple[Host, ...] = ()
    # smtp_fallback: the graveyard hosts, which retry what the primaries could not deliver.
    graveyards: tuple[Host, ...] = ()
    # The web hosts serve the MTA-STS policies at their public address.
    web_hosts: tuple[Host, ...] = ()
    db_hosts: tuple[Host, ...] = ()
    volume: VolumeProfile | None = None
    relays: tuple[Relay, ...] = ()
    providers: tuple[Provider, ...] = DEFAULT_PROVIDERS
    lanes: tuple[Lane, ...] = ()
    trusted_senders: tuple[TrustedNetwork, ...] = ()
    submission_accounts: tuple[SubmissionAccount, ...] = ()
    # SSH's networks and the host firewall's switches (model/admin.py).
    admin: Administration = field(default_factory=Administration)
    # Who receives bounces, complaints and reports, and where postmaster@ goes (model/feedback.py).
    feedback: Feedback = field(default_factory=Feedback)
    # Where the smtp hosts ship Postfix's raw journal lines (model/archive.py); None: nowhere.
    log_archive: LogArchive | None = None
    # The outreach fleet (model/outreach.py). Every tenant, name -> sending domains: the
    # declared ones, then each domain no tenant claims as its own (named by the domain).
    tenants: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sender_accounts: tuple[SenderAccount, ...] = ()
    # Schedule name -> the engine's WarmupSchedule; parse_model always holds `default`.
    warmup_schedules: dict[str, WarmupSchedule] = field(default_factory=dict)
    outreach: OutreachSettings = field(default_factory=OutreachSettings)

    @property
    def domain_tenants(self) -> dict[str, str]:
        """Sending domain -> its tenant's name (its own name when no tenant claims it)."""
        return domain_tenants(self.tenants)

    @property
    def receivers(self) -> tuple[Host, ...]:
        """The smtp hosts that take mail in for the feedback addresses: the domains' MX."""
        if self.feedback.receivers is None:
            return self.primaries
        return tuple(h for h in self.smtp_hosts if h.inventory_name in self.feedback.receivers)

    def receives(self, name: str) -> bool:
        return any(host.inventory_name == name for host in self.receivers)

    @property
    def operator_networks(self) -> tuple[str, ...]:
        """The trusted networks that send as every domain (`domains: all`): the operator's own
        dispatchers, exempt from the rate limits and from fail2ban."""
        return tuple(sender.network for sender in self.trusted_senders if sender.domains is None)

    @property
    def trusted_networks(self) -> tuple[str, ...]:
        """The networks that relay without SASL (Postfix's mynetworks besides loopback)."""
        return tuple(sender.network for sender in self.trusted_senders)

    @property
    def pool_addresses(self) -> tuple[str, ...]:
        return pool_addresses(self.ip_pools)

    @property
    def primaries(self) -> tuple[Host, ...]:
        """The smtp hosts that accept mail from applications (every smtp host but graveyards)."""
        yards = {host.inventory_name for host in self.graveyards}
        return tuple(host for host in self.smtp_hosts if host.inventory_name not in yards)

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.inventory_name == name:
                return host
        raise ModelError(f"hostvars[{name!r}]", "is not a host of the inventory")

    def is_graveyard(self, name: str) -> bool:
        return any(host.inventory_name == name for host in self.graveyards)


def model_inputs(
    variables: Mapping[str, Any],
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    files: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the model reads of an inventory, as plain data: the `bulkmail_model` fact.

    `files`: the text of each file the variables name (`bulkmail_sender_accounts`' csv
    entries), by the path as written; the caller reads them, parse_model stays pure.
    """
    members = {group: list(groups.get(group) or []) for group in GROUPS}
    names = list(groups.get("all") or [])
    for group_hosts in members.values():
        names += [name for name in group_hosts if name not in names]
    return {
        "variables": {key: variables.get(key) for key in MODEL_VARIABLES},
        "groups": members,
        "hosts": {
            name: {key: (hostvars.get(name) or {}).get(key) for key in HOST_VARIABLES}
            for name in names
        },
        "files": {str(path): text for path, text in (files or {}).items()},
    }


def group_hosts(inputs: Mapping[str, Any], group: str | None) -> list[dict[str, Any]]:
    """The variables the model reads of each host of `group` (every host for None), in the
    group's order, as hostvars has them (`inventory_hostname`, `bulkmail_*`)."""
    hosts = inputs.get("hosts") or {}
    names = list(hosts) if group is None else (inputs.get("groups") or {}).get(group) or []
    return [{"inventory_hostname": name, **(hosts.get(name) or {})} for name in names]


def _cross_checks(model: Model) -> list[ModelError]:
    """What holds between parts: relays named by domains exist, lanes fit every primary."""
    errors: list[ModelError] = []
    known = {relay.name for relay in model.relays}
    for index, domain in enumerate(model.domains):
        for position, name in enumerate(domain.relays):
            if name not in known:
                errors.append(
                    ModelError(
                        f"bulkmail_domains[{index}].relays[{position}]",
                        f"{show(name)} is not a relay of bulkmail_relays "
                        f"(known: {', '.join(sorted(known)) or 'none'})",
                    )
                )
    for lane in model.lanes:
        if lane.fallback and not model.graveyards:
            errors.append(
                ModelError(
                    f"bulkmail_lanes.{lane.name}.fallback",
                    "true, but the smtp_fallback group has no host to fall back to; add one or "
                    "set fallback: false",
                )
            )
        for host in model.primaries:
            try:
                lane_address(host, lane, model.ip_pools)
            except ModelError as error:
                errors.append(error)
    if model.smtp_hosts and not model.primaries:
        errors.append(
            ModelError(
                "groups['smtp']",
                "every smtp host is a graveyard (smtp_fallback): add a primary that takes "
                "the mail, the graveyard only retries it",
            )
        )
    pooled = {address for addresses in model.ip_pools.values() for address in addresses}
    for host in model.smtp_hosts:
        if host.public_ipv4 is not None and host.public_ipv4 not in pooled:
            errors.append(
                ModelError(
                    f"hostvars[{host.inventory_name!r}].bulkmail_public_ipv4",
                    f"{host.public_ipv4} is in no pool of bulkmail_ip_pools; add it to a pool, "
                    "or SPF would not cover the mail this host sends",
                )
            )
    if model.smtp_hosts and model.volume is None:
        errors.append(
            ModelError(
                "bulkmail_volume",
                "missing; give at least messages_per_day and peak_per_hour: the tuning model "
                "sizes Postfix from it",
            )
        )
    return errors


def parse_model(inputs: Mapping[str, Any]) -> Model:
    """Validate the whole inventory (`model_inputs()`'s form) in one pass; raise every problem.

    Hosts are checked only when the inputs name groups (a filter that knows only the domains
    may pass variables alone).
    """
    if not isinstance(inputs, Mapping) or not isinstance(inputs.get("variables"), Mapping):
        raise ModelError("bulkmail_model", "is not the model's inputs; run validate.yml first")
    raw = inputs["variables"]
    errors: list[ModelError] = []
    parsed: dict[str, Any] = {}

    def step(key: str, parse: Callable[[], Any]) -> None:
        try:
            parsed[key] = parse()
        except ModelError as error:
            errors.append(error)

    step("domains", lambda: tuple(parse_domains(raw.get("bulkmail_domains"))))
    step("ip_pools", lambda: parse_ip_pools(raw.get("bulkmail_ip_pools")))
    step("smtp_hosts", lambda: parse_smtp_hosts(group_hosts(inputs, "smtp")))
    step("dns_hosts", lambda: parse_dns_hosts(group_hosts(inputs, "dns")))
    step("hosts", lambda: parse_hosts(group_hosts(inputs, None), group="hosts"))
    step(
        "graveyards",
        lambda: parse_hosts(group_hosts(inputs, "smtp_fallback"), group="smtp_fallback"),
    )
    step(
        "web_hosts",
        lambda: parse_hosts(
            group_hosts(inputs, "web"),
            group="web",
            require=("bulkmail_public_ipv4",),
            why="the web hosts serve the MTA-STS policies at their public address",
        ),
    )
    step("db_hosts", lambda: parse_hosts(group_hosts(inputs, "db"), group="db"))
    step("admin", lambda: parse_administration(raw, has_hosts=bool(inputs.get("hosts"))))
    volume = raw.get("bulkmail_volume")
    step("volume", lambda: None if volume is None else parse_volume(volume))
    step("relays", lambda: parse_relays(raw.get("bulkmail_relays")))
    step("feedback", lambda: parse_feedback(raw.get("bulkmail_feedback")))
    step("log_archive", lambda: parse_log_archive(raw.get("bulkmail_log_archive")))
    step("_unsubscribe_keys", lambda: parse_unsubscribe_keys(raw.get("bulkmail_unsubscribe_keys")))
    step(
        "_erasure_keys",
        lambda: parse_unsubscribe_keys(raw.get("bulkmail_erasure_keys"), "bulkmail_erasure_keys"),
    )
    step("providers", lambda: parse_providers(raw.get("bulkmail_providers")))
    step("warmup_schedules", lambda: parse_warmup_schedules(raw.get("bulkmail_warmup_schedules")))
    step("outreach", lambda: parse_outreach(raw.get("bulkmail_outreach")))
    step(
        "trusted_senders",
        lambda: parse_trusted_networks(
            raw.get("bulkmail_trusted_networks"), raw.get("bulkmail_trusted_networks_allow_wide")
        ),
    )
    for key in DB_PASSWORDS:
        if raw.get(key) is not None:
            step(
                f"_{key}",
                lambda key=key: secret(
                    raw.get(key), key, f'keep it in vault, e.g. {key}: "{{{{ vault_{key} }}}}"'
                ),
            )
    raise_collected(errors)
    names = [domain.name for domain in parsed["domains"]]
    step("_role_extras", lambda: check_role_extras(inputs, names))
    step(
        "submission_accounts",
        lambda: parse_submission_accounts(raw.get("bulkmail_submission_accounts"), names),
    )
    providers = [provider.name for provider in parsed["providers"]]
    step(
        "lanes",
        lambda: parse_lanes(raw.get("bulkmail_lanes"), parsed["ip_pools"], providers=providers),
    )
    step("_tenants", lambda: parse_tenants(raw.get("bulkmail_tenants"), names))
    if "_tenants" in parsed:
        parsed["tenants"] = all_tenants(parsed["_tenants"], names)
        context = AccountContext(
            domain_tenants=domain_tenants(parsed["tenants"]),
            tenants=tuple(parsed["_tenants"]),
            relays=tuple(relay.name for relay in parsed["relays"]),
            schedules=parsed["warmup_schedules"],
        )
        files = inputs.get("files")
        step(
            "sender_accounts",
            lambda: parse_sender_accounts(
                raw.get("bulkmail_sender_accounts"),
                context,
                files if isinstance(files, Mapping) else {},
            ),
        )
    raise_collected(errors)
    model = Model(**{key: value for key, value in parsed.items() if not key.startswith("_")})
    errors += check_hosts(model.smtp_hosts, model.dns_hosts, model.hosts, model.ip_pools)
    errors += _cross_checks(model)
    errors += check_network_domains(model.trusted_senders, [d.name for d in model.domains])
    errors += check_feedback(
        model.feedback,
        [host.inventory_name for host in model.smtp_hosts],
        [host.inventory_name for host in model.graveyards],
        bool(model.domains),
    )
    raise_collected(errors)
    return model


def model_summary(model: Model) -> dict[str, Any]:
    """A plain-data view of a valid model for debug output: no password, no key."""
    return {
        "domains": [
            {
                "name": domain.name,
                "dkim_selectors": list(domain.dkim_selectors),
                "signing_selector": domain.signing_selector,
                "dmarc": {
                    "policy": domain.dmarc.policy,
                    "pct": domain.dmarc.pct,
                    "rua": list(domain.dmarc.rua),
                    "ruf": list(domain.dmarc.ruf),
                    "adkim": domain.dmarc.adkim,
                    "aspf": domain.dmarc.aspf,
                },
                "return_path_domain": domain.return_path_domain,
                "spf_include": list(domain.spf_include),
                "relays": list(domain.relays),
            }
            for domain in model.domains
        ],
        "ip_pools": {name: list(addresses) for name, addresses in model.ip_pools.items()},
        "pool_addresses": list(model.pool_addresses),
        "smtp_hosts": [host.inventory_name for host in model.smtp_hosts],
        "graveyards": [host.inventory_name for host in model.graveyards],
        "dns_hosts": [host.inventory_name for host in model.dns_hosts],
        "relays": {relay.name: f"{relay.host}:{relay.port}" for relay in model.relays},
        "providers": [provider.name for provider in model.providers],
        "lanes": [lane.name for lane in model.lanes],
        "trusted_networks": list(model.trusted_networks),
        "trusted_senders": {
            sender.network: ALL_DOMAINS if sender.domains is None else list(sender.domains)
            for sender in model.trusted_senders
        },
        "submission_accounts": [account.username for account in model.submission_accounts],
        "firewall": model.admin.firewall,
        "admin_networks": list(model.admin.networks),
        "receivers": [host.inventory_name for host in model.receivers],
        "operator_address": model.feedback.operator_address,
        "log_archive": _archive_summary(model.log_archive),
        "tenants": {name: list(domains) for name, domains in model.tenants.items()},
        "sender_accounts": len(model.sender_accounts),
        "warmup_schedules": sorted(model.warmup_schedules),
    }


def _archive_summary(archive: LogArchive | None) -> str | None:
    """One line on where the log lines go (no credential), or None without an archive."""
    if archive is None:
        return None
    where = f"s3 {archive.bucket}/{archive.prefix}<host>/ at {archive.endpoint}"
    clear = "" if archive.https else " (plain http: a lab's store only; production uses https)"
    return f"{where} every {archive.interval_minutes} min{clear}"


__all__ = [
    "GROUPS",
    "HOST_VARIABLES",
    "MODEL_VARIABLES",
    "Administration",
    "Domain",
    "Host",
    "Lane",
    "LogArchive",
    "Model",
    "ModelError",
    "ModelErrors",
    "OutreachSettings",
    "Provider",
    "Relay",
    "SenderAccount",
    "SubmissionAccount",
    "TrustedNetwork",
    "VolumeProfile",
    "group_hosts",
    "model_inputs",
    "model_summary",
    "parse_model",
]
