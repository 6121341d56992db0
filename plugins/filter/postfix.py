# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filters over plugins/module_utils/postfix/config.py (documented in the .yml files)."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.config import (
    merge_services,
    merge_settings,
    postfix_main_cf,
    postfix_master_services,
    postfix_sender_logins,
    postfix_verp,
    services_from_data,
    settings_from_data,
    smtp_host,
)


def _layers(layers: Any, name: str) -> list[Any]:
    if layers is None:
        return []
    if not isinstance(layers, list):
        raise AnsibleFilterError(f"{name}: layers must be a list of lists")
    return layers


def main_cf(host: Any, layers: Any = None) -> list[dict[str, str]]:
    """main.cf settings for one smtp host, with optional layers merged on top."""
    try:
        base = postfix_main_cf(smtp_host(host))
        parsed = [
            settings_from_data(layer, f"postfix_main_cf layers[{index}]")
            for index, layer in enumerate(_layers(layers, "postfix_main_cf"))
        ]
        return [setting.as_dict() for setting in merge_settings(base, *parsed)]
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def master_cf(host: Any, layers: Any = None) -> list[dict[str, Any]]:
    """master.cf services for one smtp host, with optional layers merged on top."""
    try:
        base = postfix_master_services(smtp_host(host))
        parsed = [
            services_from_data(layer, f"postfix_master_cf layers[{index}]")
            for index, layer in enumerate(_layers(layers, "postfix_master_cf"))
        ]
        return [service.as_dict() for service in merge_services(base, *parsed)]
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def sender_logins(usernames: Any, domains: Any) -> list[dict[str, str]]:
    """smtpd_sender_login_maps entries from the submission usernames and bulkmail_domains."""
    if not isinstance(usernames, list) or not isinstance(domains, list):
        raise AnsibleFilterError(
            "postfix_sender_logins: expects a list of usernames and the bulkmail_domains list"
        )
    try:
        return [
            {"key": key, "owners": owners}
            for key, owners in postfix_sender_logins(usernames, domains)
        ]
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def verp(domains: Any) -> dict[str, Any]:
    """VERP on the return-path domains: a main.cf layer and its two regexp tables."""
    try:
        return postfix_verp(domains)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    """Postfix configuration derived from the bulkmail model."""

    def filters(self) -> dict[str, Any]:
        return {
            "postfix_main_cf": main_cf,
            "postfix_master_cf": master_cf,
            "postfix_sender_logins": sender_logins,
            "postfix_verp": verp,
        }
