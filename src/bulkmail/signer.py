"""`bulkmail sign`: DKIM-sign mail as OpenDKIM would, with keys parsed once.

    bulkmail sign [--opendkim-conf FILE] [--count N] < message

A dispatcher that signs mail itself can hand it straight to a provider's Postfix instance:
one queue pass and no milter (the OpenDKIM milter costs about half of Postfix's throughput).
Everything comes from OpenDKIM's own configuration, as the opendkim role writes it, so the
two signers cannot drift apart: /etc/opendkim.conf names the KeyTable (`<name>
<domain>:<selector>:<key file>`) and the SigningTable (`refile:` patterns, `*` matches
anything, the first match wins) and gives SignHeaders and OversignHeaders; its
Canonicalization and SignatureAlgorithm must be relaxed/simple and rsa-sha256, the kind of
signature made here.

dkimpy does the DKIM part: it parses the message, selects and canonicalizes the headers,
hashes the body and the headers, and folds the header. The RSA step is `cryptography`'s,
with each key loaded once: dkimpy signs in pure Python and parses the PEM on every call
(about 15 ms a message), and dkimpy 1.0.5 (Debian 12) cannot read the PKCS#8 keys the
dkim_keys role writes at all. dkimpy's `DKIM.sign` reaches its key parser and its RSA through
module globals, so a subclass cannot swap them without patching the module; `signature_header`
calls the same dkimpy functions `DKIM.sign` does (identical in dkimpy 1.0.5 and 1.1.8) instead.
"""

from __future__ import annotations

import argparse
import base64
import email.utils
import hashlib
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

try:
    import dkim
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils
    from dkim.canonicalization import CanonicalizationPolicy
except ImportError as error:  # the other commands need neither: say so when signing
    MISSING: str | None = (
        f"signing needs dkimpy and cryptography (apt-get install python3-dkim "
        f"python3-cryptography): {error}"
    )
else:
    MISSING = None
    POLICY = CanonicalizationPolicy.from_c_value(b"relaxed/simple")

OPENDKIM_CONF = Path("/etc/opendkim.conf")
# What opendkim.conf must say for the signatures to be of the kind made here.
REQUIRED = {"canonicalization": "relaxed/simple", "signaturealgorithm": "rsa-sha256"}
HEADER_NAME = b"DKIM-Signature"
# Signed whatever SignHeaders says: Gmail and Yahoo ignore one-click unsubscribe and Feedback-ID
# headers the signature does not cover (RFC 8058 section 4), and OpenDKIM's default list (RFC
# 6376 5.4.1's) has List-Unsubscribe but neither of the others. Absent headers are not signed.
ALWAYS_SIGNED = frozenset({b"list-unsubscribe", b"list-unsubscribe-post", b"feedback-id"})


class SigningError(Exception):
    """The message cannot be signed; it must not be sent unsigned either."""


@dataclass(frozen=True)
class KeyEntry:
    """One KeyTable line: the d= and s= of a signature and the key that makes it."""

    domain: str
    selector: str
    path: Path
    where: str  # "<KeyTable>:<line>", for errors


@dataclass(frozen=True)
class SigningRule:
    """One SigningTable line: From addresses matching `pattern` sign with key `key_name`."""

    pattern: re.Pattern[str]
    key_name: str


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each line with content, without comments."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise SigningError(f"cannot read {path}: {error}") from None
    numbered = [(n, line.split("#", 1)[0].split()) for n, line in enumerate(text.splitlines(), 1)]
    return [(n, fields) for n, fields in numbered if fields]


def parse_key_table(path: Path) -> dict[str, KeyEntry]:
    """OpenDKIM's KeyTable: key name -> domain, selector, key file."""
    entries = {}
    for number, fields in _lines(path):
        where = f"{path}:{number}"
        value = fields[1].split(":", 2) if len(fields) == 2 else []
        if len(value) != 3 or not all(value):
            raise SigningError(
                f"{where}: expected '<key name> <domain>:<selector>:<private key file>', "
                f"got {' '.join(fields)!r}"
            )
        entries[fields[0].lower()] = KeyEntry(value[0].lower(), value[1], Path(value[2]), where)
    return entries


