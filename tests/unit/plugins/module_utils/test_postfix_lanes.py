"""Lanes: what each Postfix instance of a primary and of the graveyard is given."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    ModelError,
    parse_model,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.config import postfix_verp
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.lanes import (
    postfix_instances,
    primary_instances,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.tuning import postfix_tuning
from model_inventory import SMTP1, SMTP2, VOLUME, Hosts, build_model, inventory, problem, problems

POOLS = {"transactional": ["198.51.100.10"], "bulk": ["198.51.100.11", "198.51.100.12"]}
LANES = {
    "transactional": {"pool": "transactional"},
    "bulk": {"pool": "bulk", "port": 2525, "fallback": True},
}
DOMAINS = [
    {"name": "example.test", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"},
     "return_path_domain": "bounces.example.test"},
    {"name": "shop.test", "dkim_selectors": ["s1"], "dmarc": {"policy": "reject"}},
]  # fmt: skip
SIZE_LIMIT = 26214400


def variables(**changes: Any) -> dict[str, Any]:
    """DOMAINS, POOLS and a volume profile, with `changes` (bulkmail_* -> value)."""
    return {
        "bulkmail_domains": DOMAINS,
        "bulkmail_ip_pools": POOLS,
        "bulkmail_volume": VOLUME,
        **changes,
    }


def lab(
    lanes: Any = "LANES", *, smtp: Hosts = (SMTP1,), graveyards: Hosts = (SMTP2,)
) -> dict[str, Any]:
    """The inputs of a primary (smtp1) and a graveyard (smtp2) with these lanes (the name
    "LANES" stands for the module's LANES; a default must not be a shared dict)."""
    chosen = LANES if lanes == "LANES" else lanes
    return inventory(variables(bulkmail_lanes=chosen), smtp=smtp, smtp_fallback=graveyards)


def main_cf(instance: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["value"] for s in instance["main_cf"]}


def instances(
    name: str = "smtp1",
    lanes: Any = "LANES",
    *,
    active_limit: int = 20000,
    size_limit: int = SIZE_LIMIT,
) -> list[dict[str, Any]]:
    planned = postfix_instances(
        parse_model(lab(lanes)),
        name,
        active_limit=active_limit,
        size_limit=size_limit,
        provider_map_socket="inet:127.0.0.1:10028",
    )
    return [instance.as_dict() for instance in planned]


def test_each_lane_is_an_instance_with_its_own_queue_and_source_address() -> None:
    tx, bulk = instances()
    assert (tx["instance"], tx["config_directory"]) == ("-", "/etc/postfix")
    assert main_cf(tx)["smtp_bind_address"] == "198.51.100.10"
    assert main_cf(tx)["multi_instance_directories"] == "/etc/postfix-bulk"
    assert "smtp_fallback_relay" not in main_cf(tx)
    assert tx["master_cf"] == []

    assert bulk["instance"] == "postfix-bulk"
    settings = main_cf(bulk)
    assert settings["queue_directory"] == "/var/spool/postfix-bulk"
    assert settings["data_directory"] == "/var/lib/postfix-bulk"
    assert settings["multi_instance_name"] == "postfix-bulk"
    assert settings["smtp_bind_address"] == "198.51.100.11"
    assert settings["smtp_fallback_relay"] == "[198.51.100.12]:25"
    services = {(s["service"], s["type"]): s for s in bulk["master_cf"]}
    assert services["smtp", "inet"]["state"] == "absent"
    assert services["submission", "inet"]["state"] == "absent"
    feed = services["10.25.0.10:2525", "inet"]
    assert "state" not in feed
    assert {o["name"]: o["value"] for o in feed["options"]}["smtpd_client_restrictions"] == (
        "permit_mynetworks,reject"
    )


# The tuning model's provider table (DEFAULT_PROVIDERS), in its order.
PROVIDERS = ["google", "microsoft", "yahoo", "apple", "default"]
SPLIT = {
    "transactional": {"pool": "transactional"},
    "bulk": {"pool": "bulk", "port": 2525, "fallback": True, "per_provider": True},
}


def test_a_per_provider_lane_is_an_intake_and_one_instance_per_provider() -> None:
    tx, intake, *subs = instances(lanes=SPLIT)
    assert [sub["instance"] for sub in subs] == [f"postfix-bulk-{p}" for p in PROVIDERS]
    assert [sub["provider"] for sub in subs] == PROVIDERS
    assert main_cf(tx)["multi_instance_directories"].split() == [
        "/etc/postfix-bulk",
        *[f"/etc/postfix-bulk-{p}" for p in PROVIDERS],
    ]
    # The intake signs (the base layer's milters stay) and routes by provider.
    settings = main_cf(intake)
    assert settings["transport_maps"] == "socketmap:inet:127.0.0.1:10028:lane-bulk"
    assert "smtpd_milters" not in settings
    assert intake["route_map"] == {"lane-bulk": {
        p: f"handoff:[10.25.0.10]:{2526 + i}" for i, p in enumerate(PROVIDERS)
    }}  # fmt: skip
    services = {(s["service"], s["type"]): s for s in intake["master_cf"]}
    handoff = {o["name"]: o["value"] for o in services["handoff", "unix"]["options"]}
    assert handoff["smtp_bind_address"] == ""
    assert handoff["smtp_fallback_relay"] == ""
    # Each provider's instance: its own queue, the lane's source address and graveyard,
    # fed on the internal address, no second signature, no second VERP or relay routing.
    google = subs[0]
    assert google["queue_directory"] == "/var/spool/postfix-bulk-google"
    assert google["route_map"] == {}
    settings = main_cf(google)
    assert settings["smtp_bind_address"] == "198.51.100.11"
    assert settings["smtp_fallback_relay"] == "[198.51.100.12]:25"
    assert settings["smtpd_milters"] == ""
    # VERP and relay routes stay (for a dispatcher's mail): the base layers set them
    assert not {"smtpd_command_filter", "sender_canonical_maps"} & set(settings)
    assert "transport_maps" not in settings  # the provider's shaping, by the base layer
    feeds = [s for s in google["master_cf"] if "state" not in s]
    assert [s["service"] for s in feeds] == ["10.25.0.10:2526"]
    # the intake's handoff comes from this host's own address, in no trusted network
    options = {o["name"]: o["value"] for o in feeds[0]["options"]}
    assert options["smtpd_client_restrictions"] == (
        "permit_mynetworks,permit_inet_interfaces,reject"
    )
    assert options["smtpd_relay_restrictions"] == options["smtpd_client_restrictions"]


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        (
            {**SPLIT, "news": {"pool": "bulk", "port": 2530}},
            "bulkmail_lanes.news.port: 2530 is also a port of lane bulk (a per_provider lane "
            "takes its port and one more per provider, 5 here)",
        ),
        (
            {"transactional": {"pool": "transactional"},
             "bulk": {"pool": "bulk", "port": 65533, "per_provider": True}},
            "bulkmail_lanes.bulk.port: 65533 + 5 provider instances passes 65535",
        ),
        (
            {"transactional": {"pool": "transactional"},
             "bulk": {"pool": "bulk", "port": 583, "per_provider": True}},
            "bulkmail_lanes.bulk.port: its provider instances would take 587",
        ),
        (
            {"transactional": {"pool": "transactional", "per_provider": True}},
            "bulkmail_lanes.transactional.per_provider: the transactional lane is one instance",
        ),
        (
            {"transactional": {"pool": "transactional"},
             "bulk": {"pool": "bulk", "port": 2525, "per_provider": "yes"}},
            "bulkmail_lanes.bulk.per_provider: 'yes' is not true or false",
        ),
    ],
)  # fmt: skip
def test_bad_per_provider_lanes_are_refused(lanes: dict[str, Any], message: str) -> None:
    assert problem(lab(lanes)).startswith(message)


