"""The VERP return paths this stack sends with, read back.

postfix/config.py's `postfix_verp` moves a sending domain's envelope sender to its
`return_path_domain` and has Postfix add XVERP with the default delimiters `+=`, so mail from
`news@example.test` to `alice@gmail.test` leaves with the envelope sender
`news+alice=gmail.test@bounces.example.test`, and whatever comes back to that address (a DSN,
an ARF report's Original-Mail-From) says which recipient it was about.

Postfix builds it as `sender-local + recipient-local = recipient-domain @ return-path-domain`
and escapes nothing. The recipient domain can hold neither delimiter, so the last `=` splits
it off; the first `+` ends the sender's local part unless a known sender's local part has a
`+` of its own (`senders` settles it); the recipient's local part keeps any `+` or `=`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..model.domains import Domain

DEFAULT_DELIMITERS = "+="  # Postfix's default_verp_delimiters
# RFC 5322 dot-atom text: a local part made of these needs no quotes.
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


class VerpError(ValueError):
    """A VERP address that cannot be made (encode_verp's arguments)."""


@dataclass(frozen=True)
class VerpAddress:
    """A decoded VERP return path.

    `sender` is the address the mail was sent as, on its sending domain (`news@example.test`);
    `recipient` the address it was sent to (`alice@gmail.test`, domain in lower case, local
    part as sent); `return_path` the VERP address itself, domain in lower case.
    """

    sender: str
    recipient: str
    return_path: str


def return_path_domains(domains: Iterable[Domain]) -> dict[str, str]:
    """`{return_path_domain: sending domain}` for the domains that send with VERP.

    The same domains `postfix_verp` gives XVERP: those with a return-path domain of their own.
    """
    return {
        domain.return_path_domain.lower(): domain.name.lower()
        for domain in domains
        if domain.return_path_domain and domain.return_path_domain != domain.name
    }


def decode_verp(
    address: str,
    return_paths: Mapping[str, str],
    *,
    senders: Iterable[str] = (),
    delimiters: str = DEFAULT_DELIMITERS,
) -> VerpAddress | None:
    """The sender and recipient a VERP return path stands for, or None if it is not one.

    `return_paths` maps each return-path domain to its sending domain (return_path_domains);
    an address on any other domain, or without both delimiters, is not a VERP address (say
    `postmaster@bounces.example.test`), and the caller handles it as such. `senders` are the
    addresses known to send (the submission accounts): they settle a sender local part that
    itself holds the first delimiter. Domains compare without case, local parts of `senders`
    too; the address may come in angle brackets or with its local part quoted.
    """
    if len(delimiters) != 2:
        raise VerpError(f"delimiters must be two characters, not {delimiters!r}")
    plus, equals = delimiters[0], delimiters[1]
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    local, at, domain = text.rpartition("@")
    domain = domain.rstrip(".").lower()
    sending_domain = {k.lower(): v.lower() for k, v in return_paths.items()}.get(domain)
    if not at or sending_domain is None:
        return None
    local = _unquote(local)
    head, eq, recipient_domain = local.rpartition(equals)
    if not eq or not recipient_domain or plus not in head:
        return None
    sender_local = _known_sender_local(head, plus, sending_domain, senders)
    if sender_local is None:
        sender_local = head.split(plus, maxsplit=1)[0]
    recipient_local = head[len(sender_local) + 1 :]
    if not sender_local or not recipient_local:
        return None
    return VerpAddress(
        sender=f"{sender_local}@{sending_domain}",
        recipient=f"{_quote(recipient_local)}@{recipient_domain.rstrip('.').lower()}",
        return_path=f"{_quote(local)}@{domain}",
    )


def encode_verp(
    sender: str,
    recipient: str,
    return_path_domain: str,
    *,
    delimiters: str = DEFAULT_DELIMITERS,
) -> str:
    """The envelope sender Postfix gives `sender`'s mail to `recipient` (tests, the lab)."""
    if len(delimiters) != 2:
        raise VerpError(f"delimiters must be two characters, not {delimiters!r}")
    sender_local, at_s, _sender_domain = sender.rpartition("@")
    recipient_local, at_r, recipient_domain = recipient.rpartition("@")
    if not (at_s and sender_local and at_r and recipient_local and recipient_domain):
        raise VerpError(f"need two addresses local@domain, not {sender!r} and {recipient!r}")
    local = f"{_unquote(sender_local)}{delimiters[0]}{_unquote(recipient_local)}"
    return (
        f"{_quote(local + delimiters[1] + recipient_domain.lower())}@{return_path_domain.lower()}"
    )


def _known_sender_local(
    head: str, plus: str, sending_domain: str, senders: Iterable[str]
) -> str | None:
    """The longest known sender local part (on `sending_domain`) that `head` starts with,
    spelled as in `senders`."""
    folded = head.lower()
    candidates: Sequence[str] = sorted(
        (
            local
            for local, _at, domain in (s.strip().strip("<>").rpartition("@") for s in senders)
            if domain.rstrip(".").lower() == sending_domain
            and folded.startswith(local.lower() + plus)
        ),
        key=len,
        reverse=True,
    )
    return candidates[0] if candidates else None


def _unquote(local: str) -> str:
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def _quote(local: str) -> str:
    if _DOT_ATOM.match(local):
        return local
    escaped = local.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
