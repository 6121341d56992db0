# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_hba.conf as data: who may reach the bulkmail database, from which address, and how.

The rules are derived from the inventory (the smtp hosts write as the app role, the web hosts
read as the reader role, each from its ``bulkmail_internal_ipv4``), checked here, and placed
line by line by the role's template. Everything not listed ends on an explicit ``reject``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ..model.errors import ModelError, raise_collected
from ..model.fields import control_character

CONNECTION_TYPES = ("local", "host", "hostssl", "hostnossl", "hostgssenc", "hostnogssenc")
# The methods an extra rule may use: a password PostgreSQL verifies itself without learning it
# (scram-sha-256), a client certificate, the Unix user of a local connection, or a refusal.
# Everything else trusts someone else's word or sends a replayable password: trust, password,
# md5, ident (the client's own identd), pam, ldap, radius, bsd (checked elsewhere, often in
# clear), gss and sspi (a Kerberos realm outside the model).
ALLOWED_METHODS = ("scram-sha-256", "cert", "peer", "reject")
LOCAL_ONLY_METHODS = ("peer",)
OPTION_RE = re.compile(r"^[a-z_]+=[^\s\"'#]+$")
NAME_RE = re.compile(r"^[A-Za-z0-9_.+@-]+(,[A-Za-z0-9_.+@-]+)*$")
WIDTHS = (8, 16, 16, 20)


class HbaError(ModelError):
    """A client list or rule that would make a wrong pg_hba.conf; names the field."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


@dataclass(frozen=True)
class HbaRule:
    """One pg_hba.conf record."""

    type: str
    database: str
    user: str
    address: str
    method: str
    options: str = ""
    comment: str = ""

    @property
    def line(self) -> str:
        columns = (self.type, self.database, self.user, self.address)
        # A value as long as its column still gets a space: the fields must stay apart.
        padded = "".join(
            f"{value:<{width - 1}} " for value, width in zip(columns, WIDTHS, strict=True)
        )
        return " ".join(part for part in (padded + self.method, self.options) if part)

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "line": self.line}


def host_address(value: Any, path: str) -> str:
    """A host's IPv4 address as a /32 network."""
    if value is None or value == "":
        raise HbaError(f"{path}: not set; every client host needs one")
    try:
        address = ipaddress.IPv4Address(str(value))
    except ValueError:
        raise HbaError(f"{path}: {value!r} is not an IPv4 address") from None
    return f"{address}/32"


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise HbaError(
            f"{path}: {value!r} must be a role or database name (letters, digits, _ . + @ -)"
        )
    return value


def client_rules(
    client: Mapping[str, Any], index: int, database: str, connection_type: str
) -> list[HbaRule]:
    """Rules letting one role in from each host of one inventory group."""
    path = f"clients[{index}]"
    if not isinstance(client, Mapping):
        raise HbaError(f"{path}: must be a mapping with role, group and hosts")
    role = _name(client.get("role"), f"{path}.role")
    group = str(client.get("group") or "?")
    hosts = client.get("hosts") or {}
    if not isinstance(hosts, Mapping):
        raise HbaError(f"{path}.hosts: must map host names to bulkmail_internal_ipv4")
    return [
        HbaRule(
            type=connection_type,
            database=database,
            user=role,
            address=host_address(address, f"bulkmail_internal_ipv4 of {group} host {host!r}"),
            method="scram-sha-256",
            comment=f"{role} from {host} ({group})",
        )
        for host, address in hosts.items()
    ]


