"""The tuning model: what an operator sees in main.cf and master.cf for a volume profile."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    ModelError,
    ModelErrors,
    parse_model,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.config import (
    merge_services,
    merge_settings,
    postfix_main_cf,
    postfix_master_services,
    services_from_data,
    settings_from_data,
    smtp_host,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.plan import plan
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.tuning import (
    Tuning,
    postfix_tuning,
    transport_for_mx,
)
from model_inventory import inventory, problem

POOLS = {"transactional": ["198.51.100.10"], "bulk": ["198.51.100.11"]}
VOLUME = {"messages_per_day": 1000000, "peak_per_hour": 200000}
SES = {"host": "email-smtp.eu-west-1.amazonaws.com", "username": "AKIA", "password": "s3cret"}
DOMAINS = [{"name": "example.com", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}}]
SMTP = [
    {"inventory_hostname": "smtp1", "bulkmail_hostname": "mta1.example.com",
     "bulkmail_public_ipv4": "198.51.100.10", "bulkmail_extra_ipv4": ["198.51.100.11"]},
]  # fmt: skip


def variables(**changes: Any) -> dict[str, Any]:
    """DOMAINS, POOLS and VOLUME, with `changes` (bulkmail_* name -> value)."""
    return {
        "bulkmail_domains": DOMAINS,
        "bulkmail_ip_pools": POOLS,
        "bulkmail_volume": VOLUME,
        **changes,
    }


def smtp_inventory(**changes: Any) -> dict[str, Any]:
    """One primary smtp host (smtp1) with the variables and `changes`."""
    return inventory(variables(**changes), smtp=SMTP)


def tuning(*, primaries: int = 1, provider_map: str | None = None, **changes: Any) -> Tuning:
    model = parse_model(smtp_inventory(**changes))
    return postfix_tuning(model, primaries=primaries, provider_map=provider_map)


def settings(data: dict[str, Any]) -> dict[str, str]:
    return {s["name"]: s["value"] for s in data["main_cf"]}


def test_limits_follow_the_peak_shared_by_the_primaries() -> None:
    one = settings(tuning().as_dict())
    # 200000/h = 55.6 msg/s; x 2 s x 2 = 223 agents; 10 minutes of peak in memory.
    assert one["default_process_limit"] == "223"
    assert one["qmgr_message_active_limit"] == "33334"
    assert one["qmgr_message_recipient_limit"] == "33334"
    four = settings(tuning(primaries=4).as_dict())
    assert four["default_process_limit"] == "100"  # Postfix's default stays the floor
    assert four["qmgr_message_active_limit"] == "20000"


def test_sizes_and_lifetimes() -> None:
    volume = {**VOLUME, "max_message_size_kb": 10240, "queue_lifetime_hours": 48}
    got = settings(tuning(bulkmail_volume=volume).as_dict())
    # One writer of message_size_limit: the base main.cf, from the volume profile.
    assert "message_size_limit" not in got
    (instance,) = plan(parse_model(smtp_inventory(bulkmail_volume=volume)), "smtp1").instances
    assert settings(instance)["message_size_limit"] == str(10240 * 1024)
    assert got["queue_minfree"] == str(200000 * 50 * 1024)  # an hour of peak at 50 KB
    assert got["maximal_queue_lifetime"] == "48h"
    assert got["bounce_queue_lifetime"] == "24h"


def test_every_setting_and_service_has_a_one_line_reason() -> None:
    derived = tuning(provider_map="socketmap:inet:x:1:t")
    reasons = [s.reason for s in derived.main_cf] + [s.reason for s in derived.master_cf]
    reasons += [o.reason for s in derived.master_cf for o in s.options]
    assert all(r and "\n" not in r for r in reasons)
    reason = {s.name: s.reason for s in derived.main_cf}["default_process_limit"]
    assert reason == (
        "peak 200000/h over 1 primary = 55.6 msg/s; x 2 s per delivery x 2 headroom "
        "= 223 agents (floor: Postfix's 100)"
    )


def test_provider_transports_start_from_kumomta_values() -> None:
    derived = tuning().as_dict()
    got = settings(derived)
    assert got["google_destination_concurrency_limit"] == "5"
    assert got["google_destination_concurrency_failed_cohort_limit"] == "5"
    assert got["microsoft_destination_concurrency_limit"] == "5"
    assert got["yahoo_destination_recipient_limit"] == "50"
    assert got["apple_destination_rate_delay"] == "0s"
    assert got["smtp_destination_concurrency_limit"] == "10"
    assert got["smtp_connection_reuse_count_limit"] == "100"
    assert "transport_maps" not in got
    services = {s["service"]: s for s in derived["master_cf"]}
    assert sorted(services) == ["apple", "google", "microsoft", "yahoo"]
    reuse = {
        name: {o["name"]: o["value"] for o in s["options"]}["smtp_connection_reuse_count_limit"]
        for name, s in services.items()
    }
    assert reuse == {"google": "50", "microsoft": "50", "yahoo": "20", "apple": "5"}
    assert services["google"]["maxproc"] == "5"
    assert services["google"]["command"] == "smtp"


def test_provider_map_becomes_transport_maps() -> None:
    table = "socketmap:inet:127.0.0.1:10028:transport"
    got = settings(tuning(provider_map=table).as_dict())
    assert got["transport_maps"] == table


def test_layers_merge_into_a_valid_postfix_configuration() -> None:
    model = parse_model(
        smtp_inventory(bulkmail_trusted_networks=[{"network": "10.0.1.0/24", "domains": "all"}])
    )
    host = smtp_host(model, "smtp1", size_limit=26214400)
    derived = postfix_tuning(model, primaries=1).as_dict()
    main = merge_settings(postfix_main_cf(host), settings_from_data(derived["main_cf"], "t"))
    master = merge_services(
        postfix_master_services(host), services_from_data(derived["master_cf"], "t")
    )
    assert {s.name: s.value for s in main}["message_size_limit"] == "26214400"
    assert ("google", "unix") in {s.key for s in master}
    assert ("smtp", "unix") in {s.key for s in master}


def test_inventory_adds_mx_suffixes_and_overrides_numbers() -> None:
    providers = {
        "google": {"extra_mx_suffixes": [".google.test"], "concurrency": 3},
        "yahoo": {"extra_mx_suffixes": [".yahoodns.test"]},
        "zoho": {"extra_mx_suffixes": [".zoho.eu"], "concurrency": 4,
                 "deliveries_per_connection": 10},
    }  # fmt: skip
    model = parse_model(smtp_inventory(bulkmail_providers=providers))
    table = {p.name: p for p in model.providers}
    assert table["google"].mx_suffixes == (".google.com", ".googlemail.com", ".google.test")
    assert table["google"].concurrency == 3
    assert table["google"].deliveries_per_connection == 50  # kept
    assert table["zoho"].mx_suffixes == (".zoho.eu",)


@pytest.mark.parametrize(
    ("mx", "expected"),
    [
        ("aspmx.l.google.com.", "google"),
        ("ALT1.ASPMX.L.GOOGLE.COM", "google"),
        ("gmail-smtp-in.l.google.test", "google"),
        ("acme-test.mail.protection.outlook.com", "microsoft"),
        ("mta5.am0.yahoodns.net", "yahoo"),
        ("mx01.mail.icloud.com", "apple"),
        ("mx.example.org", None),
        ("notgoogle.com", None),
    ],
)
def test_transport_for_mx(mx: str, expected: str | None) -> None:
    suffixes = tuning(
        bulkmail_providers={"google": {"extra_mx_suffixes": [".google.test"]}}
    ).as_dict()["provider_suffixes"]
    assert transport_for_mx(mx, suffixes) == expected


def test_longest_suffix_wins() -> None:
    table = {"microsoft": [".outlook.com"], "consumer": [".olc.protection.outlook.com"]}
    assert transport_for_mx("x.olc.protection.outlook.com", table) == "consumer"


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        ({"messages_per_day": -1, "peak_per_hour": 10},
         "bulkmail_volume.messages_per_day: -1 is negative; give a number >= 1"),
        ({"messages_per_day": 100, "peak_per_hour": -10},
         "bulkmail_volume.peak_per_hour: -10 is negative; give a number >= 1"),
        ({"messages_per_day": 1000, "peak_per_hour": 10},
         "bulkmail_volume.peak_per_hour: 10 x 24 h = 240 is less than messages_per_day 1000; "
         "the peak hour is at least the average (42), raise it"),
        ({"messages_per_day": 1000, "peak_per_hour": 2000},
         "bulkmail_volume.peak_per_hour: 2000 is more than messages_per_day 1000; the peak "
         "hour is part of the day, lower it"),
        ({"messages_per_day": 1000},
         "bulkmail_volume.peak_per_hour: missing; give a whole number"),
        ({"messages_per_day": "many", "peak_per_hour": 10},
         "bulkmail_volume.messages_per_day: 'many' is not a whole number"),
        ({"messages_per_day": 100, "peak_per_hour": 10, "queue_lifetime_hours": 2},
         "bulkmail_volume.queue_lifetime_hours: 2 is too small; give a number >= 5"),
        ({"messages_per_day": 100, "peak_per_hour": 10, "message_size_kb": 100,
          "max_message_size_kb": 64},
         "bulkmail_volume.message_size_kb: the average 100 is more than max_message_size_kb 64; "
         "the average message must fit the limit"),
        ({"messages_per_day": 100, "peak_per_hour": 10, "per_second": 1},
         "bulkmail_volume: unknown key(s) per_second; known keys are messages_per_day, "
         "peak_per_hour, message_size_kb, max_message_size_kb, queue_lifetime_hours "
         "(docs/model.md)"),
        # Without a volume an smtp host cannot be sized (a model without one may have none).
        (None, "bulkmail_volume: missing; give at least messages_per_day and peak_per_hour: "
               "the tuning model sizes Postfix from it"),
        ("many", "bulkmail_volume: 'many' is not a mapping; give at least messages_per_day "
                 "and peak_per_hour"),
    ],
)  # fmt: skip
def test_bad_volume_profiles_name_the_field(volume: Any, message: str) -> None:
    assert problem(smtp_inventory(bulkmail_volume=volume)) == message


@pytest.mark.parametrize(
    ("relays", "message"),
    [
        ({"ses": {"host": "email-smtp.eu-west-1.amazonaws.com", "username": "AKIA"}},
         'bulkmail_relays.ses.password: missing or empty; a relay needs SASL credentials: keep '
         'them in vault, e.g. password: "{{ vault_relay_ses_password }}"'),
        ({"ses": {**SES, "username": " "}},
         'bulkmail_relays.ses.username: missing or empty; a relay needs SASL credentials: keep '
         'them in vault, e.g. username: "{{ vault_relay_ses_username }}"'),
        ({"ses": {**SES, "port": 70000}},
         "bulkmail_relays.ses.port: 70000 is not a TCP port (1-65535)"),
        ({"ses": {**SES, "user": "x"}},
         "bulkmail_relays.ses: unknown key(s) user; known keys are host, port, username, "
         "password, tls_fingerprint (docs/model.md)"),
        ({"ses": {**SES, "tls_fingerprint": "AB:CD"}},
         "bulkmail_relays.ses.tls_fingerprint: 'AB:CD' is not a SHA-256 fingerprint (32 octets "
         "in hex, colons optional); give the relay's SHA-256 public-key digest: openssl "
         "s_client -connect HOST:PORT -starttls smtp </dev/null | openssl x509 -noout -pubkey "
         "| openssl pkey -pubin -outform DER | openssl dgst -sha256 -c"),
        ({"ses": {**SES, "tls_fingerprint": ["ab" * 32, "zz" * 32]}},
         "bulkmail_relays.ses.tls_fingerprint[1]: '" + "zz" * 32 + "' is not a SHA-256 "
         "fingerprint (32 octets in hex, colons optional); give the relay's SHA-256 public-key "
         "digest: openssl s_client -connect HOST:PORT -starttls smtp </dev/null | openssl x509 "
         "-noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256 -c"),
        ({"ses": {**SES, "tls_fingerprint": []}},
         "bulkmail_relays.ses.tls_fingerprint: is an empty list; pin one fingerprint at least, "
         "or leave it out"),
        ({"SES": SES}, "bulkmail_relays: relay name 'SES' must be lower-case letters and digits"),
    ],
)  # fmt: skip
def test_bad_relays_name_the_field(relays: Any, message: str) -> None:
    assert problem(smtp_inventory(bulkmail_relays=relays)) == message


def test_relay_defaults_to_submission_port() -> None:
    (relay,) = parse_model(smtp_inventory(bulkmail_relays={"ses": SES})).relays
    assert (relay.host, relay.port, relay.username) == (SES["host"], 587, "AKIA")


@pytest.mark.parametrize(
    ("providers", "message"),
    [
        ({"google": {"extra_mx_suffixes": ["google.test"]}},
         "bulkmail_providers.google.extra_mx_suffixes[0]: 'google.test' must be an MX host "
         "suffix such as .google.com"),
        ({"yahoo": {"extra_mx_suffixes": [".google.com"]}},
         "bulkmail_providers: MX suffix .google.com is claimed by both google and yahoo; "
         "give it to one"),
        ({"zoho": {"extra_mx_suffixes": [".zoho.eu"]}},
         "bulkmail_providers.zoho: a new provider needs concurrency and "
         "deliveries_per_connection"),
        ({"relay": {"concurrency": 1, "deliveries_per_connection": 1}},
         "bulkmail_providers: 'relay' is a Postfix service name; choose another"),
        ({"google": {"concurrency": 0}},
         "bulkmail_providers.google.concurrency: 0 is too small; give a number >= 1"),
        ({"default": {"extra_mx_suffixes": [".example.org"]}},
         "bulkmail_providers.default.extra_mx_suffixes: default shapes what no provider "
         "claims; give the suffixes to a named provider"),
    ],
)  # fmt: skip
def test_bad_providers_name_the_field(providers: Any, message: str) -> None:
    assert problem(smtp_inventory(bulkmail_providers=providers)) == message


def test_every_problem_is_reported_at_once() -> None:
    inputs = smtp_inventory(
        bulkmail_volume={"messages_per_day": -5, "peak_per_hour": 10},
        bulkmail_ip_pools={"bulk": []},
        bulkmail_relays={"ses": {"host": "email-smtp.eu-west-1.amazonaws.com"}},
    )
    with pytest.raises(ModelErrors) as error:
        parse_model(inputs)
    # In the inventory's order: pools, then volume, then relays.
    assert str(error.value) == (
        "3 problems in the inventory model:\n"
        "- bulkmail_ip_pools.bulk: is empty; list at least one address or remove the pool\n"
        "- bulkmail_volume.messages_per_day: -5 is negative; give a number >= 1\n"
        "- bulkmail_relays.ses.username: missing or empty; a relay needs SASL credentials: keep "
        'them in vault, e.g. username: "{{ vault_relay_ses_username }}"'
    )


def test_primaries_must_be_positive() -> None:
    with pytest.raises(ModelError) as error:
        tuning(primaries=0)
    assert str(error.value) == "groups['smtp']: no primary smtp host shares the volume"
