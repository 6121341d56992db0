"""DNS records derived from the inventory model: SPF, DKIM, DMARC, MX, NS, A, PTR and zones.

Pure Python, no Ansible import (also `bulkmail.logic.dns.records`). Records are plain dicts
{name, type, value, ttl}: `name` relative to its zone ("@" for the apex), `value` a string or,
for TXT, the list of <=255-byte character-strings of one record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ..feedback.addresses import UNSUBSCRIBE_HOST_LABEL
from ..model.domains import Dmarc, Domain, MtaSts, TlsRpt, parse_dmarc
from ..model.errors import ModelError, raise_collected
from ..model.fields import is_within, validate_domain_name
from ..model.hosts import Host, merge_hosts
from .parsers import spf_lookup_terms
from .zone_file import (
    RECORD_TYPES,
    Soa,
    absolute,
    normalize_record,
    relative_name,
    soa_from_mapping,
    txt_strings,
)

# RFC 7208 4.6.4: at most 10 terms that cause DNS lookups (parsers.spf_lookup_terms).
MAX_SPF_LOOKUPS = 10
SPF_QUALIFIERS = ("-", "~", "?", "+")
DKIM_KEY_TYPES = ("rsa", "ed25519")
ED25519_KEY_BYTES = 32
DEFAULT_TTL = 3600
MX_PREFERENCE = 10


# --- SPF -----------------------------------------------------------------------------------


def render_spf_record(
    ip4: Iterable[str],
    includes: Iterable[str] = (),
    *,
    mechanisms: Iterable[str] = (),
    all_qualifier: str = "-",
) -> str:
    """`v=spf1 ip4:... include:... -all`; refuse records needing more than 10 DNS lookups.

    Addresses are merged into the fewest CIDR blocks, so the same set always gives the same
    record. `mechanisms` are extra raw terms (e.g. "mx", "a:relay.example.com").
    """
    networks: list[ipaddress.IPv4Network] = []
    for address in ip4:
        try:
            networks.append(ipaddress.IPv4Network(str(address)))
        except ValueError:
            raise ModelError(
                "ip4", f"{address!r} is not an IPv4 address or network (write e.g. '198.51.100.10')"
            ) from None
    if all_qualifier not in SPF_QUALIFIERS:
        raise ModelError("all_qualifier", f"{all_qualifier!r} is not one of - ~ ? +")
    terms = ["v=spf1"]
    for network in ipaddress.collapse_addresses(networks):
        if network.prefixlen == 32:
            terms.append(f"ip4:{network.network_address}")
        else:
            terms.append(f"ip4:{network}")
    for include in includes:
        validate_domain_name(include, "includes", allow_underscore=True)
        terms.append(f"include:{include}")
    terms.extend(mechanisms)
    terms.append(f"{all_qualifier}all")
    record = " ".join(terms)
    lookups = spf_lookup_terms(record)
    if len(lookups) > MAX_SPF_LOOKUPS:
        raise ModelError(
            "",
            f"the SPF record needs {len(lookups)} DNS lookups ({', '.join(lookups)}); "
            f"RFC 7208 allows at most {MAX_SPF_LOOKUPS}, beyond which receivers fail SPF "
            "(permerror): remove includes or publish those senders' addresses as ip4",
        )
    return record


# --- DKIM ----------------------------------------------------------------------------------


def _decode_key(public_key_b64: str) -> bytes:
    if not isinstance(public_key_b64, str) or not public_key_b64.strip():
        raise ModelError("public_key", "missing; pass the base64 public key")
    try:
        return base64.b64decode("".join(public_key_b64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ModelError("public_key", "is not valid base64") from None


def dkim_key_type(public_key_b64: str) -> str:
    """rsa for a DER SubjectPublicKeyInfo, ed25519 for a raw 32-byte key (RFC 8463)."""
    return "ed25519" if len(_decode_key(public_key_b64)) == ED25519_KEY_BYTES else "rsa"


def dkim_txt_value(public_key_b64: str, key_type: str = "rsa") -> str:
    """The DKIM key record (RFC 6376 3.6.1): `v=DKIM1; k=rsa; p=<base64>`."""
    if key_type not in DKIM_KEY_TYPES:
        raise ModelError("key_type", f"{key_type!r} is not one of {', '.join(DKIM_KEY_TYPES)}")
    data = _decode_key(public_key_b64)
    if key_type == "ed25519" and len(data) != ED25519_KEY_BYTES:
        raise ModelError(
            "public_key",
            f"an ed25519 DKIM key is the raw 32-byte public key (RFC 8463), not {len(data)} bytes",
        )
    if key_type == "rsa" and (len(data) <= ED25519_KEY_BYTES or data[0] != 0x30):
        raise ModelError(
            "public_key", "an rsa DKIM key is a DER SubjectPublicKeyInfo (base64 of the DER)"
        )
    return f"v=DKIM1; k={key_type}; p={base64.b64encode(data).decode('ascii')}"


def dkim_txt_chunks(public_key_b64: str, key_type: str = "rsa") -> list[str]:
    """The DKIM TXT value as character-strings of at most 255 bytes (RFC 6376 3.6.2.2)."""
    return txt_strings(dkim_txt_value(public_key_b64, key_type))


# --- DMARC ---------------------------------------------------------------------------------


def render_dmarc_record(dmarc: Dmarc | Mapping[str, Any]) -> str:
    """`v=DMARC1; p=...` (RFC 7489 6.3); tags left at their defaults are not written."""
    if not isinstance(dmarc, Dmarc):
        dmarc = parse_dmarc(dmarc, "dmarc")
    tags = ["v=DMARC1", f"p={dmarc.policy}"]
    if dmarc.pct != 100:
        tags.append(f"pct={dmarc.pct}")
    if dmarc.rua:
        tags.append("rua=" + ",".join(dmarc.rua))
    if dmarc.ruf:
        tags.append("ruf=" + ",".join(dmarc.ruf))
    if dmarc.adkim != "r":
        tags.append(f"adkim={dmarc.adkim}")
    if dmarc.aspf != "r":
        tags.append(f"aspf={dmarc.aspf}")
    return "; ".join(tags)


# --- reverse DNS ---------------------------------------------------------------------------


def reverse_zone_name(ipv4: str) -> str:
    """The /24 in-addr.arpa zone of an address: 203.0.113.10 -> 113.0.203.in-addr.arpa."""
    octets = str(ipaddress.IPv4Address(ipv4)).split(".")
    return ".".join(reversed(octets[:3])) + ".in-addr.arpa"


def reverse_pointer(ipv4: str) -> str:
    return ipaddress.IPv4Address(ipv4).reverse_pointer


# --- MTA-STS and TLS-RPT -------------------------------------------------------------------

MTA_STS_POLICY_PATH = "/.well-known/mta-sts.txt"
MTA_STS_ID_LENGTH = 20  # RFC 8461 3.1: id is 1 to 32 letters or digits


def render_mta_sts_policy(mta_sts: MtaSts, mx_hosts: Sequence[str]) -> str:
    """The policy file (RFC 8461 3.2), CRLF-separated; `mx` the MX the zone publishes."""
    names = sorted({str(name).rstrip(".").lower() for name in mx_hosts})
    if not names and mta_sts.mode != "none":
        raise ModelError(
            "mta_sts", "no MX host to list in the policy; add a host to the smtp group"
        )
    lines = ["version: STSv1", f"mode: {mta_sts.mode}"]
    lines += [f"mx: {name}" for name in names]
    lines.append(f"max_age: {mta_sts.max_age}")
    return "".join(f"{line}\r\n" for line in lines)


def mta_sts_policy_id(policy: str) -> str:
    """The `id=` of the TXT record: changes exactly when the policy file does."""
    return hashlib.sha256(policy.encode()).hexdigest()[:MTA_STS_ID_LENGTH]


def render_mta_sts_record(policy: str) -> str:
    return f"v=STSv1; id={mta_sts_policy_id(policy)}"


def render_tls_rpt_record(tls_rpt: TlsRpt) -> str:
    """`v=TLSRPTv1; rua=...` (RFC 8460 3); several URIs are comma-separated."""
    return f"v=TLSRPTv1; rua={','.join(tls_rpt.rua)}"


def mta_sts_policies(domains: Sequence[Domain], smtp_hosts: Sequence[Host]) -> list[dict[str, Any]]:
    """What the web tier serves: per domain with mta_sts, its policy host, file and id."""
    mx_hosts = [str(host.hostname) for host in smtp_hosts]
    policies = []
    for index, domain in enumerate(domains):
        if domain.mta_sts is None:
            continue
        try:
            policy = render_mta_sts_policy(domain.mta_sts, mx_hosts)
        except ModelError as error:
            raise ModelError(f"bulkmail_domains[{index}].mta_sts", error.problem) from None
        policies.append(
            {
                "domain": domain.name,
                "host": f"mta-sts.{domain.name}",
                "mode": domain.mta_sts.mode,
                "policy": policy,
                "id": mta_sts_policy_id(policy),
            }
        )
    return policies


# --- zones ---------------------------------------------------------------------------------


def _rec(fqdn: str, rtype: str, value: Any, ttl: int) -> dict[str, Any]:
    return {"name": fqdn, "type": rtype, "value": value, "ttl": ttl}


def zone_records(
    domain: Domain,
    *,
    spf: str,
    smtp_hosts: Sequence[Host],
    dkim_keys: Mapping[str, Mapping[str, str]] | None,
    index: int = 0,
    ttl: int = DEFAULT_TTL,
    web_hosts: Sequence[Host] = (),
    mx_hosts: Sequence[Host] | None = None,
    unsubscribe: bool = False,
) -> list[dict[str, Any]]:
    """The records one sending domain needs, with fully qualified names.

    `mx_hosts` are the smtp hosts that receive (Model.receivers; default: every smtp host);
    with `unsubscribe` (one-click keys in the model) `unsubscribe.<domain>` points at the web
    hosts, which serve the RFC 8058 endpoint.

    MX and SPF at the domain and at its return-path domain (bounces come back to the smtp
    hosts), DKIM for every listed selector, DMARC at _dmarc; with mta_sts the `_mta-sts`
    TXT and `mta-sts` A records (the web hosts serve the policy), with tls_rpt `_smtp._tls`.
    """
    path = f"bulkmail_domains[{index}]"
    records: list[dict[str, Any]] = []
    owners = [domain.name]
    if domain.return_path_domain and domain.return_path_domain != domain.name:
        owners.append(domain.return_path_domain)
    receivers = smtp_hosts if mx_hosts is None else mx_hosts
    for owner in owners:
        for host in receivers:
            records.append(
                _rec(owner, "MX", f"{MX_PREFERENCE} {absolute(str(host.hostname))}", ttl)
            )
        records.append(_rec(owner, "TXT", txt_strings(spf), ttl))
    if dkim_keys is not None:
        for position, selector in enumerate(domain.dkim_selectors):
            key = (dkim_keys.get(domain.name) or {}).get(selector)
            if not key:
                raise ModelError(
                    f"{path}.dkim_selectors[{position}]",
                    f"no public key for {selector}._domainkey.{domain.name} in "
                    "bulkmail_dkim_public_keys; run the bulkmail.infra.dkim_keys role first",
                )
            try:
                chunks = dkim_txt_chunks(key, dkim_key_type(key))
            except ModelError as error:
                raise ModelError(
                    f"bulkmail_dkim_public_keys[{domain.name!r}][{selector!r}]", error.problem
                ) from None
            records.append(_rec(f"{selector}._domainkey.{domain.name}", "TXT", chunks, ttl))
    dmarc = txt_strings(render_dmarc_record(domain.dmarc))
    records.append(_rec(f"_dmarc.{domain.name}", "TXT", dmarc, ttl))
    if domain.mta_sts is not None:
        if not smtp_hosts or not web_hosts:
            raise ModelError(
                f"{path}.mta_sts",
                "needs an smtp host (the policy's mx) and a web host to serve "
                f"https://mta-sts.{domain.name}{MTA_STS_POLICY_PATH}; add them or remove mta_sts",
            )
        policy = render_mta_sts_policy(domain.mta_sts, [str(h.hostname) for h in receivers])
        records.append(_rec(f"_mta-sts.{domain.name}", "TXT", [render_mta_sts_record(policy)], ttl))
        for host in web_hosts:
            records.append(_rec(f"mta-sts.{domain.name}", "A", host.public_ipv4, ttl))
    if unsubscribe:
        host_name = f"{UNSUBSCRIBE_HOST_LABEL}.{domain.name}"
        records.extend(_rec(host_name, "A", host.public_ipv4, ttl) for host in web_hosts)
    if domain.tls_rpt is not None:
        tls_rpt = txt_strings(render_tls_rpt_record(domain.tls_rpt))
        records.append(_rec(f"_smtp._tls.{domain.name}", "TXT", tls_rpt, ttl))
    return records


def _label_key(label: str) -> tuple[int, int, str]:
    return (0, int(label), "") if label.isdigit() else (1, 0, label)


def _record_key(record: Mapping[str, Any]) -> tuple[Any, ...]:
    name = record["name"]
    owner = () if name == "@" else tuple(_label_key(x) for x in reversed(name.split(".")))
    value = record["value"]
    text = "".join(value) if isinstance(value, list) else str(value)
    return (owner, RECORD_TYPES.index(record["type"]), text)


def parse_extra_zones(
    raw: Any, taken: Iterable[str], ttl: int
) -> list[tuple[str, list[dict[str, Any]]]]:
    """`bind_extra_zones` as (zone, records with absolute names), every problem at once.

    `taken`: the zones served already, which an extra zone may not repeat. build_zones and
    playbooks/validate.yml (model.extras) both check the zones through here.
    """
    path = "bind_extra_zones"
    if raw is None:
        return []
    if isinstance(raw, (str, Mapping)) or not isinstance(raw, Sequence):
        raise ModelError(path, "is not a list of {name, records} zones")
    taken = set(taken)
    zones: list[tuple[str, list[dict[str, Any]]]] = []
    errors: list[ModelError] = []
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        try:
            if not isinstance(item, Mapping):
                raise ModelError(item_path, "is not a mapping {name, records}")
            for key in item:
                if key not in ("name", "records"):
                    raise ModelError(item_path, f"unknown key {key!r}; a zone has name, records")
            name = validate_domain_name(item.get("name"), f"{item_path}.name", min_labels=1)
            if name in taken:
                raise ModelError(
                    f"{item_path}.name",
                    f"{name!r} is already served (a sending domain, a reverse zone or an extra "
                    "zone listed before); its records come from the model, remove it here",
                )
            taken.add(name)
            records_raw = item.get("records") or []
            if isinstance(records_raw, (str, Mapping)) or not isinstance(records_raw, Sequence):
                raise ModelError(f"{item_path}.records", "is not a list of records")
            records = [
                normalize_record(record, name, f"{item_path}.records[{position}]", ttl)
                for position, record in enumerate(records_raw)
            ]
            for record in records:
                fqdn = name if record["name"] == "@" else f"{record['name']}.{name}"
                record["name"] = fqdn
            zones.append((name, records))
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return zones


def _zone_of(fqdn: str, zones: Iterable[str]) -> str | None:
    """The most specific served zone containing `fqdn`."""
    matches = [zone for zone in zones if is_within(fqdn, zone)]
    return max(matches, key=len) if matches else None


def default_soa(dns_hosts: Sequence[Host], overrides: Mapping[str, Any] | None) -> Soa:
    """mname: the first dns host; rname: hostmaster in the first dns host's domain."""
    primary = str(dns_hosts[0].hostname)
    parent = primary.split(".", 1)[1] if primary.count(".") >= 2 else primary
    raw: dict[str, Any] = {"mname": primary, "rname": f"hostmaster@{parent}"}
    raw.update({key: value for key, value in (overrides or {}).items() if value is not None})
    return soa_from_mapping(raw, "bind_soa")


