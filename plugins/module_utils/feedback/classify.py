"""What a failed delivery means for the recipient: a bounce class from (status code, reply).

One function for every source: a DSN's Status and Diagnostic-Code, a Postfix log line's
`dsn=` and reply text (SMTP-time 5xx count as bounces too), a non-standard bounce's body.
Classes are KumoMTA's, in snake_case; each says what a *final* failure of its class does to
the recipient: `hard` suppresses at once, `soft` counts towards N in a window, `none` leaves
the recipient alone (the sender's reputation, authentication or a passing fault is to blame;
`sender_side` marks those that tell about us). A deferral that Postfix retries is no failure
by itself: only its expiry is (`classify(..., expired=True)`).

Rules are data, tried in order, first match wins: the operator's (a YAML file the runtime's
adapter reads, adapters/bounce_rule_file.py) before the defaults (bounce_rules.py). A rule:

    - name: acme-closed-accounts      # required, unique in its file; reported with the class
      class: inactive_mailbox         # required, one of BOUNCE_CLASSES
      dsn: ["5.2.2", "x.7.1"]         # enhanced status code prefixes, by component; x = any
      dsn_regex: '5\\.7\\.5\\d\\d'       # a Python regular expression the whole code matches
      text: 'account .* (closed|gone)'  # searched case-insensitively in the reply text
      disposition: hard               # optional: overrides the class's own

All the conditions a rule gives must hold, and it gives at least one of dsn, dsn_regex, text.
A code prefix matches whole components: `5.1.1` matches 5.1.1, not 5.1.10; `5.1` every 5.1.x.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..model.errors import ModelError
from .bounce_rules import DEFAULT_BOUNCE_RULES

HARD = "hard"
SOFT = "soft"
NO_ACTION = "none"
DISPOSITIONS = (HARD, SOFT, NO_ACTION)

RULE_FIELDS = ("name", "class", "dsn", "dsn_regex", "text", "disposition", "description")
_DSN_PATTERN = re.compile(r"^(?:[245]|x)(?:\.(?:\d{1,3}|x)){0,2}$")
_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_DIAGNOSTIC_TYPE = re.compile(r"^\s*(?:smtp|x-[\w.-]+)\s*;\s*", re.IGNORECASE)
_REPLY_CODE = re.compile(r"(?:^|\bsaid:\s*)([245]\d\d)(?=[\s-]|$)")
_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")


@dataclass(frozen=True)
class BounceClass:
    name: str
    disposition: str
    sender_side: bool
    description: str


BOUNCE_CLASSES: dict[str, BounceClass] = {
    c.name: c
    for c in (
        BounceClass("invalid_recipient", HARD, False, "the mailbox does not exist (5.1.1)"),
        BounceClass("inactive_mailbox", HARD, False, "the mailbox is disabled or closed (5.2.1)"),
        BounceClass("bad_domain", HARD, False, "the domain does not exist or takes no mail"),
        BounceClass("mailbox_full", SOFT, False, "over quota (x.2.2): it often clears"),
        BounceClass("routing", SOFT, False, "the domain routes mail nowhere: relay denied, loop"),
        BounceClass("expired", SOFT, False, "given up at the queue lifetime, never refused"),
        BounceClass("unknown", SOFT, False, "no rule matched: counted, as listmonk does"),
        BounceClass("rate_limit", NO_ACTION, True, "throttled: slow down and retry"),
        BounceClass("reputation_block", NO_ACTION, True, "our IP or domain is blocklisted"),
        BounceClass("spam_content", NO_ACTION, True, "taken for spam, phishing or malware"),
        BounceClass("authentication", NO_ACTION, True, "SPF, DKIM, DMARC or rDNS did not pass"),
        BounceClass("policy", NO_ACTION, True, "refused by the receiver's policy (x.7.x)"),
        BounceClass("invalid_sender", NO_ACTION, True, "our envelope sender was refused"),
        BounceClass("message_too_large", NO_ACTION, True, "over the receiver's size limit"),
        BounceClass("too_many_recipients", NO_ACTION, True, "too many recipients at once"),
        BounceClass("dns_failure", NO_ACTION, False, "a DNS lookup failed for now (4.4.3)"),
        BounceClass("connection", NO_ACTION, False, "no connection, a lost one, or TLS failed"),
        BounceClass("transient", NO_ACTION, False, "another temporary failure: retried"),
    )
}
UNKNOWN = "unknown"
EXPIRED = "expired"


class BounceRuleError(ModelError):
    """A bounce rule file that cannot be used; the message names the rule and the field."""


@dataclass(frozen=True)
class Rule:
    name: str
    bounce_class: str
    dsn: tuple[str, ...] = ()
    dsn_regex: re.Pattern[str] | None = None
    text: re.Pattern[str] | None = None
    disposition: str | None = None
    source: str = "defaults"

    def matches(self, dsn: str | None, text: str) -> bool:
        """Whether every condition of the rule holds for (normalised code, reply text)."""
        if self.dsn and (dsn is None or not any(dsn_matches(p, dsn) for p in self.dsn)):
            return False
        if self.dsn_regex is not None and (dsn is None or not self.dsn_regex.fullmatch(dsn)):
            return False
        return self.text is None or self.text.search(text) is not None


@dataclass(frozen=True)
class Reply:
    """An SMTP reply read from free text: its basic code, enhanced code and one-line text."""

    code: str | None
    dsn: str | None
    text: str


@dataclass(frozen=True)
class Classification:
    """The verdict on one failure. `rule` is None when nothing matched (class unknown);
    `dsn` is the code the rules saw (the given one, or read from the reply); `cause` is the
    class the last answer had when an expiry turned it into `expired`."""

    bounce_class: str
    disposition: str
    sender_side: bool
    rule: str | None
    dsn: str | None
    reply_code: str | None
    text: str
    cause: str | None = None

    @property
    def is_hard(self) -> bool:
        return self.disposition == HARD

    @property
    def is_soft(self) -> bool:
        return self.disposition == SOFT


def dsn_matches(pattern: str, dsn: str) -> bool:
    """Whether a code prefix (`5.1.1`, `5.1`, `x.7.26`) matches a code, by whole components."""
    wanted = pattern.split(".")
    have = dsn.split(".")
    return len(wanted) <= len(have) and all(
        w in ("x", h) for w, h in zip(wanted, have, strict=False)
    )


def clean_dsn(value: str | None) -> str | None:
    """An enhanced status code as `c.s.d` without leading zeros, or None if `value` is none.

    Takes the first word, so DSN fields with a comment (`5.1.1 (bad mailbox)`) read too.
    """
    if not value:
        return None
    words = value.strip().split(maxsplit=1)
    match = _STATUS.match(words[0]) if words else None
    if not match:
        return None
    return ".".join(str(int(n)) for n in match.groups())


def normalize_reply(text: str | None) -> Reply:
    """The reply in one line, its codes read out, and continuation prefixes dropped.

    `smtp; 550-5.1.1 The email account ... Please try\\n550-5.1.1 double-checking ...` becomes
    `550 5.1.1 The email account ... Please try double-checking ...`. The diagnostic type
    (`smtp;`, `X-Postfix;`) goes; a Postfix log reply (`host h[ip] said: 550 ...`) keeps its text.
    """
    line = " ".join(_DIAGNOSTIC_TYPE.sub("", text or "", count=1).split())
    code_match = _REPLY_CODE.search(line)
    code = code_match.group(1) if code_match else None
    enhanced = _ENHANCED.search(line)
    dsn = clean_dsn(enhanced.group(1)) if enhanced else None
    if code_match and enhanced:
        start = code_match.end()
        # Gmail and others repeat "550-5.1.1 " at the start of every line of a reply.
        repeated = re.compile(rf"\s{code}[ -](?:{re.escape(enhanced.group(1))}\s+)?")
        head = line[:start]
        rest = repeated.sub(" ", line[start:])
        if rest.startswith("-"):
            rest = " " + rest[1:]
        line = " ".join((head + rest).split())
    return Reply(code=code, dsn=dsn, text=line)


def effective_dsn(dsn: str | None, reply: Reply) -> str | None:
    """The code to classify by: the given one, unless the reply names a finer one.

    A DSN's `Status: 5.0.0` (what Postfix puts when a reply has no enhanced code) gives way
    to the reply's `5.1.1`; with neither, a basic 4xx/5xx reply code stands as 4.0.0/5.0.0.
    """
    given = clean_dsn(dsn)
    if given is None:
        if reply.dsn:
            return reply.dsn
        return f"{reply.code[0]}.0.0" if reply.code else None
    if given.endswith(".0.0") and reply.dsn and reply.dsn[0] == given[0]:
        return reply.dsn
    return given


def classify(
    dsn: str | None,
    text: str | None,
    rules: Sequence[Rule] | None = None,
    *,
    expired: bool = False,
) -> Classification:
    """The bounce class of a failure from its enhanced status code and reply text.

    `rules` defaults to DEFAULT_RULES (pass combined_rules(operator_rules) to add the
    operator's). `expired` says the failure is an expiry (Postfix gave up at the queue
    lifetime, or a DSN reports Action: failed with a 4.x.x status): the last answer's class
    then becomes `expired` (soft) unless it was a hard one or about us (a rate limit, a
    blocklist: the recipient is not to blame for those); `cause` keeps the last answer's.
    """
    reply = normalize_reply(text)
    code = effective_dsn(dsn, reply)
    matched: Rule | None = next(
        (
            rule
            for rule in (DEFAULT_RULES if rules is None else rules)
            if rule.matches(code, reply.text)
        ),
        None,
    )
    bounce_class = BOUNCE_CLASSES[matched.bounce_class if matched else UNKNOWN]
    disposition = (matched.disposition if matched else None) or bounce_class.disposition
    cause = None
    if (
        expired
        and bounce_class.name != EXPIRED
        and disposition != HARD
        and not bounce_class.sender_side
    ):
        cause = bounce_class.name
        bounce_class = BOUNCE_CLASSES[EXPIRED]
        disposition = bounce_class.disposition
    return Classification(
        bounce_class=bounce_class.name,
        disposition=disposition,
        sender_side=bounce_class.sender_side,
        rule=matched.name if matched else None,
        dsn=code,
        reply_code=reply.code,
        text=reply.text,
        cause=cause,
    )


# ------------------------------------------------------------------------ rule files


def parse_rules(data: Any, source: str = "bounce rules") -> tuple[Rule, ...]:
    """Rules from a parsed rule file: `{rules: [...]}` (and optionally `version: 1`).

    An empty document is no rules. Raises BounceRuleError naming `source`, the rule's index
    and name, and the field, with what to write instead.
    """
    if data is None:
        return ()
    if not isinstance(data, Mapping):
        raise BounceRuleError(source, "must be a mapping with a 'rules' list (rules: [...])")
    unknown = sorted(str(k) for k in data if k not in ("rules", "version"))
    if unknown:
        raise BounceRuleError(source, f"unknown key {unknown[0]!r}; the keys are rules, version")
    if data.get("version", 1) != 1:
        raise BounceRuleError(f"{source}: version", f"{data['version']!r} is not 1")
    raw_rules = data.get("rules")
    if raw_rules is None:
        return ()
    if not isinstance(raw_rules, list):
        raise BounceRuleError(f"{source}: rules", "must be a list of rules (- name: ...)")
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        rule = _parse_rule(raw, f"{source}: rules[{index}]", source)
        if rule.name in seen:
            raise BounceRuleError(
                f"{source}: rules[{index}] ({rule.name}).name",
                f"{rule.name!r} is also the name of rules[{seen[rule.name]}]; names are unique",
            )
        seen[rule.name] = index
        rules.append(rule)
    return tuple(rules)


def combined_rules(operator_rules: Iterable[Rule]) -> tuple[Rule, ...]:
    """The operator's rules, then the defaults: the first match wins."""
    return (*operator_rules, *DEFAULT_RULES)