def test_a_per_provider_lane_needs_providers() -> None:
    model = parse_model(lab(SPLIT))
    with pytest.raises(ModelError, match=r"^bulkmail_lanes.bulk.per_provider: true, but"):
        primary_instances(model.host("smtp1"), model.lanes, model.ip_pools, model.graveyards)


def test_every_setting_says_why() -> None:
    for instance in instances() + instances("smtp2") + instances(lanes=SPLIT):
        assert all(s["reason"] for s in instance["main_cf"])


def test_the_graveyard_relays_for_the_primaries_only_and_retries_patiently() -> None:
    (yard,) = instances("smtp2", active_limit=500)
    assert yard["graveyard"] is True and yard["instance"] == "-"
    settings = main_cf(yard)
    assert settings["mynetworks"] == "127.0.0.0/8 198.51.100.10/32 198.51.100.11/32"
    assert settings["smtpd_milters"] == ""
    assert settings["maximal_backoff_time"] == "4h"
    assert settings["qmgr_message_active_limit"] == "2000"


def test_without_lanes_one_default_instance_as_before() -> None:
    (only,) = instances(lanes=None)
    assert only["instance"] == "-" and only["main_cf"] == [] and only["master_cf"] == []


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        ({"bulk": {"pool": "bulk", "port": 2525}}, "bulkmail_lanes: the 'transactional' lane is"),
        (
            {"transactional": {"pool": "tx"}},
            "bulkmail_lanes.transactional.pool: 'tx' is not a pool of bulkmail_ip_pools "
            "(transactional, bulk)",
        ),
        (
            {"transactional": {"pool": "transactional", "port": 2525}},
            "bulkmail_lanes.transactional.port: the transactional lane is fed on 25 and 587",
        ),
        (
            {"transactional": {"pool": "transactional"}, "bulk": {"pool": "bulk"}},
            "bulkmail_lanes.bulk.port: None (NoneType) is not a TCP port",
        ),
        (
            {"transactional": {"pool": "transactional"}, "bulk": {"pool": "bulk", "port": 587}},
            "bulkmail_lanes.bulk.port: 587 is the transactional lane's",
        ),
        (
            {"transactional": {"pool": "transactional"}, "Bulk": {"pool": "bulk", "port": 1}},
            "bulkmail_lanes: lane name 'Bulk' must be lower-case",
        ),
        (
            {"transactional": {"pool": "transactional", "fallback": "yes"}},
            "bulkmail_lanes.transactional.fallback: 'yes' is not true or false",
        ),
        (
            {"transactional": {"pool": "transactional", "speed": 1}},
            "bulkmail_lanes.transactional: unknown key(s) speed",
        ),
    ],
)
def test_bad_lanes_name_the_field(lanes: Any, message: str) -> None:
    assert problem(lab(lanes)).startswith(message)


