"""The providers' configuration: who answers for which domains, and how (providers.toml)."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "providers.toml"


class ConfigError(ValueError):
    """The configuration file says something the server cannot do; the message names the field."""


class Behaviour(StrEnum):
    """What a provider does with one recipient."""

    ACCEPT = "accept"
    TARPIT = "tarpit"  # accept, but answer DATA only after tarpit_seconds
    DEFER = "defer"  # the provider's 4xx rate/reputation reply
    REJECT_UNKNOWN = "reject_unknown"  # 550 5.1.1 user unknown
    MAILBOX_FULL = "mailbox_full"  # 452 4.2.2 over quota (temporary, as at Google)
    BOUNCE = "bounce"  # accept, then a DSN to the envelope sender (RFC 3464)
    COMPLAIN = "complain"  # accept, then an ARF complaint to the envelope sender (RFC 5965)


class DeferStage(StrEnum):
    """Where a provider gives its deferral: Google after DATA, the others at RCPT."""

    RCPT = "rcpt"
    DATA = "data"


_REPLY_LINE = re.compile(r"^([245]\d\d)([ -])(.*)$")


@dataclass(frozen=True)
class Reply:
    """An SMTP reply, possibly multi-line, with `{ip}` and `{id}` placeholders."""

    lines: tuple[str, ...]

    @property
    def code(self) -> int:
        return int(self.lines[0][:3])

    def render(self, ip: str = "", queue_id: str = "") -> str:
        return "\r\n".join(
            line.replace("{ip}", ip).replace("{id}", queue_id) for line in self.lines
        )

    @classmethod
    def parse(cls, text: str, where: str) -> Reply:
        lines = tuple(line.rstrip() for line in text.strip().splitlines())
        codes = set()
        for number, line in enumerate(lines, start=1):
            match = _REPLY_LINE.match(line)
            last = number == len(lines)
            if not match or (match.group(2) == " ") != last:
                raise ConfigError(
                    f"{where}: line {number} ({line!r}) must start with a 3-digit code followed by "
                    f"'-' on continuation lines and ' ' on the last line"
                )
            codes.add(match.group(1))
        if len(codes) != 1:
            raise ConfigError(f"{where}: every line of a reply must carry the same code")
        return cls(lines)


GENERIC_REPLIES: dict[str, str] = {
    "accepted": "250 2.0.0 OK {id}",
    "defer": "451 4.7.1 Try again later",
    "unknown_user": "550 5.1.1 User unknown",
    "mailbox_full": "452 4.2.2 Mailbox full",
}


@dataclass(frozen=True)
class Provider:
    """One emulated mailbox provider and the domains whose MX points at it."""

    name: str
    hostname: str  # authserv-id in Authentication-Results, `by` in Received
    domains: tuple[str, ...]
    behaviour: Behaviour = Behaviour.ACCEPT
    domain_behaviour: Mapping[str, Behaviour] = field(default_factory=dict)
    defer_stage: DeferStage = DeferStage.RCPT
    replies: Mapping[str, Reply] = field(default_factory=dict)

    def reply(self, key: str) -> Reply:
        found = self.replies.get(key)
        return found if found is not None else Reply.parse(GENERIC_REPLIES[key], key)


@dataclass(frozen=True)
class ServerConfig:
    listen_host: str = "0.0.0.0"
    listen_port: int = 25
    hostname: str = "mx.providers.test"
    dns_server: str = "198.51.100.53"
    dns_timeout: float = 5.0
    data_dir: Path = Path("/var/lib/providers")
    tarpit_seconds: float = 30.0
    followup_delay_seconds: float = 5.0  # from acceptance to the DSN or ARF report
    followup_port: int = 25  # the port reports are sent to at the sender's MX
    # (fnmatch pattern on the local part, behaviour), first match wins, before domain rules
    local_parts: tuple[tuple[str, Behaviour], ...] = ()
    providers: tuple[Provider, ...] = ()
    relay_denied: Reply = Reply(("550 5.7.1 Relaying denied",))

    @property
    def received_log(self) -> Path:
        return self.data_dir / "received.jsonl"

    @property
    def followup_log(self) -> Path:
        return self.data_dir / "followups.jsonl"

    @property
    def message_dir(self) -> Path:
        return self.data_dir / "messages"


def _behaviour(value: Any, where: str) -> Behaviour:
    try:
        return Behaviour(value)
    except ValueError:
        choices = ", ".join(b.value for b in Behaviour)
        raise ConfigError(f"{where}: {value!r} is not a behaviour; use one of {choices}") from None


def _provider(name: str, table: Mapping[str, Any]) -> Provider:
    where = f"providers.{name}"
    domains = table.get("domains")
    if not isinstance(domains, list) or not domains:
        raise ConfigError(f"{where}.domains: give the list of domains this provider receives for")
    hostname = table.get("hostname")
    if not isinstance(hostname, str) or "." not in hostname:
        raise ConfigError(
            f"{where}.hostname: give the provider's MX host name, e.g. mx.{name}.test"
        )
    try:
        stage = DeferStage(table.get("defer_stage", DeferStage.RCPT.value))
    except ValueError:
        raise ConfigError(f"{where}.defer_stage: use 'rcpt' or 'data'") from None
    replies = {
        key: Reply.parse(text, f"{where}.replies.{key}")
        for key, text in table.get("replies", {}).items()
    }
    unknown = set(replies) - set(GENERIC_REPLIES)
    if unknown:
        raise ConfigError(
            f"{where}.replies: unknown keys {sorted(unknown)}; use {sorted(GENERIC_REPLIES)}"
        )
    return Provider(
        name=name,
        hostname=hostname,
        domains=tuple(d.lower().rstrip(".") for d in domains),
        behaviour=_behaviour(table.get("behaviour", "accept"), f"{where}.behaviour"),
        domain_behaviour={
            d.lower(): _behaviour(b, f"{where}.domain_behaviour.{d}")
            for d, b in table.get("domain_behaviour", {}).items()
        },
        defer_stage=stage,
        replies=replies,
    )


def parse_config(data: Mapping[str, Any]) -> ServerConfig:
    server = data.get("server", {})
    providers = tuple(_provider(name, table) for name, table in data.get("providers", {}).items())
    seen: dict[str, str] = {}
    for provider in providers:
        for domain in provider.domains:
            if domain in seen:
                raise ConfigError(
                    f"providers.{provider.name}.domains: {domain} is already served by "
                    f"providers.{seen[domain]}"
                )
            seen[domain] = provider.name
    local_parts = tuple(
        (pattern.lower(), _behaviour(b, f"local_parts.{pattern}"))
        for pattern, b in data.get("local_parts", {}).items()
    )
    defaults = ServerConfig()
    return ServerConfig(
        listen_host=str(server.get("listen_host", defaults.listen_host)),
        listen_port=int(server.get("listen_port", defaults.listen_port)),
        hostname=str(server.get("hostname", defaults.hostname)),
        dns_server=str(server.get("dns_server", defaults.dns_server)),
        dns_timeout=float(server.get("dns_timeout", defaults.dns_timeout)),
        data_dir=Path(server.get("data_dir", defaults.data_dir)),
        tarpit_seconds=float(server.get("tarpit_seconds", defaults.tarpit_seconds)),
        followup_delay_seconds=float(
            server.get("followup_delay_seconds", defaults.followup_delay_seconds)
        ),
        followup_port=int(server.get("followup_port", defaults.followup_port)),
        local_parts=local_parts,
        providers=providers,
        relay_denied=Reply.parse(
            server.get("relay_denied", defaults.relay_denied.render()), "server.relay_denied"
        ),
    )


def apply_environment(config: ServerConfig, env: Mapping[str, str]) -> ServerConfig:
    """The container's environment wins over the file (PROVIDERS_DNS and friends)."""
    changes: dict[str, Any] = {}
    if env.get("PROVIDERS_DNS"):
        changes["dns_server"] = env["PROVIDERS_DNS"]
    if env.get("PROVIDERS_DATA_DIR"):
        changes["data_dir"] = Path(env["PROVIDERS_DATA_DIR"])
    if env.get("PROVIDERS_TARPIT_SECONDS"):
        changes["tarpit_seconds"] = float(env["PROVIDERS_TARPIT_SECONDS"])
    if env.get("PROVIDERS_FOLLOWUP_DELAY"):
        changes["followup_delay_seconds"] = float(env["PROVIDERS_FOLLOWUP_DELAY"])
    if env.get("PROVIDERS_LISTEN"):
        host, _, port = env["PROVIDERS_LISTEN"].rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError("PROVIDERS_LISTEN: write HOST:PORT, e.g. 0.0.0.0:25")
        changes["listen_host"], changes["listen_port"] = host, int(port)
    return replace(config, **changes)


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> ServerConfig:
    env = os.environ if env is None else env
    path = path or Path(env.get("PROVIDERS_CONFIG") or DEFAULT_CONFIG)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (set PROVIDERS_CONFIG)") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: {error}") from None
    return apply_environment(parse_config(data), env)
