"""The sender guard: an account or trusted network sends only as the domains it owns."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.sender_guard import (
    Identities,
    refusal,
    sender_identities,
)
from model_inventory import lab_model

NETWORKS = [
    {"network": "10.25.0.96/28", "domains": "all"},
    {"network": "10.25.0.112/28", "domains": ["shop.test"]},
]


@pytest.fixture(scope="module")
def identities() -> Identities:
    model = lab_model(bulkmail_trusted_networks=NETWORKS)
    # Through JSON, as the daemon reads it.
    return Identities.load(json.loads(json.dumps(sender_identities(model))))


def test_the_data_names_accounts_networks_and_return_paths() -> None:
    data = sender_identities(lab_model(bulkmail_trusted_networks=NETWORKS))
    assert data["accounts"] == {
        "app@example.test": ["example.test"],
        "app@shop.test": ["shop.test"],
    }
    assert data["networks"] == {"10.25.0.96/28": "all", "10.25.0.112/28": ["shop.test"]}
    assert data["domains"]["example.test"] == "bounces.example.test"
    assert data["domains"]["shop.test"] == "shop.test"
    assert "password" not in json.dumps(data)


def check(identities: Identities, account: str | None, client: str | None, **message: Any) -> Any:
    return refusal(
        identities.identify(account, client),
        envelope=message.get("envelope"),
        headers=message.get("headers", []),
        return_paths=identities.return_paths,
    )


def test_an_account_sends_as_its_own_domain(identities: Identities) -> None:
    headers = [("From", "App <app@shop.test>"), ("Sender", "ops@shop.test")]
    assert check(identities, "app@shop.test", "10.25.0.100", headers=headers) is None


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ([("From", "CEO <ceo@example.test>")], "example.test (From header)"),
        ([("From", "app@shop.test"), ("Sender", "x@example.test")], "example.test (Sender header)"),
        ([("From", "app@shop.test, boss@agency.test")], "agency.test (From header)"),
        ([("From", "a@shop.test"), ("From", "b@EXAMPLE.test")], "example.test (From header)"),
        ([("from", "ceo@example.test")], "example.test (from header)"),
        ([("From", "undisclosed")], "no domain (From header)"),
        ([("From", "")], "no domain (From header without an address)"),
    ],
)
def test_an_account_may_not_send_as_another_domain(
    identities: Identities, headers: list[tuple[str, str]], refused: str
) -> None:
    reason = check(identities, "app@shop.test", "10.25.0.100", headers=headers)
    assert reason == f"account app@shop.test may not send as {refused}; it sends as shop.test"


def test_an_unknown_account_owns_nothing(identities: Identities) -> None:
    reason = check(identities, "ghost@shop.test", None, headers=[("From", "ghost@shop.test")])
    assert reason == (
        "account ghost@shop.test may not send as shop.test (From header); it sends as no domain"
    )


def test_the_account_decides_not_the_client_address(identities: Identities) -> None:
    # Authenticated from the dispatcher's network, which may send as anything: still the account.
    reason = check(identities, "app@shop.test", "10.25.0.100", headers=[("From", "x@example.test")])
    assert reason is not None and reason.startswith("account app@shop.test")


def test_a_tenant_network_sends_only_as_its_domains(identities: Identities) -> None:
    assert check(identities, None, "10.25.0.113", headers=[("From", "a@shop.test")]) is None
    reason = check(identities, None, "10.25.0.113", headers=[("From", "ceo@example.test")])
    assert reason == (
        "network 10.25.0.112/28 (client 10.25.0.113) may not send as example.test "
        "(From header); it sends as shop.test"
    )


def test_a_tenant_networks_envelope_is_checked_too(identities: Identities) -> None:
    headers = [("From", "a@shop.test")]
    assert check(identities, None, "10.25.0.113", envelope="<a@shop.test>", headers=headers) is None
    assert check(identities, None, "10.25.0.113", envelope="<>", headers=headers) is None
    reason = check(identities, None, "10.25.0.113", envelope="<x@example.test>", headers=headers)
    assert reason is not None and "may not send as example.test (envelope sender)" in reason


def test_a_return_path_domain_is_its_domains_envelope(identities: Identities) -> None:
    model = lab_model(
        bulkmail_trusted_networks=[{"network": "10.0.1.0/24", "domains": ["example.test"]}]
    )
    own = Identities.load(sender_identities(model))
    headers = [("From", "news@example.test")]
    envelope = "<news+alice=gmail.test@bounces.example.test>"
    assert check(own, None, "10.0.1.5", envelope=envelope, headers=headers) is None


def test_the_dispatcher_network_sends_as_every_domain(identities: Identities) -> None:
    for sender in ("a@example.test", "a@shop.test", "a@agency.test"):
        assert check(identities, None, "10.25.0.100", headers=[("From", sender)]) is None


@pytest.mark.parametrize("client", [None, "127.0.0.1", "::1", "198.51.100.25", "not-an-address"])
def test_loopback_and_strangers_are_not_restricted(identities: Identities, client: Any) -> None:
    # Loopback is the host's operator; a stranger is neither relayed nor signed (inbound mail).
    assert check(identities, None, client, headers=[("From", "ceo@example.test")]) is None


def test_a_malformed_file_is_refused() -> None:
    with pytest.raises(ValueError, match="not a sender identities file"):
        Identities.load({"accounts": {}, "networks": {"not-a-net": "all"}, "domains": {}})
    with pytest.raises(ValueError, match="not a sender identities file"):
        Identities.load({"accounts": {}})
