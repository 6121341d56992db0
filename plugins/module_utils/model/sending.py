"""What the platform sends and through whom: `bulkmail_volume`, `bulkmail_relays`, and the
provider table (`bulkmail_providers` over KumoMTA's published shaping)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from .errors import ModelError, raise_collected
from .fields import (
    check_keys,
    entry_path,
    secret,
    show,
    str_list,
    validate_domain_name,
    whole_number,
)

# Postfix's default recipients per message transaction: a provider's starting value.
POSTFIX_RECIPIENT_LIMIT = 50
# Yahoo asks for a retry after about 4 hours: a shorter lifetime would bounce such mail.
MIN_QUEUE_LIFETIME_HOURS = 5
MAX_QUEUE_LIFETIME_HOURS = 720

VOLUME_KEYS = (
    "messages_per_day",
    "peak_per_hour",
    "message_size_kb",
    "max_message_size_kb",
    "queue_lifetime_hours",
)
RELAY_KEYS = ("host", "port", "username", "password", "tls_fingerprint")
# A SHA-256 digest as Postfix's smtp_tls_fingerprint_digest = sha256 compares it: 32 octets.
SHA256_OCTETS = 32
PROVIDER_KEYS = (
    "extra_mx_suffixes",
    "concurrency",
    "deliveries_per_connection",
    "recipients_per_message",
    "rate_delay_seconds",
    "failed_cohort_limit",
)
_TRANSPORT_NAME = re.compile(r"^[a-z][a-z0-9]*$")
# Names Postfix already uses for services or parameter prefixes (`default_...`).
_RESERVED_TRANSPORTS = frozenset(
    {"smtp", "relay", "lmtp", "local", "virtual", "error", "retry", "discard", "default"}
)


@dataclass(frozen=True)
class VolumeProfile:
    """`bulkmail_volume`: how much mail the platform sends, and how big it is."""

    messages_per_day: int
    peak_per_hour: int
    message_size_kb: int = 50
    max_message_size_kb: int = 25600
    queue_lifetime_hours: int = 72

    @property
    def message_size_limit(self) -> int:
        """Postfix's message_size_limit, in bytes."""
        return self.max_message_size_kb * 1024


@dataclass(frozen=True)
class Relay:
    """One entry of `bulkmail_relays`: an external smarthost with its SASL credentials.

    The relay's certificate is verified before any credential is sent: against the system's
    CAs and the relay's host name, or, with `tls_fingerprints`, against those SHA-256 digests
    (of the relay's public key, which survives a certificate renewal with the same key, or of
    its certificate: Postfix compares both).
    """

    name: str
    host: str
    port: int
    username: str
    password: str
    tls_fingerprints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provider:
    """A mailbox provider's shaping: recognised by MX host suffix, delivered by its transport."""

    name: str
    mx_suffixes: tuple[str, ...]
    concurrency: int
    deliveries_per_connection: int
    recipients_per_message: int = POSTFIX_RECIPIENT_LIMIT
    rate_delay_seconds: int = 0
    failed_cohort_limit: int = 1
    source: str = "KumoMTA's published default"


# Starting values from KumoMTA's published shaping (shared PROVIDERS.md). `default` shapes
# every destination no provider claims and is Postfix's own `smtp` transport.
DEFAULT_PROVIDERS: tuple[Provider, ...] = (
    Provider("google", (".google.com", ".googlemail.com"), 5, 50, failed_cohort_limit=5),
    Provider("microsoft", (".olc.protection.outlook.com", ".mail.protection.outlook.com",
                           ".mx.microsoft"), 5, 50),
    Provider("yahoo", (".yahoodns.net",), 10, 20),
    Provider("apple", (".icloud.com",), 10, 5),
    Provider("default", (), 10, 100),
)  # fmt: skip


