"""`bulkmail_log_archive`: where the smtp hosts ship Postfix's raw journal lines (S3).

    bulkmail_log_archive:
      endpoint: https://s3.eu-central-1.amazonaws.com   # scheme, host and port only
      bucket: bulkmail-logs
      region: eu-central-1             # default us-east-1
      prefix: postfix/                 # default postfix/; "" or ends with "/"
      addressing_style: path           # default path; or virtual
      access_key_id: "{{ vault_log_archive_access_key_id }}"
      secret_access_key: "{{ vault_log_archive_secret_access_key }}"
      interval_minutes: 15             # the timer's period, 1..1440
      chunk_lines: 50000               # journal entries per object at most, 100..1000000

Absent or null: no archive. Any S3-compatible store will do (AWS, MinIO, Ceph, moto in the
lab); `http://` is accepted for a lab's store on a private network, production uses https
(the credentials sign every request, but the log lines would cross the network in clear).
The credentials are checked like every secret and are never part of `LogArchive`: they stay
in the inputs, where the filter hands them to the role with no_log (`archive_settings`).
The same field checks validate the runtime's config file (`bulkmail archive --config`),
with `path=""` so an error names the key alone.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ModelError, raise_collected
from .fields import check_keys, secret, show, single_line, validate_domain_name

VARIABLE = "bulkmail_log_archive"
CONFIG_KEYS = (
    "endpoint",
    "bucket",
    "region",
    "prefix",
    "addressing_style",
    "chunk_lines",
    "interval_minutes",
)
CREDENTIAL_KEYS = ("access_key_id", "secret_access_key")
KEYS = (*CONFIG_KEYS[:5], *CREDENTIAL_KEYS, "interval_minutes", "chunk_lines")
STYLES = ("path", "virtual")
DEFAULT_REGION = "us-east-1"
DEFAULT_PREFIX = "postfix/"
DEFAULT_INTERVAL_MINUTES = 15
DEFAULT_CHUNK_LINES = 50_000
INTERVAL_RANGE = (1, 1440)  # a day at most: the journal must still hold what waits
CHUNK_RANGE = (100, 1_000_000)  # an object is held in memory while it is built
MAX_PREFIX = 512  # S3 keys are at most 1024 bytes; the host and date follow the prefix

# S3's bucket rules (AWS "Bucket naming rules"; MinIO and Ceph follow them).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_BUCKET_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-")
_BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3")
# AWS regions (eu-central-1), MinIO's and Ceph's names (us-east-1, default), R2's "auto".
_REGION = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# S3's "safe characters" for keys, and "/" between the prefix's parts.
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()/-]*$")


@dataclass(frozen=True)
class LogArchive:
    """Where and how often the log lines are shipped; no credential (they stay in the inputs)."""

    endpoint: str
    bucket: str
    region: str = DEFAULT_REGION
    prefix: str = DEFAULT_PREFIX
    addressing_style: str = "path"
    chunk_lines: int = DEFAULT_CHUNK_LINES
    interval_minutes: int = DEFAULT_INTERVAL_MINUTES

    @property
    def https(self) -> bool:
        return self.endpoint.startswith("https://")

    def config(self) -> dict[str, Any]:
        """The runtime's config file (`bulkmail archive --config`): no secret in it."""
        return {key: getattr(self, key) for key in CONFIG_KEYS}


