"""Inventories for the model's tests: one way to build a `Model`, and the lab's shape.

`inventory()` turns variables and hosts (per group, each a mapping with its
`inventory_hostname`) into `parse_model`'s inputs through `model_inputs`, as
playbooks/validate.yml does with `groups` and `hostvars`. The lab's data follows
inventories/lab/hosts.yml and group_vars/all/bulkmail.yml, with fixed test passwords where
the lab looks its secrets up.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    Model,
    ModelError,
    ModelErrors,
    model_inputs,
    parse_model,
)

Hosts = Sequence[Mapping[str, Any]]

# Small enough that Postfix's own defaults are the floor; parse_model wants a volume as soon
# as there are smtp hosts.
VOLUME: dict[str, Any] = {"messages_per_day": 20000, "peak_per_hour": 5000}
# With hosts and the firewall on (the default), the model wants SSH's networks
# (model/admin.py); `inventory()` gives the lab's unless the variables name their own.
ADMIN_NETWORKS = ["10.25.0.0/28"]
# With smtp hosts and domains the model wants an operator address (model/feedback.py).
FEEDBACK = {"operator_address": "noc@operator.test"}


def inventory(
    variables: Mapping[str, Any],
    *,
    smtp: Hosts = (),
    smtp_fallback: Hosts = (),
    dns: Hosts = (),
    db: Hosts = (),
    web: Hosts = (),
) -> dict[str, Any]:
    """parse_model's inputs for `variables` and these hosts.

    The smtp_fallback hosts are smtp hosts too: the group is a child of smtp, as in the lab.
    """
    variables = {
        "bulkmail_admin_networks": ADMIN_NETWORKS,
        "bulkmail_feedback": FEEDBACK,
        **variables,
    }
    members: dict[str, Hosts] = {
        "smtp": [*smtp, *smtp_fallback],
        "smtp_fallback": smtp_fallback,
        "dns": dns,
        "db": db,
        "web": web,
    }
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    for group, hosts in members.items():
        names = groups.setdefault(group, [])
        for host in hosts:
            name = str(host["inventory_hostname"])
            if name not in names:
                names.append(name)
            hostvars.setdefault(
                name, {key: value for key, value in host.items() if key != "inventory_hostname"}
            )
    groups["all"] = list(hostvars)
    return model_inputs(variables, groups, hostvars)


def build_model(
    variables: Mapping[str, Any],
    *,
    smtp: Hosts = (),
    smtp_fallback: Hosts = (),
    dns: Hosts = (),
    db: Hosts = (),
    web: Hosts = (),
) -> Model:
    """The parsed model of `variables` and these hosts (see `inventory`)."""
    return parse_model(
        inventory(variables, smtp=smtp, smtp_fallback=smtp_fallback, dns=dns, db=db, web=web)
    )


def problems(inputs: Mapping[str, Any]) -> list[str]:
    """Every problem parse_model reports for `inputs`, one message each; fails if it parses."""
    with pytest.raises(ModelError) as caught:
        parse_model(inputs)
    error = caught.value
    return [str(item) for item in (error.errors if isinstance(error, ModelErrors) else [error])]


def problem(inputs: Mapping[str, Any]) -> str:
    """The one problem parse_model reports for `inputs`."""
    found = problems(inputs)
    assert len(found) == 1, found
    return found[0]


# --- the lab -------------------------------------------------------------------------------

# What the lab's password lookups would return: distinct, so a leak names its source.
PASSWORDS = {
    "relay1": "Relay1-Pw-q7Zt3",
    "relay2": "Relay2-Pw-m4Xc8",
    "app@example.test": "Submit-Example-k2Vb9",
    "app@shop.test": "Submit-Shop-r5Hn1",
    "bulkmail_db_app_password": "Db-App-w8Jd6",
    "bulkmail_db_reader_password": "Db-Reader-t3Lp2",
}
# relay2's public-key digest, as `make lab-hosts` writes it (.secrets/relay-relay2-tls.sha256).
RELAY2_PIN = ":".join(["5A"] * 32)

SMTP1: dict[str, Any] = {
    "inventory_hostname": "smtp1",
    "bulkmail_hostname": "mta1.example.test",
    "bulkmail_public_ipv4": "198.51.100.10",
    "bulkmail_extra_ipv4": ["198.51.100.11"],
    "bulkmail_internal_ipv4": "10.25.0.10",
}
SMTP2: dict[str, Any] = {
    "inventory_hostname": "smtp2",
    "bulkmail_hostname": "mta2.example.test",
    "bulkmail_public_ipv4": "198.51.100.12",
    "bulkmail_internal_ipv4": "10.25.0.12",
}
LAB_HOSTS: dict[str, list[dict[str, Any]]] = {
    "smtp": [SMTP1],
    "smtp_fallback": [SMTP2],
    "dns": [
        {"inventory_hostname": "dns1", "bulkmail_hostname": "ns1.example.test",
         "bulkmail_public_ipv4": "198.51.100.53", "bulkmail_internal_ipv4": "10.25.0.53"},
        {"inventory_hostname": "dns2", "bulkmail_hostname": "ns2.example.test",
         "bulkmail_public_ipv4": "198.51.100.54", "bulkmail_internal_ipv4": "10.25.0.54"},
    ],
    "db": [
        {"inventory_hostname": "db1", "bulkmail_hostname": "db1.example.test",
         "bulkmail_public_ipv4": "198.51.100.5", "bulkmail_internal_ipv4": "10.25.0.5"},
    ],
    "web": [
        {"inventory_hostname": "web1", "bulkmail_hostname": "web1.example.test",
         "bulkmail_public_ipv4": "198.51.100.80", "bulkmail_internal_ipv4": "10.25.0.80"},
    ],
}  # fmt: skip

LAB_VARIABLES: dict[str, Any] = {
    "bulkmail_domains": [
        {
            "name": "example.test",
            "dkim_selectors": ["lab2026a"],
            "return_path_domain": "bounces.example.test",
            "dmarc": {"policy": "none", "rua": "mailto:dmarc@example.test"},
            "mta_sts": {"mode": "testing", "max_age": 86400},
            "tls_rpt": {"rua": "mailto:tls-reports@example.test"},
        },
        {
            "name": "shop.test",
            "dkim_selectors": ["lab2026a"],
            "dmarc": {"policy": "reject", "rua": "mailto:dmarc@shop.test"},
            "mta_sts": {"mode": "enforce", "max_age": 86400},
            "tls_rpt": {"rua": "mailto:tls-reports@shop.test"},
        },
        {
            "name": "agency.test",
            "dkim_selectors": ["lab2026a"],
            "dmarc": {"policy": "none", "rua": "mailto:dmarc@agency.test"},
            "mta_sts": {"mode": "testing", "max_age": 86400},
            "tls_rpt": {"rua": "mailto:tls-reports@agency.test"},
            "relays": ["relay1", "relay2"],
        },
    ],
    "bulkmail_relays": {
        name: {
            "host": f"{name}.relays.test",
            "port": 587,
            "username": "lab-agency",
            "password": PASSWORDS[name],
        }
        | ({"tls_fingerprint": RELAY2_PIN} if name == "relay2" else {})
        for name in ("relay1", "relay2")
    },
    "bulkmail_ip_pools": {
        "transactional": ["198.51.100.10"],
        "bulk": ["198.51.100.11", "198.51.100.12"],
    },
    "bulkmail_lanes": {
        "transactional": {"pool": "transactional"},
        "bulk": {"pool": "bulk", "port": 2525, "fallback": True, "per_provider": True},
    },
    "bulkmail_trusted_networks": [{"network": "10.25.0.96/27", "domains": "all"}],
    "bulkmail_admin_networks": ADMIN_NETWORKS,
    "bulkmail_feedback": FEEDBACK,
    "bulkmail_volume": {"messages_per_day": 20000, "peak_per_hour": 5000, "message_size_kb": 50},
    "bulkmail_providers": {
        "google": {"extra_mx_suffixes": [".google.test"]},
        "microsoft": {"extra_mx_suffixes": [".protection.outlook.test"]},
        "yahoo": {"extra_mx_suffixes": [".yahoodns.test"]},
    },
    "bulkmail_submission_accounts": [
        {"username": name, "password": PASSWORDS[name]}
        for name in ("app@example.test", "app@shop.test")
    ],
    "bulkmail_db_app_password": PASSWORDS["bulkmail_db_app_password"],
    "bulkmail_db_reader_password": PASSWORDS["bulkmail_db_reader_password"],
}


def lab_variables(**changes: Any) -> dict[str, Any]:
    """A copy of the lab's variables with `changes` (bulkmail_* name -> value) applied."""
    variables = copy.deepcopy(LAB_VARIABLES)
    variables.update(copy.deepcopy(changes))
    return variables


def lab_hosts() -> dict[str, list[dict[str, Any]]]:
    """A copy of the lab's hosts per group, to change before `inventory(..., **hosts)`."""
    return copy.deepcopy(LAB_HOSTS)


def lab_inventory(**changes: Any) -> dict[str, Any]:
    """parse_model's inputs for the lab with `changes` to its variables."""
    return inventory(lab_variables(**changes), **lab_hosts())


def lab_model(**changes: Any) -> Model:
    return parse_model(lab_inventory(**changes))
