"""One-click unsubscribe (RFC 8058, RFC 2369): tokens, the headers that carry them, Feedback-ID.

A bulk message names its recipient's way out in two headers, both covered by the DKIM
signature (Gmail and Yahoo ignore them otherwise):

    List-Unsubscribe: <https://unsub.example.com/u/TOKEN>,
     <mailto:unsubscribe@example.com?subject=unsubscribe-TOKEN>
    List-Unsubscribe-Post: List-Unsubscribe=One-Click

The provider POSTs `List-Unsubscribe=One-Click` to the HTTPS URI, without cookies or a
confirmation step, and expects it honoured within 2 days; `bulkmail unsubscribe-web` answers
it. The token says who unsubscribes from whom: tenant, recipient address, campaign and the day
it was issued, signed with HMAC-SHA256, so the endpoint trusts it without a database lookup
and writes the suppression row it gives (`suppression_row`).

The token is `base64url(payload || MAC)` without padding: the payload is a version byte, the
issue day (days since the epoch, 2 bytes: until 2149), then tenant, address and campaign, each
a length byte and UTF-8 (addresses may hold any character); the MAC is HMAC-SHA256 over the
payload truncated to 16 bytes (128 bits: forging one is as hard as guessing the key's output).
A typical token is about 90 characters. Keys rotate: the first key signs, every key verifies,
so a key leaves the list only when the mail it signed no longer matters.

No expiry by default: RFC 8058's links must keep working for as long as the message sits in a
mailbox; `read_token(..., max_age_days=N, today=...)` is there for those who want one.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .suppression import GLOBAL, UNSUBSCRIBE, normalise_address, normalise_domain

VERSION = 1
MAC_BYTES = 16
MIN_KEY_BYTES = 32
MAX_FIELD_BYTES = 255  # one length byte
MAX_DAY = 0xFFFF
# Feedback-ID fields: Gmail's SenderId is 5 to 15 characters; the others are ours to bound.
SENDER_ID_LENGTH = (5, 15)
MAX_FEEDBACK_FIELD = 64
ONE_CLICK = "List-Unsubscribe=One-Click"
HTTP_PATH = "/u/"
MAILTO_SUBJECT_PREFIX = "unsubscribe-"
HEADER_NAMES = ("List-Unsubscribe", "List-Unsubscribe-Post", "Feedback-ID")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_MAILTO_TOKEN = re.compile(r"unsubscribe-([A-Za-z0-9_-]+)", re.IGNORECASE)
# What an address may hold to be written into a mailto: URI without percent-encoding.
_MAILTO_ADDRESS = re.compile(r"^[A-Za-z0-9.!$'*+/=^_`{|}~-]+@[A-Za-z0-9.-]+$")
_FEEDBACK_FIELD = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")  # printable ASCII but the colon


class TokenError(ValueError):
    """A token that is not ours: malformed, signed with no key we hold, or of a version we do
    not read. The endpoint answers every kind alike ("invalid link")."""


@dataclass(frozen=True)
class TokenData:
    """What a valid token says: `recipient` unsubscribes from `tenant`'s mail (`campaign`)."""

    tenant: str
    recipient: str
    campaign: str
    issued_day: int
    version: int = VERSION


@dataclass(frozen=True)
class UnsubscribeRow:
    """The suppression row a valid token gives (migration 0002's columns)."""

    tenant: str
    address: str
    reason: str
    note: str

    def record(self) -> dict[str, str]:
        """The row as the endpoint's spool file keeps it (a JSON object per line)."""
        return {"tenant": self.tenant, "address": self.address, "note": self.note}


def parse_keys(text: str, where: str) -> list[bytes]:
    """The keys of a keys file: one a line, hex or base64 (hex is tried first), `#` comments.

    The first signs, all verify. A key shorter than MIN_KEY_BYTES, or a line that is neither
    encoding, raises ValueError naming `where` and the line, never the key.
    """
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        value = line.split("#", 1)[0].strip()
        if not value:
            continue
        key = _decode_key(value)
        if key is None:
            raise ValueError(f"{where}:{number}: the key is neither hex nor base64")
        if len(key) < MIN_KEY_BYTES:
            raise ValueError(
                f"{where}:{number}: the key is {len(key)} bytes; give at least {MIN_KEY_BYTES} "
                "random bytes (e.g. `openssl rand -hex 32`)"
            )
        keys.append(key)
    if not keys:
        raise ValueError(f"{where}: no key in the file (one hex or base64 key a line)")
    return keys