def extra_rule(raw: Any, index: int) -> HbaRule:
    """An operator-supplied rule, held to the same standard as the derived ones."""
    path = f"postgresql_hba_extra_rules[{index}]"
    if not isinstance(raw, Mapping):
        raise HbaError(f"{path}: must be a mapping (type, database, user, address, method)")
    unknown = sorted(
        set(raw) - {"type", "database", "user", "address", "method", "options", "comment"}
    )
    if unknown:
        raise HbaError(f"{path}: unknown keys {', '.join(unknown)}")
    kind = raw.get("type", "hostssl")
    if kind not in CONNECTION_TYPES:
        raise HbaError(f"{path}.type: {kind!r} is not one of {', '.join(CONNECTION_TYPES)}")
    method = raw.get("method", "scram-sha-256")
    if method not in ALLOWED_METHODS:
        raise HbaError(
            f"{path}.method: {method!r} is not allowed (it trusts another's word or a "
            f"replayable password); use one of {', '.join(ALLOWED_METHODS)}"
        )
    if method in LOCAL_ONLY_METHODS and kind != "local":
        raise HbaError(f"{path}.method: {method} applies to local connections only")
    address = ""
    if kind != "local":
        value = raw.get("address")
        try:
            address = str(ipaddress.ip_network(str(value), strict=True))
        except ValueError:
            raise HbaError(f"{path}.address: {value!r} is not a network in CIDR form") from None
    elif raw.get("address"):
        raise HbaError(f"{path}.address: local rules have no address")
    return HbaRule(
        type=kind,
        database=_name(raw.get("database"), f"{path}.database"),
        user=_name(raw.get("user"), f"{path}.user"),
        address=address,
        method=method,
        options=_options(raw.get("options"), f"{path}.options"),
        comment=_comment(raw.get("comment"), f"{path}.comment", f"extra rule {index}"),
    )


def parse_extra_rules(raw: Any) -> list[HbaRule]:
    """`postgresql_hba_extra_rules`, each rule checked by extra_rule; every problem at once.

    The role renders them (build_pg_hba) and playbooks/validate.yml checks them first
    (model.extras), both through here.
    """
    if raw is None:
        return []
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise HbaError(
            "postgresql_hba_extra_rules: must be a list of rules (type, database, user, "
            "address, method)"
        )
    rules: list[HbaRule] = []
    errors: list[ModelError] = []
    for index, item in enumerate(raw):
        try:
            rules.append(extra_rule(item, index))
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return rules


def _one_line(value: Any, path: str) -> str:
    """Text that stays on its line of pg_hba.conf: a newline would start a record of its own."""
    if not isinstance(value, str):
        raise HbaError(f"{path}: {value!r} is not text")
    bad = control_character(value)
    if bad is not None:
        raise HbaError(f"{path}: contains the control character {bad!r}; keep it on one line")
    return value


def _options(value: Any, path: str) -> str:
    """`name=value` pairs (pg_hba auth options, e.g. clientcert=verify-full), one line."""
    if value is None or value == "":
        return ""
    text = _one_line(value, path)
    for token in text.split():
        if not OPTION_RE.match(token):
            raise HbaError(
                f"{path}: {token!r} is not an option of the form name=value "
                "(e.g. clientcert=verify-full)"
            )
    return " ".join(text.split())


def _comment(value: Any, path: str, default: str) -> str:
    if value is None or value == "":
        return default
    return _one_line(value, path).strip() or default


def build_pg_hba(
    database: str,
    clients: Sequence[Mapping[str, Any]],
    *,
    admin_user: str = "postgres",
    admin_ident_map: str | None = None,
    require_ssl: bool = True,
    extra_rules: Any = (),
) -> list[HbaRule]:
    """The whole pg_hba.conf, first match wins.

    1. the administrator over the local socket, by peer (optionally through an ident map);
    2. each client role from each of its hosts, scram-sha-256, over TLS unless told otherwise;
    3. the operator's extra rules;
    4. reject everything else, local and remote.
    """
    database = _name(database, "bulkmail_db_name")
    connection_type = "hostssl" if require_ssl else "host"
    rules = [
        HbaRule(
            type="local",
            database="all",
            user=_name(admin_user, "admin_user"),
            address="",
            method="peer",
            options=f"map={_name(admin_ident_map, 'admin_ident_map')}" if admin_ident_map else "",
            comment="administration over the local socket (pg_ident.conf says which OS users)",
        )
    ]
    for index, client in enumerate(clients):
        rules.extend(client_rules(client, index, database, connection_type))
    rules.extend(parse_extra_rules(extra_rules))
    rules.append(HbaRule("local", "all", "all", "", "reject", comment="no other local connection"))
    rules.append(
        HbaRule(
            "host",
            "all",
            "all",
            "all",
            "reject",
            comment="anything else, from anywhere (the internet included), is refused",
        )
    )
    return rules


def pg_hba_rules(
    database: str, clients: Sequence[Mapping[str, Any]], **options: Any
) -> list[dict[str, str]]:
    """build_pg_hba as plain dictionaries (with a ready ``line``) for a template."""
    return [rule.as_dict() for rule in build_pg_hba(database, clients, **options)]
