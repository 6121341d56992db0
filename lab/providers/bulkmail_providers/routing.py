"""Which provider answers for a recipient, and what it does with it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from bulkmail_providers.config import Behaviour, DeferStage, Provider, Reply, ServerConfig

RCPT_OK = "250 2.1.5 OK"


@dataclass(frozen=True)
class Decision:
    recipient: str
    provider: Provider | None  # None: no provider receives for this domain
    behaviour: Behaviour

    def refusal_at_rcpt(self, config: ServerConfig) -> Reply | None:
        """The RCPT reply that refuses this recipient, or None when it is taken."""
        if self.provider is None:
            return config.relay_denied
        if self.behaviour is Behaviour.REJECT_UNKNOWN:
            return self.provider.reply("unknown_user")
        if self.behaviour is Behaviour.MAILBOX_FULL:
            return self.provider.reply("mailbox_full")
        if self.behaviour is Behaviour.DEFER and self.provider.defer_stage is DeferStage.RCPT:
            return self.provider.reply("defer")
        return None


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().strip("<>").rpartition("@")
    return local, domain.lower().rstrip(".")


def provider_for_domain(domain: str, config: ServerConfig) -> Provider | None:
    for provider in config.providers:
        if domain in provider.domains:
            return provider
    return None


def choose_behaviour(
    recipient: str, config: ServerConfig, overrides: Mapping[str, Behaviour] | None = None
) -> Decision:
    """Local-part conventions first (`defer-*@...`), then a runtime override of the domain
    (`behave`), then the domain's configured behaviour, then the provider's."""
    local, domain = split_address(recipient)
    provider = provider_for_domain(domain, config)
    if provider is None:
        return Decision(recipient, None, Behaviour.ACCEPT)
    for pattern, behaviour in config.local_parts:
        if fnmatchcase(local.lower(), pattern):
            return Decision(recipient, provider, behaviour)
    if overrides and domain in overrides:
        return Decision(recipient, provider, overrides[domain])
    behaviour = provider.domain_behaviour.get(domain, provider.behaviour)
    return Decision(recipient, provider, behaviour)


def refusal_after_data(decisions: Iterable[Decision]) -> Reply | None:
    """A deferral given after DATA (Google's way) refuses the whole transaction."""
    for decision in decisions:
        provider = decision.provider
        if (
            provider is not None
            and decision.behaviour is Behaviour.DEFER
            and provider.defer_stage is DeferStage.DATA
        ):
            return provider.reply("defer")
    return None


def wants_tarpit(decisions: Iterable[Decision]) -> bool:
    return any(d.behaviour is Behaviour.TARPIT for d in decisions)


def group_by_provider(decisions: Iterable[Decision]) -> dict[str, tuple[Provider, list[str]]]:
    """Accepted recipients per provider: each provider keeps its own copy and record."""
    groups: dict[str, tuple[Provider, list[str]]] = {}
    for decision in decisions:
        if decision.provider is None:
            continue
        groups.setdefault(decision.provider.name, (decision.provider, []))[1].append(
            decision.recipient
        )
    return groups