def _at(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def parse_endpoint(value: Any, path: str) -> str:
    """An http(s) URL of scheme, host and optional port, returned as scheme://host[:port]."""
    example = "https://s3.eu-central-1.amazonaws.com"
    text = single_line(value, path, f"an http(s) URL such as {example}")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        raise ModelError(path, f"{text!r} is not a URL such as {example}") from None
    if "@" in parts.netloc:
        # Not echoed: what stands before the @ is a credential.
        raise ModelError(
            path,
            "holds credentials (user:password@); give them in access_key_id and "
            "secret_access_key, from vault",
        )
    if parts.scheme not in ("https", "http"):
        raise ModelError(
            path,
            f"{text!r} must start with https:// (http:// only for a lab's store on a "
            "private network)",
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or "?" in text:
        raise ModelError(
            path,
            f"{text!r} has a path, query or fragment; give the scheme, host and port only, "
            "e.g. https://s3.example.com:9000 (the key prefix is `prefix`, the bucket `bucket`)",
        )
    host = parts.hostname or ""
    if not host:
        raise ModelError(path, f"{text!r} names no host; write e.g. {example}")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        validate_domain_name(host, path, min_labels=1)
        shown = host
    else:
        shown = f"[{address}]" if address.version == 6 else str(address)
    if port == 0:
        raise ModelError(path, f"{text!r}: port 0 is not a port")
    return f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")


def parse_bucket(value: Any, path: str) -> str:
    """An S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens, not an address."""
    name = single_line(value, path, "a bucket name such as bulkmail-logs")
    if not 3 <= len(name) <= 63:
        raise ModelError(path, f"{name!r} is not 3 to 63 characters long")
    if not _BUCKET.match(name):
        raise ModelError(
            path,
            f"{name!r} is not a bucket name: lower-case letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit",
        )
    if ".." in name or ".-" in name or "-." in name:
        raise ModelError(path, f"{name!r}: a dot must stand between letters or digits")
    if _BUCKET_IP.match(name):
        raise ModelError(path, f"{name!r} looks like an IP address, which S3 refuses")
    if name.startswith(_BUCKET_RESERVED_PREFIXES) or name.endswith(_BUCKET_RESERVED_SUFFIXES):
        raise ModelError(path, f"{name!r} uses a prefix or suffix S3 reserves")
    return name


def parse_region(value: Any, path: str) -> str:
    name = single_line(value, path, "a region such as eu-central-1")
    if not _REGION.match(name):
        raise ModelError(path, f"{name!r} is not a region: lower-case letters, digits and hyphens")
    return name


def parse_prefix(value: Any, path: str) -> str:
    """The keys' prefix: "" or parts ending with "/", no leading "/", no empty part."""
    if value == "":
        return ""
    prefix = single_line(value, path, 'a key prefix such as "postfix/" (or "")')
    if prefix.startswith("/"):
        raise ModelError(path, f"{prefix!r} must not start with '/': write {prefix.lstrip('/')!r}")
    if not prefix.endswith("/"):
        raise ModelError(path, f"{prefix!r} must end with '/': write {prefix + '/'!r}")
    if len(prefix) > MAX_PREFIX:
        raise ModelError(path, f"{prefix!r} is longer than {MAX_PREFIX} characters")
    if not _PREFIX.match(prefix):
        raise ModelError(
            path,
            f"{prefix!r} may contain only letters, digits, '/' and !_.*'()- (S3's safe characters)",
        )
    if any(part in ("", ".", "..") for part in prefix[:-1].split("/")):
        raise ModelError(path, f"{prefix!r} has an empty, '.' or '..' part")
    return prefix


def _bounded(
    raw: Mapping[str, Any], key: str, path: str, default: int, limits: tuple[int, int]
) -> int:
    """`raw[key]` as a whole number within `limits` (templating may hand it over as text)."""
    value = raw.get(key, default)
    where = _at(path, key)
    if value is None:
        value = default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(where, f"{show(value)} is not a whole number")
    low, high = limits
    if not low <= value <= high:
        raise ModelError(where, f"{value} is out of range; give {low} to {high}")
    return value


def _settings(raw: Mapping[str, Any], path: str) -> LogArchive:
    """The archive's settings of `raw` (the variable or the runtime's file); every problem."""
    errors: list[ModelError] = []
    values: dict[str, Any] = {}

    def take(key: str, parse: Callable[[Any, str], str], default: str | None = None) -> None:
        value = raw.get(key)
        if value is None and default is not None:
            values[key] = default
            return
        if value is None:
            errors.append(ModelError(_at(path, key), "missing"))
            return
        try:
            values[key] = parse(value, _at(path, key))
        except ModelError as error:
            errors.append(error)

    take("endpoint", parse_endpoint)
    take("bucket", parse_bucket)
    take("region", parse_region, DEFAULT_REGION)
    take("prefix", parse_prefix, DEFAULT_PREFIX)
    style = raw.get("addressing_style")
    if style is None:
        values["addressing_style"] = "path"
    elif style in STYLES:
        values["addressing_style"] = style
    else:
        errors.append(
            ModelError(
                _at(path, "addressing_style"),
                f"{show(style)} is not one of {', '.join(STYLES)} (path works with AWS, MinIO "
                "and a store on an IP address)",
            )
        )
    for key, default, limits in (
        ("chunk_lines", DEFAULT_CHUNK_LINES, CHUNK_RANGE),
        ("interval_minutes", DEFAULT_INTERVAL_MINUTES, INTERVAL_RANGE),
    ):
        try:
            values[key] = _bounded(raw, key, path, default, limits)
        except ModelError as error:
            errors.append(error)
    bucket, endpoint = values.get("bucket", ""), values.get("endpoint", "")
    if (
        values.get("addressing_style") == "virtual"
        and "." in bucket
        and endpoint.startswith("https")
    ):
        errors.append(
            ModelError(
                _at(path, "addressing_style"),
                f"virtual with the dotted bucket {bucket!r} over https: the store's wildcard "
                "certificate does not cover bucket.with.dots.host; use path",
            )
        )
    raise_collected(errors)
    return LogArchive(**values)


def parse_log_archive(raw: Any, path: str = VARIABLE) -> LogArchive | None:
    """The validated `bulkmail_log_archive` (None: no archive); the credentials are checked
    here and left in the inputs."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ModelError(
            path,
            f"{show(raw)} is not a mapping such as {{endpoint: https://s3.example.com, "
            "bucket: bulkmail-logs, ...}} (docs/model.md)",
        )
    check_keys(raw, KEYS, path)
    errors: list[ModelError] = []
    archive = None
    try:
        archive = _settings(raw, path)
    except ModelError as error:
        errors.append(error)
    for key in CREDENTIAL_KEYS:
        try:
            secret(
                raw.get(key),
                f"{path}.{key}",
                f'keep it in vault, e.g. {key}: "{{{{ vault_log_archive_{key} }}}}"',
            )
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return archive


def parse_archive_config(raw: Any) -> LogArchive:
    """The runtime's config file (`LogArchive.config()`), checked like the variable; errors
    name the key alone (the caller says which file)."""
    if not isinstance(raw, Mapping):
        raise ModelError("", "is not a JSON object with endpoint, bucket, region, ...")
    check_keys(raw, CONFIG_KEYS, "")
    return _settings(raw, "")


def archive_settings(archive: LogArchive | None, raw: Any) -> dict[str, Any]:
    """What the role writes: `{}` without an archive, else the config file's content and
    the credentials file's (`raw` is the validated `bulkmail_log_archive`)."""
    if archive is None or not isinstance(raw, Mapping):
        return {}
    return {
        "config": archive.config(),
        "credentials": {key: str(raw[key]) for key in CREDENTIAL_KEYS},
    }
