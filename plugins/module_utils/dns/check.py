"""What a sending domain publishes in DNS, checked against what it should publish.

Pure Python, no Ansible import and no network code (also `bulkmail.logic.dns.check`). The
caller passes a `resolve(name, rdtype) -> list[str]` function; the two doors are the
`bulkmail check-dns` command (src/bulkmail/check_dns.py) and the `bulkmail.infra.check_dns`
module, both with dnspython. The contract of `resolve`:

- `name` is lower case without a trailing dot; `rdtype` is "TXT", "MX", "A", "AAAA" or "PTR";
- it returns one string per record in presentation form ("10 mta1.example.com.",
  "198.51.100.10", "mta1.example.com."), except TXT: the record's character-strings joined
  with nothing in between and without quotes, as receivers read it;
- it returns [] when the name does not exist (NXDOMAIN) or has no record of that type;
- it raises `LookupFailed` when it gets no usable answer (timeout, SERVFAIL, REFUSED).

Every check has a name, a status (pass, warn, fail), whether it is required, the reason an
operator reads and one sentence saying what to do. A required check that fails makes the
domain fail; problems in checks that are not required are warnings.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model.domains import (
    ALIGNMENT_MODES,
    DMARC_POLICIES,
    Dmarc,
    ModelError,
    MtaSts,
    parse_domain,
    validate_domain_name,
    validate_ipv4,
    validate_mailto,
)
from .records import (
    MAX_SPF_LOOKUPS,
    MTA_STS_ID_LENGTH,
    MTA_STS_POLICY_PATH,
    mta_sts_policy_id,
    render_dmarc_record,
    render_mta_sts_policy,
    render_spf_record,
    reverse_pointer,
)
from .records import spf_lookup_terms as _spf_lookup_terms

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
except ImportError:  # key sizes then go unchecked, and the DKIM check says so
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True

PASS, WARN, FAIL = "pass", "warn", "fail"
STATUSES = (PASS, WARN, FAIL)

Resolve = Callable[[str, str], list[str]]

MIN_DKIM_RSA_BITS = 1024  # RFC 8301 3.2: verifiers must not accept smaller keys
GOOD_DKIM_RSA_BITS = 2048  # what Gmail and Yahoo ask bulk senders for
ED25519_KEY_BYTES = 32
# Walking an include tree stops here: enough to show how far past 10 a record goes.
SPF_WALK_LIMIT = 3 * MAX_SPF_LOOKUPS
SPF_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
DKIM_KEY_TYPES = ("rsa", "ed25519")

_SPF_TERM = re.compile(
    r"^(?P<qualifier>[+\-~?]?)(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)"
    r"(?:(?P<sep>[:=])(?P<arg>.*)|(?P<cidr>/.*))?$"
)
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_DUAL_CIDR = re.compile(r"^(?:/(?P<v4>\d{1,2}))?(?://(?P<v6>\d{1,3}))?$")


class LookupFailed(Exception):
    """No usable answer for a query (timeout, SERVFAIL, REFUSED); not the same as no records."""

    def __init__(self, name: str, rdtype: str, problem: str) -> None:
        self.name = name
        self.rdtype = rdtype
        self.problem = problem
        super().__init__(f"{name} {rdtype}: {problem}")


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    required: bool
    reason: str
    fix: str = ""
    subject: str = ""  # the DNS name the check looked at
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """True when this check makes the domain fail."""
        return self.status == FAIL and self.required

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "required": self.required,
            "reason": self.reason,
            "fix": self.fix,
            "subject": self.subject,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DomainReport:
    domain: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return not any(check.failed for check in self.checks)

    @property
    def status(self) -> str:
        if not self.ok:
            return FAIL
        return WARN if any(check.status != PASS for check in self.checks) else PASS

    def as_dict(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "status": self.status,
            "ok": self.ok,
            "checks": [check.as_dict() for check in self.checks],
        }


@dataclass(frozen=True)
class Expectations:
    """What one domain should publish. Empty fields are not checked (or checked loosely)."""

    domain: str
    pool_ips: tuple[str, ...] = ()
    dkim_selectors: tuple[str, ...] = ()
    # selector -> base64 public key as DKIM publishes it (dkim_keys.public_key_b64)
    dkim_public_keys: Mapping[str, str] = field(default_factory=dict)
    dmarc: Dmarc | None = None
    return_path_domain: str | None = None
    require_mta_sts: bool = False
    require_tls_rpt: bool = False
    mta_sts: MtaSts | None = None  # the model's policy: the published id must be its hash


def _ok(
    name: str,
    reason: str,
    subject: str,
    *,
    required: bool = True,
    details: Mapping[str, Any] | None = None,
) -> Check:
    return Check(name, PASS, required, reason, "", subject, dict(details or {}))


def _problem(
    name: str,
    reason: str,
    fix: str,
    subject: str,
    *,
    required: bool = True,
    details: Mapping[str, Any] | None = None,
) -> Check:
    """A fail when the check is required, else a warning."""
    status = FAIL if required else WARN
    return Check(name, status, required, reason, fix, subject, dict(details or {}))


def _lookup_failed(name: str, error: LookupFailed, required: bool = True) -> Check:
    return _problem(
        name,
        f"the lookup of {error.name} {error.rdtype} failed ({error.problem}); receivers that "
        "hit the same error defer or fail the mail",
        f"Make the name servers of {error.name} answer (try: dig {error.name} {error.rdtype}), "
        "then run the check again.",
        error.name,
        required=required,
    )


def _join(items: Iterable[str]) -> str:
    return "; ".join(items)


def _host(name: str) -> str:
    return name.rstrip(".").lower()


# --- parsers that the record builders do not have (yet) ------------------------------------


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


def _is_version(text: str, value: str) -> bool:
    """Whether a TXT record starts with `v=<value>` (DMARC1, STSv1, TLSRPTv1)."""
    return re.match(rf"v\s*=\s*{re.escape(value)}(?![A-Za-z0-9])", text.strip()) is not None


def _split_spf_term(term: str) -> tuple[str, str, str, str]:
    """(qualifier, lower-case name, separator, argument) of one SPF term."""
    match = _SPF_TERM.match(term)
    if not match:
        return "", "", "", ""
    arg = match.group("arg") if match.group("sep") else (match.group("cidr") or "")
    return match.group("qualifier"), match.group("name").lower(), match.group("sep") or "", arg


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
        qualifier, name, sep, arg = _split_spf_term(term)
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


def _spf_ip4_networks(record: str) -> list[ipaddress.IPv4Network]:
    """The ip4 networks an SPF record passes (qualifier + or none)."""
    networks = []
    for term in record.split()[1:]:
        qualifier, name, sep, arg = _split_spf_term(term)
        if name == "ip4" and sep == ":" and qualifier in ("", "+"):
            try:
                networks.append(ipaddress.IPv4Network(arg, strict=False))
            except ValueError:
                continue
    return networks


def _spf_all(record: str) -> tuple[str | None, list[str]]:
    """The record's `all` term, and the terms after it (receivers never reach those)."""
    terms = record.split()[1:]
    for index, term in enumerate(terms):
        name, sep = _split_spf_term(term)[1:3]
        if name == "all" and sep != "=":
            after = [t for t in terms[index + 1 :] if _split_spf_term(t)[2] != "="]
            return term, after
    return None, []


