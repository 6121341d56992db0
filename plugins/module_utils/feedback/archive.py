"""The log archive's pure half (`bulkmail archive`): journal entries in, S3 objects out.

The runtime reads the smtp host's journal (the mail facility, from the saved cursor to the
current end) and hands the entries to `pack()`, which keeps Postfix's (SYSLOG_IDENTIFIER
starting with `postfix`, as the ingester filters) and cuts them into objects of at most
`chunk_lines` entries. Each object is gzip of JSON lines, one per entry:

    {"realtime_us": 1767225600123456, "cursor": "s=...", "hostname": "mta1",
     "identifier": "postfix/smtp", "pid": 4242, "message": "3F1A2B: to=<...>, status=sent ..."}

and its key follows from its first entry alone:

    <prefix><host>/YYYY/MM/DD/HHMMSS-<first 16 hex of sha256(first cursor)>.jsonl.gz

(the first entry's UTC time). The runtime saves the cursor of an object's last entry only once
the store has it, so a run that dies between the upload and the save starts again at the same
entry, builds an object that starts there too (the same lines, or more if the journal grew)
and puts it under the same key: the archive neither loses nor doubles a line. The bytes are
deterministic (zlib's gzip header carries no time and no name), so the same lines give the
same object and the same Content-MD5.

An object ends at the first Postfix entry past `chunk_lines`; the other entries of the mail
facility (OpenDKIM's, the policy service's) between two objects belong to the earlier one's
range, so its last cursor skips them and they are not read again. When nothing but such
entries is new, `pack()` yields an empty `Chunk` (entries 0, nothing to upload) whose cursor
moves past them.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..model.archive import LogArchive, parse_archive_config
from ..model.errors import ModelError
from ..model.fields import control_character, secret

IDENTIFIER_PREFIX = "postfix"  # as bulkmail ingest (src/bulkmail/ingest.py) filters
CONTENT_TYPE = "application/gzip"
SUFFIX = ".jsonl.gz"
COMPRESS_LEVEL = 6  # zlib's default: most of 9's ratio at a third of its time
GZIP_WBITS = 16 + zlib.MAX_WBITS  # the gzip container: zcat and every reader take it
DIGEST_HEX = 16
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CREDENTIALS = ("access_key_id", "secret_access_key")
# What the store says, in words the operator acts on; the server's own message is not
# logged (some stores echo the request in it).
ERROR_HINTS = {
    "NoSuchBucket": "the bucket does not exist: create it, or correct bulkmail_log_archive.bucket",
    "InvalidAccessKeyId": "the store does not know the access key id",
    "SignatureDoesNotMatch": "the store refused the signature: check the secret access key",
    "AccessDenied": "the credentials may not put objects into this bucket (s3:PutObject)",
    "InvalidToken": "the store refused the credentials",
    "ExpiredToken": "the credentials have expired",
    "AuthorizationHeaderMalformed": "the store refused the request: check region",
    "PermanentRedirect": "the bucket is in another region or behind another endpoint",
    "BadDigest": "the store received other bytes than were sent (Content-MD5)",
    "InvalidDigest": "the store refused the Content-MD5",
    "SlowDown": "the store asks to slow down",
    "ServiceUnavailable": "the store is unavailable",
    "InternalError": "the store failed",
    "RequestTimeout": "the store timed out",
}


def load_config(raw: Any) -> LogArchive:
    """The runtime's `--config` content (the filter's `config`), checked like the model's
    variable; `ModelError` names the key."""
    return parse_archive_config(raw)


@dataclass(frozen=True)
class Credentials:
    """The store's credentials; their repr shows neither."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)

    @property
    def secrets(self) -> tuple[str, str]:
        return (self.access_key_id, self.secret_access_key)


def load_credentials(raw: Any) -> Credentials:
    """The `--credentials-file` content: exactly access_key_id and secret_access_key. The
    errors name a key, never a value (nor an unknown key: it could be a value misplaced)."""
    if not isinstance(raw, Mapping):
        raise ModelError("", "is not a JSON object with access_key_id and secret_access_key")
    if any(key not in CREDENTIALS for key in raw):
        raise ModelError("", "holds keys other than access_key_id and secret_access_key")
    values = [secret(raw.get(key), key, "the role writes it from the model") for key in CREDENTIALS]
    return Credentials(*values)


def check_host(value: Any) -> str:
    """The host's name in the keys: one path segment, printable, no space."""
    if not isinstance(value, str) or not value or value in (".", ".."):
        raise ModelError("", f"{value!r} is not a host name")
    if len(value) > 253 or "/" in value or any(c.isspace() for c in value):
        raise ModelError("", f"{value!r} is not a host name (one word, no '/')")
    if control_character(value) is not None:
        raise ModelError("", "contains a control character")
    return value


# ---------------------------------------------------------------------- entries


def realtime_us(value: Any) -> int | None:
    """The journal's __REALTIME_TIMESTAMP as integer microseconds (the runtime asks
    python-systemd for the integer; a datetime or the raw text are taken too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:  # python-systemd's default: local time
            return round(value.timestamp() * 1_000_000)
        return (value - EPOCH) // timedelta(microseconds=1)
    return None


def _text(value: Any) -> str | None:
    """A journal field as text that encodes to UTF-8 (python-systemd leaves bytes that are
    not UTF-8 as bytes)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return None


def _pid(entry: Mapping[str, Any]) -> int | None:
    for key in ("_PID", "SYSLOG_PID"):
        value = entry.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, (str, bytes)) and value.strip().isdigit():
            return int(value)
    return None


