"""What a receiving smtp host takes in, and the policy check on what goes out.

Inbound: a receiver (`Model.receivers`, the domains' MX) accepts mail for the feedback
addresses (`feedback.addresses`) and nothing else. `relay_domains` lets those domains past
`reject_unauth_destination`; `relay_recipient_maps` refuses every other address in them at
RCPT (550 5.1.1, so nothing is queued for a bounce we would have to send); `transport_maps`
hands the feedback addresses to the `feedback` pipe (`bulkmail feedback`, one process per
message and recipient), ahead of the provider classifier; `virtual_alias_maps` forwards
postmaster@ and abuse@ to the operator. The pipe's exit 75 keeps a message queued while the
database is away: what was accepted is never lost.

Outbound: every instance of a primary asks `bulkmail policy` about each recipient, in
`smtpd_recipient_restrictions` (after the relay restrictions' `reject_unauth_destination`),
so a suppressed recipient is refused before anything is queued, on 25, 587 and every lane's
intake. `default_action=DUNNO`: when the daemon is away, mail flows (src/bulkmail/policy.py).

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..feedback.addresses import FeedbackAddresses
from .config import MasterService, Setting

RECIPIENT_MAP = "/etc/postfix/feedback_recipients.regexp"
TRANSPORT_MAP = "/etc/postfix/feedback_transport.regexp"
ALIAS_MAP = "/etc/postfix/feedback_aliases.regexp"
TRANSPORT = "feedback"
DEFAULT_POLICY_SERVICE = "inet:127.0.0.1:10040"
# Processes at once: bounces arrive in bursts after a campaign; each is a short Python run.
FEEDBACK_MAXPROC = 4


# POSIX extended regular expressions (Postfix's regexp tables): these are special, and `/`
# ends the pattern. Python's re.escape also escapes `-`, which POSIX leaves undefined.
_SPECIAL = re.compile(r"([.^$*+?()\[\]{}|\\/])")


def _literal(text: str) -> str:
    return _SPECIAL.sub(r"\\\1", text)


def _address_pattern(address: str) -> str:
    return f"/^{_literal(address)}$/"


def _domain_pattern(domain: str) -> str:
    return f"/^[^@]+@{_literal(domain)}$/"


def postfix_inbound(
    addresses: FeedbackAddresses,
    *,
    command: str,
    user: str,
    transport_maps: Sequence[str],
    arguments: Sequence[str] = (),
) -> dict[str, Any]:
    """The default instance's layer on a receiver: main.cf settings, the pipe, the tables.

    `command` is the `bulkmail` executable, `user` the pipe's account, `arguments` what
    `bulkmail feedback` needs besides the envelope (its files), `transport_maps` what the
    instance's transport_maps was (the provider classifier): the feedback map goes first.
    """
    if not addresses.domains:
        return {"main_cf": [], "master_cf": [], "tables": []}
    received = [_domain_pattern(d) for d in addresses.verp_domains]
    received += [_address_pattern(a) for a in addresses.fixed]
    recipients = ["# The feedback addresses (bulkmail.logic.feedback.addresses); all else: 550."]
    recipients += [f"{pattern} OK" for pattern in received]
    recipients += [f"{_address_pattern(a)} OK" for a in addresses.forwarded]
    transport = ["# What the feedback processor reads (bulkmail feedback, the pipe)."]
    transport += [f"{pattern} {TRANSPORT}:" for pattern in received]
    aliases = ["# postmaster@ and abuse@ reach a person (RFC 5321 4.5.1, RFC 2142)."]
    aliases += [f"{_address_pattern(a)} {to}" for a, to in addresses.forwarded.items()]
    s = Setting
    main_cf = [
        s("relay_domains", ", ".join(addresses.domains),
          "the sending and return-path domains: their MX is here, for the feedback addresses"),
        s("relay_recipient_maps", f"regexp:{RECIPIENT_MAP}",
          "only the feedback addresses are taken in; any other is refused at RCPT"),
        s("transport_maps", ", ".join([f"regexp:{TRANSPORT_MAP}", *transport_maps]),
          "the feedback addresses go to the feedback processor, all else by its MX"),
        s("virtual_alias_maps", f"regexp:{ALIAS_MAP}" if addresses.forwarded else "",
          "postmaster@ and abuse@ of every domain reach the operator"),
        s(f"{TRANSPORT}_destination_recipient_limit", "1",
          "one recipient per pipe run: each feedback address is processed on its own"),
        s(f"{TRANSPORT}_time_limit", "120s",
          "a processor that hangs is killed and the message retried"),
    ]  # fmt: skip
    master_cf = [
        MasterService(
            TRANSPORT, "unix", "pipe",
            "bounces, complaints, reports and unsubscribes into the database; exit 75 keeps "
            "the message queued while the database is away",
            unpriv="n", chroot="n", maxproc=str(FEEDBACK_MAXPROC),
            args=(
                # D: Delivered-To and loop detection, R: Return-Path, X: final delivery
                # (DSN "delivered"), q: quoted local parts; the null sender as "".
                "flags=DRXq", "null_sender=", f"user={user}",
                f"argv={command}", "feedback", *arguments,
                "--sender=${sender}", "--recipient", "${recipient}",
            ),
        ),
    ]  # fmt: skip
    return {
        "main_cf": main_cf,
        "master_cf": master_cf,
        "tables": [
            {"path": RECIPIENT_MAP, "lines": recipients},
            {"path": TRANSPORT_MAP, "lines": transport},
            {"path": ALIAS_MAP, "lines": aliases},
        ],
    }


OWN_NOTICES_MAP = "/etc/postfix/own_notices.regexp"


def own_notices(return_path_domains: Sequence[str]) -> dict[str, Any]:
    """A lane's instance discards the non-delivery notices it would send to our own VERP
    addresses: it only sends mail out, so such a notice is always its own report of a
    bounce the ingester has already read in the log (the SMTP-time 5xx). Without this the
    notice goes to the domain's MX, which is this host: a mail loop (5.4.6) at best, a second
    count of the same bounce at worst. `table` is the map; `transport_maps` its entry."""
    if not return_path_domains:
        return {"table": None, "transport_maps": []}
    lines = ["# Our own notices to our VERP addresses: the ingester has the bounce already."]
    lines += [
        f"{_domain_pattern(domain)} discard:own bounce notice, recorded from the log"
        for domain in return_path_domains
    ]
    return {
        "table": {"path": OWN_NOTICES_MAP, "lines": lines},
        "transport_maps": [f"regexp:{OWN_NOTICES_MAP}"],
    }


def postfix_policy(service: str) -> list[Setting]:
    """smtpd_recipient_restrictions with the suppression check (every instance of a primary)."""
    if not service:
        return []
    return [
        Setting(
            "smtpd_recipient_restrictions",
            f"check_policy_service {{ {service}, default_action=DUNNO, timeout=5s }}",
            "a suppressed recipient is refused with the reason before anything is queued; "
            "DUNNO when the policy service is away, so mail keeps flowing",
        )
    ]
