"""Field checks every part of the model shares: names, addresses, lists, numbers, secrets.

Each raises `ModelError` naming the field's path (`bulkmail_relays.ses.port`) and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ModelError

# RFC 1035 2.3.4: a name is at most 255 octets on the wire (253 as text), a label 63.
MAX_NAME_LENGTH = 253
MAX_LABEL_OCTETS = 63

_LDH_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names that are not host names (SPF include targets such as _spf.google.com) may use "_".
_DNS_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value!r} ({type(value).__name__})"


def require_str(value: Any, path: str, what: str = "a string") -> str:
    if not isinstance(value, str) or not value:
        raise ModelError(path, f"{show(value)} is not {what}")
    return value


def validate_domain_name(
    value: Any,
    path: str,
    *,
    allow_underscore: bool = False,
    min_labels: int = 2,
    relative: bool = False,
) -> str:
    """Return `value` if it is a lower-case DNS name without a trailing dot (RFC 1035/1123).

    `relative` names (record owners inside a zone, such as "10" in a reverse zone) may be
    a single, all-numeric label.
    """
    if value is None or value == "":
        raise ModelError(path, "missing; set a domain name such as 'example.com'")
    name = require_str(value, path, "a domain name")
    if name.endswith("."):
        raise ModelError(path, f"{name!r} must not end with a dot: write {name.rstrip('.')!r}")
    if not name.isascii():
        try:
            hint = f": write {name.encode('idna').decode('ascii')!r}"
        except UnicodeError:
            hint = ""
        raise ModelError(
            path, f"{name!r} is not ASCII; write internationalized names in punycode{hint}"
        )
    if name != name.lower():
        raise ModelError(path, f"{name!r} must be written in lower case: {name.lower()!r}")
    if len(name) > MAX_NAME_LENGTH:
        raise ModelError(path, f"{name!r} is longer than {MAX_NAME_LENGTH} characters")
    labels = name.split(".")
    pattern = _DNS_LABEL if allow_underscore else _LDH_LABEL
    allowed = (
        "letters, digits, hyphens and underscores"
        if allow_underscore
        else ("letters, digits and hyphens")
    )
    for label in labels:
        if not label:
            raise ModelError(path, f"{name!r} is not a valid domain name: empty label")
        if len(label) > MAX_LABEL_OCTETS:
            raise ModelError(
                path,
                f"{name!r} is not a valid domain name: label {label!r} is longer than "
                f"{MAX_LABEL_OCTETS}",
            )
        if label.startswith("-") or label.endswith("-"):
            raise ModelError(
                path,
                f"{name!r} is not a valid domain name: "
                f"label {label!r} must not start or end with a hyphen",
            )
        if not pattern.match(label):
            raise ModelError(
                path,
                f"{name!r} is not a valid domain name: label {label!r} may contain only {allowed}",
            )
    if relative:
        return name
    if len(labels) < min_labels:
        raise ModelError(
            path, f"{name!r} is not a fully qualified domain name: write e.g. '{name}.com'"
        )
    if labels[-1].isdigit():
        raise ModelError(path, f"{name!r} is an address, not a domain name")
    return name


def validate_selector(value: Any, path: str) -> str:
    """A DKIM selector (RFC 6376 3.1): dot-separated labels of letters, digits and hyphens."""
    selector = require_str(value, path, "a DKIM selector")
    try:
        validate_domain_name(selector.lower(), path, relative=True)
    except ModelError:
        raise ModelError(
            path,
            f"{selector!r} is not a valid DKIM selector: use letters, digits and hyphens, "
            "e.g. 's2026a'",
        ) from None
    if selector != selector.lower():
        raise ModelError(path, f"{selector!r} must be written in lower case: {selector.lower()!r}")
    return selector


def validate_ipv4(value: Any, path: str) -> str:
    """A dotted-quad IPv4 address, returned in canonical form."""
    text = value if isinstance(value, str) else None
    try:
        if text is None:
            raise ValueError
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ModelError(
            path, f"{show(value)} is not a valid IPv4 address (write e.g. '198.51.100.10')"
        ) from None


def is_within(name: str, zone: str) -> bool:
    """True if `name` is `zone` or a name below it."""
    return name == zone or name.endswith("." + zone)


def str_list(value: Any, path: str) -> list[Any]:
    """Accept one string or a list, as inventories write both."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return list(value)
    raise ModelError(path, f"{show(value)} is not a list of strings")