def test_two_lanes_on_one_port_are_refused() -> None:
    lanes = {
        "transactional": {"pool": "transactional"},
        "bulk": {"pool": "bulk", "port": 2525},
        "news": {"pool": "bulk", "port": 2525},
    }
    assert problem(lab(lanes)).startswith(
        "bulkmail_lanes.news.port: 2525 is also a port of lane bulk"
    )


def test_a_primary_without_an_address_in_a_lane_pool_is_told_how_to_fix_it() -> None:
    host = SMTP1 | {"bulkmail_extra_ipv4": []}
    # (198.51.100.11, now no host's, is a problem of its own)
    assert (
        "hostvars['smtp1'].bulkmail_extra_ipv4: smtp1 has no address in pool 'bulk' (lane bulk); "
        "give it one (bulkmail_extra_ipv4) and list it in bulkmail_ip_pools.bulk"
    ) in problems(lab(smtp=[host]))


def test_fallback_needs_a_graveyard() -> None:
    found = problems(lab(graveyards=[]))
    assert any(p.startswith("bulkmail_lanes.bulk.fallback: true, but the") for p in found)


def test_extra_addresses_count_as_the_host_s_own_for_pools_and_ptr() -> None:
    model = build_model(variables(), smtp=[SMTP1, SMTP2])
    assert model.smtp_hosts[0].public_addresses == ("198.51.100.10", "198.51.100.11")


def test_an_extra_address_of_two_hosts_is_refused() -> None:
    smtp = [SMTP1, SMTP2 | {"bulkmail_extra_ipv4": ["198.51.100.11"]}]
    assert problem(inventory(variables(), smtp=smtp)).startswith(
        "hostvars['smtp2'].bulkmail_extra_ipv4: 198.51.100.11 is also a public address of smtp1"
    )


# --- VERP on the return-path domains -------------------------------------------------------


def test_verp_only_for_domains_with_a_return_path_domain() -> None:
    verp = postfix_verp(build_model(variables()).domains)
    settings = {s.name: s.value for s in verp["main_cf"]}
    assert settings["sender_canonical_classes"] == "envelope_sender"
    command_filter, return_path = (table["lines"] for table in verp["tables"])
    (rule,) = [line for line in command_filter if not line.startswith("#")]
    pattern, _slash, replacement = rule.partition("/ ")
    posix = pattern.strip("/").replace("[:space:]", " \\t")  # Python's re has no [:space:]
    regex = re.compile(posix, re.IGNORECASE)
    match = regex.match("MAIL FROM:<news@example.test> SIZE=2048")
    assert match is not None
    assert match.expand(replacement.replace("$", "\\")) == (
        "MAIL FROM:<news@example.test> XVERP SIZE=2048"
    )
    assert regex.match("mail FROM:<sales@example.test>")  # an "s" in the local part too
    assert regex.match("MAIL FROM:<news@shop.test>") is None
    assert regex.match("MAIL FROM:<>") is None  # bounces carry no XVERP
    assert [line for line in return_path if not line.startswith("#")] == [
        r"/^([^@]+)@example\.test$/ ${1}@bounces.example.test"
    ]


def test_no_return_path_domain_no_verp() -> None:
    domains = build_model(variables(bulkmail_domains=DOMAINS[1:])).domains
    assert postfix_verp(domains) == {"main_cf": [], "tables": []}


# --- external relays per sender domain, with failover --------------------------------------

RELAYS = {
    "ses": {"host": "email-smtp.eu-west-1.amazonaws.com", "username": "AKIA", "password": "s3"},
    "mailgun": {"host": "smtp.mailgun.org", "port": 2525, "username": "mg", "password": "p4"},
}


