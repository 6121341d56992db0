"""Postfix configuration as data: what an operator would notice in main.cf and master.cf."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model import ModelError, parse_model
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.config import (
    MasterService,
    PostfixConfigError,
    Setting,
    SmtpHost,
    merge_services,
    merge_settings,
    mynetworks,
    postfix_main_cf,
    postfix_master_services,
    postfix_sender_logins,
    services_from_data,
    settings_from_data,
    smtp_host,
    with_option,
)
from model_inventory import VOLUME, inventory, problem, problems

DOMAINS: list[dict[str, Any]] = [
    {
        "name": "example.com",
        "dkim_selectors": ["s2026a"],
        "dmarc": {"policy": "none"},
        "return_path_domain": "bounce.example.com",
    },
    {"name": "shop.example.org", "dkim_selectors": ["s1"], "dmarc": {"policy": "reject"}},
]
VARIABLES: dict[str, Any] = {
    "bulkmail_domains": DOMAINS,
    "bulkmail_ip_pools": {"transactional": ["198.51.100.10"], "bulk": ["198.51.100.11"]},
    "bulkmail_trusted_networks": [
        {"network": "10.25.0.96/27", "domains": "all"},
        {"network": "192.0.2.0/24", "domains": "all"},
    ],
    "bulkmail_volume": VOLUME,
}
# The host under test sends from the bulk pool; smtp2 owns the transactional address.
SMTP1 = {"inventory_hostname": "smtp1", "bulkmail_hostname": "mta1.example.com",
         "bulkmail_public_ipv4": "198.51.100.11"}  # fmt: skip
SMTP2 = {"inventory_hostname": "smtp2", "bulkmail_hostname": "mta2.example.com",
         "bulkmail_public_ipv4": "198.51.100.10"}  # fmt: skip
SIZE_LIMIT = 26214400


def config_inventory(smtp1: Mapping[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """smtp1 (with `smtp1`'s changes to its variables) and smtp2, VARIABLES with `changes`."""
    return inventory({**VARIABLES, **changes}, smtp=[{**SMTP1, **(smtp1 or {})}, SMTP2])


def host(
    options: Mapping[str, Any] | None = None, *, size_limit: int = SIZE_LIMIT, **changes: Any
) -> SmtpHost:
    """smtp1's SmtpHost with the postfix role's `options`; `changes` to the inventory."""
    return smtp_host(parse_model(config_inventory(**changes)), "smtp1", options,
                     size_limit=size_limit)  # fmt: skip


def main_cf(options: Mapping[str, Any] | None = None, **changes: Any) -> dict[str, str]:
    """main.cf of smtp1 (with options and inventory changes) as name -> value."""
    return {s.name: s.value for s in postfix_main_cf(host(options, **changes))}


def restrictions(value: str) -> list[str]:
    return [item.strip() for item in value.replace(",", " ").split()]


def submission() -> MasterService:
    services = postfix_master_services(host())
    return next(s for s in services if s.key == ("submission", "inet"))


# --- no open relay -------------------------------------------------------------------------


def test_relay_only_for_trusted_networks_and_authenticated_clients() -> None:
    relay = restrictions(main_cf()["smtpd_relay_restrictions"])
    assert relay == ["permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination"]


def test_mynetworks_is_loopback_plus_trusted_networks() -> None:
    assert main_cf()["mynetworks"].split() == ["127.0.0.0/8", "10.25.0.96/27", "192.0.2.0/24"]


def test_no_trusted_networks_means_loopback_only() -> None:
    assert mynetworks(host(bulkmail_trusted_networks=[])) == ["127.0.0.0/8"]
    assert mynetworks(host(bulkmail_trusted_networks=None)) == ["127.0.0.0/8"]


def test_mydestination_is_local_only_never_a_sending_domain() -> None:
    destinations = restrictions(main_cf()["mydestination"])
    assert destinations == ["$myhostname", "localhost"]
    assert "$mydomain" not in destinations  # mydomain would be example.com, a sending domain


def test_port_25_offers_no_authentication() -> None:
    assert main_cf()["smtpd_sasl_auth_enable"] == "no"
    assert main_cf()["smtpd_tls_auth_only"] == "yes"


@pytest.mark.parametrize(
    ("network", "hint"),
    [
        ("10.25.0.97/27", "10.25.0.96/27"),  # host bits: the operator meant the network
        ("2001:db8::/32", "IPv6"),
        ("not-a-network", "CIDR"),
    ],
)
def test_bad_trusted_network_is_refused_with_the_fix(network: str, hint: str) -> None:
    inputs = config_inventory(bulkmail_trusted_networks=[{"network": network, "domains": "all"}])
    message = problem(inputs)
    assert message.startswith("bulkmail_trusted_networks[0].network: ")
    assert hint in message


# --- submission ----------------------------------------------------------------------------


def test_submission_requires_tls_and_authentication() -> None:
    options = {o.name: o.value for o in submission().options}
    assert options["smtpd_tls_security_level"] == "encrypt"
    assert options["smtpd_sasl_auth_enable"] == "yes"
    assert options["smtpd_tls_auth_only"] == "yes"
    assert restrictions(options["smtpd_client_restrictions"]) == [
        "permit_sasl_authenticated",
        "reject",
    ]
    relay = restrictions(options["smtpd_relay_restrictions"])
    assert "permit_mynetworks" not in relay  # trusted networks authenticate on 587 too
    assert relay[-1] == "reject"


def test_submission_accounts_send_only_as_their_own_domain() -> None:
    options = {o.name: o.value for o in submission().options}
    assert "reject_sender_login_mismatch" in restrictions(options["smtpd_sender_restrictions"])
    assert main_cf()["smtpd_sender_login_maps"].startswith("texthash:")


def test_submission_listens_on_587_in_the_chroot_like_smtp() -> None:
    service = submission()
    assert (service.service, service.type, service.command) == ("submission", "inet", "smtpd")
    assert service.chroot == "y"


def test_sasl_goes_to_dovecot_inside_the_chroot() -> None:
    cf = main_cf()
    assert cf["smtpd_sasl_type"] == "dovecot"
    assert cf["smtpd_sasl_path"] == "private/auth"  # relative to /var/spool/postfix


def test_sender_logins_map_each_domain_and_its_return_path_to_its_accounts() -> None:
    accounts = [
        {"username": name, "password": f"pw-{index}"}
        for index, name in enumerate(
            ["news@example.com", "app@example.com", "app@shop.example.org"]
        )
    ]
    entries = postfix_sender_logins(
        parse_model(config_inventory(bulkmail_submission_accounts=accounts))
    )
    assert entries == [
        ("@example.com", "news@example.com,app@example.com"),
        ("@bounce.example.com", "news@example.com,app@example.com"),
        ("@shop.example.org", "app@shop.example.org"),
    ]


@pytest.mark.parametrize("username", ["app", "app@other.example.net", "@example.com"])
def test_account_outside_the_sending_domains_is_refused(username: str) -> None:
    accounts = [{"username": username, "password": "pw-1"}]
    message = problem(config_inventory(bulkmail_submission_accounts=accounts))
    assert message.startswith("bulkmail_submission_accounts[0].username: ")


# --- signing, TLS, sending address ---------------------------------------------------------


def test_milter_failure_defers_mail_instead_of_sending_it_unsigned() -> None:
    cf = main_cf()
    assert cf["milter_default_action"] == "tempfail"
    # The sender guard first: what it refuses never reaches OpenDKIM.
    assert cf["smtpd_milters"] == "inet:127.0.0.1:8893, inet:127.0.0.1:8891"
    assert cf["non_smtpd_milters"] == "$smtpd_milters"


def test_outbound_tls_is_opportunistic_and_inbound_offers_starttls() -> None:
    cf = main_cf()
    assert cf["smtp_tls_security_level"] == "may"
    assert cf["smtpd_tls_security_level"] == "may"
    assert cf["smtpd_tls_cert_file"] == "/etc/ssl/certs/ssl-cert-snakeoil.pem"


def test_tls_versions_are_stated_not_left_to_openssl() -> None:
    cf = main_cf()
    for name in ("smtpd_tls_protocols", "smtpd_tls_mandatory_protocols",
                 "smtp_tls_mandatory_protocols"):  # fmt: skip
        assert cf[name] == ">=TLSv1.2", name  # Postfix 3.6+ syntax: TLS 1.2 and 1.3
    assert cf["smtpd_tls_mandatory_ciphers"] == cf["smtp_tls_mandatory_ciphers"] == "high"


def test_the_high_cipher_list_is_postfixs_own_with_aead_first() -> None:
    # Postfix's default (aNULL:-aNULL:HIGH:@STRENGTH) followed only by "+" moves, which
    # reorder and never add: the set of suites stays Postfix's.
    cipherlist = main_cf()["tls_high_cipherlist"]
    assert cipherlist.startswith("aNULL:-aNULL:HIGH:@STRENGTH:")
    moves = cipherlist.removeprefix("aNULL:-aNULL:HIGH:@STRENGTH:").split(":")
    assert all(move.startswith("+") for move in moves)
    # every suite with a MAC (CBC) goes behind every AEAD suite, the SHA384 ones last
    assert moves[-3:] == ["+SHA1", "+SHA256", "+SHA384"]


def test_submission_prefers_our_cipher_order() -> None:
    options = {o.name: o.value for o in submission().options}
    assert options["tls_preempt_cipherlist"] == "yes"
    # port 25 keeps the client's order: its "medium" list is not ordered AEAD first
    assert "tls_preempt_cipherlist" not in main_cf()


def test_auth_guessing_is_rate_limited_per_client() -> None:
    cf = main_cf()
    assert (cf["smtpd_client_auth_rate_limit"], cf["anvil_rate_time_unit"]) == ("10", "60s")
    assert main_cf({"auth_rate_limit": 30})["smtpd_client_auth_rate_limit"] == "30"
    assert main_cf({"auth_rate_limit": "0"})["smtpd_client_auth_rate_limit"] == "0"


def test_only_loopback_and_the_operators_networks_skip_the_rate_limits() -> None:
    # A tenant's trusted network is limited like a stranger: it must not guess another
    # tenant's password faster (Postfix's default exempts every trusted network).
    networks = [
        {"network": "10.25.0.96/28", "domains": "all"},
        {"network": "10.25.0.112/28", "domains": ["shop.example.org"]},
    ]
    cf = main_cf(bulkmail_trusted_networks=networks)
    assert cf["smtpd_client_event_limit_exceptions"] == "127.0.0.0/8 10.25.0.96/28"


def test_tls_certificate_is_the_operators_when_given() -> None:
    cf = main_cf({"tls_cert_file": "/etc/ssl/mta.pem", "tls_key_file": "/etc/ssl/private/mta.key"})
    assert (cf["smtpd_tls_cert_file"], cf["smtpd_tls_key_file"]) == (
        "/etc/ssl/mta.pem",
        "/etc/ssl/private/mta.key",
    )


def test_mail_leaves_from_the_hosts_pool_address_and_nowhere_else() -> None:
    cf = main_cf()
    assert cf["smtp_bind_address"] == "198.51.100.11"
    assert cf["smtp_bind_address_enforce"] == "yes"
    assert cf["inet_protocols"] == "ipv4"
    assert cf["myhostname"] == "mta1.example.com"


def test_host_outside_every_pool_is_refused() -> None:
    # Its pool address is an extra one; the public address (HELO, PTR) is in no pool: the
    # model refuses it before any plan, naming the host's variable.
    outside = {"bulkmail_public_ipv4": "198.51.100.99", "bulkmail_extra_ipv4": ["198.51.100.11"]}
    with pytest.raises(
        ModelError, match=r"hostvars\['smtp1'\]\.bulkmail_public_ipv4: 198\.51\.100\.99.*no pool"
    ):
        host(smtp1=outside)


def test_model_errors_name_the_model_variable() -> None:
    # (a set: that a host's problem is reported once is test_domain_model's concern)
    wrong_address = problems(config_inventory({"bulkmail_public_ipv4": "mta1"}))
    assert set(wrong_address) == {
        "hostvars['smtp1'].bulkmail_public_ipv4: 'mta1' is not a valid IPv4 address "
        "(write e.g. '198.51.100.10')"
    }
    no_name = problems(config_inventory({"bulkmail_hostname": ""}))
    assert set(no_name) == {
        "hostvars['smtp1'].bulkmail_hostname: missing; set a domain name such as 'example.com'"
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tls_cert_fle": "/etc/ssl/mta.pem"},
         "postfix role options: unknown key(s) tls_cert_fle; known keys are milters, "
         "tls_cert_file, tls_key_file, sasl_path, sender_login_map, auth_rate_limit "
         "(docs/model.md)"),
        ({"milters": ["127.0.0.1:8891"]},
         "postfix_milters[0]: '127.0.0.1:8891' must be inet:host:port or unix:/path"),
        ({"milters": "inet:127.0.0.1:8891"},
         "postfix_milters: 'inet:127.0.0.1:8891' is not a list of strings"),
        ({"tls_cert_file": "mta.pem"}, "postfix_tls_cert_file: 'mta.pem' must be an absolute path"),
        ({"tls_key_file": ""}, "postfix_tls_key_file: '' is not a non-empty string"),
        ({"sasl_path": "private/ auth"}, "postfix_sasl_path: 'private/ auth' must not contain "
                                         "whitespace"),
        ({"sender_login_map": None},
         "postfix_sender_login_map: None (NoneType) is not a non-empty string"),
        ({"auth_rate_limit": -1},
         "postfix_auth_rate_limit: -1 (int) is not a whole number >= 0 (0 turns it off)"),
        ({"auth_rate_limit": "ten"},
         "postfix_auth_rate_limit: 'ten' is not a whole number >= 0 (0 turns it off)"),
    ],
)  # fmt: skip
def test_role_option_errors_name_the_role_variable(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError, match="^" + re.escape(message) + "$"):
        host(options)