def _decode_key(value: str) -> bytes | None:
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", value):
        return bytes.fromhex(value)
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _field(value: str, name: str) -> bytes:
    data = value.encode("utf-8")
    if not data:
        raise ValueError(f"the token's {name} is empty")
    if len(data) > MAX_FIELD_BYTES:
        raise ValueError(f"the token's {name} is {len(data)} bytes; at most {MAX_FIELD_BYTES}")
    return bytes([len(data)]) + data


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(key: bytes, tenant: str, recipient: str, campaign: str, issued_day: int) -> str:
    """The token for `recipient` of `tenant`'s `campaign`, issued on `issued_day` (days since
    the epoch). Tenant and address are normalised as the suppression table holds them."""
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"the signing key is {len(key)} bytes; at least {MIN_KEY_BYTES}")
    if isinstance(issued_day, bool) or not isinstance(issued_day, int):
        raise ValueError(f"issued_day {issued_day!r}: give whole days since the epoch")
    if not 0 <= issued_day <= MAX_DAY:
        raise ValueError(f"issued_day {issued_day}: between 0 and {MAX_DAY}")
    tenant_name = tenant.strip().lower()
    if tenant_name == GLOBAL:
        raise ValueError(f"tenant {GLOBAL!r} means every tenant: an unsubscribe names its own")
    payload = (
        bytes([VERSION])
        + issued_day.to_bytes(2, "big")
        + _field(tenant_name, "tenant")
        + _field(normalise_address(recipient), "recipient")
        + _field(campaign, "campaign")
    )
    return base64.urlsafe_b64encode(payload + _mac(key, payload)).rstrip(b"=").decode("ascii")


def read_token(
    keys: Sequence[bytes],
    token: str,
    *,
    max_age_days: int | None = None,
    today: int | None = None,
) -> TokenData:
    """What a token says, once one of `keys` verifies it; TokenError otherwise.

    `max_age_days` (with `today`, days since the epoch) refuses older tokens; without it a
    token never expires, as RFC 8058 links should not.
    """
    if not keys:
        raise ValueError("no key to verify tokens with")
    if not isinstance(token, str) or not _TOKEN.match(token) or len(token) % 4 == 1:
        raise TokenError("not a token: bad format")
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    if len(raw) < 1 + 2 + 3 * 2 + MAC_BYTES:
        raise TokenError("not a token: too short")
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    # every key is tried, so the time taken does not say which one matched
    verified = False
    for key in keys:
        verified |= hmac.compare_digest(_mac(key, payload), mac)
    if not verified:
        raise TokenError("bad signature")
    if payload[0] != VERSION:
        raise TokenError(f"unknown token version {payload[0]}")
    day = int.from_bytes(payload[1:3], "big")
    fields: list[str] = []
    rest = payload[3:]
    for _position in range(3):
        if not rest or len(rest) < 1 + rest[0]:
            raise TokenError("not a token: a field is cut short")
        try:
            fields.append(rest[1 : 1 + rest[0]].decode("utf-8"))
        except UnicodeDecodeError:
            raise TokenError("not a token: a field is not UTF-8") from None
        rest = rest[1 + rest[0] :]
    if rest:
        raise TokenError("not a token: bytes after the last field")
    if max_age_days is not None:
        if today is None:
            raise ValueError("max_age_days needs today (days since the epoch)")
        if today - day > max_age_days:
            raise TokenError(f"the token is {today - day} days old; at most {max_age_days}")
    tenant, recipient, campaign = fields
    return TokenData(tenant, recipient, campaign, day)


def suppression_row(data: TokenData) -> UnsubscribeRow:
    """The row a valid token writes: the tenant's unsubscribe of the address, the campaign as
    the note (what the person left)."""
    return UnsubscribeRow(
        data.tenant.strip().lower(), normalise_address(data.recipient), UNSUBSCRIBE, data.campaign
    )


def row_from_record(record: Any) -> UnsubscribeRow:
    """A spool line's object back to its row; ValueError when it is not one."""
    if isinstance(record, dict):
        tenant, address, note = record.get("tenant"), record.get("address"), record.get("note")
        if all(isinstance(value, str) and value for value in (tenant, address)) and (
            note is None or isinstance(note, str)
        ):
            return UnsubscribeRow(str(tenant), str(address), UNSUBSCRIBE, str(note or ""))
    raise ValueError(f"not an unsubscribe record: {str(record)[:80]}")


def spool_line(row: UnsubscribeRow) -> str:
    """One line of the spool file (JSON, newline-terminated)."""
    return json.dumps(row.record(), separators=(",", ":"), ensure_ascii=False) + "\n"


# ON CONFLICT: the first reason is kept (a complaint or a bounce before the unsubscribe).
# Without a conflict target: naming (tenant, address) would need SELECT on those columns,
# and the endpoint's role may insert and read nothing (the only other unique key is the id).
INSERT_SUPPRESSION = (
    "INSERT INTO suppression (tenant, address, reason, note)"
    " VALUES (%(tenant)s, %(address)s, %(reason)s, %(note)s)"
    " ON CONFLICT DO NOTHING"
)


def insert_params(row: UnsubscribeRow) -> dict[str, str]:
    """psycopg parameters of INSERT_SUPPRESSION for one row."""
    return {"tenant": row.tenant, "address": row.address, "reason": row.reason, "note": row.note}


