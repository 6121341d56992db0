# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter over plugins/module_utils/postfix/lanes.py (documented in postfix_instances.yml)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.model.plain import (
    plain,
    plain_hosts,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.lanes import (
    postfix_instances,
)


def instances(
    host: Any,
    lanes: Any = None,
    ip_pools: Any = None,
    graveyards: Any = None,
    primaries: Any = None,
    active_limit: Any = 20000,
    providers: Any = None,
    provider_map_socket: Any = "inet:127.0.0.1:10028",
    size_limit: Any = None,
) -> list[dict[str, Any]]:
    """The Postfix instances of one smtp host: its lanes, or the graveyard's single one."""
    try:
        return postfix_instances(
            plain(host),
            lanes=plain(lanes),
            ip_pools=plain(ip_pools),
            graveyards=plain_hosts(graveyards, "postfix_instances: graveyards") or [],
            primaries=plain_hosts(primaries, "postfix_instances: primaries") or [],
            active_limit=int(active_limit),
            providers=list(providers or []),
            provider_map_socket=str(provider_map_socket),
            size_limit=None if size_limit is None else int(size_limit),
        )
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """Lanes: one Postfix instance per stream."""

    def filters(self) -> dict[str, Any]:
        return {"postfix_instances": instances}