def entry_path(path: str, container: Any, index: int) -> str:
    """`path[index]` for a list, `path` for a single string written in place of a list."""
    return path if isinstance(container, str) else f"{path}[{index}]"


def check_keys(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    """The model's one unknown-key check: a typo is named, with the keys that exist."""
    unknown = sorted(str(key) for key in raw if key not in allowed)
    if unknown:
        raise ModelError(
            path,
            f"unknown key(s) {', '.join(unknown)}; known keys are {', '.join(allowed)} "
            "(docs/model.md)",
        )


def whole_number(
    raw: Mapping[str, Any], key: str, path: str, default: int | None, minimum: int
) -> int:
    """`raw[key]` as a whole number >= `minimum` (templating may hand numbers over as text)."""
    value = raw.get(key, default)
    where = f"{path}.{key}"
    if value is None:
        raise ModelError(where, "missing; give a whole number")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ModelError(where, f"{show(value)} is not a whole number")
    if value < minimum:
        if value < 0:
            raise ModelError(where, f"{value} is negative; give a number >= {minimum}")
        raise ModelError(where, f"{value} is too small; give a number >= {minimum}")
    return value


def control_character(text: str) -> str | None:
    """The first control character of `text` (a newline, a tab, DEL...), or None: a value
    that goes into one line of a file must hold none, or it starts a line of its own."""
    return next((c for c in text if ord(c) < 32 or ord(c) == 127), None)


def single_line(value: Any, path: str, what: str = "a value") -> str:
    """A non-empty string without control characters: it goes into one line of a file."""
    text = require_str(value, path, what)
    if text.endswith(("\n", "\r")):
        raise ModelError(
            path,
            "ends with a newline; a YAML block scalar (|) adds one: use >- or a quoted string",
        )
    bad = control_character(text)
    if bad is not None:
        raise ModelError(path, f"contains the control character {bad!r}; remove it")
    return text


# Values that say "fill me in": an inventory copied from an example keeps them by mistake.
PLACEHOLDERS = frozenset({"change-me", "changeme", "change_me", "password", "secret", "xxx"})


def secret(value: Any, path: str, hint: str) -> str:
    """A password or key: present, no placeholder, one line without spaces. Never echoed."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ModelError(path, f"missing or empty; {hint}")
    if not isinstance(value, str):
        raise ModelError(path, f"is a {type(value).__name__}, not a string; {hint}")
    if value.strip().lower() in PLACEHOLDERS:
        raise ModelError(path, f"is a placeholder, not a password; {hint}")
    if value.endswith(("\n", "\r")):
        raise ModelError(
            path,
            "ends with a newline (a YAML | block or a file read whole); strip it: use >- or "
            "'{{ lookup(...) | trim }}'",
        )
    if control_character(value) is not None or any(c.isspace() for c in value):
        raise ModelError(path, "contains whitespace or control characters; remove them")
    return value


def cidr_network(
    value: Any, path: str, *, example: str, every_address: str
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A network in CIDR form without host bits, never /0; `every_address` says what /0 would
    open, in the error."""
    text = single_line(value, path, f"a network such as {example}")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ModelError(
            path, f"{text!r} is not a network in CIDR form such as {example}"
        ) from None
    if "/" in text and str(network) != text:
        raise ModelError(path, f"{text!r} has host bits set; write {network} instead")
    if network.prefixlen == 0:
        raise ModelError(path, f"{text!r} is every address: {every_address}")
    return network
