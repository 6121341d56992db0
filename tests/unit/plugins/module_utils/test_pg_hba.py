"""pg_hba.conf derived from the inventory: who gets in from where, and that the rest is refused."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelErrors
from ansible_collections.bulkmail.infra.plugins.module_utils.postgresql.pg_hba import (
    HbaError,
    HbaRule,
    build_pg_hba,
    parse_extra_rules,
    pg_hba_rules,
)

CLIENTS: list[dict[str, Any]] = [
    {
        "role": "bulkmail_app",
        "group": "smtp",
        "hosts": {"smtp1": "192.0.2.10", "smtp2": "192.0.2.11"},
    },
    {"role": "bulkmail_reader", "group": "web", "hosts": {"web1": "192.0.2.80"}},
]


def test_each_client_host_gets_one_scram_rule_for_its_role() -> None:
    rules = build_pg_hba("bulkmail", CLIENTS)
    clients = [
        (r.type, r.database, r.user, r.address, r.method)
        for r in rules
        if r.user.startswith("bulkmail")
    ]
    assert clients == [
        ("hostssl", "bulkmail", "bulkmail_app", "192.0.2.10/32", "scram-sha-256"),
        ("hostssl", "bulkmail", "bulkmail_app", "192.0.2.11/32", "scram-sha-256"),
        ("hostssl", "bulkmail", "bulkmail_reader", "192.0.2.80/32", "scram-sha-256"),
    ]


def test_admin_first_by_peer_and_everything_else_rejected_last() -> None:
    rules = build_pg_hba("bulkmail", CLIENTS, admin_ident_map="bulkmail_admin")
    assert rules[0].line.split() == ["local", "all", "postgres", "peer", "map=bulkmail_admin"]
    assert [r.line.split() for r in rules[-2:]] == [
        ["local", "all", "all", "reject"],
        ["host", "all", "all", "all", "reject"],
    ]


def test_no_rule_accepts_a_weak_method() -> None:
    methods = {r.method for r in build_pg_hba("bulkmail", CLIENTS)}
    assert methods == {"peer", "scram-sha-256", "reject"}


def test_plain_host_rules_when_tls_is_not_required() -> None:
    rules = build_pg_hba("bulkmail", CLIENTS, require_ssl=False)
    assert {r.type for r in rules if r.method == "scram-sha-256"} == {"host"}


def test_group_without_hosts_adds_no_rule() -> None:
    rules = build_pg_hba("bulkmail", [{"role": "bulkmail_reader", "group": "web", "hosts": {}}])
    assert len(rules) == 3


@pytest.mark.parametrize(
    ("address", "message"),
    [
        (
            "192.0.2",
            "bulkmail_internal_ipv4 of smtp host 'smtp1': '192.0.2' is not an IPv4 address",
        ),
        (None, "bulkmail_internal_ipv4 of smtp host 'smtp1': not set"),
        ("192.0.2.0/24", "'192.0.2.0/24' is not an IPv4 address"),
    ],
)
def test_bad_host_address_names_the_host(address: Any, message: str) -> None:
    with pytest.raises(HbaError, match=message):
        build_pg_hba(
            "bulkmail", [{"role": "bulkmail_app", "group": "smtp", "hosts": {"smtp1": address}}]
        )


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {
                "type": "host",
                "database": "all",
                "user": "all",
                "address": "0.0.0.0/0",
                "method": "trust",
            },
            r"\[0\]\.method: 'trust' is not allowed",
        ),
        (
            {
                "type": "hostssl",
                "database": "bulkmail",
                "user": "x",
                "address": "10.0.0.1/8",
                "method": "scram-sha-256",
            },
            r"\[0\]\.address: '10.0.0.1/8' is not a network",
        ),
        (
            {"type": "tcp", "database": "bulkmail", "user": "x", "address": "10.0.0.0/8"},
            r"\[0\]\.type: 'tcp'",
        ),
        (
            {"database": "bulkmail", "user": "x", "address": "10.0.0.0/8", "port": 5432},
            r"\[0\]: unknown keys port",
        ),
    ],
)
def test_extra_rules_are_held_to_the_same_standard(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(HbaError, match=r"^postgresql_hba_extra_rules" + message):
        build_pg_hba("bulkmail", [], extra_rules=[rule])


def test_extra_rules_come_before_the_final_reject() -> None:
    extra = {
        "type": "hostssl",
        "database": "replication",
        "user": "replicator",
        "address": "192.0.2.6/32",
    }
    rules = build_pg_hba("bulkmail", [], extra_rules=[extra])
    assert rules[1].line.split() == [
        "hostssl",
        "replication",
        "replicator",
        "192.0.2.6/32",
        "scram-sha-256",
    ]
    assert rules[-1].method == "reject"


def test_template_data_carries_formatted_lines() -> None:
    rows = pg_hba_rules("bulkmail", CLIENTS)
    assert rows[1]["line"].split() == [
        "hostssl",
        "bulkmail",
        "bulkmail_app",
        "192.0.2.10/32",
        "scram-sha-256",
    ]
    assert rows[1]["comment"] == "bulkmail_app from smtp1 (smtp)"


EXTRA = {"type": "hostssl", "database": "bulkmail", "user": "x", "address": "192.0.2.6/32"}


@pytest.mark.parametrize("method", ["ident", "pam", "ldap", "radius", "bsd", "gss", "md5", ""])
def test_methods_that_trust_another_or_a_replayable_password_are_refused(method: str) -> None:
    with pytest.raises(HbaError, match=r"^postgresql_hba_extra_rules\[0\]\.method: .* not allowed"):
        build_pg_hba("bulkmail", [], extra_rules=[{**EXTRA, "method": method}])


def test_peer_is_for_local_connections_only() -> None:
    with pytest.raises(HbaError, match=r"\[0\]\.method: peer applies to local connections only"):
        build_pg_hba("bulkmail", [], extra_rules=[{**EXTRA, "method": "peer"}])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("comment", "ok\nhost all all 0.0.0.0/0 trust", r"\.comment: contains the control"),
        ("options", "clientcert=verify-full\nhost all all 0.0.0.0/0 trust", r"\.options: contains"),
        ("options", "clientcert", r"\.options: 'clientcert' is not an option of the form"),
        ("options", 'map="x y"', r"\.options: 'map=\"x' is not an option"),
    ],
)
def test_comment_and_options_stay_on_their_line(key: str, value: str, message: str) -> None:
    with pytest.raises(HbaError, match=r"^postgresql_hba_extra_rules\[0\]" + message):
        build_pg_hba("bulkmail", [], extra_rules=[{**EXTRA, key: value}])


def test_an_option_and_a_comment_are_written_as_given() -> None:
    rule = {**EXTRA, "method": "cert", "options": "clientcert=verify-full", "comment": "replica"}
    written = build_pg_hba("bulkmail", [], extra_rules=[rule])[1]
    assert written.line.split()[-2:] == ["cert", "clientcert=verify-full"]
    assert written.comment == "replica"


def test_every_broken_extra_rule_is_reported_at_once() -> None:
    """The same function (parse_extra_rules) serves the role and validate.yml's model."""
    rules = [{**EXTRA, "method": "ident"}, EXTRA, {**EXTRA, "comment": "a\nb"}]
    with pytest.raises(ModelErrors) as caught:
        build_pg_hba("bulkmail", [], extra_rules=rules)
    assert [str(error).split(":", maxsplit=1)[0] for error in caught.value.errors] == [
        "postgresql_hba_extra_rules[0].method",
        "postgresql_hba_extra_rules[2].comment",
    ]
    with pytest.raises(HbaError, match=r"^postgresql_hba_extra_rules: must be a list of rules"):
        parse_extra_rules({"type": "hostssl"})
    assert parse_extra_rules(None) == []


def test_a_value_as_long_as_its_column_stays_apart_from_the_next() -> None:
    """bulkmail_unsubscribe is wider than the user column: the line must still parse."""
    rule = HbaRule("hostssl", "bulkmail", "bulkmail_unsubscribe", "10.25.0.80/32", "scram-sha-256")
    assert rule.line.split() == [
        "hostssl",
        "bulkmail",
        "bulkmail_unsubscribe",
        "10.25.0.80/32",
        "scram-sha-256",
    ]
