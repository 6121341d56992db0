"""The inventory model (docs/model.md), parsed and validated.

Pure Python, no Ansible import: the same file is `bulkmail.logic.model.domains` in the runtime.
Every error is a `ModelError` whose message starts with the path of the offending field
(`bulkmail_domains[1].dmarc.policy`) and says how to fix it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DMARC_POLICIES = ("none", "quarantine", "reject")
ALIGNMENT_MODES = ("r", "s")
DOMAIN_KEYS = (
    "name",
    "dkim_selectors",
    "dmarc",
    "return_path_domain",
    "spf_include",
    "relays",
    "mta_sts",
    "tls_rpt",
)
DMARC_KEYS = ("policy", "pct", "rua", "ruf", "adkim", "aspf")
MTA_STS_MODES = ("testing", "enforce", "none")
MTA_STS_KEYS = ("mode", "max_age")
# RFC 8461 3.2: max_age at most 31557600 s (about a year); a week is a common start.
MTA_STS_MAX_AGE = 31557600
MTA_STS_DEFAULT_MAX_AGE = 604800
TLS_RPT_KEYS = ("rua",)
MAX_NAME_LENGTH = 253

_LDH_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names that are not host names (SPF include targets such as _spf.google.com) may use "_".
_DNS_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_POOL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_MAILBOX_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_REPORT_SIZE = re.compile(r"^[0-9]+[kmgt]?$")


class ModelError(ValueError):
    """A problem in the inventory model; the message names the field and the fix."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class ModelErrors(ModelError):
    """Several independent problems, reported together so one run shows all of them."""

    def __init__(self, errors: Sequence[ModelError]) -> None:
        lines = "\n".join(f"- {error}" for error in errors)
        super().__init__("", f"{len(errors)} problems in the inventory model:\n{lines}")
        self.errors = list(errors)


def raise_collected(errors: Sequence[ModelError]) -> None:
    """Raise nothing, the one error, or all of them."""
    flat: list[ModelError] = []
    for error in errors:
        flat.extend(error.errors if isinstance(error, ModelErrors) else [error])
    if len(flat) == 1:
        raise flat[0]
    if flat:
        raise ModelErrors(flat)


@dataclass(frozen=True)
class Dmarc:
    policy: str
    pct: int = 100
    rua: tuple[str, ...] = ()
    ruf: tuple[str, ...] = ()
    adkim: str = "r"
    aspf: str = "r"


@dataclass(frozen=True)
class MtaSts:
    mode: str
    max_age: int = MTA_STS_DEFAULT_MAX_AGE


@dataclass(frozen=True)
class TlsRpt:
    rua: tuple[str, ...]


@dataclass(frozen=True)
class Domain:
    name: str
    dkim_selectors: tuple[str, ...]
    dmarc: Dmarc
    return_path_domain: str | None = None
    spf_include: tuple[str, ...] = ()
    mta_sts: MtaSts | None = None
    # Names of bulkmail_relays, in failover order: this domain's mail goes through them.
    relays: tuple[str, ...] = ()
    tls_rpt: TlsRpt | None = None

    @property
    def signing_selector(self) -> str:
        """The first selector signs; the others stay published during a rotation."""
        return self.dkim_selectors[0]


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


@dataclass(frozen=True)
class Model:
    domains: tuple[Domain, ...]
    ip_pools: dict[str, tuple[str, ...]]
    smtp_hosts: tuple[Host, ...] = ()
    dns_hosts: tuple[Host, ...] = ()
    hosts: tuple[Host, ...] = field(default=())

    @property
    def pool_addresses(self) -> tuple[str, ...]:
        return pool_addresses(self.ip_pools)


# --- scalars -------------------------------------------------------------------------------


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def require_str(value: Any, path: str, what: str = "a string") -> str:
    if not isinstance(value, str) or not value:
        raise ModelError(path, f"{_show(value)} is not {what}")
    return value