def relayed(domains: Any) -> dict[str, Any]:
    return inventory(variables(bulkmail_domains=domains, bulkmail_relays=RELAYS))


def test_a_domain_with_relays_leaves_through_them_in_order_with_their_own_logins() -> None:
    domains = [DOMAINS[0], DOMAINS[1] | {"relays": ["ses", "mailgun"]}]
    tuning = postfix_tuning(parse_model(relayed(domains)), primaries=1).as_dict()
    settings = {s["name"]: s["value"] for s in tuning["main_cf"]}
    assert settings["smtpd_data_restrictions"] == (
        "check_sender_access texthash:/etc/postfix/sender_relay"
    )
    assert settings["smtp_sasl_auth_enable"] == "yes"
    tables = {table["path"]: table for table in tuning["tables"]}
    assert tables["/etc/postfix/sender_relay"]["lines"] == [
        "shop.test FILTER relay:[email-smtp.eu-west-1.amazonaws.com]:587, [smtp.mailgun.org]:2525"
    ]
    secrets = tables["/etc/postfix/relay_passwd"]
    assert secrets["mode"] == "0600" and secrets["secret"] is True
    assert secrets["lines"] == [
        "[smtp.mailgun.org]:2525 mg:p4",
        "[email-smtp.eu-west-1.amazonaws.com]:587 AKIA:s3",
    ]
    # each relay's certificate is verified: a public CA and the relay's own name
    assert tables["/etc/postfix/relay_tls_policy"]["lines"] == [
        "[smtp.mailgun.org]:2525 secure match=nexthop",
        "[email-smtp.eu-west-1.amazonaws.com]:587 secure match=nexthop",
    ]


def test_a_pinned_relay_is_verified_by_its_fingerprint() -> None:
    pins = ["ab:" * 31 + "ab", "CD" * 32]  # either form; Postfix's is upper case, colons
    relays = {**RELAYS, "mailgun": RELAYS["mailgun"] | {"tls_fingerprint": pins}}
    domains = [DOMAINS[1] | {"relays": ["ses", "mailgun"]}]
    model = inventory(variables(bulkmail_domains=domains, bulkmail_relays=relays))
    tuning = postfix_tuning(parse_model(model), primaries=1).as_dict()
    tables = {table["path"]: table for table in tuning["tables"]}
    cd = ":".join(["CD"] * 32)
    assert tables["/etc/postfix/relay_tls_policy"]["lines"] == [
        f"[smtp.mailgun.org]:2525 fingerprint match={':'.join(['AB'] * 32)}|{cd}",
        "[email-smtp.eu-west-1.amazonaws.com]:587 secure match=nexthop",
    ]
    settings = {s["name"]: s["value"] for s in tuning["main_cf"]}
    assert settings["smtp_tls_fingerprint_digest"] == "sha256"


def test_relay_passwords_go_only_over_verified_tls() -> None:
    domains = [DOMAINS[1] | {"relays": ["ses"]}]
    tuning = postfix_tuning(parse_model(relayed(domains)), primaries=1).as_dict()
    settings = {s["name"]: s["value"] for s in tuning["main_cf"]}
    # PLAIN and LOGIN, all most relays offer, show the password to whoever reads the session:
    # refused without TLS and inside TLS that did not verify, allowed once it verified
    assert settings["smtp_sasl_security_options"] == "noanonymous, noplaintext"
    assert settings["smtp_sasl_tls_security_options"] == "noanonymous, noplaintext"
    assert settings["smtp_sasl_tls_verified_security_options"] == "noanonymous"


def test_no_relayed_domain_no_relay_settings() -> None:
    tuning = postfix_tuning(parse_model(relayed(DOMAINS)), primaries=1).as_dict()
    assert tuning["tables"] == []
    assert not any(s["name"].startswith("smtp_sasl") for s in tuning["main_cf"])


def test_an_unknown_relay_names_the_domain_field() -> None:
    domains = [DOMAINS[1] | {"relays": ["ses", "sendgrid"]}]
    assert problem(relayed(domains)) == (
        "bulkmail_domains[0].relays[1]: 'sendgrid' is not a relay of bulkmail_relays "
        "(known: mailgun, ses)"
    )


def test_hosts_that_take_mail_over_accept_the_headers_added_on_the_way() -> None:
    limit = 26214400
    _tx, intake, google, *_rest = instances(lanes=SPLIT, size_limit=limit)
    assert "message_size_limit" not in main_cf(intake)  # the base main.cf's, as accepted
    assert main_cf(google)["message_size_limit"] == str(limit + 65536)
    (yard,) = instances("smtp2", size_limit=limit)
    assert main_cf(yard)["message_size_limit"] == str(limit + 65536)
