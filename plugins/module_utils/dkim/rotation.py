"""When a DKIM selector may start signing: once resolvers can no longer hold "no such selector".

Pure Python, no Ansible import, no file I/O and no network code (also
`bulkmail.logic.dkim.rotation`): the publication records are read and written by
adapters/key_store.py, and name servers are asked through the caller's `ask`
(adapters/dns_lookup.ask_authoritative).

A resolver that asked for a selector before it was published caches the negative answer for
up to the record's TTL (RFC 2308: the SOA's TTL or minimum, whichever is lower, and the dns
tier gives every record the same TTL). Mail signed with the selector within that time fails
DKIM at receivers using that resolver. So:

- the dns tier records, in the key store next to the key, when every name server first
  answered the selector's record with its public key (`<store>/<domain>/<selector>.published`,
  JSON with `published_at` and the TTL served);
- before any host changes, a selector that would become a domain's signer (the first of
  `dkim_selectors`) while OpenDKIM signs that domain with another one is refused until its
  record has been published for at least the minimum (the TTL, or an override).

A selector OpenDKIM already signs with is not moved, so re-runs pass; a domain nothing signs
yet (a fresh domain or a fresh smtp host) has no mail whose verification could break, so its
first signer is allowed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..dns.parsers import tag_list
from ..dns.report import LookupFailed
from ..model.errors import ModelError, raise_collected
from ..model.fields import validate_domain_name, validate_selector

DOMAINKEY = "._domainkey."
OVERRIDE = "bulkmail_dkim_min_publish_seconds"


@dataclass(frozen=True)
class Publication:
    """When every name server first served a selector's record, and with which TTL."""

    published_at: datetime  # aware, UTC
    ttl: int
    nameservers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "published_at": iso(self.published_at),
            "ttl": self.ttl,
            "nameservers": list(self.nameservers),
        }


@dataclass(frozen=True)
class SigningMove:
    """A domain whose signer would change in this run."""

    path: str  # bulkmail_domains[i].dkim_selectors
    domain: str
    selector: str  # the new signer
    signing_now: tuple[str, ...]  # what OpenDKIM signs this domain with today, sorted
    selectors: tuple[str, ...]  # the domain's dkim_selectors as asked for


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


def format_duration(seconds: float) -> str:
    """`45 s`, `12 min 5 s`, `1 h 0 min`, `2 d 3 h`: what an operator reads at a glance."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# --- the publication record in the key store ----------------------------------------------


def parse_publication(text: str, path: str) -> Publication:
    fix = "delete it; the next run of the dns tier records the selector again"
    try:
        data = json.loads(text)
        published_at = parse_iso(data["published_at"])
        ttl = data["ttl"]
        nameservers = tuple(str(ns) for ns in data.get("nameservers") or ())
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise ModelError(path, f"is not a DKIM publication record ({error}); {fix}") from None
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        raise ModelError(path, f"ttl {ttl!r} is not a number of seconds; {fix}")
    return Publication(published_at, ttl, nameservers)


def render_publication(publication: Publication) -> str:
    return json.dumps(publication.as_dict(), indent=2, sort_keys=True) + "\n"


def served_key(texts: Iterable[str]) -> str | None:
    """The p= of the DKIM record among a name's TXT strings (whitespace removed), if one."""
    keys = []
    for text in texts:
        tags, _problems = tag_list(text)
        if "p" in tags:
            keys.append("".join(tags["p"].split()))
    return keys[0] if len(keys) == 1 else None


# --- seeing the record served ---------------------------------------------------------------


class Ask(Protocol):
    """Ask one name server for a name's TXT records: adapters/dns_lookup.ask_authoritative."""

    def __call__(self, nameserver: str, name: str) -> tuple[list[str], int | None]: ...


@dataclass
class Served:
    """What the name servers answered for the records waited for."""

    ttls: dict[tuple[str, str], int] = field(default_factory=dict)  # served by every server
    missing: dict[tuple[str, str], str] = field(default_factory=dict)  # why not, per record