def validate_domain_name(
    value: Any,
    path: str,
    *,
    allow_underscore: bool = False,
    min_labels: int = 2,
    relative: bool = False,
) -> str:
    """Return `value` if it is a lower-case DNS name without a trailing dot (RFC 1035/1123).

    `relative` names (record owners inside a zone, such as "10" in a reverse zone) may be
    a single, all-numeric label.
    """
    if value is None or value == "":
        raise ModelError(path, "missing; set a domain name such as 'example.com'")
    name = require_str(value, path, "a domain name")
    if name.endswith("."):
        raise ModelError(path, f"{name!r} must not end with a dot: write {name.rstrip('.')!r}")
    if not name.isascii():
        try:
            hint = f": write {name.encode('idna').decode('ascii')!r}"
        except UnicodeError:
            hint = ""
        raise ModelError(
            path, f"{name!r} is not ASCII; write internationalized names in punycode{hint}"
        )
    if name != name.lower():
        raise ModelError(path, f"{name!r} must be written in lower case: {name.lower()!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ModelError(path, f"{name!r} is longer than {MAX_NAME_LENGTH} characters")
    labels = name.split(".")
    pattern = _DNS_LABEL if allow_underscore else _LDH_LABEL
    allowed = (
        "letters, digits, hyphens and underscores"
        if allow_underscore
        else ("letters, digits and hyphens")
    )
    for label in labels:
        if not label:
            raise ModelError(path, f"{name!r} is not a valid domain name: empty label")
        if len(label) > 63:
            raise ModelError(
                path, f"{name!r} is not a valid domain name: label {label!r} is longer than 63"
            )
        if label.startswith("-") or label.endswith("-"):
            raise ModelError(
                path,
                f"{name!r} is not a valid domain name: "
                f"label {label!r} must not start or end with a hyphen",
            )
        if not pattern.match(label):
            raise ModelError(
                path,
                f"{name!r} is not a valid domain name: label {label!r} may contain only {allowed}",
            )
    if relative:
        return name
    if len(labels) < min_labels:
        raise ModelError(
            path, f"{name!r} is not a fully qualified domain name: write e.g. '{name}.com'"
        )
    if labels[-1].isdigit():
        raise ModelError(path, f"{name!r} is an address, not a domain name")
    return name


def validate_selector(value: Any, path: str) -> str:
    """A DKIM selector (RFC 6376 3.1): dot-separated labels of letters, digits and hyphens."""
    selector = require_str(value, path, "a DKIM selector")
    try:
        validate_domain_name(selector.lower(), path, relative=True)
    except ModelError:
        raise ModelError(
            path,
            f"{selector!r} is not a valid DKIM selector: use letters, digits and hyphens, "
            "e.g. 's2026a'",
        ) from None
    if selector != selector.lower():
        raise ModelError(path, f"{selector!r} must be written in lower case: {selector.lower()!r}")
    return selector


def validate_ipv4(value: Any, path: str) -> str:
    """A dotted-quad IPv4 address, returned in canonical form."""
    text = value if isinstance(value, str) else None
    try:
        if text is None:
            raise ValueError
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ModelError(
            path, f"{_show(value)} is not a valid IPv4 address (write e.g. '198.51.100.10')"
        ) from None


def is_within(name: str, zone: str) -> bool:
    """True if `name` is `zone` or a name below it."""
    return name == zone or name.endswith("." + zone)


def _str_list(value: Any, path: str) -> list[Any]:
    """Accept one string or a list, as inventories write both."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise ModelError(path, f"{_show(value)} is not a list of strings")


def _item_path(path: str, container: Any, index: int) -> str:
    """`path[index]` for a list, `path` for a single string written in place of a list."""
    return path if isinstance(container, str) else f"{path}[{index}]"


def _check_keys(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ModelError(
                path, f"unknown key {key!r}; known keys are {', '.join(allowed)} (docs/model.md)"
            )


# --- DMARC ---------------------------------------------------------------------------------


def validate_mailto(value: Any, path: str) -> str:
    """A DMARC report URI (RFC 7489 6.2): mailto:local@domain, optionally with !size."""
    uri = require_str(value, path, "a mailto: URI")
    example = uri if "@" in uri and ":" not in uri else "dmarc@example.com"
    fix = f"write it as 'mailto:{example}'"
    if not uri.startswith("mailto:"):
        raise ModelError(path, f"{uri!r} is not a mailto: URI; {fix}")
    address, _bang, size = uri[len("mailto:") :].partition("!")
    if size and not _REPORT_SIZE.match(size):
        raise ModelError(path, f"{uri!r} has an invalid size limit {size!r}; use e.g. '!10m'")
    local, at, domain = address.rpartition("@")
    if not at or not local or not _MAILBOX_LOCAL.match(local) or "," in address:
        raise ModelError(path, f"{uri!r} is not a valid mailbox address; {fix}")
    try:
        validate_domain_name(domain.lower(), path)
    except ModelError:
        raise ModelError(
            path, f"{uri!r} does not name a valid mail domain ({domain!r}); {fix}"
        ) from None
    return uri


def parse_dmarc(raw: Any, path: str) -> Dmarc:
    if raw is None:
        raise ModelError(
            path,
            "missing; bulk senders must publish DMARC: add at least {policy: none, "
            "rua: 'mailto:dmarc@<domain>'}",
        )
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{_show(raw)} is not a mapping such as {{policy: none}}")
    _check_keys(raw, DMARC_KEYS, path)
    policy = raw.get("policy")
    choices = ", ".join(DMARC_POLICIES)
    if policy is None:
        raise ModelError(f"{path}.policy", f"missing; set it to one of {choices}")
    if policy not in DMARC_POLICIES:
        raise ModelError(f"{path}.policy", f"{_show(policy)} is not one of {choices}")
    pct = raw.get("pct", 100)
    if isinstance(pct, str) and pct.isdigit():
        pct = int(pct)
    if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
        raise ModelError(f"{path}.pct", f"{_show(pct)} is not a percentage from 0 to 100")
    if pct != 100 and policy == "none":
        raise ModelError(
            f"{path}.pct",
            "applies only to policy quarantine or reject; remove pct or raise the policy",
        )
    uris: dict[str, tuple[str, ...]] = {}
    for key in ("rua", "ruf"):
        value = raw.get(key)
        items = [] if value is None else _str_list(value, f"{path}.{key}")
        uris[key] = tuple(
            validate_mailto(item, _item_path(f"{path}.{key}", value, index))
            for index, item in enumerate(items)
        )
    modes: dict[str, str] = {}
    for key in ("adkim", "aspf"):
        mode = raw.get(key, "r")
        if mode not in ALIGNMENT_MODES:
            raise ModelError(
                f"{path}.{key}", f"{_show(mode)} is not one of r (relaxed), s (strict)"
            )
        modes[key] = mode
    return Dmarc(
        policy=policy,
        pct=pct,
        rua=uris["rua"],
        ruf=uris["ruf"],
        adkim=modes["adkim"],
        aspf=modes["aspf"],
    )


# --- MTA-STS and TLS-RPT -------------------------------------------------------------------


def parse_mta_sts(raw: Any, path: str) -> MtaSts | None:
    """`mta_sts: {mode: testing|enforce|none, max_age: seconds}` (RFC 8461 3.2)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{_show(raw)} is not a mapping such as {{mode: testing}}")
    _check_keys(raw, MTA_STS_KEYS, path)
    choices = ", ".join(MTA_STS_MODES)
    mode = raw.get("mode")
    if mode is None:
        raise ModelError(
            f"{path}.mode", f"missing; set it to one of {choices} (start with testing)"
        )
    if mode not in MTA_STS_MODES:
        raise ModelError(f"{path}.mode", f"{_show(mode)} is not one of {choices}")
    max_age = raw.get("max_age", MTA_STS_DEFAULT_MAX_AGE)
    if isinstance(max_age, str) and max_age.isdigit():
        max_age = int(max_age)
    if (
        isinstance(max_age, bool)
        or not isinstance(max_age, int)
        or not 0 < max_age <= MTA_STS_MAX_AGE
    ):
        raise ModelError(
            f"{path}.max_age",
            f"{_show(max_age)} is not a number of seconds from 1 to {MTA_STS_MAX_AGE} "
            f"(RFC 8461 3.2); e.g. {MTA_STS_DEFAULT_MAX_AGE} for a week",
        )
    return MtaSts(mode=mode, max_age=max_age)


def parse_tls_rpt(raw: Any, path: str) -> TlsRpt | None:
    """`tls_rpt: {rua: mailto:... | https://... | [...]}` (RFC 8460 3)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{_show(raw)} is not a mapping such as {{rua: 'mailto:tls-reports@<domain>'}}"
        )
    _check_keys(raw, TLS_RPT_KEYS, path)
    value = raw.get("rua")
    if value is None or value == []:
        raise ModelError(
            f"{path}.rua", "missing; say where reports go, e.g. 'mailto:tls-reports@<domain>'"
        )
    uris: list[str] = []
    for index, item in enumerate(_str_list(value, f"{path}.rua")):
        item_path = _item_path(f"{path}.rua", value, index)
        if isinstance(item, str) and item.startswith("https://") and len(item) > len("https://"):
            uris.append(item)
            continue
        uri = validate_mailto(item, item_path)
        if "!" in uri:
            raise ModelError(item_path, f"{uri!r}: TLS-RPT takes no size limit; remove the '!...'")
        uris.append(uri)
    return TlsRpt(rua=tuple(uris))


# --- domains -------------------------------------------------------------------------------


def parse_domain(raw: Any, path: str) -> Domain:
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{_show(raw)} is not a mapping with at least name and dmarc")
    _check_keys(raw, DOMAIN_KEYS, path)
    name = validate_domain_name(raw.get("name"), f"{path}.name")

    raw_selectors = raw.get("dkim_selectors")
    if raw_selectors is None or raw_selectors == []:
        raise ModelError(
            f"{path}.dkim_selectors", "missing; list at least one selector, e.g. [s2026a]"
        )
    selectors_list = _str_list(raw_selectors, f"{path}.dkim_selectors")
    selectors: list[str] = []
    for index, item in enumerate(selectors_list):
        item_path = _item_path(f"{path}.dkim_selectors", raw_selectors, index)
        selector = validate_selector(item, item_path)
        if selector in selectors:
            raise ModelError(item_path, f"{selector!r} is listed twice; list each selector once")
        if len(f"{selector}._domainkey.{name}") > MAX_NAME_LENGTH:
            raise ModelError(item_path, f"{selector!r} makes the DKIM record name too long")
        selectors.append(selector)

    dmarc = parse_dmarc(raw.get("dmarc"), f"{path}.dmarc")

    return_path = raw.get("return_path_domain")
    if return_path is not None:
        rp_path = f"{path}.return_path_domain"
        return_path = validate_domain_name(return_path, rp_path)
        if not is_within(return_path, name):
            raise ModelError(
                rp_path,
                f"{return_path!r} is not {name!r} or a subdomain of it, so SPF would not align "
                f"with the From domain under DMARC; use e.g. 'bounce.{name}'",
            )
        if return_path != name and dmarc.aspf == "s":
            raise ModelError(
                rp_path,
                f"{return_path!r} does not align with {name!r} under strict SPF alignment "
                f"(dmarc.aspf: s); set dmarc.aspf to r or return_path_domain to {name!r}",
            )

    raw_includes = raw.get("spf_include")
    includes: list[str] = []
    if raw_includes is not None:
        for index, item in enumerate(_str_list(raw_includes, f"{path}.spf_include")):
            item_path = _item_path(f"{path}.spf_include", raw_includes, index)
            if isinstance(item, str) and item.startswith("include:"):
                raise ModelError(item_path, f"write the domain only: {item[len('include:') :]!r}")
            include = validate_domain_name(item, item_path, allow_underscore=True)
            if include in includes:
                raise ModelError(item_path, f"{include!r} is listed twice; list it once")
            includes.append(include)

    relays: list[str] = []
    raw_relays = raw.get("relays")
    if raw_relays is not None:
        for index, item in enumerate(_str_list(raw_relays, f"{path}.relays")):
            item_path = _item_path(f"{path}.relays", raw_relays, index)
            if item in relays:
                raise ModelError(item_path, f"{item!r} is listed twice; list each relay once")
            relays.append(item)

    return Domain(
        name=name,
        dkim_selectors=tuple(selectors),
        dmarc=dmarc,
        return_path_domain=return_path,
        spf_include=tuple(includes),
        relays=tuple(relays),
        mta_sts=parse_mta_sts(raw.get("mta_sts"), f"{path}.mta_sts"),
        tls_rpt=parse_tls_rpt(raw.get("tls_rpt"), f"{path}.tls_rpt"),
    )


def parse_domains(raw: Any, path: str = "bulkmail_domains") -> list[Domain]:
    """Parse `bulkmail_domains`; raise ModelError (ModelErrors for several problems)."""
    if raw is None:
        raise ModelError(path, "missing; list the sending domains (docs/model.md)")
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise ModelError(path, f"{_show(raw)} is not a list of domains")
    if not raw:
        raise ModelError(path, "is empty; list at least one sending domain")
    domains: list[Domain] = []
    errors: list[ModelError] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        try:
            domain = parse_domain(item, item_path)
        except ModelError as error:
            errors.append(error)
            continue
        if domain.name in seen:
            errors.append(
                ModelError(
                    f"{item_path}.name",
                    f"{domain.name!r} is already listed at {path}[{seen[domain.name]}]; "
                    "list each domain once",
                )
            )
            continue
        seen[domain.name] = index
        domains.append(domain)
    raise_collected(errors)
    return domains


# --- IP pools ------------------------------------------------------------------------------


def parse_ip_pools(raw: Any, path: str = "bulkmail_ip_pools") -> dict[str, tuple[str, ...]]:
    """Parse `bulkmail_ip_pools`: pool name -> non-empty list of IPv4 addresses."""
    if raw is None:
        raise ModelError(path, "missing; define at least one pool, e.g. {default: [198.51.100.10]}")
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{_show(raw)} is not a mapping of pool name to addresses")
    if not raw:
        raise ModelError(
            path, "is empty; define at least one pool, e.g. {default: [198.51.100.10]}"
        )
    pools: dict[str, tuple[str, ...]] = {}
    errors: list[ModelError] = []
    for name, addresses in raw.items():
        pool_path = f"{path}.{name}"
        try:
            if not isinstance(name, str) or not _POOL_NAME.match(name):
                raise ModelError(
                    path,
                    f"pool name {_show(name)} must be lower-case letters, digits, '-' or '_'",
                )
            if addresses is None or (isinstance(addresses, Sequence) and not addresses):
                raise ModelError(
                    pool_path, "is empty; list at least one address or remove the pool"
                )
            if isinstance(addresses, str) or not isinstance(addresses, Sequence):
                raise ModelError(pool_path, f"{_show(addresses)} is not a list of IPv4 addresses")
            parsed: list[str] = []
            for index, address in enumerate(addresses):
                item_path = f"{pool_path}[{index}]"
                ipv4 = validate_ipv4(address, item_path)
                if ipv4 in parsed:
                    raise ModelError(item_path, f"{ipv4} is listed twice in this pool")
                parsed.append(ipv4)
            pools[name] = tuple(parsed)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return pools


def pool_addresses(pools: Mapping[str, Iterable[str]]) -> tuple[str, ...]:
    """Every pool address once, in numeric order."""
    unique = {
        ipaddress.IPv4Address(address) for addresses in pools.values() for address in addresses
    }
    return tuple(str(address) for address in sorted(unique))


# --- hosts ---------------------------------------------------------------------------------


def parse_host(raw: Any, index: int = 0, *, group: str = "hosts") -> Host:
    """Read the bulkmail_* variables of one host (a hostvars entry or a plain mapping)."""
    if isinstance(raw, Host):
        return raw
    if not isinstance(raw, Mapping):
        raise ModelError(f"{group}[{index}]", f"{_show(raw)} is not a host's variables")
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
            f"{path}.bulkmail_extra_ipv4", f"{_show(extra)} is not a list of IPv4 addresses"
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
        raise ModelError(group, f"{_show(raw)} is not a list of hosts' variables")
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


# --- the whole model -----------------------------------------------------------------------


def _check_hosts(model: Model) -> list[ModelError]:
    errors: list[ModelError] = []
    owners: dict[str, str] = {}
    for host in merge_hosts(model.smtp_hosts, model.dns_hosts, model.hosts):
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
    for host in model.smtp_hosts:
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
    if model.smtp_hosts:
        known = "; ".join(
            f"{host.inventory_name}: {', '.join(host.public_addresses)}"
            for host in model.smtp_hosts
        )
        for pool, addresses in model.ip_pools.items():
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


def validate_model(
    domains: Any,
    ip_pools: Any,
    smtp_hosts: Any = None,
    dns_hosts: Any = None,
    hosts: Any = None,
) -> Model:
    """Parse and cross-check the whole model; report every problem found at once.

    Hosts are checked only when given (None skips the host checks).
    """
    errors: list[ModelError] = []
    parsed: dict[str, Any] = {}
    steps: list[tuple[str, Any]] = [
        ("domains", lambda: tuple(parse_domains(domains))),
        ("ip_pools", lambda: parse_ip_pools(ip_pools)),
        ("smtp_hosts", lambda: parse_smtp_hosts(smtp_hosts)),
        ("dns_hosts", lambda: parse_dns_hosts(dns_hosts)),
        ("hosts", lambda: parse_hosts(hosts, group="hosts")),
    ]
    for key, step in steps:
        try:
            parsed[key] = step()
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    model = Model(**parsed)
    raise_collected(_check_hosts(model))
    return model


def model_summary(model: Model) -> dict[str, Any]:
    """A plain-data view of a valid model, for debug output and other tools."""
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
            }
            for domain in model.domains
        ],
        "ip_pools": {name: list(addresses) for name, addresses in model.ip_pools.items()},
        "pool_addresses": list(model.pool_addresses),
        "smtp_hosts": [host.inventory_name for host in model.smtp_hosts],
        "dns_hosts": [host.inventory_name for host in model.dns_hosts],
    }
