"""Provider rate limiting: recognise a provider's "slow down" reply, and slow that provider
for that source IP, lifting again when it stays quiet.

Replies, from /work/shared/PROVIDERS.md (the providers' postmaster pages and KumoMTA's
shaping defaults) unless a comment says otherwise:

- Google: `421-4.7.28 [IP] Our system has detected an unusual rate of unsolicited mail ...
  temporarily rate limited` (often after DATA); 4.7.28 also comes with 450 and 451.
- Yahoo: `421 4.7.0 [TSS04] Messages from IP temporarily deferred due to unexpected volume or
  user complaints` (at MAIL FROM; Yahoo asks for a retry after about 4 hours); KumoMTA
  suspends on `[TSS04]` and `[TS04]`. `[TS01]` and `[TS02]` (deferred for complaints) are
  from Yahoo's published SMTP error codes, not from PROVIDERS.md.
- Microsoft: `451 4.7.500 Server busy. Please try again later from [IP].`,
  `451 4.7.650 ... temporarily rate limited due to IP reputation`; Microsoft 365:
  `421 4.3.2 The maximum number of concurrent connections ... has exceeded a limit`.
- `S3150` is no rate limit: PROVIDERS.md gives it as Microsoft's block list reply
  (`550 5.7.1 ... on our block list (S3150)`). It is recognised as a `blocked` signal, which
  drops the address to the floor at once; likewise Yahoo's `[BL21]` (553 5.7.1, Spamhaus).
- Anything else temporary that says "rate limit", "too many connections/messages" or
  "throttl..." is a generic rate limit. Permanent replies are never rate limits (a 5xx that
  says "too many" is a policy refusal, classify.py's business).

The throttle per (provider, source IP) multiplies the allowed rate: each rate-limit signal
halves it (down to `floor`, default 1/16: slow enough that a provider sees the change, fast
enough that mail still leaves), a block drops it to the floor; after `quiet` (15 minutes)
without a signal it doubles, again every 15 quiet minutes, up to 1. Yahoo's retry-after-4-h
request is honoured as a hold: no lifting before 4 hours have passed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import require_utc

RATE_LIMIT = "rate_limit"
BLOCKED = "blocked"
GENERIC = "generic"

DEFAULT_DIVISOR = 2
DEFAULT_FLOOR = 1 / 16
DEFAULT_QUIET = timedelta(minutes=15)
# Yahoo: "a retry after about 4 hours" (PROVIDERS.md).
YAHOO_HOLD = timedelta(hours=4)


@dataclass(frozen=True)
class Reply:
    """An SMTP reply as the log or the client saw it: `421`, `4.7.28`, the text."""

    code: int
    enhanced: str = ""
    text: str = ""


@dataclass(frozen=True)
class ProviderSignal:
    """A reply recognised as a provider's signal: whose pattern matched, which, and how long
    the provider asked us to hold before speeding up again."""

    provider: str
    rule: str
    kind: str
    hold: timedelta = timedelta(0)


@dataclass(frozen=True)
class _Rule:
    provider: str
    name: str
    kind: str
    codes: tuple[int, ...]  # reply codes it applies to; () = any 4xx
    enhanced: str = ""  # the enhanced code, exactly
    text: str = ""  # a regular expression searched in the text, case-insensitively
    hold: timedelta = timedelta(0)


_ENHANCED_IN_TEXT = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\d|\.\d)")

# Ordered: the first rule that matches wins, provider rules before the generic ones.
_RULES = (
    _Rule("google", "4.7.28", RATE_LIMIT, (421, 450, 451), enhanced="4.7.28"),
    _Rule("yahoo", "TSS04", RATE_LIMIT, (), text=r"\[TSS04\]", hold=YAHOO_HOLD),
    _Rule("yahoo", "TS04", RATE_LIMIT, (), text=r"\[TS04\]", hold=YAHOO_HOLD),
    _Rule("yahoo", "TS01", RATE_LIMIT, (), text=r"\[TS01\]", hold=YAHOO_HOLD),
    _Rule("yahoo", "TS02", RATE_LIMIT, (), text=r"\[TS02\]", hold=YAHOO_HOLD),
    _Rule("microsoft", "4.7.500", RATE_LIMIT, (), enhanced="4.7.500"),
    _Rule("microsoft", "4.7.650", RATE_LIMIT, (), enhanced="4.7.650"),
    _Rule("microsoft", "4.3.2", RATE_LIMIT, (421,), enhanced="4.3.2", text="concurrent"),
    _Rule("microsoft", "S3150", BLOCKED, (550, 554), text=r"\(S3150\)|\bS3150\b"),
    _Rule("yahoo", "BL21", BLOCKED, (553, 554), text=r"\[BL21\]"),
    _Rule(GENERIC, "rate limit", RATE_LIMIT, (), text=r"rate[ -]?limit"),
    _Rule(GENERIC, "throttled", RATE_LIMIT, (), text=r"throttl"),
    _Rule(
        GENERIC,
        "too many",
        RATE_LIMIT,
        (),
        text=r"too many (?:connections|messages|mails?|emails?|sessions|concurrent)",
    ),
)


def classify_reply(reply: Reply) -> ProviderSignal | None:
    """The provider signal `reply` carries, or None for an ordinary reply."""
    enhanced = reply.enhanced.strip()
    if not enhanced:
        found = _ENHANCED_IN_TEXT.search(reply.text)
        enhanced = found.group(1) if found else ""
    for rule in _RULES:
        if rule.codes:
            if reply.code not in rule.codes:
                continue
        elif not 400 <= reply.code < 500:
            continue
        if rule.enhanced and enhanced != rule.enhanced:
            continue
        if rule.text and not re.search(rule.text, reply.text, re.IGNORECASE):
            continue
        return ProviderSignal(rule.provider, rule.name, rule.kind, rule.hold)
    return None


@dataclass(frozen=True)
class ThrottlePolicy:
    divisor: int = DEFAULT_DIVISOR
    floor: float = DEFAULT_FLOOR
    quiet: timedelta = DEFAULT_QUIET

    def __post_init__(self) -> None:
        if self.divisor < 2 or not 0 < self.floor <= 1 or self.quiet <= timedelta(0):
            raise ValueError("divisor >= 2, floor in (0, 1], quiet positive")


@dataclass(frozen=True)
class Throttle:
    """The allowed share of a (provider, source IP)'s rate: `factor` as set at `since`, the
    last signal; lifting starts at `since + hold`."""

    factor: float = 1.0
    since: datetime | None = None
    hold: timedelta = timedelta(0)


def throttle_factor(
    throttle: Throttle, now: datetime, policy: ThrottlePolicy = ThrottlePolicy()
) -> float:
    """The share of the normal rate allowed at `now` (1 when unthrottled)."""
    if throttle.since is None or throttle.factor >= 1:
        return 1.0
    quiet = require_utc(now) - throttle.since - throttle.hold
    if quiet < timedelta(0):
        return throttle.factor
    periods = int(quiet / policy.quiet)
    return min(1.0, throttle.factor * policy.divisor**periods) if periods < 64 else 1.0


def after_signal(
    throttle: Throttle,
    signal: ProviderSignal,
    when: datetime,
    policy: ThrottlePolicy = ThrottlePolicy(),
) -> Throttle:
    """The throttle after `signal` arrived at `when`: halved from what it had lifted to (a
    block: the floor), and the quiet period starts again."""
    when = require_utc(when, "when")
    current = throttle_factor(throttle, when, policy)
    factor = policy.floor if signal.kind == BLOCKED else current / policy.divisor
    hold = max(signal.hold, _remaining_hold(throttle, when))
    return Throttle(max(policy.floor, factor), when, hold)


@dataclass(frozen=True)
class Observed:
    """A reply that `source_ip` got from `provider` (the destination's, classified by MX)."""

    time: datetime
    provider: str
    source_ip: str
    reply: Reply


def apply_replies(
    throttles: Mapping[tuple[str, str], Throttle],
    observed: Iterable[Observed],
    policy: ThrottlePolicy = ThrottlePolicy(),
) -> dict[tuple[str, str], Throttle]:
    """New throttles keyed by (provider, source IP) after `observed`, taken in time order;
    ordinary replies change nothing. Keyed by the destination's provider, not the rule's: a
    generic "rate limit" from Google slows Google."""
    result = dict(throttles)
    for seen in sorted(observed, key=lambda item: item.time):
        signal = classify_reply(seen.reply)
        if signal is not None:
            key = (seen.provider, seen.source_ip)
            result[key] = after_signal(result.get(key, Throttle()), signal, seen.time, policy)
    return result


def _remaining_hold(throttle: Throttle, when: datetime) -> timedelta:
    if throttle.since is None:
        return timedelta(0)
    return max(timedelta(0), throttle.since + throttle.hold - when)