def _spf_target(term: str) -> str:
    return _split_spf_term(term)[3].rstrip(".").lower()


# --- SPF -----------------------------------------------------------------------------------


@dataclass
class SpfTree:
    """What evaluating an SPF record touches: lookups, networks, and what breaks on the way."""

    lookups: list[str] = field(default_factory=list)  # "include:x (in example.com)"
    problems: list[str] = field(default_factory=list)
    networks: list[tuple[ipaddress.IPv4Network, str]] = field(default_factory=list)
    redirect_all: str | None = None  # the `all` of a redirect= target, when the record has none
    truncated: bool = False


def spf_records(texts: Iterable[str]) -> list[str]:
    return [text for text in texts if is_spf_record(text)]


def walk_spf(domain: str, record: str, resolve: Resolve) -> SpfTree:
    """Follow include: and redirect= through `resolve`, counting lookups (RFC 7208 4.6.4)."""
    tree = SpfTree()
    _walk_spf(domain, record, resolve, tree, (domain,), top=True)
    return tree


def _walk_spf(
    domain: str,
    record: str,
    resolve: Resolve,
    tree: SpfTree,
    chain: tuple[str, ...],
    *,
    top: bool,
) -> None:
    tree.networks.extend((network, domain) for network in _spf_ip4_networks(record))
    has_all = _spf_all(record)[0] is not None
    try:
        lookup_terms = _spf_lookup_terms(record)
    except ModelError:
        return
    for term in lookup_terms:
        if len(tree.lookups) >= SPF_WALK_LIMIT:
            tree.truncated = True
            return
        tree.lookups.append(f"{term} (in {domain})")
        name = _split_spf_term(term)[1]
        if name not in ("include", "redirect") or (name == "redirect" and has_all):
            continue
        target = _spf_target(term)
        if "%" in target:
            continue
        if target in chain:
            tree.problems.append(
                f"{term} in {domain} loops back to {target} ({' -> '.join((*chain, target))})"
            )
            continue
        try:
            found = spf_records(resolve(target, "TXT"))
        except LookupFailed as error:
            tree.problems.append(
                f"{term} in {domain}: the lookup of {target} failed ({error.problem}); "
                "receivers return temperror"
            )
            continue
        if not found:
            tree.problems.append(
                f"{term} in {domain}: {target} publishes no SPF record; receivers return permerror"
            )
            continue
        if len(found) > 1:
            tree.problems.append(
                f"{term} in {domain}: {target} publishes {len(found)} SPF records; receivers "
                "return permerror"
            )
            continue
        if name == "redirect" and top:
            tree.redirect_all = _spf_all(found[0])[0]
        _walk_spf(target, found[0], resolve, tree, (*chain, target), top=False)


def _suggested_spf(pool_ips: Sequence[str]) -> str:
    if not pool_ips:
        return "v=spf1 ip4:<each sending address> -all"
    try:
        return render_spf_record(pool_ips)
    except ModelError:
        return "v=spf1 ip4:<each sending address> -all"