def test_an_smtp_host_must_be_a_host_of_the_inventory() -> None:
    with pytest.raises(ModelError, match=r"^hostvars\['smtp9'\]: is not a host of the inventory"):
        smtp_host(parse_model(config_inventory()), "smtp9", size_limit=SIZE_LIMIT)


# --- every line explains itself ------------------------------------------------------------


def test_every_main_cf_setting_has_a_one_line_reason_and_appears_once() -> None:
    settings = postfix_main_cf(host())
    names = [s.name for s in settings]
    assert len(names) == len(set(names))
    for setting in settings:
        assert setting.reason.strip(), setting.name
        assert "\n" not in setting.reason + setting.value, setting.name


def test_every_master_service_and_option_has_a_reason() -> None:
    services = postfix_master_services(host())
    keys = [s.key for s in services]
    assert len(keys) == len(set(keys))
    for service in services:
        assert service.reason.strip(), service.key
        for option in service.options:
            assert option.reason.strip(), (service.key, option.name)
            assert " " not in option.value, (service.key, option.name)


def test_master_cf_keeps_debians_daemons_without_unused_pipe_transports() -> None:
    services = {s.key: s for s in postfix_master_services(host())}
    for key in [("smtp", "inet"), ("smtp", "unix"), ("pickup", "unix"), ("qmgr", "unix")]:
        assert key in services
    assert ("maildrop", "unix") not in services
    assert services[("qmgr", "unix")].chroot == "n"


