"""Primary and secondaries: who transfers from whom, and what a user sees when it is wrong."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.zone_transfer import (
    plan_zone_transfers,
    render_tsig_key,
    validate_tsig_secret,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError

SECRET = base64.b64encode(bytes(range(32))).decode()
DNS_HOSTS: list[dict[str, Any]] = [
    {
        "inventory_hostname": "dns1",
        "bulkmail_hostname": "ns1.example.com",
        "bulkmail_public_ipv4": "198.51.100.53",
        "bulkmail_internal_ipv4": "10.25.0.53",
    },
    {
        "inventory_hostname": "dns2",
        "bulkmail_hostname": "ns2.example.com",
        "bulkmail_public_ipv4": "198.51.100.54",
    },
]


def test_first_dns_host_is_primary_and_notifies_the_others() -> None:
    plan = plan_zone_transfers(DNS_HOSTS, "dns1")
    assert plan.role == "primary"
    assert plan.primary_address == "10.25.0.53"
    # dns2 has no internal address: transfers go over its public one.
    assert plan.secondary_addresses == ("198.51.100.54",)
    assert plan_zone_transfers(DNS_HOSTS, "dns2").role == "secondary"


def test_explicit_primary() -> None:
    plan = plan_zone_transfers(DNS_HOSTS, "dns1", primary="dns2")
    assert (plan.role, plan.primary_address) == ("secondary", "198.51.100.54")
    assert plan.secondary_addresses == ("10.25.0.53",)
    assert plan.as_dict()["secondary_addresses"] == ["10.25.0.53"]


def test_single_dns_host_has_no_secondaries() -> None:
    plan = plan_zone_transfers(DNS_HOSTS[:1], "dns1")
    assert (plan.role, plan.secondary_addresses) == ("primary", ())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"primary": "dns9"},
            "bind_primary: 'dns9' is not in the dns group (dns1, dns2); name one of them",
        ),
        (
            {"key_name": "Bad Key"},
            "bind_tsig_key_name: 'Bad Key' is not a TSIG key name; use lower-case letters, "
            "digits, '-' and '.' (e.g. 'bulkmail-transfer')",
        ),
    ],
)
def test_bad_plan_inputs(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError) as error:
        plan_zone_transfers(DNS_HOSTS, "dns1", **kwargs)
    assert str(error.value) == message


def test_host_outside_the_dns_group() -> None:
    with pytest.raises(ModelError) as error:
        plan_zone_transfers(DNS_HOSTS, "smtp1")
    assert str(error.value) == (
        "inventory_hostname: 'smtp1' is not in the dns group (dns1, dns2); run the bind role "
        "on the dns hosts only"
    )


def test_empty_dns_group() -> None:
    with pytest.raises(ModelError) as error:
        plan_zone_transfers([], "dns1")
    assert str(error.value) == "groups['dns']: is empty; put at least one host in the dns group"


def test_tsig_key_clause() -> None:
    assert render_tsig_key("bulkmail-transfer", SECRET) == (
        f'key "bulkmail-transfer" {{\n\talgorithm hmac-sha256;\n\tsecret "{SECRET}";\n}};\n'
    )


FIX = "generate one with `tsig-keygen -a hmac-sha256` and use its secret"


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("", f"bind_tsig_secret: missing or not a string; {FIX}"),
        (None, f"bind_tsig_secret: missing or not a string; {FIX}"),
        ("not base64!", f"bind_tsig_secret: is not valid base64; {FIX}"),
        (
            base64.b64encode(b"short").decode(),
            f"bind_tsig_secret: is 5 bytes, fewer than 16; {FIX}",
        ),
    ],
)
def test_bad_secrets_are_refused_without_showing_them(secret: Any, message: str) -> None:
    with pytest.raises(ModelError) as error:
        validate_tsig_secret(secret)
    assert str(error.value) == message