def check_spf(
    domain: str, pool_ips: Sequence[str], resolve: Resolve, prefix: str = "spf"
) -> list[Check]:
    """SPF at `domain`: one record, its syntax, lookups, the pool addresses, and its `all`."""
    name = f"{prefix}.record"
    try:
        texts = resolve(domain, "TXT")
    except LookupFailed as error:
        return [_lookup_failed(name, error)]
    found = spf_records(texts)
    if not found:
        return [
            _problem(
                name,
                f"no SPF record (TXT 'v=spf1 ...') at {domain}: receivers cannot tell which "
                "addresses may send for it, so SPF fails and DMARC rests on DKIM alone",
                f"Publish one TXT record at {domain}: {_suggested_spf(pool_ips)!r}.",
                domain,
            )
        ]
    if len(found) > 1:
        shown = ", ".join(repr(text) for text in found)
        return [
            _problem(
                name,
                f"{len(found)} SPF records at {domain} ({shown}); RFC 7208 3.2 makes that a "
                "permanent error (permerror) at every receiver, so SPF fails for all mail",
                f"Merge them into one TXT record at {domain} and delete the others.",
                domain,
                details={"records": found},
            )
        ]
    record = found[0]
    checks = [_ok(name, f"one SPF record: {record!r}", domain, details={"record": record})]

    syntax = spf_syntax_problems(record)
    if syntax:
        checks.append(
            _problem(
                f"{prefix}.syntax",
                f"the SPF record at {domain} is invalid: {_join(syntax)}; receivers return "
                "permerror",
                f"Fix or remove the terms named above in the TXT record at {domain}.",
                domain,
                details={"problems": syntax},
            )
        )
    else:
        checks.append(_ok(f"{prefix}.syntax", "valid SPF syntax", domain))

    tree = walk_spf(domain, record, resolve)
    checks.append(_spf_lookups_check(f"{prefix}.lookups", domain, tree))
    checks.append(_spf_pool_check(f"{prefix}.pool_ips", domain, pool_ips, tree))
    checks.append(_spf_all_check(f"{prefix}.all", domain, record, tree))
    return checks


def _spf_lookups_check(name: str, domain: str, tree: SpfTree) -> Check:
    count = len(tree.lookups)
    details = {"lookups": count, "terms": list(tree.lookups)}
    if tree.problems:
        return _problem(
            name,
            f"the SPF record at {domain} cannot be evaluated: {_join(tree.problems)}",
            "Remove or correct the include/redirect named above in the record that holds it.",
            domain,
            details={**details, "problems": list(tree.problems)},
        )
    if count > MAX_SPF_LOOKUPS:
        more = "more than " if tree.truncated else ""
        return _problem(
            name,
            f"the SPF record at {domain} needs {more}{count} DNS lookups, counting nested "
            f"includes ({', '.join(tree.lookups)}); RFC 7208 allows at most "
            f"{MAX_SPF_LOOKUPS}, beyond which receivers return permerror and SPF fails",
            "Replace includes with the ip4: ranges they stand for, or drop includes of "
            f"services you no longer send through, until {MAX_SPF_LOOKUPS} or fewer remain.",
            domain,
            details=details,
        )
    return _ok(name, f"{count} of at most {MAX_SPF_LOOKUPS} DNS lookups", domain, details=details)


def _spf_pool_check(name: str, domain: str, pool_ips: Sequence[str], tree: SpfTree) -> Check:
    if not pool_ips:
        return _problem(
            name,
            "no pool addresses given, so which addresses SPF covers was not checked",
            "Pass the sending addresses (--pool-ip, or pool_ips in the module).",
            domain,
            required=False,
        )
    covered: dict[str, str] = {}
    missing: list[str] = []
    for address in pool_ips:
        ip = ipaddress.IPv4Address(address)
        where = next((f"{net} in {owner}" for net, owner in tree.networks if ip in net), None)
        if where is None:
            missing.append(address)
        else:
            covered[address] = where
    if missing:
        terms = " ".join(f"ip4:{address}" for address in missing)
        return _problem(
            name,
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not covered by any "
            f"ip4 mechanism of the SPF record at {domain}: mail sent from "
            f"{'it' if len(missing) == 1 else 'them'} fails SPF",
            f"Add {terms} to the SPF record at {domain} (the dns tier derives it from "
            "bulkmail_ip_pools).",
            domain,
            details={"missing": missing, "covered": covered},
        )
    shown = ", ".join(f"{address} ({where})" for address, where in covered.items())
    return _ok(
        name, f"every pool address is covered: {shown}", domain, details={"covered": covered}
    )


def _spf_all_check(name: str, domain: str, record: str, tree: SpfTree) -> Check:
    term, after = _spf_all(record)
    via = ""
    if term is None and tree.redirect_all is not None:
        term, via = tree.redirect_all, " (through redirect=)"
    fix = f"End the SPF record at {domain} with -all (or ~all while you are still testing)."
    if term is None:
        return _problem(
            name,
            f"the SPF record at {domain} has no 'all' at the end, so mail from any other "
            "address gets 'neutral' instead of failing SPF",
            fix,
            domain,
        )
    qualifier = term[0] if term[0] in "+-~?" else "+"
    if qualifier in "+?":
        meaning = "passes mail from every address" if qualifier == "+" else "says nothing"
        return _problem(
            name,
            f"the SPF record at {domain} ends with {term}{via}, which {meaning}: anyone can "
            "send as this domain as far as SPF is concerned",
            fix,
            domain,
        )
    if after:
        return _problem(
            name,
            f"the SPF record at {domain} has {', '.join(after)} after {term}; receivers stop "
            "at 'all' and never read them",
            f"Move {', '.join(after)} before {term} in the SPF record at {domain}.",
            domain,
        )
    meaning = "fail" if qualifier == "-" else "softfail"
    return _ok(name, f"ends with {term}{via}: other addresses {meaning} SPF", domain)


# --- DKIM ----------------------------------------------------------------------------------


