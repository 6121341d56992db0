"""BIND zone files: render one from a record list, read its SOA serial, plan the next write.

Pure Python, no Ansible import (also `bulkmail.logic.dns.zone_file`). Records are the plain dicts
that `dns_records.build_zones` returns: {name, type, value, ttl}; `name` is relative to the
zone ("@" for the apex); `value` is a string, or for TXT a list of character-strings.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..model.errors import ModelError
from ..model.fields import control_character, validate_domain_name, validate_ipv4

MAX_SERIAL = 2**32 - 1
MAX_TXT_STRING = 255
RECORD_TYPES = ("NS", "MX", "A", "AAAA", "CNAME", "TXT", "SRV", "CAA", "PTR")

# The serial is the first number after "SOA <mname> <rname> (", comments allowed in between.
_SOA_SERIAL = re.compile(
    r"\bSOA\s+\S+\s+\S+\s*(?:\(\s*)?(?:;[^\n]*\n\s*)*(?P<serial>\d+)", re.IGNORECASE
)


@dataclass(frozen=True)
class Soa:
    """SOA parameters (RFC 1035 3.3.13); `minimum` is the negative-caching TTL (RFC 2308)."""

    mname: str
    rname: str
    refresh: int = 7200
    retry: int = 900
    expire: int = 1209600
    minimum: int = 300


@dataclass(frozen=True)
class ZonePlan:
    """What writing a zone would do: the new text, its serial, and whether it changes."""

    text: str
    serial: int
    changed: bool
    previous_serial: int | None


def absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."


def soa_from_mapping(raw: Mapping[str, Any], path: str = "soa") -> Soa:
    """Build a Soa from a mapping; mname and rname are host names, rname may be an e-mail."""
    known = tuple(asdict(Soa("x", "x")))
    for key in raw:
        if key not in known:
            raise ModelError(path, f"unknown key {key!r}; known keys are {', '.join(known)}")
    for key in ("mname", "rname"):
        if not raw.get(key):
            raise ModelError(f"{path}.{key}", "missing")
    mname = validate_domain_name(str(raw["mname"]).rstrip("."), f"{path}.mname")
    rname = rname_from_email(str(raw["rname"]), f"{path}.rname")
    numbers: dict[str, int] = {}
    for key in ("refresh", "retry", "expire", "minimum"):
        value = raw.get(key, getattr(Soa, key))
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SERIAL:
            raise ModelError(f"{path}.{key}", f"{value!r} is not a positive number of seconds")
        numbers[key] = value
    return Soa(mname=absolute(mname), rname=rname, **numbers)


def rname_from_email(value: str, path: str = "soa.rname") -> str:
    """hostmaster@example.com -> hostmaster.example.com. (dots in the local part escaped)."""
    if "@" in value:
        local, _at, domain = value.rpartition("@")
        validate_domain_name(domain, path)
        return absolute(local.replace(".", "\\.") + "." + domain)
    validate_domain_name(value.rstrip("."), path, allow_underscore=True)
    return absolute(value)


def txt_strings(value: str | Sequence[str]) -> list[str]:
    """TXT character-strings of at most 255 bytes each (RFC 1035 3.3.14)."""
    items = [value] if isinstance(value, str) else list(value)
    chunks: list[str] = []
    for item in items:
        data = item.encode("utf-8")
        if not data:
            chunks.append("")
        for start in range(0, len(data), MAX_TXT_STRING):
            chunks.append(data[start : start + MAX_TXT_STRING].decode("utf-8", "replace"))
    return chunks


def quote_txt(chunk: str) -> str:
    """One quoted character-string in master-file syntax (RFC 1035 5.1)."""
    out = []
    for byte in chunk.encode("utf-8"):
        char = chr(byte)
        if char in '"\\':
            out.append("\\" + char)
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def relative_name(name: str, zone: str) -> str:
    """example.com. or example.com in zone example.com -> "@"; www.example.com -> "www"."""
    name = name.rstrip(".")
    if name == zone:
        return "@"
    return name[: -len(zone) - 1]


def _owner(raw: Any, zone: str, path: str) -> str:
    if raw == "@":
        return "@"
    if not isinstance(raw, str) or not raw:
        raise ModelError(path, f"{raw!r} is not a record name; use '@' for the zone apex")
    name = raw
    if name.endswith("."):
        bare = name.rstrip(".")
        if bare != zone and not bare.endswith("." + zone):
            raise ModelError(path, f"{raw!r} is outside zone {zone!r}; write a relative name")
        name = relative_name(bare, zone)
        if name == "@":
            return name
    labels = name.split(".")
    rest = labels[1:] if labels[0] == "*" else labels
    if rest:
        validate_domain_name(".".join(rest), path, allow_underscore=True, relative=True)
    return name


def _target(value: str, path: str) -> None:
    bare = value.rstrip(".")
    if bare == "" or bare == "@":
        return
    validate_domain_name(bare, path, allow_underscore=True, relative=True)


# CAA (RFC 8659 4.1): flags 0-255, a tag of letters and digits, a quoted value.
_CAA = re.compile(r'^(\d{1,3}) ([A-Za-z0-9]+) "([^"\\]*)"$')
CAA_TAGS = ("issue", "issuewild", "iodef")


def _srv(value: str, path: str) -> str:
    """SRV (RFC 2782): priority, weight and port (0-65535 each), then the target."""
    parts = value.split()
    numbers = parts[:3]
    if len(parts) != 4 or not all(n.isdigit() and int(n) <= 65535 for n in numbers):
        raise ModelError(
            path,
            f"{value!r} is not '<priority> <weight> <port> <target>', "
            "e.g. '10 5 443 web1.example.com.'",
        )
    _target(parts[3], path)
    return " ".join([*(str(int(n)) for n in numbers), parts[3]])


def _caa(value: str, path: str) -> str:
    match = _CAA.match(value)
    if not match or int(match.group(1)) > 255:
        raise ModelError(
            path,
            f"{value!r} is not '<flags> <tag> \"<value>\"', e.g. '0 issue \"letsencrypt.org\"'",
        )
    if match.group(2).lower() not in CAA_TAGS:
        raise ModelError(
            path, f"{value!r}: tag {match.group(2)!r} is not one of {', '.join(CAA_TAGS)}"
        )
    return f'{int(match.group(1))} {match.group(2).lower()} "{match.group(3)}"'


def normalize_record(
    raw: Any, zone: str, path: str, default_ttl: int | None = None
) -> dict[str, Any]:
    """Check one {name, type, value[, ttl]} record and return it in canonical form."""
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{raw!r} is not a record such as {{name: www, type: A, value: ...}}"
        )
    for key in raw:
        if key not in ("name", "type", "value", "ttl"):
            raise ModelError(path, f"unknown key {key!r}; a record has name, type, value, ttl")
    name = _owner(raw.get("name"), zone, f"{path}.name")
    rtype = raw.get("type")
    if not isinstance(rtype, str) or rtype.upper() not in RECORD_TYPES:
        raise ModelError(f"{path}.type", f"{rtype!r} is not one of {', '.join(RECORD_TYPES)}")
    rtype = rtype.upper()
    value = raw.get("value")
    value_path = f"{path}.value"
    if value is None or value == "" or value == []:
        raise ModelError(value_path, "missing")
    if rtype == "TXT":
        strings = isinstance(value, Sequence) and all(isinstance(v, str) for v in value)
        if not (isinstance(value, str) or strings):
            raise ModelError(value_path, f"{value!r} is not a string or a list of strings")
        value = txt_strings(value)
    elif not isinstance(value, str):
        raise ModelError(value_path, f"{value!r} is not a string")
    elif control_character(value) is not None:
        # A newline would end the record and start another in the zone file.
        raise ModelError(value_path, f"{value!r} contains a control character; one line only")
    elif rtype == "A":
        value = validate_ipv4(value, value_path)
    elif rtype == "AAAA":
        try:
            value = str(ipaddress.IPv6Address(value))
        except ValueError:
            raise ModelError(value_path, f"{value!r} is not a valid IPv6 address") from None
    elif rtype == "MX":
        preference, _space, target = value.partition(" ")
        if not preference.isdigit() or int(preference) > 65535 or not target.strip():
            raise ModelError(
                value_path, f"{value!r} is not '<preference> <host>', e.g. '10 mx.example.com.'"
            )
        _target(target.strip(), value_path)
        value = f"{int(preference)} {target.strip()}"
    elif rtype in ("NS", "CNAME", "PTR"):
        _target(value, value_path)
    elif rtype == "SRV":
        value = _srv(value, value_path)
    elif rtype == "CAA":
        value = _caa(value, value_path)
    record: dict[str, Any] = {"name": name, "type": rtype, "value": value}
    ttl = raw.get("ttl", default_ttl)
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2**31 - 1:
            raise ModelError(f"{path}.ttl", f"{ttl!r} is not a number of seconds")
        record["ttl"] = ttl
    return record


def record_rdata(record: Mapping[str, Any]) -> str:
    if record["type"] == "TXT":
        return " ".join(quote_txt(chunk) for chunk in txt_strings(record["value"]))
    return str(record["value"])


def render_zone(
    zone: str, soa: Soa, serial: int, records: Iterable[Mapping[str, Any]], ttl: int = 3600
) -> str:
    """The zone file text; records are written in the order given."""
    rows = [
        (str(r["name"]), str(r.get("ttl", ttl)), str(r["type"]), record_rdata(r)) for r in records
    ]
    name_width = max([len("@"), *(len(row[0]) for row in rows)])
    lines = [
        f"; {zone}: written by bulkmail.infra.bind_zone from the inventory model.",
        "; Local edits are overwritten; the serial changes only when a record does.",
        f"$ORIGIN {absolute(zone)}",
        f"$TTL {ttl}",
        f"{'@':<{name_width}} IN SOA {soa.mname} {soa.rname} (",
        f"{'':<{name_width}}     {serial:<10} ; serial",
        f"{'':<{name_width}}     {soa.refresh:<10} ; refresh",
        f"{'':<{name_width}}     {soa.retry:<10} ; retry",
        f"{'':<{name_width}}     {soa.expire:<10} ; expire",
        f"{'':<{name_width}}     {soa.minimum:<10} ; negative-caching TTL",
        f"{'':<{name_width}}     )",
    ]
    for name, record_ttl, rtype, rdata in rows:
        lines.append(f"{name:<{name_width}} {record_ttl:>6} IN {rtype:<5} {rdata}")
    return "\n".join(lines) + "\n"


def parse_serial(text: str | None) -> int | None:
    """The SOA serial of a zone file's text, or None if there is no SOA."""
    if not text:
        return None
    match = _SOA_SERIAL.search(text)
    return int(match.group("serial")) if match else None