def _answer_problem(nameserver: str, ask: Ask, owner: str, public_key: str) -> tuple[str, int]:
    """('', ttl) when `nameserver` serves `public_key` at `owner`, else (what it said, 0)."""
    try:
        texts, ttl = ask(nameserver, owner)
    except LookupFailed as error:
        return f"{nameserver}: {error.problem}", 0
    if not texts:
        return f"{nameserver}: no TXT record", 0
    served = served_key(texts)
    if served != public_key:
        shown = f"p={served[:16]}..." if served else "no single p= tag"
        return f"{nameserver}: another key ({shown})", 0
    return "", int(ttl or 0)


def wait_until_served(
    wanted: Mapping[tuple[str, str], str],
    nameservers: Sequence[str],
    ask: Ask,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    timeout: float,
    interval: float = 1.0,
) -> Served:
    """Ask every name server for every (domain, selector) record until each serves its key.

    `wanted` maps (domain, selector) to the public key the record must hold. A record counts
    as served once all name servers (the primary and the secondaries) answer it with that key:
    a resolver may ask any of them. The TTL kept is the highest one served.
    """
    if not nameservers:
        raise ModelError("nameservers", "is empty; give the dns hosts' addresses")
    deadline = clock() + timeout
    pending = dict(wanted)
    seen: dict[tuple[str, str], dict[str, int]] = {key: {} for key in wanted}
    result = Served()
    while True:
        for key, public_key in list(pending.items()):
            domain, selector = key
            owner = f"{selector}{DOMAINKEY}{domain}"
            problems = []
            for nameserver in nameservers:
                if nameserver in seen[key]:
                    continue
                problem, ttl = _answer_problem(nameserver, ask, owner, public_key)
                if problem:
                    problems.append(problem)
                else:
                    seen[key][nameserver] = ttl
            if problems:
                result.missing[key] = f"{owner}: {'; '.join(problems)}"
            else:
                result.missing.pop(key, None)
                result.ttls[key] = max(seen[key].values())
                del pending[key]
        if not pending or clock() >= deadline:
            return result
        sleep(interval)


@dataclass
class PublicationRun:
    """What recording the publications did (or would do, in check mode)."""

    published: dict[str, dict[str, Publication]]  # every model selector known to be published
    recorded: list[str]  # owners recorded in this run
    withdrawn: list[str]  # owners no longer in the model: their records were deleted
    missing: list[str]  # owners not served by every name server in time, and why
    before: str  # the records as text, for diff
    after: str  # in check mode, with a line for each record that waits to be served
    # what the key store must hold after the run (adapters/key_store.py applies it)
    writes: dict[tuple[str, str], Publication] = field(default_factory=dict)
    deletes: list[tuple[str, str]] = field(default_factory=list)  # (domain, selector)

    @property
    def changed(self) -> bool:
        return bool(self.recorded or self.withdrawn)


def _records_text(published: Mapping[str, Mapping[str, Publication]]) -> str:
    return "".join(
        f"{selector}{DOMAINKEY}{domain} published_at={iso(pub.published_at)} ttl={pub.ttl}\n"
        for domain, selectors in sorted(published.items())
        for selector, pub in sorted(selectors.items())
    )