def _decode_b64(text: str) -> bytes | None:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def dkim_key_bits(key_type: str, data: bytes) -> tuple[int | None, str | None, Any]:
    """(bits, problem, public key object) of a DKIM p= value (RFC 6376 3.6.1, RFC 8463)."""
    if key_type == "ed25519":
        if len(data) != ED25519_KEY_BYTES:
            return None, f"an ed25519 key is 32 bytes (RFC 8463), this one is {len(data)}", None
        if HAS_CRYPTOGRAPHY:
            return 256, None, ed25519.Ed25519PublicKey.from_public_bytes(data)
        return 256, None, data
    if not HAS_CRYPTOGRAPHY:
        return None, None, None
    try:
        public = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        return None, "p= is not a DER-encoded RSA public key (SubjectPublicKeyInfo)", None
    if not isinstance(public, rsa.RSAPublicKey):
        return None, f"p= holds a {type(public).__name__}, not an RSA key (k=rsa)", None
    return public.key_size, None, public


def _same_key(published: Any, expected_b64: str, key_type: str) -> bool:
    data = _decode_b64(expected_b64)
    if data is None:
        return False
    if key_type == "ed25519" or not HAS_CRYPTOGRAPHY:
        raw = published if isinstance(published, bytes) else None
        if raw is None and HAS_CRYPTOGRAPHY:
            raw = published.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return raw == data
    try:
        expected = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        return False
    # compare the numbers, not the bytes: PKCS#1 and SubjectPublicKeyInfo encode one key
    return isinstance(expected, rsa.RSAPublicKey) and (
        expected.public_numbers() == published.public_numbers()
    )


def check_dkim(
    domain: str, selector: str, resolve: Resolve, expected_key: str | None = None
) -> Check:
    """One selector: record present, v=DKIM1, k, p non-empty, key size, the expected key."""
    name = f"dkim.{selector}"
    owner = f"{selector}._domainkey.{domain}"
    fix_publish = (
        f"Publish the public key of selector {selector} as TXT at {owner} (the dkim_keys role "
        f"and the dns tier do it), or remove {selector} from dkim_selectors if it no longer "
        "signs."
    )
    try:
        texts = resolve(owner, "TXT")
    except LookupFailed as error:
        return _lookup_failed(name, error)
    found = [text for text in texts if "p=" in text or text.lstrip().startswith("v=DKIM1")]
    if not found:
        seen = f" (the TXT there is {texts[0]!r})" if texts else ""
        return _problem(
            name,
            f"no DKIM key record at {owner}{seen}: mail signed with selector {selector} fails "
            "DKIM, and DMARC then rests on SPF alone",
            fix_publish,
            owner,
        )
    if len(found) > 1:
        return _problem(
            name,
            f"{len(found)} DKIM key records at {owner}; verifiers may pick either, so "
            "signatures fail at random",
            f"Keep one TXT record at {owner}: the one holding the signing key's public half.",
            owner,
            details={"records": found},
        )
    record = found[0]
    tags, problems = tag_list(record)
    hard: list[str] = list(problems)
    soft: list[str] = []
    if "v" in tags and (tags["v"] != "DKIM1" or next(iter(tags)) != "v"):
        hard.append("v= must be the first tag and read 'DKIM1'")
    key_type = tags.get("k", "rsa").lower()
    if key_type not in DKIM_KEY_TYPES:
        hard.append(f"k={tags['k']} is not a key type verifiers know (rsa, ed25519)")
    if "h" in tags and "sha256" not in [h.strip().lower() for h in tags["h"].split(":")]:
        hard.append(f"h={tags['h']} does not allow sha256, which signers use (RFC 8301)")
    if "s" in tags and not {"*", "email"} & {s.strip() for s in tags["s"].split(":")}:
        hard.append(f"s={tags['s']} does not allow e-mail (use s=email or leave it out)")
    if "y" in [flag.strip() for flag in tags.get("t", "").split(":")]:
        soft.append("t=y marks the domain as testing DKIM: receivers may ignore failures")
    details: dict[str, Any] = {"record": record, "key_type": key_type}
    p = tags.get("p")
    bits: int | None = None
    if p is None:
        hard.append("the record has no p= tag (the public key)")
    elif not "".join(p.split()):
        hard.append("p= is empty: the key is revoked (RFC 6376 3.6.1), so its signatures fail")
    elif key_type in DKIM_KEY_TYPES:
        data = _decode_b64(p)
        if data is None:
            hard.append("p= is not valid base64")
        else:
            bits, key_problem, key = dkim_key_bits(key_type, data)
            if key_problem:
                hard.append(key_problem)
            elif bits is None:
                soft.append("key size not checked: the Python cryptography library is missing")
            else:
                details["bits"] = bits
                if key_type == "rsa" and bits < MIN_DKIM_RSA_BITS:
                    hard.append(
                        f"the key has {bits} bits; verifiers reject RSA keys under "
                        f"{MIN_DKIM_RSA_BITS} (RFC 8301)"
                    )
                elif key_type == "rsa" and bits < GOOD_DKIM_RSA_BITS:
                    soft.append(
                        f"the key has {bits} bits; mailbox providers ask for "
                        f"{GOOD_DKIM_RSA_BITS} (rotate to a new selector with a 2048-bit key)"
                    )
            if expected_key and key is not None:
                matches = _same_key(key, expected_key, key_type)
                details["matches_private_key"] = matches
                if not matches:
                    hard.append(
                        "the published key is not the public half of the private key of "
                        f"selector {selector}, so mail signed with that key fails DKIM "
                        "verification"
                    )
    if hard:
        wrong_key = details.get("matches_private_key") is False
        fix = (
            f"Republish {owner} from the private key (run the dns tier), or deploy the "
            "private key that matches the published one."
            if wrong_key and len(hard) == 1
            else f"Correct the TXT record at {owner}; the dns tier writes it from the key store."
        )
        return _problem(name, f"{owner}: {_join(hard + soft)}", fix, owner, details=details)
    size = f"{bits}-bit {key_type} key" if bits else f"{key_type} key"
    matched = "; matches the private key" if details.get("matches_private_key") else ""
    if soft:
        return Check(
            name,
            WARN,
            True,
            f"{size}{matched}; {_join(soft)}",
            "Rotate to a new selector with a 2048-bit RSA key and no t=y flag.",
            owner,
            details,
        )
    return _ok(name, f"{size}{matched}", owner, details=details)


