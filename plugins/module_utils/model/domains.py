"""Sending domains (`bulkmail_domains`) and source-address pools (`bulkmail_ip_pools`)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ModelError, raise_collected
from .fields import (
    MAX_NAME_LENGTH,
    check_keys,
    entry_path,
    is_within,
    require_str,
    show,
    str_list,
    validate_domain_name,
    validate_ipv4,
    validate_selector,
)

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
_POOL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_MAILBOX_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+$")
_REPORT_SIZE = re.compile(r"^[0-9]+[kmgt]?$")


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


# --- scalars -------------------------------------------------------------------------------


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
        raise ModelError(path, f"{show(raw)} is not a mapping such as {{policy: none}}")
    check_keys(raw, DMARC_KEYS, path)
    policy = raw.get("policy")
    choices = ", ".join(DMARC_POLICIES)
    if policy is None:
        raise ModelError(f"{path}.policy", f"missing; set it to one of {choices}")
    if policy not in DMARC_POLICIES:
        raise ModelError(f"{path}.policy", f"{show(policy)} is not one of {choices}")
    pct = raw.get("pct", 100)
    if isinstance(pct, str) and pct.isdigit():
        pct = int(pct)
    if isinstance(pct, bool) or not isinstance(pct, int) or not 0 <= pct <= 100:
        raise ModelError(f"{path}.pct", f"{show(pct)} is not a percentage from 0 to 100")
    if pct != 100 and policy == "none":
        raise ModelError(
            f"{path}.pct",
            "applies only to policy quarantine or reject; remove pct or raise the policy",
        )
    uris: dict[str, tuple[str, ...]] = {}
    for key in ("rua", "ruf"):
        value = raw.get(key)
        items = [] if value is None else str_list(value, f"{path}.{key}")
        uris[key] = tuple(
            validate_mailto(item, entry_path(f"{path}.{key}", value, index))
            for index, item in enumerate(items)
        )
    modes: dict[str, str] = {}
    for key in ("adkim", "aspf"):
        mode = raw.get(key, "r")
        if mode not in ALIGNMENT_MODES:
            raise ModelError(f"{path}.{key}", f"{show(mode)} is not one of r (relaxed), s (strict)")
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
        raise ModelError(path, f"{show(raw)} is not a mapping such as {{mode: testing}}")
    check_keys(raw, MTA_STS_KEYS, path)
    choices = ", ".join(MTA_STS_MODES)
    mode = raw.get("mode")
    if mode is None:
        raise ModelError(
            f"{path}.mode", f"missing; set it to one of {choices} (start with testing)"
        )
    if mode not in MTA_STS_MODES:
        raise ModelError(f"{path}.mode", f"{show(mode)} is not one of {choices}")
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
            f"{show(max_age)} is not a number of seconds from 1 to {MTA_STS_MAX_AGE} "
            f"(RFC 8461 3.2); e.g. {MTA_STS_DEFAULT_MAX_AGE} for a week",
        )
    return MtaSts(mode=mode, max_age=max_age)


def parse_tls_rpt(raw: Any, path: str) -> TlsRpt | None:
    """`tls_rpt: {rua: mailto:... | https://... | [...]}` (RFC 8460 3)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{show(raw)} is not a mapping such as {{rua: 'mailto:tls-reports@<domain>'}}"
        )
    check_keys(raw, TLS_RPT_KEYS, path)
    value = raw.get("rua")
    if value is None or value == []:
        raise ModelError(
            f"{path}.rua", "missing; say where reports go, e.g. 'mailto:tls-reports@<domain>'"
        )
    uris: list[str] = []
    for index, item in enumerate(str_list(value, f"{path}.rua")):
        item_path = entry_path(f"{path}.rua", value, index)
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
        raise ModelError(path, f"{show(raw)} is not a mapping with at least name and dmarc")
    check_keys(raw, DOMAIN_KEYS, path)
    name = validate_domain_name(raw.get("name"), f"{path}.name")

    raw_selectors = raw.get("dkim_selectors")
    if raw_selectors is None or raw_selectors == []:
        raise ModelError(
            f"{path}.dkim_selectors", "missing; list at least one selector, e.g. [s2026a]"
        )
    selectors_list = str_list(raw_selectors, f"{path}.dkim_selectors")
    selectors: list[str] = []
    for index, item in enumerate(selectors_list):
        item_path = entry_path(f"{path}.dkim_selectors", raw_selectors, index)
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
        for index, item in enumerate(str_list(raw_includes, f"{path}.spf_include")):
            item_path = entry_path(f"{path}.spf_include", raw_includes, index)
            if isinstance(item, str) and item.startswith("include:"):
                raise ModelError(item_path, f"write the domain only: {item[len('include:') :]!r}")
            include = validate_domain_name(item, item_path, allow_underscore=True)
            if include in includes:
                raise ModelError(item_path, f"{include!r} is listed twice; list it once")
            includes.append(include)

    relays: list[str] = []
    raw_relays = raw.get("relays")
    if raw_relays is not None:
        for index, item in enumerate(str_list(raw_relays, f"{path}.relays")):
            item_path = entry_path(f"{path}.relays", raw_relays, index)
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
        raise ModelError(path, f"{show(raw)} is not a list of domains")
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
        raise ModelError(path, f"{show(raw)} is not a mapping of pool name to addresses")
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
                    f"pool name {show(name)} must be lower-case letters, digits, '-' or '_'",
                )
            if addresses is None or (isinstance(addresses, Sequence) and not addresses):
                raise ModelError(
                    pool_path, "is empty; list at least one address or remove the pool"
                )
            if isinstance(addresses, str) or not isinstance(addresses, Sequence):
                raise ModelError(pool_path, f"{show(addresses)} is not a list of IPv4 addresses")
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