def publication_run(
    selectors: Mapping[str, Sequence[str]],
    public_keys: Mapping[str, Mapping[str, str]],
    recorded: Mapping[str, Mapping[str, Publication]],
    nameservers: Sequence[str],
    ask: Ask,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    timeout: float,
    check_mode: bool = False,
) -> PublicationRun:
    """When each model selector is first served, and which records are withdrawn.

    `recorded` is what the key store holds: {domain: {selector: Publication}}. A selector
    with a record keeps it (its first publication is what counts); one without is asked for
    until every name server serves its public key, then recorded with the time and the TTL
    served. A record whose selector left the domain's dkim_selectors is deleted: the dns tier
    withdrew its TXT, so a later return starts the wait again. Domains outside the model are
    left alone. In check mode nothing is waited for; the run's `writes` and `deletes` are what
    a real run would store.
    """
    before: dict[str, dict[str, Publication]] = {}
    published: dict[str, dict[str, Publication]] = {}
    wanted: dict[tuple[str, str], str] = {}
    withdrawn: list[str] = []
    deletes: list[tuple[str, str]] = []
    for domain, domain_selectors in selectors.items():
        for selector, publication in sorted((recorded.get(domain) or {}).items()):
            before.setdefault(domain, {})[selector] = publication
            if selector in domain_selectors:
                published.setdefault(domain, {})[selector] = publication
            else:
                withdrawn.append(f"{selector}{DOMAINKEY}{domain}")
                deletes.append((domain, selector))
        for position, selector in enumerate(domain_selectors):
            if selector in published.get(domain, {}):
                continue
            key = (public_keys.get(domain) or {}).get(selector)
            if not key:
                raise ModelError(
                    f"public_keys[{domain!r}][{selector!r}]",
                    f"missing (dkim_selectors[{position}] of {domain}); pass "
                    "bulkmail_dkim_public_keys as the dkim_keys role sets it",
                )
            wanted[(domain, selector)] = key
    served = wait_until_served(
        wanted, nameservers, ask, clock, sleep, timeout=0 if check_mode else timeout
    )
    now = datetime.fromtimestamp(clock(), UTC).replace(microsecond=0)
    recorded_now = []
    writes: dict[tuple[str, str], Publication] = {}
    for (domain, selector), ttl in served.ttls.items():
        publication = Publication(now, ttl, tuple(nameservers))
        writes[(domain, selector)] = publication
        published.setdefault(domain, {})[selector] = publication
        recorded_now.append(f"{selector}{DOMAINKEY}{domain}")
    waiting = [key for key in wanted if key in served.missing]
    after = _records_text(published)
    if check_mode:  # what a real run would add once the dns tier has published
        after += "".join(
            f"{selector}{DOMAINKEY}{domain} published_at=<once every name server serves it>\n"
            for domain, selector in waiting
        )
    return PublicationRun(
        published=published,
        recorded=recorded_now,
        withdrawn=withdrawn,
        missing=[served.missing[key] for key in waiting],
        before=_records_text(before),
        after=after,
        writes=writes,
        deletes=deletes,
    )


# --- the model and OpenDKIM's signing table -----------------------------------------------


def model_selectors(raw_domains: Any, path: str = "bulkmail_domains") -> dict[str, list[str]]:
    """{domain: dkim_selectors} in model order; only name and dkim_selectors are read."""
    if isinstance(raw_domains, (str, Mapping)) or not isinstance(raw_domains, Sequence):
        raise ModelError(path, "is not a list of domains ({name, dkim_selectors, ...})")
    found: dict[str, list[str]] = {}
    errors: list[ModelError] = []
    for index, raw in enumerate(raw_domains):
        item = f"{path}[{index}]"
        try:
            if not isinstance(raw, Mapping):
                raise ModelError(item, "is not a mapping with name and dkim_selectors")
            name = validate_domain_name(raw.get("name"), f"{item}.name")
            selectors = raw.get("dkim_selectors")
            if isinstance(selectors, (str, Mapping)) or not isinstance(selectors, Sequence):
                raise ModelError(f"{item}.dkim_selectors", "is not a list of selectors")
            if not selectors:
                raise ModelError(f"{item}.dkim_selectors", "is empty; list the signing selector")
            found[name] = [
                validate_selector(selector, f"{item}.dkim_selectors[{position}]")
                for position, selector in enumerate(selectors)
            ]
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return found


def parse_signing_table(text: str) -> dict[str, str]:
    """{domain: selector} from an OpenDKIM SigningTable as the opendkim role writes it.

    Lines are `*@<domain> <selector>._domainkey.<domain>`; comments and lines of another
    shape (patterns OpenDKIM was given by hand) are left out.
    """
    signers: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) != 2 or not fields[0].startswith("*@"):
            continue
        domain = fields[0][2:].lower()
        selector, marker, key_domain = fields[1].lower().partition(DOMAINKEY)
        if marker and key_domain == domain and selector:
            signers[domain] = selector
    return signers


def decode_tables(slurped: Mapping[str, Any]) -> dict[str, str | None]:
    """{host: signing table text} from {host: slurp's base64 content, None without a table}.

    A value may also be slurp's whole result: its `content`, or None when it has none (the
    read failed because the host has no table yet: a fresh host signs nothing).
    """
    tables: dict[str, str | None] = {}
    for host, value in slurped.items():
        content = value.get("content") if isinstance(value, Mapping) else value
        if content is None:
            tables[str(host)] = None
            continue
        try:
            tables[str(host)] = base64.b64decode(content, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError, TypeError):
            raise ModelError(
                f"signing_tables[{host!r}]", "is not base64 (the content slurp returns)"
            ) from None
    return tables