# --- DMARC ---------------------------------------------------------------------------------


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


def _dmarc_differences(published: Dmarc, expected: Dmarc) -> list[str]:
    differences = []
    for tag, attribute in (("p", "policy"), ("pct", "pct"), ("adkim", "adkim"), ("aspf", "aspf")):
        have, want = getattr(published, attribute), getattr(expected, attribute)
        if have != want:
            differences.append(f"{tag}={have} is published, the model says {tag}={want}")
    if expected.rua and set(published.rua) != set(expected.rua):
        differences.append(
            f"rua={','.join(published.rua) or '(none)'} is published, the model says "
            f"rua={','.join(expected.rua)}"
        )
    return differences


def check_dmarc(
    domain: str,
    resolve: Resolve,
    expected: Dmarc | None = None,
    return_path_domain: str | None = None,
) -> list[Check]:
    """DMARC at _dmarc.<domain>: one record, syntax, policy, reports, alignment."""
    owner = f"_dmarc.{domain}"
    suggestion = (
        render_dmarc_record(expected)
        if expected
        else f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}"
    )
    try:
        texts = resolve(owner, "TXT")
    except LookupFailed as error:
        return [_lookup_failed("dmarc.record", error)]
    found = [text for text in texts if _is_version(text, "DMARC1")]
    if not found:
        return [
            _problem(
                "dmarc.record",
                f"no DMARC record at {owner}: Gmail and Yahoo require one from bulk senders "
                "and reject or spam-folder their mail without it",
                f"Publish TXT at {owner}: {suggestion!r} (start at p=none, tighten once the "
                "reports are clean).",
                owner,
            )
        ]
    if len(found) > 1:
        return [
            _problem(
                "dmarc.record",
                f"{len(found)} DMARC records at {owner}; RFC 7489 6.6.3 says receivers then "
                "apply no DMARC policy at all",
                f"Keep one TXT record at {owner}: {suggestion!r}.",
                owner,
                details={"records": found},
            )
        ]
    record = found[0]
    checks = [
        _ok("dmarc.record", f"one DMARC record: {record!r}", owner, details={"record": record})
    ]
    published, tags, problems = parse_dmarc_record(record)
    if published is None:
        checks.append(
            _problem(
                "dmarc.syntax",
                f"the DMARC record at {owner} is invalid: {_join(problems)}",
                f"Replace it with {suggestion!r}.",
                owner,
                details={"problems": problems},
            )
        )
        return checks
    unknown = [tag for tag in tags if tag not in _DMARC_TAGS]
    if unknown:
        checks.append(
            _problem(
                "dmarc.syntax",
                f"the DMARC record at {owner} has tags receivers ignore: {', '.join(unknown)}",
                f"Remove {', '.join(unknown)} from the DMARC record (typo?).",
                owner,
                required=False,
            )
        )
    else:
        checks.append(_ok("dmarc.syntax", "valid DMARC syntax", owner))
    checks.append(_dmarc_policy_check(owner, published, expected))
    checks.append(_dmarc_reports_check(domain, owner, published, resolve))
    checks.append(_dmarc_alignment_check(domain, owner, published, expected, return_path_domain))
    return checks


_DMARC_TAGS = ("v", "p", "sp", "pct", "rua", "ruf", "adkim", "aspf", "fo", "rf", "ri")


def _dmarc_policy_check(owner: str, published: Dmarc, expected: Dmarc | None) -> Check:
    details = {"policy": published.policy, "pct": published.pct}
    differences = _dmarc_differences(published, expected) if expected else []
    policy_differences = [d for d in differences if d.startswith(("p=", "pct="))]
    if policy_differences:
        return _problem(
            "dmarc.policy",
            f"the DMARC policy at {owner} is not the model's: {_join(policy_differences)}",
            f"Run the dns tier to publish {render_dmarc_record(expected)!r}." if expected else "",
            owner,
            details=details,
        )
    if published.policy == "none":
        reason = (
            "p=none: monitoring only, receivers act on nothing; raise it once reports are clean"
        )
    elif published.pct < 100:
        reason = f"p={published.policy} on {published.pct}% of failing mail"
    else:
        reason = f"p={published.policy}"
    return _ok("dmarc.policy", reason, owner, details=details)


def _org_guess(name: str) -> str:
    """The last two labels: a stand-in for the organizational domain (no public suffix list)."""
    return ".".join(name.split(".")[-2:])


