"""Parsers of published records: tag lists, SPF terms and syntax, DMARC records.

Pure Python, no Ansible import (also `bulkmail.logic.dns.parsers`). The builders in
records.py and the checkers (check_*.py) read records with these, and so does the DKIM
rotation (dkim/rotation.py) when it reads the key a name server serves.
"""

from __future__ import annotations

import ipaddress
import re

from ..model.domains import ALIGNMENT_MODES, DMARC_POLICIES, Dmarc, validate_mailto
from ..model.errors import ModelError
from ..model.fields import validate_domain_name

SPF_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
# RFC 7208 4.6.4: the terms that cause DNS lookups; ip4, ip6, all and exp do not count.
SPF_LOOKUP_MECHANISMS = ("include", "a", "mx", "ptr", "exists")
SPF_LOOKUP_MODIFIERS = ("redirect",)

_SPF_TERM = re.compile(
    r"^(?P<qualifier>[+\-~?]?)(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)"
    r"(?:(?P<sep>[:=])(?P<arg>.*)|(?P<cidr>/.*))?$"
)
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_DUAL_CIDR = re.compile(r"^(?:/(?P<v4>\d{1,2}))?(?://(?P<v6>\d{1,3}))?$")


def tag_list(text: str) -> tuple[dict[str, str], list[str]]:
    """Parse a `tag=value; ...` record (RFC 6376 3.2; DMARC, MTA-STS and TLS-RPT use it too).

    Returns the tags in order, and the problems found (duplicate or malformed tags).
    """
    tags: dict[str, str] = {}
    problems: list[str] = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        tag, equals, value = part.partition("=")
        tag = tag.strip()
        if not equals or not _TAG.match(tag):
            problems.append(f"{part!r} is not a tag=value pair")
            continue
        if tag in tags:
            problems.append(f"tag {tag!r} appears twice")
            continue
        tags[tag] = value.strip()
    return tags, problems


def is_spf_record(text: str) -> bool:
    """RFC 7208 4.5: "v=spf1" alone or followed by a space, in any case."""
    lowered = text.lower()
    return lowered == "v=spf1" or lowered.startswith("v=spf1 ")


def has_version(text: str, value: str) -> bool:
    """Whether a TXT record starts with `v=<value>` (DMARC1, STSv1, TLSRPTv1)."""
    return re.match(rf"v\s*=\s*{re.escape(value)}(?![A-Za-z0-9])", text.strip()) is not None


def split_spf_term(term: str) -> tuple[str, str, str, str]:
    """(qualifier, lower-case name, separator, argument) of one SPF term."""
    match = _SPF_TERM.match(term)
    if not match:
        return "", "", "", ""
    arg = match.group("arg") if match.group("sep") else (match.group("cidr") or "")
    return match.group("qualifier"), match.group("name").lower(), match.group("sep") or "", arg


def spf_lookup_terms(record: str) -> list[str]:
    """The terms of an SPF record that cost a DNS lookup (RFC 7208 4.6.4)."""
    terms = record.split()
    if not terms or terms[0].lower() != "v=spf1":
        raise ModelError("", f"{record!r} is not an SPF record (it must start with 'v=spf1')")
    lookups = []
    for term in terms[1:]:
        name, sep = split_spf_term(term)[1:3]
        if not name:
            continue
        is_modifier = sep == "="
        if (is_modifier and name in SPF_LOOKUP_MODIFIERS) or (
            not is_modifier and name in SPF_LOOKUP_MECHANISMS
        ):
            lookups.append(term)
    return lookups


def count_spf_lookups(record: str) -> int:
    """DNS lookups this record itself costs; nested includes cost more when they are resolved."""
    return len(spf_lookup_terms(record))


def _domain_spec_problem(term: str, spec: str) -> str | None:
    if "%" in spec:  # a macro (RFC 7208 7): expanded per message, not checkable here
        return None
    try:
        validate_domain_name(spec.rstrip(".").lower(), "", allow_underscore=True)
    except ModelError as error:
        return f"{term!r}: {error.problem}"
    return None


def spf_syntax_problems(record: str) -> list[str]:
    """Everything in an SPF record that makes receivers return permerror (RFC 7208 4.6, 12)."""
    terms = record.split()
    if not terms or terms[0].lower() != "v=spf1":
        return [f"{record!r} does not start with 'v=spf1'"]
    problems: list[str] = []
    modifiers: set[str] = set()
    for term in terms[1:]:
        qualifier, name, sep, arg = split_spf_term(term)
        if not name:
            problems.append(f"{term!r} is not an SPF mechanism or modifier")
            continue
        if sep == "=":
            if qualifier:
                problems.append(f"{term!r}: a modifier takes no qualifier")
            if name in modifiers and name in ("redirect", "exp"):
                problems.append(f"{term!r}: {name}= may appear only once")
            modifiers.add(name)
            if name in ("redirect", "exp"):
                problem = _domain_spec_problem(term, arg)
                if problem:
                    problems.append(problem)
            continue
        if name not in SPF_MECHANISMS:
            problems.append(
                f"{term!r} is not an SPF mechanism (known: {', '.join(SPF_MECHANISMS)})"
            )
            continue
        problem = _mechanism_problem(term, name, sep, arg)
        if problem:
            problems.append(problem)
    return problems


