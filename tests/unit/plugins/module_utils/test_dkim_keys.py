"""The DKIM key store: keys that are created once, kept private and published correctly."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import ensure_key
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.keys import public_key_map
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_creates_an_rsa_2048_key_private_to_the_owner(tmp_path: Path) -> None:
    store = tmp_path / "secrets" / "dkim"
    key = ensure_key(str(store), "example.com", "s2026a")
    path = store / "example.com" / "s2026a.private"
    assert key.path == str(path)
    assert (key.changed, key.created, key.key_type, key.bits) == (True, True, "rsa", 2048)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert mode(store) == 0o700
    pem = path.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    private = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64decode(key.public_key) == der
    assert "".join(key.txt) == f"v=DKIM1; k=rsa; p={key.public_key}"
    assert all(len(chunk) <= 255 for chunk in key.txt)


def test_a_second_run_changes_nothing_and_returns_the_same_key(tmp_path: Path) -> None:
    first = ensure_key(str(tmp_path), "example.com", "s1", bits=1024)
    second = ensure_key(str(tmp_path), "example.com", "s1", bits=1024)
    assert (second.changed, second.created) == (False, False)
    assert second.public_key == first.public_key


def test_an_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    ensure_key(str(tmp_path), "example.com", "s1", bits=1024)
    path = tmp_path / "example.com" / "s1.private"
    before = path.read_bytes()
    key = ensure_key(str(tmp_path), "example.com", "s1", bits=2048)
    assert path.read_bytes() == before
    assert (key.changed, key.bits) == (False, 1024)


def test_ed25519_publishes_the_raw_32_byte_key(tmp_path: Path) -> None:
    key = ensure_key(str(tmp_path), "example.com", "e1", "ed25519")
    private = serialization.load_pem_private_key(
        (tmp_path / "example.com" / "e1.private").read_bytes(), password=None
    )
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert base64.b64decode(key.public_key) == raw
    assert len(raw) == 32
    assert key.txt == [f"v=DKIM1; k=ed25519; p={key.public_key}"]


def test_check_mode_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "dkim"
    key = ensure_key(str(store), "example.com", "s1", bits=1024, check_mode=True)
    assert (key.changed, key.created) == (True, True)
    assert key.public_key
    assert not store.exists()


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    ensure_key(str(tmp_path), "example.com", "s1", bits=1024)
    path = tmp_path / "example.com" / "s1.private"
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    assert ensure_key(str(tmp_path), "example.com", "s1", check_mode=True).changed
    assert mode(path) == 0o644  # check mode only reports
    assert ensure_key(str(tmp_path), "example.com", "s1").changed
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)


def test_a_key_of_another_type_is_not_replaced(tmp_path: Path) -> None:
    ensure_key(str(tmp_path), "example.com", "s1", bits=1024)
    path = tmp_path / "example.com" / "s1.private"
    with pytest.raises(ModelError) as caught:
        ensure_key(str(tmp_path), "example.com", "s1", "ed25519")
    assert str(caught.value) == (
        f"{path}: holds an rsa key but type ed25519 was asked for; existing keys are never "
        "replaced: publish the new type under a new selector"
    )


def test_a_file_that_is_not_a_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "example.com").mkdir(mode=0o700)
    path = tmp_path / "example.com" / "s1.private"
    path.write_text("not a key")
    with pytest.raises(ModelError, match="is not an unencrypted PEM private key"):
        ensure_key(str(tmp_path), "example.com", "s1")
    assert path.read_text() == "not a key"


@pytest.mark.parametrize(
    ("domain", "selector", "key_type", "bits", "message"),
    [
        ("example.com", "s1", "rsa", 512,
         "bits: 512 is outside 1024..4096; 2048 is the usual size"),
        ("example.com", "s1", "dsa", 2048, "type: 'dsa' is not one of rsa, ed25519"),
        ("example.com", "../x", "rsa", 2048,
         "selector: '../x' is not a valid DKIM selector: use letters, digits and hyphens, "
         "e.g. 's2026a'"),
        ("../etc", "s1", "rsa", 2048,
         "domain: '../etc' is not a valid domain name: empty label"),
    ],
)  # fmt: skip
def test_bad_requests_are_refused_before_touching_disk(
    tmp_path: Path, domain: str, selector: str, key_type: str, bits: int, message: str
) -> None:
    with pytest.raises(ModelError) as caught:
        ensure_key(str(tmp_path / "store"), domain, selector, key_type, bits)
    assert str(caught.value) == message
    assert not (tmp_path / "store").exists()


def test_public_key_map_from_looped_results() -> None:
    results = [
        {"domain": "example.com", "selector": "s1", "public_key": "AAA"},
        {"domain": "example.com", "selector": "s2", "public_key": "BBB"},
        {"domain": "shop.example", "selector": "s1", "public_key": "CCC"},
        {"skipped": True},
    ]
    assert public_key_map(results) == {
        "example.com": {"s1": "AAA", "s2": "BBB"},
        "shop.example": {"s1": "CCC"},
    }


def test_public_key_map_refuses_foreign_results() -> None:
    with pytest.raises(ModelError) as caught:
        public_key_map([{"msg": "hello"}])
    assert str(caught.value) == (
        "results[0]: has no 'domain'; pass the results of bulkmail.infra.dkim_key"
    )