def _dmarc_reports_check(domain: str, owner: str, published: Dmarc, resolve: Resolve) -> Check:
    if not published.rua:
        return _problem(
            "dmarc.reports",
            f"the DMARC record at {owner} has no rua=: you get no aggregate reports, so you "
            "cannot see what fails before tightening the policy",
            f"Add rua=mailto:dmarc@{domain} to the DMARC record.",
            owner,
            required=False,
        )
    unauthorized = []
    for uri in published.rua:
        if not uri.startswith("mailto:"):
            continue
        target = uri.partition("@")[2].partition("!")[0].lower()
        if not target or _org_guess(target) == _org_guess(domain):
            continue
        # RFC 7489 7.1: reports go to another domain only if that domain agrees
        authorization = f"{domain}._report._dmarc.{target}"
        try:
            texts = resolve(authorization, "TXT")
        except LookupFailed:
            texts = []
        if not any(_is_version(text, "DMARC1") for text in texts):
            unauthorized.append((uri, authorization))
    if unauthorized:
        shown = ", ".join(uri for uri, _name in unauthorized)
        names = ", ".join(name for _uri, name in unauthorized)
        return _problem(
            "dmarc.reports",
            f"reports go to {shown} in another domain, which does not authorize them "
            "(RFC 7489 7.1): receivers send them nowhere",
            f"Publish TXT 'v=DMARC1' at {names}.",
            owner,
            required=False,
        )
    return _ok("dmarc.reports", f"aggregate reports to {', '.join(published.rua)}", owner)


def _dmarc_alignment_check(
    domain: str,
    owner: str,
    published: Dmarc,
    expected: Dmarc | None,
    return_path_domain: str | None,
) -> Check:
    differences = _dmarc_differences(published, expected) if expected else []
    alignment = [d for d in differences if d.startswith(("adkim=", "aspf="))]
    shown = f"adkim={published.adkim} aspf={published.aspf}"
    if alignment:
        return _problem(
            "dmarc.alignment",
            f"the DMARC alignment at {owner} is not the model's: {_join(alignment)}",
            f"Run the dns tier to publish {render_dmarc_record(expected)!r}." if expected else "",
            owner,
        )
    if published.aspf == "s" and return_path_domain and return_path_domain != domain:
        return _problem(
            "dmarc.alignment",
            f"aspf=s at {owner}, but bounces use {return_path_domain}: SPF never aligns with "
            f"{domain} under strict alignment, so DMARC rests on DKIM alone",
            f"Set aspf=r, or use {domain} as the return-path domain.",
            owner,
        )
    modes = {"r": "relaxed", "s": "strict"}
    return _ok(
        "dmarc.alignment",
        f"{shown} (DKIM {modes[published.adkim]}, SPF {modes[published.aspf]})",
        owner,
    )


# --- MX ------------------------------------------------------------------------------------


def _addresses(name: str, resolve: Resolve) -> list[str]:
    return [*resolve(name, "A"), *resolve(name, "AAAA")]


def check_mx(domain: str, resolve: Resolve, name: str = "mx") -> Check:
    """MX present, not null, and every target resolves to an address."""
    try:
        answers = resolve(domain, "MX")
    except LookupFailed as error:
        return _lookup_failed(name, error)
    fix = (
        f"Publish MX records at {domain} that point to hosts receiving its mail (the dns tier "
        "points them at the smtp hosts)."
    )
    if not answers:
        return _problem(
            name,
            f"no MX record at {domain}: bounces and replies to it cannot be delivered, and "
            "receivers may reject mail from a domain that cannot receive",
            fix,
            domain,
        )
    targets: list[tuple[int, str]] = []
    for answer in answers:
        number, _space, target = answer.partition(" ")
        targets.append((int(number) if number.isdigit() else 0, _host(target)))
    if any(target in ("", ".") for _preference, target in targets):
        return _problem(
            name,
            f"{domain} publishes a null MX (RFC 7505): it declares that it accepts no mail, so "
            "bounces and feedback to it are lost",
            fix,
            domain,
        )
    resolved: dict[str, list[str]] = {}
    broken: list[str] = []
    for preference, target in sorted(targets):
        try:
            found = _addresses(target, resolve)
        except LookupFailed as error:
            broken.append(f"{target} (the lookup failed: {error.problem})")
            continue
        if found:
            resolved[target] = found
        else:
            broken.append(f"{target} (MX {preference}) has no A or AAAA record")
    details = {"mx": [f"{p} {t}" for p, t in sorted(targets)], "addresses": resolved}
    if broken:
        return _problem(
            name,
            f"MX targets of {domain} do not resolve: {_join(broken)}",
            "Give each MX target an A record, or point the MX at a host that has one.",
            domain,
            details=details,
        )
    shown = ", ".join(f"{p} {t} ({', '.join(resolved.get(t, []))})" for p, t in sorted(targets))
    return _ok(name, shown, domain, details=details)


# --- reverse DNS ---------------------------------------------------------------------------


def check_ptr(address: str, resolve: Resolve) -> Check:
    """PTR for a sending address, confirmed forward: the PTR name's A record is the address."""
    name = f"ptr.{address}"
    owner = reverse_pointer(address)
    try:
        names = [_host(answer) for answer in resolve(owner, "PTR")]
    except LookupFailed as error:
        return _lookup_failed(name, error)
    if not names:
        return _problem(
            name,
            f"no PTR record for {address} ({owner}): Gmail, Outlook and Yahoo reject or "
            "spam-folder mail from addresses without reverse DNS",
            f"Have the owner of {address} (your provider, or the dns tier where it serves the "
            f"reverse zone) set its PTR to the sending host's name, whose A record is {address}.",
            owner,
        )
    forward: dict[str, list[str]] = {}
    for ptr_name in names:
        try:
            forward[ptr_name] = resolve(ptr_name, "A")
        except LookupFailed as error:
            return _lookup_failed(name, error)
    confirmed = [ptr_name for ptr_name in names if address in forward[ptr_name]]
    details = {"ptr": names, "forward": forward}
    if not confirmed:
        seen = "; ".join(
            f"{ptr_name} resolves to {', '.join(forward[ptr_name]) or 'no address'}"
            for ptr_name in names
        )
        return _problem(
            name,
            f"{address} has PTR {', '.join(names)}, but {seen}, not {address}: the reverse DNS "
            "is not forward-confirmed (FCrDNS), which receivers treat like no PTR",
            f"Set the A record of {names[0]} to {address}, or point the PTR of {address} at a "
            f"name whose A record is {address}.",
            owner,
            details=details,
        )
    return _ok(name, f"{address} -> {confirmed[0]} -> {address}", owner, details=details)


