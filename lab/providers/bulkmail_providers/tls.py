"""Certificates of the lab's "internet": self-signed ones made at start, and the relays' kept ones.

The providers' MX hosts and an unpinned relay make a self-signed certificate at start: what
Postfix's opportunistic TLS towards receivers meets (it does not verify), and what a relay
that may get no password looks like. The relays the lab's model trusts keep theirs in
`inventories/lab/.secrets/` (`python3 -m bulkmail_providers lab-certs`, run by `make
lab-hosts` before they start): a lab CA, which the smtp hosts trust as an operator trusts a
private CA, signs one relay's certificate for its name; another relay's self-signed pair is
pinned by its public key's SHA-256 digest in the inventory.
"""

from __future__ import annotations

import datetime
import hashlib
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LAB_CA = "lab-ca"
LAB_CA_NAME = "bulkmail lab relay CA"
CA_DAYS = 3650
LEAF_DAYS = 825
# A kept certificate is made again this close to its end (its key stays: the pin holds).
RENEW_BEFORE = datetime.timedelta(days=30)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _expiry(certificate: x509.Certificate) -> datetime.datetime:
    after = getattr(certificate, "not_valid_after_utc", None)  # cryptography >= 42
    if after is None:  # Debian 12's cryptography 38: naive UTC
        after = certificate.not_valid_after.replace(tzinfo=datetime.UTC)
    return after


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def _server_extensions(
    builder: x509.CertificateBuilder, hostnames: Sequence[str]
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in hostnames]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    )


def self_signed(
    hostnames: Sequence[str], key: ec.EllipticCurvePrivateKey | None = None, days: int = 365
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for `hostnames` (the first as CN, all as SANs), signed by its own key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    builder = _server_extensions(_builder(hostnames[0], name, key, days), hostnames)
    return builder.sign(key, hashes.SHA256()), key


def ca_certificate(key: ec.EllipticCurvePrivateKey, days: int = CA_DAYS) -> x509.Certificate:
    """The lab CA: signs server certificates only (path length 0)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LAB_CA_NAME)])
    usage = x509.KeyUsage(
        digital_signature=False, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    return (
        _builder(LAB_CA_NAME, name, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(usage, True)
        .sign(key, hashes.SHA256())
    )


def signed_by(
    hostnames: Sequence[str],
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int = LEAF_DAYS,
) -> x509.Certificate:
    """A server certificate for `hostnames` issued by `ca`."""
    builder = _server_extensions(_builder(hostnames[0], ca.subject, key, days), hostnames)
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
    )
    return builder.sign(ca_key, hashes.SHA256())


def public_key_sha256(key: ec.EllipticCurvePrivateKey | x509.Certificate) -> str:
    """The SHA-256 digest of the DER public key (SubjectPublicKeyInfo), as Postfix prints a
    fingerprint: upper-case hex, a colon between octets."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return ":".join(f"{octet:02X}" for octet in hashlib.sha256(der).digest())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def self_signed_pem(hostnames: Sequence[str], days: int = 365) -> tuple[bytes, bytes]:
    """(certificate, private key) in PEM, the first host name as CN, all of them as SANs."""
    certificate, key = self_signed(hostnames, days=days)
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem(key)


# --------------------------------------------------------------- kept certificates


def _write(path: Path, data: bytes, mode: int) -> None:
    path.touch(mode=mode)
    path.chmod(mode)
    path.write_bytes(data)


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (FileNotFoundError, ValueError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_certificate(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _fresh(certificate: x509.Certificate | None, key: ec.EllipticCurvePrivateKey) -> bool:
    """The certificate exists, is for `key` and lasts beyond the renewal margin."""
    return (
        certificate is not None
        and public_key_sha256(certificate) == public_key_sha256(key)
        and _expiry(certificate) - _now() > RENEW_BEFORE
    )


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    public_key = ca.public_key()
    if certificate.issuer != ca.subject or not isinstance(public_key, ec.EllipticCurvePublicKey):
        return False
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        public_key.verify(
            certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm)
        )
    except InvalidSignature:
        return False
    return True


def kept_files(directory: Path, name: str) -> tuple[Path, Path]:
    """(certificate, key) of relay `name` in `directory`: relay-<name>-tls.crt and .key."""
    return directory / f"relay-{name}-tls.crt", directory / f"relay-{name}-tls.key"


def pin_file(directory: Path, name: str) -> Path:
    """The pinned relay's public-key digest, which the lab inventory reads."""
    return directory / f"relay-{name}-tls.sha256"


def ensure_lab_certificates(
    directory: Path, ca_signed: Mapping[str, str], pinned: Mapping[str, str]
) -> list[str]:
    """Make what is missing or ending: the lab CA, each `ca_signed` relay's certificate
    (relay name -> host name) signed by it, each `pinned` relay's self-signed pair and its
    digest. Keys are kept, so a renewed certificate keeps its pin. Returns the files written.
    """
    written: list[str] = []

    def key_of(path: Path) -> ec.EllipticCurvePrivateKey:
        key = _load_key(path)
        if key is None:
            key = ec.generate_private_key(ec.SECP256R1())
            _write(path, key_pem(key), 0o600)
            written.append(path.name)
        return key

    def keep(path: Path, certificate: x509.Certificate) -> None:
        _write(path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
        written.append(path.name)

    if ca_signed:
        ca_key = key_of(directory / f"{LAB_CA}.key")
        ca_path = directory / f"{LAB_CA}.crt"
        ca = _load_certificate(ca_path)
        if ca is None or not _fresh(ca, ca_key):
            ca = ca_certificate(ca_key)
            keep(ca_path, ca)
        for name, hostname in ca_signed.items():
            cert_path, key_path = kept_files(directory, name)
            key = key_of(key_path)
            leaf = _load_certificate(cert_path)
            if leaf is None or not _fresh(leaf, key) or not _issued_by(leaf, ca):
                keep(cert_path, signed_by([hostname], key, ca, ca_key))
    for name, hostname in pinned.items():
        cert_path, key_path = kept_files(directory, name)
        key = key_of(key_path)
        if not _fresh(_load_certificate(cert_path), key):
            keep(cert_path, self_signed([hostname], key, days=LEAF_DAYS)[0])
        digest = public_key_sha256(key) + "\n"
        pin = pin_file(directory, name)
        if not pin.exists() or pin.read_text() != digest:
            _write(pin, digest.encode(), 0o644)
            written.append(pin.name)
    return written


# ----------------------------------------------------------------------- servers


def server_tls_context(
    hostnames: Sequence[str], files: tuple[Path, Path] | None = None
) -> ssl.SSLContext:
    """A server context with the kept (certificate, key) `files`, or a self-signed pair made
    now for `hostnames`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if files is not None:
        context.load_cert_chain(*files)
        return context
    certificate, key = self_signed_pem(hostnames)
    # load_cert_chain reads files only; they live just long enough to be read
    with tempfile.TemporaryDirectory(prefix="providers-tls-") as directory:
        cert_path, key_path = Path(directory) / "cert.pem", Path(directory) / "key.pem"
        cert_path.write_bytes(certificate)
        key_path.touch(mode=0o600)
        key_path.write_bytes(key)
        context.load_cert_chain(cert_path, key_path)
    return context