def parse_volume(raw: Any, path: str = "bulkmail_volume") -> VolumeProfile:
    """Parse `bulkmail_volume`, checking each number and that the numbers agree."""
    if not isinstance(raw, Mapping):
        raise ModelError(
            path,
            f"{show(raw)} is not a mapping; give at least messages_per_day and peak_per_hour",
        )
    check_keys(raw, VOLUME_KEYS, path)
    errors: list[ModelError] = []
    values: dict[str, int] = {}
    limits = {
        "messages_per_day": (None, 1),
        "peak_per_hour": (None, 1),
        "message_size_kb": (VolumeProfile.message_size_kb, 1),
        "max_message_size_kb": (VolumeProfile.max_message_size_kb, 64),
        "queue_lifetime_hours": (VolumeProfile.queue_lifetime_hours, MIN_QUEUE_LIFETIME_HOURS),
    }
    for key, (default, minimum) in limits.items():
        try:
            values[key] = whole_number(raw, key, path, default, minimum)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    profile = VolumeProfile(**values)
    if profile.peak_per_hour * 24 < profile.messages_per_day:
        raise ModelError(
            f"{path}.peak_per_hour",
            f"{profile.peak_per_hour} x 24 h = {profile.peak_per_hour * 24} is less than "
            f"messages_per_day {profile.messages_per_day}; the peak hour is at least the "
            f"average ({math.ceil(profile.messages_per_day / 24)}), raise it",
        )
    if profile.peak_per_hour > profile.messages_per_day:
        raise ModelError(
            f"{path}.peak_per_hour",
            f"{profile.peak_per_hour} is more than messages_per_day "
            f"{profile.messages_per_day}; the peak hour is part of the day, lower it",
        )
    if profile.message_size_kb > profile.max_message_size_kb:
        raise ModelError(
            f"{path}.message_size_kb",
            f"the average {profile.message_size_kb} is more than max_message_size_kb "
            f"{profile.max_message_size_kb}; the average message must fit the limit",
        )
    if profile.queue_lifetime_hours > MAX_QUEUE_LIFETIME_HOURS:
        raise ModelError(
            f"{path}.queue_lifetime_hours",
            f"{profile.queue_lifetime_hours} is more than {MAX_QUEUE_LIFETIME_HOURS} (30 days); "
            f"mail that old is news to no one, lower it",
        )
    return profile


def tls_fingerprint(value: Any, path: str) -> str:
    """A SHA-256 fingerprint in Postfix's form (upper-case hex, a colon between octets).

    Colons and case are free in the inventory: `openssl dgst -sha256 -c` and `openssl x509
    -fingerprint -sha256` print them differently.
    """
    how = (
        "give the relay's SHA-256 public-key digest: openssl s_client -connect HOST:PORT "
        "-starttls smtp </dev/null | openssl x509 -noout -pubkey | openssl pkey -pubin "
        "-outform DER | openssl dgst -sha256 -c"
    )
    if not isinstance(value, str) or not value.strip():
        raise ModelError(path, f"{show(value)} is not a fingerprint; {how}")
    digits = value.strip().replace(":", "")
    if len(digits) != 2 * SHA256_OCTETS or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise ModelError(
            path,
            f"{value.strip()[:100]!r} is not a SHA-256 fingerprint ({SHA256_OCTETS} octets in "
            f"hex, colons optional); {how}",
        )
    digits = digits.upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def _tls_fingerprints(raw: Any, path: str) -> tuple[str, ...]:
    """One fingerprint, or a list of them (a relay rolling over to a new key: pin both)."""
    if raw is None:
        return ()
    items = str_list(raw, path)
    if not items:
        raise ModelError(path, "is an empty list; pin one fingerprint at least, or leave it out")
    pins: list[str] = []
    for index, item in enumerate(items):
        pin = tls_fingerprint(item, entry_path(path, raw, index))
        if pin not in pins:
            pins.append(pin)
    return tuple(pins)