# --- MTA-STS and TLS-RPT -------------------------------------------------------------------


def _one_versioned_txt(
    name: str,
    owner: str,
    version: str,
    resolve: Resolve,
    required: bool,
    *,
    kind: str,
    absent: str,
    fix: str,
    several: str,
) -> str | Check:
    """The one TXT record at `owner` starting `v=<version>`, or the Check saying why not.

    `absent` is the reason when there is none; `several` what senders do when there are more.
    MTA-STS and TLS-RPT records open the same way.
    """
    try:
        texts = resolve(owner, "TXT")
    except LookupFailed as error:
        return _lookup_failed(name, error, required)
    found = [text for text in texts if _is_version(text, version)]
    if not found:
        return _problem(name, absent, fix, owner, required=required)
    if len(found) > 1:
        return _problem(
            name,
            f"{len(found)} {kind} records at {owner}; {several}",
            f"Keep one TXT record at {owner}.",
            owner,
            required=required,
        )
    return found[0]


def expected_mta_sts_id(domain: str, mta_sts: MtaSts, resolve: Resolve) -> str | None:
    """The id= the dns tier derives for the policy the model implies, with the MX it serves.

    The builder hashes the policy file (dns_records.mta_sts_policy_id), whose `mx:` lines are
    the smtp hosts, which are also the domain's MX. None when the MX cannot be read.
    """
    try:
        answers = resolve(domain, "MX")
    except LookupFailed:
        return None
    mx_hosts = [_host(answer.partition(" ")[2]) for answer in answers]
    try:
        return mta_sts_policy_id(render_mta_sts_policy(mta_sts, [h for h in mx_hosts if h]))
    except ModelError:
        return None


def check_mta_sts(
    domain: str, resolve: Resolve, required: bool = False, mta_sts: MtaSts | None = None
) -> Check:
    """`_mta-sts` TXT `v=STSv1; id=...` (RFC 8461 3.1) and a host to serve the policy from.

    With the model's `mta_sts`, the id must be the one the dns tier derives from the policy.
    """
    name = "mta_sts"
    owner = f"_mta-sts.{domain}"
    policy_host = f"mta-sts.{domain}"
    expected_id = expected_mta_sts_id(domain, mta_sts, resolve) if mta_sts else None
    shown_id = expected_id or (
        f"<the first {MTA_STS_ID_LENGTH} hex digits of the SHA-256 of the policy file>"
    )
    fix = (
        f"Publish TXT 'v=STSv1; id={shown_id}' at {owner} (the dns tier derives the id from "
        f"the policy, so it changes exactly when the policy does) and serve the policy at "
        f"https://{policy_host}{MTA_STS_POLICY_PATH}."
    )
    record = _one_versioned_txt(
        name,
        owner,
        "STSv1",
        resolve,
        required,
        kind="MTA-STS",
        absent=(
            f"no MTA-STS record at {owner}: senders to {domain} cannot insist on TLS to its MX "
            "(RFC 8461)"
        ),
        fix=fix,
        several="RFC 8461 3.1 says senders then apply no policy",
    )
    if isinstance(record, Check):
        return record
    tags, problems = tag_list(record)
    published_id = tags.get("id", "")
    if not _STS_ID.match(published_id):
        problems.append("id= must be 1 to 32 letters or digits, changed with every policy")
    elif expected_id and published_id != expected_id:
        problems.append(
            f"id={published_id} is not the id of the policy the model implies ({expected_id}): "
            "senders that cached an older policy keep it"
        )
    try:
        hosts = _addresses(policy_host, resolve)
    except LookupFailed as error:
        problems.append(f"the lookup of {policy_host} failed ({error.problem})")
        hosts = ["?"]
    if not hosts:
        problems.append(f"{policy_host} has no address, so no sender can fetch the policy")
    if problems:
        return _problem(name, f"{owner}: {_join(problems)}", fix, owner, required=required)
    return _ok(
        name,
        f"{record!r}; the policy host {policy_host} resolves (the policy file itself is not "
        "fetched here)",
        owner,
        required=required,
    )