def journal_record(
    entry: Mapping[str, Any], host: str, identifier_prefix: str = IDENTIFIER_PREFIX
) -> dict[str, Any] | None:
    """The archived line of one entry, or None when it is not shipped (not Postfix's, or
    without cursor, timestamp or message)."""
    identifier = _text(entry.get("SYSLOG_IDENTIFIER"))
    if identifier is None or not identifier.startswith(identifier_prefix):
        return None
    cursor = entry.get("__CURSOR")
    stamp = realtime_us(entry.get("__REALTIME_TIMESTAMP"))
    message = _text(entry.get("MESSAGE"))
    if not isinstance(cursor, str) or not cursor or stamp is None or message is None:
        return None
    return {
        "realtime_us": stamp,
        "cursor": cursor,
        "hostname": _text(entry.get("_HOSTNAME")) or host,
        "identifier": identifier,
        "pid": _pid(entry),
        "message": message,
    }


def serialise(record: Mapping[str, Any]) -> bytes:
    """One JSON line, keys in the record's order: the same entry gives the same bytes."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


# ---------------------------------------------------------------------- objects


def cursor_digest(cursor: str) -> str:
    return hashlib.sha256(cursor.encode("utf-8")).hexdigest()


def object_key(prefix: str, host: str, first_us: int, first_cursor: str) -> str:
    """The key of the object whose first entry has this time and cursor."""
    when = EPOCH + timedelta(microseconds=first_us)
    digest = cursor_digest(first_cursor)[:DIGEST_HEX]
    return f"{prefix}{host}/{when:%Y/%m/%d/%H%M%S}-{digest}{SUFFIX}"


def content_md5(body: bytes) -> str:
    """Content-MD5 (RFC 1864): base64 of the body's MD5, so the store checks what it got."""
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode("ascii")


@dataclass(frozen=True)
class Chunk:
    """One object to put, and the cursor to save once the store has it. `entries` 0: nothing
    to put, only the cursor moves on past entries that are not Postfix's."""

    key: str
    body: bytes
    entries: int
    first_cursor: str
    last_cursor: str

    @property
    def md5(self) -> str:
        return content_md5(self.body)

    @property
    def metadata(self) -> dict[str, str]:
        """The object's user metadata (x-amz-meta-*): S3 takes strings only."""
        return {
            "entries": str(self.entries),
            "first-cursor-sha256": cursor_digest(self.first_cursor),
        }


class _Builder:
    """One object being built: the lines go through zlib as they come, so a chunk of a
    million lines is held compressed."""

    def __init__(self, key: str, first_cursor: str) -> None:
        self.key = key
        self.first_cursor = first_cursor
        self.last_cursor = first_cursor
        self.entries = 0
        self._zlib = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, GZIP_WBITS)
        self._parts: list[bytes] = []

    def add(self, line: bytes, cursor: str) -> None:
        self._parts.append(self._zlib.compress(line))
        self.entries += 1
        self.last_cursor = cursor

    def close(self) -> Chunk:
        self._parts.append(self._zlib.flush())
        body = b"".join(self._parts)
        return Chunk(self.key, body, self.entries, self.first_cursor, self.last_cursor)


def pack(
    entries: Iterable[Mapping[str, Any]],
    *,
    prefix: str,
    host: str,
    chunk_lines: int,
    identifier_prefix: str = IDENTIFIER_PREFIX,
) -> Iterator[Chunk]:
    """The objects of `entries`, in order, each yielded once it is complete (lazily: the
    runtime puts one before the next is read). An empty Chunk last when entries that are not
    shipped follow everything else (or are all there is)."""
    if chunk_lines < 1:
        raise ValueError(f"chunk_lines {chunk_lines}: at least 1")
    current: _Builder | None = None
    skipped: str | None = None  # the cursor of a non-shipped entry no object covers yet
    for entry in entries:
        cursor = entry.get("__CURSOR")
        if not isinstance(cursor, str) or not cursor:
            continue
        record = journal_record(entry, host, identifier_prefix)
        if record is None:
            if current is not None:
                current.last_cursor = cursor
            else:
                skipped = cursor
            continue
        if current is not None and current.entries >= chunk_lines:
            yield current.close()
            current = None
        if current is None:
            current = _Builder(object_key(prefix, host, record["realtime_us"], cursor), cursor)
            skipped = None
        current.add(serialise(record), cursor)
    if current is not None:
        yield current.close()
    elif skipped is not None:
        yield Chunk("", b"", 0, "", skipped)


def read_lines(body: bytes) -> list[dict[str, Any]]:
    """An object's lines back (what a later reader does; the tests check the round trip)."""
    data = zlib.decompress(body, GZIP_WBITS)
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


# ---------------------------------------------------------------------- errors


def describe_upload_error(error: BaseException, secrets: Sequence[str] = ()) -> str:
    """A put's failure in one line: the store's error code, HTTP status and what it means
    (botocore's ClientError carries them in `.response`), else the exception's class and
    text with every secret cut out. The store's own message is never passed on."""
    response = getattr(error, "response", None)
    if isinstance(response, Mapping):
        details = response.get("Error") or {}
        code = details.get("Code") if isinstance(details, Mapping) else None
        code = str(code or "unknown error")
        status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
        text = code + (f" (HTTP {status})" if status else "")
        hint = ERROR_HINTS.get(code)
        return f"{text}: {hint}" if hint else text
    text = " ".join(str(error).split())
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
