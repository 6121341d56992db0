"""The DKIM check of one selector: its key record, key type and size, and the expected key.

Pure Python, no network code (also `bulkmail.logic.dns.check_dkim`): DNS through `resolve`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .parsers import tag_list
from .records import DKIM_KEY_TYPES, ED25519_KEY_BYTES
from .report import (
    WARN,
    Check,
    LookupFailed,
    Resolve,
    join_reasons,
    lookup_failed_check,
    ok_check,
    problem_check,
)

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
except ImportError:  # key sizes then go unchecked, and the DKIM check says so
    HAS_CRYPTOGRAPHY = False
else:
    HAS_CRYPTOGRAPHY = True
MIN_DKIM_RSA_BITS = 1024  # RFC 8301 3.2: verifiers must not accept smaller keys
GOOD_DKIM_RSA_BITS = 2048  # what Gmail and Yahoo ask bulk senders for


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
        return lookup_failed_check(name, error)
    found = [text for text in texts if "p=" in text or text.lstrip().startswith("v=DKIM1")]
    if not found:
        seen = f" (the TXT there is {texts[0]!r})" if texts else ""
        return problem_check(
            name,
            f"no DKIM key record at {owner}{seen}: mail signed with selector {selector} fails "
            "DKIM, and DMARC then rests on SPF alone",
            fix_publish,
            owner,
        )
    if len(found) > 1:
        return problem_check(
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
        return problem_check(
            name, f"{owner}: {join_reasons(hard + soft)}", fix, owner, details=details
        )
    size = f"{bits}-bit {key_type} key" if bits else f"{key_type} key"
    matched = "; matches the private key" if details.get("matches_private_key") else ""
    if soft:
        return Check(
            name,
            WARN,
            True,
            f"{size}{matched}; {join_reasons(soft)}",
            "Rotate to a new selector with a 2048-bit RSA key and no t=y flag.",
            owner,
            details,
        )
    return ok_check(name, f"{size}{matched}", owner, details=details)
