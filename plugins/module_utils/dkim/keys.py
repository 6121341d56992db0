"""DKIM keys: made, encoded, checked and published; pure Python with `cryptography`.

No Ansible import and no file I/O (also `bulkmail.logic.dkim.keys`): the key store on the
controller (`<store>/<domain>/<selector>.private`, PEM PKCS#8, 0600) is
adapters/key_store.py, which reads and writes keys with these functions. An existing key is
never overwritten: rotating means adding a new selector.
"""

from __future__ import annotations

import base64
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
except ImportError:  # the module reports it; public_key_map needs no cryptography
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

from ..dns.records import DKIM_KEY_TYPES, dkim_txt_chunks
from ..model.errors import ModelError
from ..model.fields import validate_domain_name, validate_selector

MIN_RSA_BITS = 1024  # RFC 8301: verifiers must not accept smaller keys
MAX_RSA_BITS = 4096  # larger keys overflow what many DNS setups and verifiers handle


@dataclass(frozen=True)
class DkimKey:
    path: str
    key_type: str
    bits: int
    public_key: str
    txt: list[str]
    changed: bool
    created: bool


def generate_private_key(key_type: str = "rsa", bits: int = 2048) -> Any:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return ed25519.Ed25519PrivateKey.generate()


def private_key_pem(key: Any) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def key_type_of(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise ModelError("", f"{type(key).__name__} keys are not DKIM keys (use rsa or ed25519)")


def public_key_b64(key: Any) -> str:
    """What the DKIM record publishes in p=: DER SubjectPublicKeyInfo for rsa (RFC 6376),
    the raw 32-byte key for ed25519 (RFC 8463)."""
    public = key.public_key()
    if key_type_of(key) == "ed25519":
        data = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        data = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(data).decode("ascii")


def parse_private_key(data: bytes, source: str) -> Any:
    """The key in PEM `data`; a ModelError names `source` (the file it came from)."""
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise ModelError(
            source,
            f"is not an unencrypted PEM private key ({error}); move it away to create a new one",
        ) from None


def check_key_type(key: Any, key_type: str, source: str) -> None:
    """Refuse a stored key of another type than asked for: keys are never replaced."""
    actual = key_type_of(key)
    if actual != key_type:
        raise ModelError(
            source,
            f"holds an {actual} key but type {key_type} was asked for; existing keys are "
            "never replaced: publish the new type under a new selector",
        )


def describe_key(path: str, key: Any, *, changed: bool, created: bool) -> DkimKey:
    """What the dkim_key module returns for `key`: its public half and DNS TXT chunks."""
    key_type = key_type_of(key)
    public = public_key_b64(key)
    return DkimKey(
        path=path,
        key_type=key_type,
        bits=key.key_size if key_type == "rsa" else 256,
        public_key=public,
        txt=dkim_txt_chunks(public, key_type),
        changed=changed,
        created=created,
    )


def check_request(domain: str, selector: str, key_type: str, bits: int) -> None:
    validate_domain_name(domain, "domain")
    validate_selector(selector, "selector")
    if key_type not in DKIM_KEY_TYPES:
        raise ModelError("type", f"{key_type!r} is not one of {', '.join(DKIM_KEY_TYPES)}")
    if key_type == "rsa" and not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        raise ModelError(
            "bits", f"{bits} is outside {MIN_RSA_BITS}..{MAX_RSA_BITS}; 2048 is the usual size"
        )


def public_key_map(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """{domain: {selector: public_key}} from dkim_key results (a registered loop's results)."""
    keys: dict[str, dict[str, str]] = {}
    for index, result in enumerate(results):
        if result.get("skipped"):
            continue
        try:
            domain, selector, public = result["domain"], result["selector"], result["public_key"]
        except KeyError as missing:
            raise ModelError(
                f"results[{index}]",
                f"has no {missing}; pass the results of bulkmail.infra.dkim_key",
            ) from None
        keys.setdefault(domain, {})[selector] = public
    return keys