def without_serial(text: str) -> str:
    """The text with the SOA serial blanked, to compare two versions of a zone."""
    match = _SOA_SERIAL.search(text)
    if not match:
        return text
    return text[: match.start("serial")] + "SERIAL" + text[match.end("serial") :]


def next_serial(previous: int | None, today: datetime.date) -> int:
    """YYYYMMDDnn, always above the previous serial (RFC 1912 2.2)."""
    base = int(today.strftime("%Y%m%d")) * 100
    serial = base if previous is None else max(previous + 1, base)
    if serial > MAX_SERIAL:
        raise ModelError(
            "serial",
            f"{serial} exceeds the 32-bit SOA serial space; reset it per RFC 1982 "
            "(see the bind role README)",
        )
    return serial


def plan_zone_file(
    existing: str | None,
    zone: str,
    soa: Soa,
    records: Sequence[Mapping[str, Any]],
    ttl: int,
    today: datetime.date,
) -> ZonePlan:
    """Keep the file (and its serial) when no record changed; else bump the serial."""
    previous = parse_serial(existing)
    if existing is not None and previous is not None:
        unchanged = render_zone(zone, soa, previous, records, ttl)
        if without_serial(unchanged) == without_serial(existing):
            return ZonePlan(text=existing, serial=previous, changed=False, previous_serial=previous)
    serial = next_serial(previous, today)
    return ZonePlan(
        text=render_zone(zone, soa, serial, records, ttl),
        serial=serial,
        changed=True,
        previous_serial=previous,
    )