def _mechanism_problem(term: str, name: str, sep: str, arg: str) -> str | None:
    if name == "all":
        return f"{term!r}: 'all' takes no argument" if arg else None
    if name in ("include", "exists"):
        if sep != ":" or not arg:
            return f"{term!r}: {name} needs a domain, e.g. {name}:_spf.example.com"
        return _domain_spec_problem(term, arg)
    if name in ("ip4", "ip6"):
        if sep != ":" or not arg:
            return f"{term!r}: {name} needs an address, e.g. ip4:198.51.100.10"
        network = ipaddress.IPv4Network if name == "ip4" else ipaddress.IPv6Network
        try:
            network(arg, strict=False)
        except ValueError:
            kind = "IPv4" if name == "ip4" else "IPv6"
            return f"{term!r}: {arg!r} is not an {kind} address or network"
        return None
    # a, mx, ptr: an optional domain, then (a and mx) an optional dual CIDR length
    spec, slash, cidr = (arg if sep == ":" else "").partition("/")
    cidr = slash + cidr if sep == ":" else arg
    if sep == ":" and not spec:
        return f"{term!r}: the domain after ':' is empty"
    if cidr:
        match = _DUAL_CIDR.match(cidr)
        if name == "ptr" or not match or not cidr.strip("/"):
            return f"{term!r}: {cidr!r} is not a valid prefix length"
        if int(match.group("v4") or 0) > 32 or int(match.group("v6") or 0) > 128:
            return f"{term!r}: prefix length out of range"
    return _domain_spec_problem(term, spec) if spec else None


def spf_ip4_networks(record: str) -> list[ipaddress.IPv4Network]:
    """The ip4 networks an SPF record passes (qualifier + or none)."""
    networks = []
    for term in record.split()[1:]:
        qualifier, name, sep, arg = split_spf_term(term)
        if name == "ip4" and sep == ":" and qualifier in ("", "+"):
            try:
                networks.append(ipaddress.IPv4Network(arg, strict=False))
            except ValueError:
                continue
    return networks


def spf_all_term(record: str) -> tuple[str | None, list[str]]:
    """The record's `all` term, and the terms after it (receivers never reach those)."""
    terms = record.split()[1:]
    for index, term in enumerate(terms):
        name, sep = split_spf_term(term)[1:3]
        if name == "all" and sep != "=":
            after = [t for t in terms[index + 1 :] if split_spf_term(t)[2] != "="]
            return term, after
    return None, []


def spf_target(term: str) -> str:
    return split_spf_term(term)[3].rstrip(".").lower()


def _dmarc_uris(value: str, tag: str, problems: list[str]) -> tuple[str, ...]:
    uris = []
    for uri in (item.strip() for item in value.split(",")):
        if not uri:
            continue
        if uri.startswith("mailto:"):
            try:
                validate_mailto(uri, tag)
            except ModelError as error:
                problems.append(f"{tag}=: {error.problem}")
        elif not uri.startswith("https:"):
            problems.append(f"{tag}=: {uri!r} is not a mailto: URI")
        uris.append(uri)
    return tuple(uris)


def parse_dmarc_record(text: str) -> tuple[Dmarc | None, dict[str, str], list[str]]:
    """A published DMARC record as the model's Dmarc, its raw tags, and its problems."""
    tags, problems = tag_list(text)
    if next(iter(tags), None) != "v" or tags.get("v") != "DMARC1":
        problems.append("v=DMARC1 must be the first tag")
    policy = tags.get("p")
    if policy is None:
        problems.append("there is no p= tag (the policy)")
    elif policy not in DMARC_POLICIES:
        problems.append(f"p={policy} is not one of {', '.join(DMARC_POLICIES)}")
    if "sp" in tags and tags["sp"] not in DMARC_POLICIES:
        problems.append(f"sp={tags['sp']} is not one of {', '.join(DMARC_POLICIES)}")
    pct_text = tags.get("pct", "100")
    pct = int(pct_text) if pct_text.isdigit() else -1
    if not 0 <= pct <= 100:
        problems.append(f"pct={pct_text} is not a whole percentage from 0 to 100")
    modes = {}
    for tag in ("adkim", "aspf"):
        modes[tag] = tags.get(tag, "r")
        if modes[tag] not in ALIGNMENT_MODES:
            problems.append(f"{tag}={modes[tag]} is not r (relaxed) or s (strict)")
    rua = _dmarc_uris(tags.get("rua", ""), "rua", problems)
    ruf = _dmarc_uris(tags.get("ruf", ""), "ruf", problems)
    if problems or policy is None:
        return None, tags, problems
    return (
        Dmarc(policy, pct, rua, ruf, modes["adkim"], modes["aspf"]),
        tags,
        problems,
    )


DMARC_TAGS = ("v", "p", "sp", "pct", "rua", "ruf", "adkim", "aspf", "fo", "rf", "ri")