def token_from_path(path: str) -> str | None:
    """The token of a request path ending in `/u/<token>` (a prefix is nginx's), or None."""
    path = path.split("?", 1)[0]
    head, sep, token = path.rpartition(HTTP_PATH)
    if not sep or "/" in token or not token or (head and not head.startswith("/")):
        return None
    return token


def token_from_mailto_subject(subject: str | None) -> str | None:
    """The token of a mail sent to the mailto: URI, from its Subject (`Re:` and case allowed),
    or None when the subject carries none."""
    if not subject:
        return None
    match = _MAILTO_TOKEN.search("".join(subject.split()))
    return match.group(1) if match else None


def check_base_url(base_url: str) -> str:
    """The HTTPS base of the endpoint, without a trailing slash; ValueError otherwise."""
    url = base_url.strip().rstrip("/")
    if not url.lower().startswith("https://") or len(url) <= len("https://"):
        raise ValueError(f"unsubscribe URL {base_url!r}: RFC 8058 needs an https:// URI")
    if not url.isascii() or any(c.isspace() or c in '<>,"?#' for c in url):
        raise ValueError(
            f"unsubscribe URL {base_url!r}: ASCII without spaces, <, >, comma, quote, ? or #"
        )
    return url


def check_mailto_address(address: str) -> str:
    """An address that goes into `mailto:` as it is; ValueError otherwise."""
    value = address.strip()
    if not _MAILTO_ADDRESS.match(value):
        raise ValueError(
            f"unsubscribe mailto address {address!r}: give a plain ASCII address "
            "(local part without %, ?, &, comma or quotes)"
        )
    local, _at, domain = value.rpartition("@")
    return f"{local}@{normalise_domain(domain)}"


def unsubscribe_headers(
    key: bytes,
    tenant: str,
    recipient: str,
    campaign: str,
    base_url: str,
    mailto_address: str | None,
    issued_day: int,
) -> list[tuple[str, str]]:
    """`List-Unsubscribe` (the HTTPS URI, then the mailto: one when given) and
    `List-Unsubscribe-Post`, as (name, value); the value is folded after the comma."""
    token = make_token(key, tenant, recipient, campaign, issued_day)
    uris = [f"<{check_base_url(base_url)}{HTTP_PATH}{token}>"]
    if mailto_address:
        mailto = check_mailto_address(mailto_address)
        uris.append(f"<mailto:{mailto}?subject={MAILTO_SUBJECT_PREFIX}{token}>")
    return [("List-Unsubscribe", ",\r\n ".join(uris)), ("List-Unsubscribe-Post", ONE_CLICK)]


def feedback_id(campaign: str, tenant: str, stream: str, sender_id: str) -> str:
    """Gmail's `Feedback-ID: campaign:tenant:stream:sender` (what original.parse_feedback_id
    reads back); each field printable ASCII without a colon, SenderId 5 to 15 characters."""
    low, high = SENDER_ID_LENGTH
    for name, value in (("campaign", campaign), ("tenant", tenant), ("stream", stream)):
        if not _FEEDBACK_FIELD.match(value or "") or len(value) > MAX_FEEDBACK_FIELD:
            raise ValueError(
                f"Feedback-ID {name} {value!r}: 1 to {MAX_FEEDBACK_FIELD} printable ASCII "
                "characters, no colon or space"
            )
    if not _FEEDBACK_FIELD.match(sender_id or "") or not low <= len(sender_id) <= high:
        raise ValueError(
            f"Feedback-ID sender id {sender_id!r}: {low} to {high} printable ASCII characters, "
            "no colon or space (Gmail's SenderId)"
        )
    return f"{campaign}:{tenant}:{stream}:{sender_id}"


def replace_headers(message: bytes, headers: Sequence[tuple[str, str]]) -> bytes:
    """The message with every header of these names (folded lines included) removed and the
    given ones added at the end of the header, in the message's line ends.

    Replacing, not adding: a second List-Unsubscribe would leave the provider to choose, and a
    message with two is what an attacker appending one after signing would make.
    """
    crlf = message.split(b"\n", 1)[0].endswith(b"\r")
    linesep = b"\r\n" if crlf else b"\n"
    end = message.find(linesep + linesep)
    if end < 0:
        head, body = message.rstrip(b"\r\n"), b""
    else:
        head, body = message[:end], message[end + len(linesep) :]
    names = {name.lower().encode("ascii") for name, _value in headers}
    kept: list[bytes] = []
    dropping = False
    for line in head.split(linesep) if head else []:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() in names
        if not dropping:
            kept.append(line)
    for name, value in headers:
        text = f"{name}: {value}".replace("\r\n", linesep.decode("ascii"))
        kept.append(text.encode("ascii"))
    return linesep.join(kept) + linesep + (body or linesep)
