# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter over plugins/module_utils/postfix/plan.py (documented in postfix_plan.yml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.model import ModelError, parse_model
from ansible_collections.bulkmail.infra.plugins.module_utils.model.plain import plain
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.plan import (
    plan,
    provider_routing,
)


def postfix_plan(model: Any, host: Any, options: Any = None) -> dict[str, Any]:
    """Everything the postfix role writes on smtp host `host`, from the `bulkmail_model` fact.

    A plan that cannot be made gives `{problems: ...}` (the plan holds the relays' credentials
    and is set with no_log, which would hide the message; the role fails with it next).
    """
    if not isinstance(host, str):
        raise AnsibleFilterError("postfix_plan: host must be an inventory host name")
    if options is not None and not isinstance(options, Mapping):
        raise AnsibleFilterError("postfix_plan: options must be a mapping of role options")
    try:
        return plan(parse_model(model), host, plain(options or {})).as_dict()
    except ModelError as error:
        return {"problems": str(error)}


def postfix_provider_routing(model: Any, host: Any) -> dict[str, Any]:
    """The provider classifier's tables for smtp host `host`: MX suffixes and lane routes."""
    if not isinstance(host, str):
        raise AnsibleFilterError("postfix_provider_routing: host must be an inventory host name")
    try:
        return provider_routing(parse_model(model), host)
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """Postfix configuration planned from the bulkmail model."""

    def filters(self) -> dict[str, Any]:
        return {"postfix_plan": postfix_plan, "postfix_provider_routing": postfix_provider_routing}