# --- layers (the tuning model builds on these) ---------------------------------------------


def test_layer_replaces_in_place_appends_and_removes() -> None:
    base = postfix_main_cf(host())
    layer = settings_from_data(
        [
            {"name": "message_size_limit", "value": 10240000, "reason": "smaller mail only"},
            {"name": "smtp_destination_concurrency_limit", "value": 5, "reason": "shaping"},
            {"name": "biff", "state": "absent", "reason": "default is fine"},
            {"name": "smtpd_tls_loglevel", "value": True, "reason": "booleans become yes"},
        ],
        "test",
    )
    merged = merge_settings(base, layer)
    names = [s.name for s in merged]
    # replaced settings keep their place; removed ones go; new ones come last
    assert names[:-1] == [s.name for s in base if s.name != "biff"]
    assert {s.name: s.value for s in merged}["message_size_limit"] == "10240000"
    assert names[-1] == "smtp_destination_concurrency_limit"
    assert "biff" not in names
    assert {s.name: s.value for s in merged}["smtpd_tls_loglevel"] == "yes"


def test_layer_setting_without_reason_is_refused() -> None:
    with pytest.raises(PostfixConfigError, match=r"layer\[0\].*reason"):
        settings_from_data([{"name": "relayhost", "value": "[smtp.example.net]"}], "layer")


