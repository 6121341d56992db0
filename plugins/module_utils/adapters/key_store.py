"""The DKIM key store on the controller: key files and publication records on disk.

`<store>/<domain>/<selector>.private` holds a private key (PEM PKCS#8, 0600, in 0700
directories) and `<store>/<domain>/<selector>.published` the JSON record of when every name
server first served its public key (dkim/rotation.py says why). The keys, the records and
the decisions about them are pure logic in dkim/; this file only reads and writes the files,
for the dkim_key, dkim_publication, dkim_rotation_guard and check_dns modules and for
`bulkmail check-dns`. An existing key is never overwritten: rotating means adding a selector.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterable
from typing import Any

from ..dkim.keys import (
    HAS_CRYPTOGRAPHY,
    DkimKey,
    check_key_type,
    check_request,
    describe_key,
    generate_private_key,
    parse_private_key,
    private_key_pem,
    public_key_b64,
)
from ..dkim.rotation import (
    Publication,
    PublicationRun,
    parse_publication,
    render_publication,
)
from ..model.errors import ModelError

KEY_MODE = 0o600
DIR_MODE = 0o700
PRIVATE_SUFFIX = ".private"
PUBLISHED_SUFFIX = ".published"


# --- private keys ----------------------------------------------------------------------------


def key_path(store: str, domain: str, selector: str) -> str:
    return os.path.join(store, domain, f"{selector}{PRIVATE_SUFFIX}")


def load_private_key(path: str) -> Any:
    with open(path, "rb") as handle:
        return parse_private_key(handle.read(), path)


def _ensure_dir(path: str, check_mode: bool) -> bool:
    """Create `path` (0700) or tighten its mode; True if something changed or would."""
    if not os.path.isdir(path):
        if not check_mode:
            os.makedirs(path, mode=DIR_MODE, exist_ok=True)
            os.chmod(path, DIR_MODE)
        return True
    if stat.S_IMODE(os.stat(path).st_mode) != DIR_MODE:
        if not check_mode:
            os.chmod(path, DIR_MODE)
        return True
    return False


def _private_temp_file(directory: str, prefix: str, data: bytes) -> str:
    """A new file in `directory` holding `data`, readable by the owner only; returns its path."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=directory)
    try:
        os.fchmod(fd, KEY_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _write_new(path: str, data: bytes) -> bool:
    """Write `path` only if it does not exist; False if another process created it first."""
    tmp = _private_temp_file(os.path.dirname(path), ".dkim-", data)
    try:
        os.link(tmp, path)  # unlike rename, link never replaces an existing file
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True


def ensure_key(
    store: str,
    domain: str,
    selector: str,
    key_type: str = "rsa",
    bits: int = 2048,
    *,
    check_mode: bool = False,
) -> DkimKey:
    """Make sure the key exists; return its public half and DNS TXT chunks.

    In check mode a missing key is generated in memory only: its public key is a placeholder
    that differs on every run.
    """
    if not HAS_CRYPTOGRAPHY:
        raise ModelError("", "DKIM keys need the Python cryptography library on the controller")
    check_request(domain, selector, key_type, bits)
    path = key_path(store, domain, selector)
    changed = _ensure_dir(store, check_mode)
    changed = _ensure_dir(os.path.dirname(path), check_mode) or changed
    created = False
    if os.path.exists(path):
        key = load_private_key(path)
        check_key_type(key, key_type, path)
        if stat.S_IMODE(os.stat(path).st_mode) != KEY_MODE:
            if not check_mode:
                os.chmod(path, KEY_MODE)
            changed = True
    else:
        key = generate_private_key(key_type, bits)
        created = True
        changed = True
        if not check_mode and not _write_new(path, private_key_pem(key)):
            key = load_private_key(path)  # lost a race: keep the other writer's key
            created = False
    return describe_key(path, key, changed=changed, created=created)


def public_keys_from_store(store: str, domain: str, selectors: Iterable[str]) -> dict[str, str]:
    """{selector: public key} for the selectors whose private key is in the key store.

    Selectors without a file there are left out, and their published key is checked without
    comparison (dns/check_dkim.py). Needs cryptography.
    """
    keys = {}
    for selector in selectors:
        path = key_path(store, domain, selector)
        if os.path.isfile(path):
            keys[selector] = public_key_b64(load_private_key(path))
    return keys


# --- publication records ---------------------------------------------------------------------


def publication_path(store: str, domain: str, selector: str) -> str:
    return os.path.join(store, domain, f"{selector}{PUBLISHED_SUFFIX}")


def read_publication(store: str, domain: str, selector: str) -> Publication | None:
    path = publication_path(store, domain, selector)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return None
    return parse_publication(text, path)


def write_publication(store: str, domain: str, selector: str, publication: Publication) -> str:
    """Write the record atomically, private like the key beside it; returns its path."""
    path = publication_path(store, domain, selector)
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    data = render_publication(publication).encode("utf-8")
    tmp = _private_temp_file(directory, ".published-", data)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def recorded_selectors(store: str, domain: str) -> list[str]:
    """Selectors of `domain` with a publication record in the store, sorted."""
    try:
        names = os.listdir(os.path.join(store, domain))
    except FileNotFoundError:
        return []
    return sorted(
        name[: -len(PUBLISHED_SUFFIX)]
        for name in names
        if name.endswith(PUBLISHED_SUFFIX) and not name.startswith(".")
    )


def read_publications(store: str, domains: Iterable[str]) -> dict[str, dict[str, Publication]]:
    """{domain: {selector: Publication}}: every record the store holds for `domains`."""
    found: dict[str, dict[str, Publication]] = {}
    for domain in domains:
        for selector in recorded_selectors(store, domain):
            publication = read_publication(store, domain, selector)
            if publication is not None:
                found.setdefault(domain, {})[selector] = publication
    return found


def store_publication_run(store: str, run: PublicationRun) -> None:
    """Make the key store hold what dkim/rotation.publication_run decided (not in check mode)."""
    for domain, selector in run.deletes:
        os.unlink(publication_path(store, domain, selector))
    for (domain, selector), publication in run.writes.items():
        write_publication(store, domain, selector, publication)