def _parse_rule(raw: Any, where: str, source: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise BounceRuleError(where, "must be a mapping (name: ..., class: ..., dsn or text)")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BounceRuleError(f"{where}.name", "is required: a short name for the rule")
    name = name.strip()
    here = f"{where} ({name})"
    for key in raw:
        if key not in RULE_FIELDS:
            close = difflib.get_close_matches(str(key), RULE_FIELDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BounceRuleError(
                f"{here}.{key}", f"is not a rule field ({', '.join(RULE_FIELDS)}){hint}"
            )
    bounce_class = raw.get("class")
    if bounce_class not in BOUNCE_CLASSES:
        raise BounceRuleError(
            f"{here}.class",
            f"{bounce_class!r} is not a bounce class; use one of {', '.join(BOUNCE_CLASSES)}",
        )
    disposition = raw.get("disposition")
    if disposition is not None and disposition not in DISPOSITIONS:
        raise BounceRuleError(
            f"{here}.disposition", f"{disposition!r} is not one of {', '.join(DISPOSITIONS)}"
        )
    dsn = _dsn_prefixes(raw.get("dsn"), f"{here}.dsn")
    dsn_regex = _regex(raw.get("dsn_regex"), f"{here}.dsn_regex", 0)
    text = _regex(raw.get("text"), f"{here}.text", re.IGNORECASE)
    if not dsn and dsn_regex is None and text is None:
        raise BounceRuleError(here, "matches everything; give it a dsn, dsn_regex or text")
    return Rule(
        name=name,
        bounce_class=bounce_class,
        dsn=dsn,
        dsn_regex=dsn_regex,
        text=text,
        disposition=disposition,
        source=source,
    )


def _dsn_prefixes(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    values = value if isinstance(value, list) else [value]
    prefixes = []
    for item in values:
        if isinstance(item, (bool, int, float)):
            raise BounceRuleError(
                path, f"{item!r} is a number to YAML; write the code in quotes, e.g. '5.1.1'"
            )
        if not isinstance(item, str) or not _DSN_PATTERN.match(item.strip().lower()):
            raise BounceRuleError(
                path,
                f"{item!r} is not a status code prefix; write e.g. '5.1.1', '5.7', '4' or 'x.7.26'",
            )
        prefixes.append(item.strip().lower())
    if not prefixes:
        raise BounceRuleError(path, "is an empty list; leave it out or give a code prefix")
    return tuple(prefixes)


def _regex(value: Any, path: str, flags: int) -> re.Pattern[str] | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BounceRuleError(path, f"{value!r} is not a regular expression (a string)")
    try:
        return re.compile(value, flags)
    except re.error as error:
        raise BounceRuleError(path, f"{value!r} is not a regular expression: {error}") from error


DEFAULT_RULES: tuple[Rule, ...] = parse_rules(
    {"rules": list(DEFAULT_BOUNCE_RULES)}, source="defaults"
)