def test_master_layer_adds_a_per_provider_transport() -> None:
    base = postfix_master_services(host())
    layer = services_from_data(
        [
            {
                "service": "gmail",
                "type": "unix",
                "command": "smtp",
                "chroot": "y",
                "reason": "Google's own concurrency and rate",
                "options": [
                    {"name": "syslog_name", "value": "postfix/gmail", "reason": "own lines"}
                ],
            }
        ],
        "layer",
    )
    merged = merge_services(base, layer)
    assert merged[-1].key == ("gmail", "unix")
    assert merged[-1].options == (Setting("syslog_name", "postfix/gmail", "own lines"),)
    assert len(merged) == len(base) + 1


def test_master_option_values_with_spaces_are_refused() -> None:
    with pytest.raises(PostfixConfigError, match="one word"):
        services_from_data(
            [
                {
                    "service": "submission",
                    "type": "inet",
                    "command": "smtpd",
                    "reason": "r",
                    "options": [
                        {"name": "smtpd_client_restrictions", "value": "a, b", "reason": "r"}
                    ],
                }
            ],
            "layer",
        )


def test_with_option_replaces_an_option_of_the_same_name() -> None:
    service = with_option(submission(), Setting("syslog_name", "postfix/587", "shorter"))
    names = [o.name for o in service.options]
    assert names.count("syslog_name") == 1
    assert names[-1] == "syslog_name"


def test_smtp_host_is_plain_data() -> None:
    built = host()
    assert isinstance(built, SmtpHost)
    assert built.milters == ("inet:127.0.0.1:8893", "inet:127.0.0.1:8891")
    assert built.trusted_networks == ("10.25.0.96/27", "192.0.2.0/24")
    assert host(size_limit=1048576).message_size_limit == 1048576
    assert main_cf()["message_size_limit"] == str(SIZE_LIMIT)