def parse_signing_table(path: Path, keys: Mapping[str, KeyEntry]) -> list[SigningRule]:
    """OpenDKIM's `refile:` SigningTable, in file order; every key name must be in `keys`."""
    rules = []
    for number, fields in _lines(path):
        if len(fields) != 2:
            raise SigningError(
                f"{path}:{number}: expected '<address pattern> <key name>', "
                f"got {' '.join(fields)!r}"
            )
        pattern, key_name = fields[0], fields[1].lower()
        if key_name not in keys:
            raise SigningError(f"{path}:{number}: key {key_name!r} is not in the KeyTable")
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        rules.append(SigningRule(re.compile(regex, re.IGNORECASE), key_name))
    return rules


def load_key(entry: KeyEntry) -> rsa.RSAPrivateKey:
    """The entry's private key, parsed by `cryptography` (PKCS#1 or PKCS#8 PEM)."""
    try:
        key = serialization.load_pem_private_key(entry.path.read_bytes(), password=None)
    except OSError as error:
        raise SigningError(f"{entry.where}: cannot read key {entry.path}: {error}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise SigningError(
            f"{entry.where}: {entry.path} is not a PEM private key: {error}"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SigningError(
            f"{entry.where}: {entry.path} is not an RSA key; the signature is rsa-sha256, "
            f"as OpenDKIM's SignatureAlgorithm"
        )
    return key


def from_address(headers: Sequence[Sequence[bytes]]) -> str:
    """The address of the message's one From header (its first mailbox, as OpenDKIM takes)."""
    values = [value for name, value in headers if name.lower() == b"from"]
    if len(values) != 1:
        raise SigningError(
            f"the message has {len(values)} From headers; DKIM signs mail with exactly one"
        )
    text = re.sub(r"\r?\n", "", values[0].decode("utf-8", "replace")).strip()
    addresses = [address for _name, address in email.utils.getaddresses([text]) if address]
    if not addresses or "@" not in addresses[0]:
        raise SigningError(f"the From header {text!r} has no address with a domain")
    return addresses[0]


def read_conf(path: Path) -> dict[str, str]:
    """opendkim.conf: lower-cased setting name -> its value (the rest of the line)."""
    settings = {}
    for _number, fields in _lines(path):
        settings[fields[0].lower()] = " ".join(fields[1:])
    return settings


def _header_names(value: str) -> frozenset[bytes]:
    return frozenset(name.strip().lower().encode() for name in value.split(",") if name.strip())


def signature_header(
    parsed: dkim.DKIM,
    key: rsa.RSAPrivateKey,
    domain: str,
    selector: str,
    linesep: bytes,
    sign_headers: frozenset[bytes],
    oversign_headers: frozenset[bytes],
) -> bytes:
    """The DKIM-Signature header line for a message dkimpy parsed, the way `DKIM.sign` makes it.

    dkimpy's steps (header selection, canonicalization, hashes, folding, b= stripping); only
    the RSA signature of the header hash is `cryptography`'s.
    """
    parsed.should_sign, parsed.frozen_sign = set(sign_headers), set(oversign_headers)
    # Present headers of the list in message order, then From once more (oversigned).
    signed = tuple(name.lower() for name in parsed.default_sign_headers())
    body_hash = base64.b64encode(hashlib.sha256(POLICY.canonicalize_body(parsed.body)).digest())
    tags = [
        (b"v", b"1"),
        (b"a", b"rsa-sha256"),
        (b"c", POLICY.to_c_value()),
        (b"d", domain.encode()),
        (b"s", selector.encode()),
        (b"t", str(int(time.time())).encode()),
        (b"h", b" : ".join(signed)),
        (b"bh", body_hash),
    ]
    # The header as hashed: b= empty (dkimpy's gen_header, which fills and strips it).
    unsigned = dkim.fold(
        b"; ".join(b"=".join(tag) for tag in [*tags, (b"b", b"")]), namelen=len(HEADER_NAME)
    )
    hasher = hashlib.sha256()
    headers = POLICY.canonicalize_headers(parsed.headers)
    dkim.hash_headers(hasher, POLICY, headers, signed, (HEADER_NAME, b" " + unsigned), None)
    signature = key.sign(hasher.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
    tags.append((b"b", base64.b64encode(signature)))
    value = b"; ".join(b"=".join(tag) for tag in tags) + linesep
    return HEADER_NAME + b": " + dkim.fold(value, namelen=len(HEADER_NAME), linesep=linesep)


@dataclass
class Signer:
    """Signs messages with the key the SigningTable gives the From address; keys load once."""

    keys: Mapping[str, KeyEntry]
    rules: Sequence[SigningRule]
    signing_table: Path
    sign_headers: frozenset[bytes]
    oversign_headers: frozenset[bytes]
    _loaded: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict, repr=False)

    @classmethod
    def from_conf(cls, conf: Path = OPENDKIM_CONF) -> Signer:
        """From OpenDKIM's configuration and the tables it names; a key is read when it first
        signs, so one bad key file stops only its own domain's mail."""
        if MISSING:
            raise SigningError(MISSING)
        settings = read_conf(conf)
        for name, value in REQUIRED.items():
            if settings.get(name, "").lower() != value:
                raise SigningError(
                    f"{conf}: {name} is {settings.get(name)!r}; bulkmail sign makes {value} "
                    f"signatures only, as the opendkim role configures OpenDKIM"
                )
        tables = {}
        for name, kind in (("keytable", "file:"), ("signingtable", "refile:")):
            value = settings.get(name, "")
            if not value.startswith(kind):
                raise SigningError(f"{conf}: {name} {value!r} is not a {kind} table")
            tables[name] = Path(value.removeprefix(kind))
        keys = parse_key_table(tables["keytable"])
        return cls(
            keys,
            parse_signing_table(tables["signingtable"], keys),
            tables["signingtable"],
            _header_names(settings.get("signheaders", "")) | ALWAYS_SIGNED,
            _header_names(settings.get("oversignheaders", "")),
        )

    def key_name(self, address: str) -> str | None:
        """The SigningTable's key for a From address: the first pattern that matches."""
        return next((r.key_name for r in self.rules if r.pattern.fullmatch(address)), None)

    def sign(self, message: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended (in the message's line ends)."""
        try:
            parsed = dkim.DKIM(message)
        except dkim.MessageFormatError as error:
            raise SigningError(f"the message's header is malformed: {error}") from None
        address = from_address(parsed.headers)
        name = self.key_name(address)
        if name is None:
            domain = address.rpartition("@")[2]
            raise SigningError(
                f"no KeyTable/SigningTable entry signs mail from {domain} ({self.signing_table} "
                f"has no pattern matching {address}); the message is not sent unsigned"
            )
        entry = self.keys[name]
        if name not in self._loaded:
            self._loaded[name] = load_key(entry)
        linesep = b"\r\n" if message.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
        header = signature_header(
            parsed, self._loaded[name], entry.domain, entry.selector, linesep,
            self.sign_headers, self.oversign_headers,
        )  # fmt: skip
        return header + message


def add_table_arguments(parser: argparse.ArgumentParser) -> None:
    """--opendkim-conf (also `bulkmail submit`'s)."""
    parser.add_argument(
        "--opendkim-conf",
        type=Path,
        default=OPENDKIM_CONF,
        help=f"OpenDKIM's configuration: its tables and signed headers (default {OPENDKIM_CONF})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_table_arguments(parser)
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        metavar="N",
        help="benchmark: sign the message N times, print only signs_per_s",
    )


def run(
    args: argparse.Namespace,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Sign the message on stdin to stdout; exit 2 (nothing written) when it cannot be."""
    stdin, stdout = stdin or sys.stdin.buffer, stdout or sys.stdout.buffer
    stderr = stderr or sys.stderr
    if args.count is not None and args.count < 1:
        print(f"bulkmail sign: error: --count must be 1 or more, not {args.count}", file=stderr)
        return 2
    message = stdin.read()
    try:
        signer = Signer.from_conf(args.opendkim_conf)
        signed = signer.sign(message)  # also loads the key: not part of the benchmark
        if args.count is not None:
            started = time.perf_counter()
            for _round in range(args.count):
                signer.sign(message)
            rate = args.count / (time.perf_counter() - started)
            stdout.write(f"signs_per_s: {rate:.1f}\n".encode())
            return 0
    except SigningError as error:
        print(f"bulkmail sign: error: {error}", file=stderr)
        return 2
    stdout.write(signed)
    return 0
