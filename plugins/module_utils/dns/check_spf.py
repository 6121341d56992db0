"""The SPF checks: one record, its syntax, its lookups, the pool addresses, and its `all`.

Pure Python, no network code (also `bulkmail.logic.dns.check_spf`): DNS through `resolve`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..model.errors import ModelError
from .parsers import (
    is_spf_record,
    spf_all_term,
    spf_ip4_networks,
    spf_lookup_terms,
    spf_syntax_problems,
    spf_target,
    split_spf_term,
)
from .records import MAX_SPF_LOOKUPS, render_spf_record
from .report import (
    Check,
    LookupFailed,
    Resolve,
    join_reasons,
    lookup_failed_check,
    ok_check,
    problem_check,
)

# Walking an include tree stops here: enough to show how far past 10 a record goes.
SPF_WALK_LIMIT = 3 * MAX_SPF_LOOKUPS


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
    tree.networks.extend((network, domain) for network in spf_ip4_networks(record))
    has_all = spf_all_term(record)[0] is not None
    try:
        lookup_terms = spf_lookup_terms(record)
    except ModelError:
        return
    for term in lookup_terms:
        if len(tree.lookups) >= SPF_WALK_LIMIT:
            tree.truncated = True
            return
        tree.lookups.append(f"{term} (in {domain})")
        name = split_spf_term(term)[1]
        if name not in ("include", "redirect") or (name == "redirect" and has_all):
            continue
        target = spf_target(term)
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
            tree.redirect_all = spf_all_term(found[0])[0]
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
        return [lookup_failed_check(name, error)]
    found = spf_records(texts)
    if not found:
        return [
            problem_check(
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
            problem_check(
                name,
                f"{len(found)} SPF records at {domain} ({shown}); RFC 7208 3.2 makes that a "
                "permanent error (permerror) at every receiver, so SPF fails for all mail",
                f"Merge them into one TXT record at {domain} and delete the others.",
                domain,
                details={"records": found},
            )
        ]
    record = found[0]
    checks = [ok_check(name, f"one SPF record: {record!r}", domain, details={"record": record})]

    syntax = spf_syntax_problems(record)
    if syntax:
        checks.append(
            problem_check(
                f"{prefix}.syntax",
                f"the SPF record at {domain} is invalid: {join_reasons(syntax)}; receivers return "
                "permerror",
                f"Fix or remove the terms named above in the TXT record at {domain}.",
                domain,
                details={"problems": syntax},
            )
        )
    else:
        checks.append(ok_check(f"{prefix}.syntax", "valid SPF syntax", domain))

    tree = walk_spf(domain, record, resolve)
    checks.append(_spf_lookups_check(f"{prefix}.lookups", domain, tree))
    checks.append(_spf_pool_check(f"{prefix}.pool_ips", domain, pool_ips, tree))
    checks.append(_spf_all_check(f"{prefix}.all", domain, record, tree))
    return checks


def _spf_lookups_check(name: str, domain: str, tree: SpfTree) -> Check:
    count = len(tree.lookups)
    details = {"lookups": count, "terms": list(tree.lookups)}
    if tree.problems:
        return problem_check(
            name,
            f"the SPF record at {domain} cannot be evaluated: {join_reasons(tree.problems)}",
            "Remove or correct the include/redirect named above in the record that holds it.",
            domain,
            details={**details, "problems": list(tree.problems)},
        )
    if count > MAX_SPF_LOOKUPS:
        more = "more than " if tree.truncated else ""
        return problem_check(
            name,
            f"the SPF record at {domain} needs {more}{count} DNS lookups, counting nested "
            f"includes ({', '.join(tree.lookups)}); RFC 7208 allows at most "
            f"{MAX_SPF_LOOKUPS}, beyond which receivers return permerror and SPF fails",
            "Replace includes with the ip4: ranges they stand for, or drop includes of "
            f"services you no longer send through, until {MAX_SPF_LOOKUPS} or fewer remain.",
            domain,
            details=details,
        )
    return ok_check(
        name, f"{count} of at most {MAX_SPF_LOOKUPS} DNS lookups", domain, details=details
    )


def _spf_pool_check(name: str, domain: str, pool_ips: Sequence[str], tree: SpfTree) -> Check:
    if not pool_ips:
        return problem_check(
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
        return problem_check(
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
    return ok_check(
        name, f"every pool address is covered: {shown}", domain, details={"covered": covered}
    )


def _spf_all_check(name: str, domain: str, record: str, tree: SpfTree) -> Check:
    term, after = spf_all_term(record)
    via = ""
    if term is None and tree.redirect_all is not None:
        term, via = tree.redirect_all, " (through redirect=)"
    fix = f"End the SPF record at {domain} with -all (or ~all while you are still testing)."
    if term is None:
        return problem_check(
            name,
            f"the SPF record at {domain} has no 'all' at the end, so mail from any other "
            "address gets 'neutral' instead of failing SPF",
            fix,
            domain,
        )
    qualifier = term[0] if term[0] in "+-~?" else "+"
    if qualifier in "+?":
        meaning = "passes mail from every address" if qualifier == "+" else "says nothing"
        return problem_check(
            name,
            f"the SPF record at {domain} ends with {term}{via}, which {meaning}: anyone can "
            "send as this domain as far as SPF is concerned",
            fix,
            domain,
        )
    if after:
        return problem_check(
            name,
            f"the SPF record at {domain} has {', '.join(after)} after {term}; receivers stop "
            "at 'all' and never read them",
            f"Move {', '.join(after)} before {term} in the SPF record at {domain}.",
            domain,
        )
    meaning = "fail" if qualifier == "-" else "softfail"
    return ok_check(name, f"ends with {term}{via}: other addresses {meaning} SPF", domain)