def signing_selectors(tables: Mapping[str, str | None]) -> dict[str, set[str]]:
    """{domain: selectors OpenDKIM signs it with on some host}; None: a host without a table."""
    signers: dict[str, set[str]] = {}
    for text in tables.values():
        for domain, selector in parse_signing_table(text or "").items():
            signers.setdefault(domain, set()).add(selector)
    return signers


def signing_moves(
    selectors: Mapping[str, Sequence[str]],
    signers: Mapping[str, Iterable[str]],
    path: str = "bulkmail_domains",
) -> list[SigningMove]:
    """The domains whose first selector is not what every host already signs them with.

    A domain no host signs yet is no move: there is no signed mail to break.
    """
    moves = []
    for index, (domain, wanted) in enumerate(selectors.items()):
        now = set(signers.get(domain) or ())
        if not now or now == {wanted[0]}:
            continue
        moves.append(
            SigningMove(
                path=f"{path}[{index}].dkim_selectors",
                domain=domain,
                selector=wanted[0],
                signing_now=tuple(sorted(now)),
                selectors=tuple(wanted),
            )
        )
    return moves


# --- the guard -----------------------------------------------------------------------------


def _keep(move: SigningMove) -> str:
    """The dkim_selectors to keep meanwhile: today's signer first, the new one published."""
    order = [*move.signing_now]
    order += [s for s in move.selectors if s not in order]
    return f"[{', '.join(order)}]"


def move_problem(
    move: SigningMove,
    publication: Publication | None,
    now: datetime,
    min_seconds: int | None,
    record_path: str = "",
) -> ModelError | None:
    """Why `move` must wait, or None. `min_seconds` None: the TTL the record was served with."""
    if min_seconds == 0:
        return None
    signing = ", ".join(move.signing_now)
    owner = f"{move.selector}._domainkey.{move.domain}"
    head = f"{move.selector} would sign for {move.domain} in place of {signing}, but"
    if publication is None:
        wait = (
            f"{format_duration(min_seconds)} ({OVERRIDE})"
            if min_seconds is not None
            else f"the record's TTL (bind_ttl; {OVERRIDE} overrides it)"
        )
        where = f" (no {record_path})" if record_path else ""
        return ModelError(
            move.path,
            f"{head} its record {owner} has not been seen published by the dns tier yet"
            f"{where}: mail signed with it would fail DKIM. Publish it first with "
            f"{_keep(move)}, run the dns tier, and move it first once it has been published "
            f"for {wait}.",
        )
    needed = publication.ttl if min_seconds is None else min_seconds
    source = "the record's TTL, bind_ttl" if min_seconds is None else OVERRIDE
    age = (now - publication.published_at).total_seconds()
    if age >= needed:
        return None
    allowed_at = publication.published_at + timedelta(seconds=needed)
    return ModelError(
        move.path,
        f"{head} its record {owner} has been published for only {format_duration(age)} "
        f"(since {iso(publication.published_at)}), less than {format_duration(needed)} "
        f"({source}): resolvers may still cache 'no such selector' and fail mail signed with "
        f"it. It may be moved first from {iso(allowed_at)} (in "
        f"{format_duration(needed - age)}); until then keep {_keep(move)}.",
    )


def check_signing_moves(
    moves: Sequence[SigningMove],
    publications: Mapping[tuple[str, str], Publication | None],
    now: datetime,
    min_seconds: int | None = None,
    record_paths: Mapping[tuple[str, str], str] | None = None,
) -> list[dict[str, Any]]:
    """Raise for every move that comes too early; else describe the moves allowed."""
    if min_seconds is not None and min_seconds < 0:
        raise ModelError(OVERRIDE, f"{min_seconds} is negative; give seconds, 0 to not wait")
    errors = []
    report = []
    for move in moves:
        key = (move.domain, move.selector)
        publication = publications.get(key)
        problem = move_problem(
            move, publication, now, min_seconds, (record_paths or {}).get(key, "")
        )
        if problem is not None:
            errors.append(problem)
            continue
        report.append(
            {
                "domain": move.domain,
                "selector": move.selector,
                "signing_now": list(move.signing_now),
                "published_at": iso(publication.published_at) if publication else None,
            }
        )
    raise_collected(errors)
    return report
