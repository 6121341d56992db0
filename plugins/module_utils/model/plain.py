"""Ansible's lazy containers (hostvars, HostVarsVars, templated lists) as plain Python data.

Filters hand the model functions what Jinja gives them; the model functions expect dicts and
lists. Pure Python, no Ansible import: a non-list where hosts belong is a `ModelError` naming
the argument, which the filters turn into their own error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ModelError


def plain(value: Any) -> Any:
    """A mapping as a dict, another iterable (not text) as a list, anything else as it is."""
    if isinstance(value, Mapping):
        return {key: value[key] for key in value}
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return value
    return list(value)


def plain_hosts(value: Any, where: str = "hosts") -> list[Any] | None:
    """A list of hosts' variables (`groups[...] | map('extract', hostvars)`), each a dict."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise ModelError(where, "must be a list of hostvars, e.g. groups['smtp'] | "
                                "map('extract', hostvars) | list")  # fmt: skip
    return [plain(host) if isinstance(host, Mapping) else host for host in value]