def parse_relays(raw: Any, path: str = "bulkmail_relays") -> tuple[Relay, ...]:
    """Parse `bulkmail_relays`: name -> {host, port, username, password[, tls_fingerprint]};
    credentials required."""
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{show(raw)} is not a mapping of relay name to its settings")
    relays: list[Relay] = []
    errors: list[ModelError] = []
    for name, settings in raw.items():
        where = f"{path}.{name}"
        try:
            if not isinstance(name, str) or not _TRANSPORT_NAME.match(name):
                raise ModelError(
                    path, f"relay name {show(name)} must be lower-case letters and digits"
                )
            if not isinstance(settings, Mapping):
                raise ModelError(where, f"{show(settings)} is not a mapping with host, port, "
                                        f"username, password")  # fmt: skip
            check_keys(settings, RELAY_KEYS, where)
            host = validate_domain_name(settings.get("host"), f"{where}.host")
            port = whole_number(settings, "port", where, 587, 1)
            if port > 65535:
                raise ModelError(f"{where}.port", f"{port} is not a TCP port (1-65535)")
            hint = (
                f"a relay needs SASL credentials: keep them in vault, e.g. "
                f'{{key}}: "{{{{{{{{ vault_relay_{name}_{{key}} }}}}}}}}"'
            )
            credentials = {
                key: secret(settings.get(key), f"{where}.{key}", hint.format(key=key))
                for key in ("username", "password")
            }
            pins = _tls_fingerprints(settings.get("tls_fingerprint"), f"{where}.tls_fingerprint")
            relays.append(Relay(name, host, port, credentials["username"],
                                credentials["password"], pins))  # fmt: skip
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return tuple(relays)


def _suffix(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("."):
        raise ModelError(where, f"{show(value)} must be an MX host suffix such as .google.com")
    return "." + validate_domain_name(value[1:], where)


def parse_providers(
    raw: Any, path: str = "bulkmail_providers", base: Sequence[Provider] = DEFAULT_PROVIDERS
) -> tuple[Provider, ...]:
    """The provider table: `base` with `bulkmail_providers` overrides and added MX suffixes.

    A name not in `base` adds a provider (its own transport); `extra_mx_suffixes` adds to the
    provider's suffixes, the numbers replace its starting values.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{show(raw)} is not a mapping of provider name to shaping")
    providers = {p.name: p for p in base}
    errors: list[ModelError] = []
    numbers = {
        "concurrency": 1,
        "deliveries_per_connection": 1,
        "recipients_per_message": 1,
        "rate_delay_seconds": 0,
        "failed_cohort_limit": 1,
    }
    for name, settings in raw.items():
        where = f"{path}.{name}"
        try:
            if not isinstance(name, str) or not _TRANSPORT_NAME.match(name):
                raise ModelError(
                    path, f"provider name {show(name)} must be lower-case letters and digits"
                )
            if settings is None:
                settings = {}
            if not isinstance(settings, Mapping):
                raise ModelError(where, f"{show(settings)} is not a mapping")
            check_keys(settings, PROVIDER_KEYS, where)
            current = providers.get(name)
            if current is None:
                if name in _RESERVED_TRANSPORTS:
                    raise ModelError(path, f"{name!r} is a Postfix service name; choose another")
                missing = [k for k in ("concurrency", "deliveries_per_connection")
                           if k not in settings]  # fmt: skip
                if missing:
                    raise ModelError(where, f"a new provider needs {' and '.join(missing)}")
                current = Provider(name, (), 1, 1, source="the inventory")
            extra = settings.get("extra_mx_suffixes", [])
            if isinstance(extra, str) or not isinstance(extra, Iterable):
                raise ModelError(f"{where}.extra_mx_suffixes", "must be a list of suffixes")
            if extra and name == "default":
                raise ModelError(
                    f"{where}.extra_mx_suffixes", "default shapes what no provider claims; "
                    "give the suffixes to a named provider")  # fmt: skip
            suffixes = list(current.mx_suffixes)
            for index, item in enumerate(extra):
                suffix = _suffix(item, f"{where}.extra_mx_suffixes[{index}]")
                if suffix not in suffixes:
                    suffixes.append(suffix)
            changes: dict[str, Any] = {"mx_suffixes": tuple(suffixes)}
            for key, minimum in numbers.items():
                if key in settings:
                    changes[key] = whole_number(settings, key, where, None, minimum)
            if any(key in settings for key in numbers):
                changes["source"] = "the inventory (bulkmail_providers)"
            providers[name] = replace(current, **changes)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    owners: dict[str, str] = {}
    for provider in providers.values():
        for suffix in provider.mx_suffixes:
            if suffix in owners:
                raise ModelError(
                    path,
                    f"MX suffix {suffix} is claimed by both {owners[suffix]} and "
                    f"{provider.name}; give it to one",
                )
            owners[suffix] = provider.name
    if "default" not in providers:
        raise ModelError(path, "the default provider is missing")
    return tuple(providers.values())
