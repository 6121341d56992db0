# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filters over plugins/module_utils/firewall.py (documented in firewall_rules.yml,
ban_exempt.yml)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.firewall import (
    SSH_PORT,
    ban_exempt,
    firewall_rules,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model import ModelError, parse_model


def rules(model: Any, host: Any, ssh_port: Any = SSH_PORT) -> list[dict[str, Any]]:
    """The accept rules of host `host`, from the `bulkmail_model` fact."""
    if not isinstance(host, str):
        raise AnsibleFilterError("firewall_rules: host must be an inventory host name")
    try:
        return [
            rule.as_dict() for rule in firewall_rules(parse_model(model), host, ssh_port=ssh_port)
        ]
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error


def exempt(model: Any) -> list[str]:
    """The networks fail2ban never bans, from the `bulkmail_model` fact."""
    try:
        return list(ban_exempt(parse_model(model)))
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """The host firewall, derived from the bulkmail model."""

    def filters(self) -> dict[str, Any]:
        return {"firewall_rules": rules, "ban_exempt": exempt}