def check_tls_rpt(domain: str, resolve: Resolve, required: bool = False) -> Check:
    """`_smtp._tls` TXT `v=TLSRPTv1; rua=mailto:...|https://...` (RFC 8460 3)."""
    name = "tls_rpt"
    owner = f"_smtp._tls.{domain}"
    fix = f"Publish TXT 'v=TLSRPTv1; rua=mailto:tls-reports@{domain}' at {owner}."
    record = _one_versioned_txt(
        name,
        owner,
        "TLSRPTv1",
        resolve,
        required,
        kind="TLS-RPT",
        absent=(
            f"no TLS-RPT record at {owner}: you get no reports of TLS failures delivering to "
            f"{domain} (RFC 8460)"
        ),
        fix=fix,
        several="senders then send no reports",
    )
    if isinstance(record, Check):
        return record
    tags, problems = tag_list(record)
    uris = [uri.strip() for uri in tags.get("rua", "").split(",") if uri.strip()]
    if not uris:
        problems.append("there is no rua= (where reports go)")
    for uri in uris:
        if uri.startswith("mailto:"):
            try:
                validate_mailto(uri, "rua")
            except ModelError as error:
                problems.append(f"rua=: {error.problem}")
        elif not uri.startswith("https://"):
            problems.append(f"rua=: {uri!r} is neither mailto: nor https:")
    if problems:
        return _problem(name, f"{owner}: {_join(problems)}", fix, owner, required=required)
    return _ok(name, f"reports to {', '.join(uris)}", owner, required=required)


# --- a domain, and several -----------------------------------------------------------------


def check_domain(expect: Expectations, resolve: Resolve) -> DomainReport:
    """Every check of one domain, in a stable order."""
    domain = expect.domain
    checks = check_spf(domain, expect.pool_ips, resolve)
    return_path = expect.return_path_domain
    if return_path and return_path != domain:
        checks += check_spf(return_path, expect.pool_ips, resolve, prefix="return_path.spf")
    if expect.dkim_selectors:
        for selector in expect.dkim_selectors:
            key = expect.dkim_public_keys.get(selector)
            checks.append(check_dkim(domain, selector, resolve, key))
    else:
        checks.append(
            _problem(
                "dkim",
                "no DKIM selectors given, so no key was checked (DNS cannot list selectors)",
                "Pass the selectors that sign for this domain (--selector, or the domain's "
                "dkim_selectors).",
                domain,
                required=False,
            )
        )
    checks += check_dmarc(domain, resolve, expect.dmarc, return_path)
    checks.append(check_mx(domain, resolve))
    if return_path and return_path != domain:
        checks.append(check_mx(return_path, resolve, name="return_path.mx"))
    if expect.pool_ips:
        checks.extend(check_ptr(address, resolve) for address in expect.pool_ips)
    else:
        checks.append(
            _problem(
                "ptr",
                "no pool addresses given, so reverse DNS was not checked",
                "Pass the sending addresses (--pool-ip, or pool_ips in the module).",
                domain,
                required=False,
            )
        )
    checks.append(check_mta_sts(domain, resolve, expect.require_mta_sts, expect.mta_sts))
    checks.append(check_tls_rpt(domain, resolve, expect.require_tls_rpt))
    return DomainReport(domain, tuple(checks))


def cached(resolve: Resolve) -> Resolve:
    """`resolve` that asks each question once (pool PTRs are shared by every domain)."""
    answers: dict[tuple[str, str], list[str] | LookupFailed] = {}

    def lookup(name: str, rdtype: str) -> list[str]:
        key = (_host(name), rdtype.upper())
        if key not in answers:
            try:
                answers[key] = list(resolve(*key))
            except LookupFailed as error:
                answers[key] = error
        answer = answers[key]
        if isinstance(answer, LookupFailed):
            raise answer
        return list(answer)

    return lookup


def check_domains(expectations: Iterable[Expectations], resolve: Resolve) -> list[DomainReport]:
    lookup = cached(resolve)
    return [check_domain(expect, lookup) for expect in expectations]


def failure_lines(reports: Iterable[DomainReport]) -> list[str]:
    """One line per failing required check: `domain check: reason. Fix: ...`."""
    return [
        f"{report.domain} {check.name}: {check.reason}. Fix: {check.fix}"
        for report in reports
        for check in report.checks
        if check.failed
    ]


# --- expectations from the inventory model -------------------------------------------------


def expectations_from_model(
    raw_domain: Any,
    pool_ips: Iterable[str] = (),
    dkim_public_keys: Mapping[str, Mapping[str, str]] | None = None,
    path: str = "bulkmail_domains[0]",
) -> Expectations:
    """Expectations for one `bulkmail_domains` entry; a ModelError names the faulty field."""
    if not isinstance(raw_domain, Mapping):
        raise ModelError(path, f"{raw_domain!r} is not a mapping with at least name and dmarc")
    domain = parse_domain(raw_domain, path)
    addresses = tuple(
        validate_ipv4(address, f"pool_ips[{index}]") for index, address in enumerate(pool_ips)
    )
    keys = dict((dkim_public_keys or {}).get(domain.name) or {})
    return Expectations(
        domain=domain.name,
        pool_ips=addresses,
        dkim_selectors=domain.dkim_selectors,
        dkim_public_keys=keys,
        dmarc=domain.dmarc,
        return_path_domain=domain.return_path_domain,
        # The model publishes them (mode none too: it withdraws a policy), so they must be there.
        require_mta_sts=domain.mta_sts is not None,
        require_tls_rpt=domain.tls_rpt is not None,
        mta_sts=domain.mta_sts,
    )


def public_keys_from_store(store: str, domain: str, selectors: Iterable[str]) -> dict[str, str]:
    """{selector: public key} for the selectors whose private key is in the key store.

    The store is `<store>/<domain>/<selector>.private` (dkim_keys.py); selectors without a
    file there are left out, and their published key is checked without comparison.
    """
    from ..dkim.keys import key_path, load_private_key, public_key_b64  # needs cryptography

    keys = {}
    for selector in selectors:
        path = key_path(store, domain, selector)
        if os.path.isfile(path):
            keys[selector] = public_key_b64(load_private_key(path))
    return keys
