# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filters over plugins/module_utils/model (documented in model.yml, model_summary.yml,
model_hosts.yml, sender_identities.yml, feedback_settings.yml, unsubscribe_hosts.yml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.addresses import (
    feedback_addresses,
    processor_config,
    unsubscribe_address,
    unsubscribe_host,
    unsubscribe_url,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import (
    default_tenants,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    MODEL_VARIABLES,
    ModelError,
    group_hosts,
    model_inputs,
    model_summary,
    parse_model,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.plain import plain, plain_hosts
from ansible_collections.bulkmail.infra.plugins.module_utils.sender_guard import sender_identities


def model(variables: Any, groups: Any, hosts: Any, files: Any = None) -> dict[str, Any]:
    """The `bulkmail_model` fact: what the model reads of the inventory, once it parses.

    `files`: path -> text of the files the variables name (the CSV imports of
    `bulkmail_sender_accounts`), read by the play, as the model itself reads no file.

    A model that does not parse gives `{problems: <every problem, one per line>}` instead of
    failing: the fact holds secrets and is set with no_log, which would hide the message; the
    next task fails with it (playbooks/validate.yml).
    """
    if not isinstance(variables, Mapping):
        raise AnsibleFilterError("model: the input must be a mapping of the model's variables")
    given = sorted(variables)
    if given != sorted(MODEL_VARIABLES):
        missing = sorted(set(MODEL_VARIABLES) - set(given))
        extra = sorted(set(given) - set(MODEL_VARIABLES))
        raise AnsibleFilterError(
            f"model: pass exactly the model's variables; missing {missing}, unknown {extra}"
        )
    try:
        listed = plain_hosts(hosts, "model: hosts") or []
        inputs = model_inputs(
            variables,
            {str(name): list(members) for name, members in plain(groups).items()},
            {str(host["inventory_hostname"]): host for host in listed},
            _files(files),
        )
        parse_model(inputs)
    except ModelError as error:
        return {"problems": str(error)}
    return inputs


def _files(files: Any) -> dict[str, Any]:
    """The play's file texts as a plain dict (none: an empty one)."""
    if files is None:
        return {}
    if not isinstance(files, Mapping):
        raise AnsibleFilterError("model: files must be a mapping of path to the file's text")
    return {str(path): files[path] for path in files}


def summary(inputs: Any) -> dict[str, Any]:
    """The model as the validate play shows it: names and counts, no secret."""
    try:
        return model_summary(parse_model(inputs))
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error


def hosts(inputs: Any, group: str) -> list[dict[str, Any]]:
    """The validated model's hosts of `group`, each as `{inventory_hostname, bulkmail_*}`."""
    if not isinstance(group, str) or not group:
        raise AnsibleFilterError("model_hosts: name a group, e.g. 'dns'")
    try:
        parse_model(inputs)
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error
    known = (inputs.get("groups") or {}) if isinstance(inputs, Mapping) else {}
    if group not in known:
        raise AnsibleFilterError(f"model_hosts: {group!r} is not one of {', '.join(known)}")
    return group_hosts(inputs, group)


def identities(inputs: Any) -> dict[str, Any]:
    """The sender guard's data: who may send as which domain (no secret)."""
    try:
        return sender_identities(parse_model(inputs))
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error


def feedback_settings(inputs: Any) -> dict[str, Any]:
    """The feedback loop's data: tenants, the processor's file, soft bounces, our addresses."""
    try:
        parsed = parse_model(inputs)
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error
    own = [
        address
        for host in parsed.smtp_hosts
        for address in (*host.public_addresses, host.internal_ipv4)
        if address
    ]
    addresses = feedback_addresses(parsed.domains, parsed.submission_accounts)
    return {
        # Sending domain -> tenant: bulkmail_tenants' names, else the domain as its own.
        "tenants": default_tenants((domain.name for domain in parsed.domains), parsed.tenants),
        # What the ingester must not suppress: mail to our own feedback addresses.
        "inbound": [f"@{name}" for name in addresses.verp_domains] + sorted(addresses.fixed),
        "processor": processor_config(
            parsed.domains,
            parsed.submission_accounts,
            hard_bounce_scope=parsed.feedback.hard_bounce_scope,
            # Our own bounce notices come back to our MX: the log counted them already.
            smtp_hosts=parsed.smtp_hosts,
        ),
        "soft_bounces": {
            "threshold": parsed.feedback.soft_bounce_threshold,
            "days": parsed.feedback.soft_bounce_days,
        },
        "own_hosts": sorted(set(own)),
        # Per sending domain: its one-click link base and mailto (bulkmail submit's options).
        "unsubscribe": {
            domain.name: {
                "url": unsubscribe_url(domain),
                "mailto": unsubscribe_address(domain),
            }
            for domain in parsed.domains
        },
    }


def unsubscribe_hosts(inputs: Any) -> list[str]:
    """unsubscribe.<domain> of every sending domain, once the model has one-click keys."""
    try:
        parsed = parse_model(inputs)
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error
    if not (inputs.get("variables") or {}).get("bulkmail_unsubscribe_keys"):
        return []
    return [unsubscribe_host(domain) for domain in parsed.domains]


class FilterModule:
    """The bulkmail inventory model."""

    def filters(self) -> dict[str, Any]:
        return {
            "model": model,
            "model_summary": summary,
            "model_hosts": hosts,
            "sender_identities": identities,
            "feedback_settings": feedback_settings,
            "unsubscribe_hosts": unsubscribe_hosts,
        }
