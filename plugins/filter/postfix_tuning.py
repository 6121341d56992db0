# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter over plugins/module_utils/postfix/tuning.py (documented in postfix_tuning.yml)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.tuning import (
    postfix_tuning,
)


def tuning(
    volume: Any,
    ip_pools: Any = None,
    relays: Any = None,
    providers: Any = None,
    primaries: Any = 1,
    provider_map: Any = None,
    domains: Any = None,
) -> dict[str, Any]:
    """main.cf and master.cf layers derived from bulkmail_volume, pools, relays, providers."""
    if isinstance(primaries, str) and primaries.isdigit():
        primaries = int(primaries)
    if provider_map is not None and not isinstance(provider_map, str):
        raise AnsibleFilterError("postfix_tuning: provider_map must be a Postfix table name")
    try:
        return postfix_tuning(
            volume,
            ip_pools=ip_pools,
            relays=relays,
            providers=providers,
            primaries=primaries,
            provider_map=provider_map or None,
            domains=domains,
        ).as_dict()
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """The tuning model."""

    def filters(self) -> dict[str, Any]:
        return {"postfix_tuning": tuning}
