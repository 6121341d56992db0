# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter over plugins/module_utils/postfix_lanes.py (documented in postfix_instances.yml)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix_lanes import (
    postfix_instances,
)


def _plain(value: Any) -> Any:
    """hostvars entries (HostVarsVars) as plain mappings."""
    if isinstance(value, Mapping):
        return {key: value[key] for key in value}
    return value


def _plain_hosts(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise AnsibleFilterError("postfix_instances: hosts must be a list of hostvars")
    return [_plain(host) for host in value]


def instances(
    host: Any,
    lanes: Any = None,
    ip_pools: Any = None,
    graveyards: Any = None,
    primaries: Any = None,
    active_limit: Any = 20000,
    providers: Any = None,
    provider_map_socket: Any = "inet:127.0.0.1:10028",
) -> list[dict[str, Any]]:
    """The Postfix instances of one smtp host: its lanes, or the graveyard's single one."""
    try:
        return postfix_instances(
            _plain(host),
            lanes=_plain(lanes),
            ip_pools=_plain(ip_pools),
            graveyards=_plain_hosts(graveyards),
            primaries=_plain_hosts(primaries),
            active_limit=int(active_limit),
            providers=list(providers or []),
            provider_map_socket=str(provider_map_socket),
        )
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """Lanes: one Postfix instance per stream."""

    def filters(self) -> dict[str, Any]:
        return {"postfix_instances": instances}