def build_zones(
    domains: Sequence[Domain],
    ip_pools: Mapping[str, Sequence[str]],
    smtp_hosts: Sequence[Host],
    dns_hosts: Sequence[Host],
    hosts: Sequence[Host] = (),
    dkim_keys: Mapping[str, Mapping[str, str]] | None = None,
    *,
    extra_zones: Any = None,
    soa: Mapping[str, Any] | None = None,
    ttl: int = DEFAULT_TTL,
    reverse_zones: bool = True,
    web_hosts: Sequence[Host] = (),
    mx_hosts: Sequence[Host] | None = None,
    unsubscribe: bool = False,
) -> list[dict[str, Any]]:
    """Every zone the dns tier serves, with its SOA parameters and full record list.

    Zones: the sending domains (model order), the /24 reverse zones of the smtp hosts'
    public addresses, then the extra zones (inventory order). Records are sorted in DNS
    canonical order, so the same model always gives the same files.
    """
    if not dns_hosts:
        raise ModelError(
            "groups['dns']", "is empty; the zones need at least one dns host for NS and SOA"
        )
    soa_params = default_soa(dns_hosts, soa)
    addresses = sorted(
        {address for pool in ip_pools.values() for address in pool},
        key=ipaddress.IPv4Address,
    )

    kinds: dict[str, str] = {domain.name: "domain" for domain in domains}
    if reverse_zones:
        for host in smtp_hosts:
            for address in host.public_addresses:
                kinds.setdefault(reverse_zone_name(address), "reverse")
    reverse_names = sorted(
        (name for name, kind in kinds.items() if kind == "reverse"),
        key=lambda name: [int(x) for x in reversed(name.split(".")[:3])],
    )
    extras = parse_extra_zones(extra_zones, kinds, ttl)
    order = (
        [domain.name for domain in domains] + reverse_names + [name for name, _records in extras]
    )
    kinds.update({name: "extra" for name, _records in extras})

    wanted: list[dict[str, Any]] = []
    errors: list[ModelError] = []
    for index, domain in enumerate(domains):
        try:
            spf = render_spf_record(addresses, domain.spf_include)
        except ModelError as error:
            errors.append(ModelError(f"bulkmail_domains[{index}].spf_include", error.problem))
            continue
        try:
            wanted.extend(
                zone_records(
                    domain,
                    spf=spf,
                    smtp_hosts=smtp_hosts,
                    dkim_keys=dkim_keys,
                    index=index,
                    ttl=ttl,
                    web_hosts=web_hosts,
                    mx_hosts=mx_hosts,
                    unsubscribe=unsubscribe,
                )
            )
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)

    for _zone, records in extras:
        wanted.extend(records)
    nameservers = [absolute(str(host.hostname)) for host in dns_hosts]
    for zone in order:
        wanted.extend(_rec(zone, "NS", ns, ttl) for ns in nameservers)
        parent = _zone_of(zone, [z for z in order if z != zone])
        if parent is not None:  # a served zone inside another: delegate it, with glue
            wanted.extend(_rec(zone, "NS", ns, ttl) | {"zone": parent} for ns in nameservers)
            for host in dns_hosts:
                if is_within(str(host.hostname), zone):
                    glue = _rec(str(host.hostname), "A", host.public_ipv4, ttl)
                    wanted.append(glue | {"zone": parent})
    for host in sorted(merge_hosts(smtp_hosts, dns_hosts, hosts), key=lambda h: str(h.hostname)):
        if host.hostname:  # every address: PTR(address) -> hostname -> A must come back
            wanted.extend(_rec(host.hostname, "A", a, ttl) for a in host.public_addresses)
    if reverse_zones:
        for host in smtp_hosts:
            for address in host.public_addresses:
                ptr = reverse_pointer(address)
                wanted.append(_rec(ptr, "PTR", absolute(str(host.hostname)), ttl))

    by_zone: dict[str, list[dict[str, Any]]] = {zone: [] for zone in order}
    for record in wanted:
        zone = record.pop("zone", None) or _zone_of(record["name"], order)
        if zone is None:  # e.g. a host whose name is in a zone served elsewhere
            continue
        record["name"] = relative_name(record["name"], zone)
        if record not in by_zone[zone]:
            by_zone[zone].append(record)

    for zone, records in by_zone.items():
        _check_single_spf(zone, records)
    return [
        {
            "name": zone,
            "kind": kinds[zone],
            "soa": asdict(soa_params),
            "ttl": ttl,
            "records": sorted(by_zone[zone], key=_record_key),
        }
        for zone in order
    ]


def _check_single_spf(zone: str, records: Sequence[Mapping[str, Any]]) -> None:
    """RFC 7208 3.2: two SPF records at one name are a permanent error at every receiver."""
    seen: dict[str, str] = {}
    for record in records:
        if record["type"] != "TXT":
            continue
        text = "".join(record["value"])
        if not text.lower().startswith("v=spf1"):
            continue
        owner = record["name"]
        if owner in seen and seen[owner] != text:
            fqdn = zone if owner == "@" else f"{owner}.{zone}"
            raise ModelError(
                "bulkmail_domains",
                f"two different SPF records would be published at {fqdn} ({seen[owner]!r} and "
                f"{text!r}); give the domains that share this name the same spf_include",
            )
        seen[owner] = text
