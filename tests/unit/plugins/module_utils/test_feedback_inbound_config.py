"""The feedback addresses, their Postfix tables and the model's bulkmail_feedback."""

from __future__ import annotations

import json
import re

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.addresses import (
    feedback_addresses,
    own_reporting_mtas,
    processor_config,
    unsubscribe_url,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.inbound import (
    FeedbackConfig,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import parse_domains
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.inbound import (
    own_notices,
    postfix_inbound,
    postfix_policy,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postfix.plan import plan
from model_inventory import build_model, lab_hosts, lab_inventory, lab_model, lab_variables, problem


def test_the_lab_receives_its_feedback_addresses_and_forwards_postmaster() -> None:
    model = lab_model()
    addresses = feedback_addresses(
        model.domains, model.submission_accounts, model.feedback.operator_address
    )
    assert addresses.verp_domains == {"bounces.example.test": "example.test"}
    assert addresses.fixed["dmarc@example.test"] == "dmarc_report"
    assert addresses.fixed["tls-reports@shop.test"] == "tls_report"
    assert addresses.fixed["fbl@bounces.example.test"] == "complaint"
    assert addresses.fixed["unsubscribe@shop.test"] == "unsubscribe"
    # shop.test has no return-path domain: its account's own address takes its bounces.
    assert addresses.fixed["app@shop.test"] == "bounce"
    assert "app@example.test" not in addresses.fixed  # example.test's bounces use VERP
    assert addresses.forwarded["postmaster@example.test"] == "noc@operator.test"
    assert addresses.forwarded["abuse@bounces.example.test"] == "noc@operator.test"
    assert "bounces.example.test" in addresses.domains


def test_a_report_address_in_someone_elses_domain_is_not_received_here() -> None:
    raw = {"name": "example.test", "dkim_selectors": ["s1"],
           "dmarc": {"policy": "none", "rua": "mailto:reports@vendor.test"}}  # fmt: skip
    domains = parse_domains([raw])
    assert "reports@vendor.test" not in feedback_addresses(domains).fixed


def test_the_tables_accept_exactly_the_feedback_addresses() -> None:
    model = lab_model()
    addresses = feedback_addresses(model.domains, model.submission_accounts, "noc@x.test")
    layer = postfix_inbound(
        addresses, command="/opt/bulkmail/bin/bulkmail", user="bulkmail-feedback",
        transport_maps=["socketmap:inet:127.0.0.1:10028:transport"],
    )  # fmt: skip
    tables = {t["path"]: t["lines"] for t in layer["tables"]}
    patterns = [
        re.compile(line.split("/")[1], re.IGNORECASE)
        for line in tables["/etc/postfix/feedback_recipients.regexp"]
        if line.startswith("/")
    ]

    def taken(address: str) -> bool:
        return any(p.search(address) for p in patterns)

    assert taken("news+alice=gmail.test@bounces.example.test")
    assert taken("dmarc@agency.test") and taken("POSTMASTER@shop.test")
    assert not taken("someone@example.test") and not taken("news@example.test")
    assert not taken("tls-reportsXexample.test@evil.test")
    settings = {s.name: s.value for s in layer["main_cf"]}
    assert settings["transport_maps"].startswith("regexp:/etc/postfix/feedback_transport")
    assert settings["transport_maps"].endswith("socketmap:inet:127.0.0.1:10028:transport")
    (pipe,) = layer["master_cf"]
    assert pipe.command == "pipe" and "user=bulkmail-feedback" in pipe.args
    assert "--sender=${sender}" in pipe.args


def test_a_dot_in_a_domain_is_literal_in_the_tables() -> None:
    model = lab_model()
    layer = postfix_inbound(
        feedback_addresses(model.domains), command="b", user="u", transport_maps=[]
    )
    lines = layer["tables"][0]["lines"]
    assert r"/^[^@]+@bounces\.example\.test$/ OK" in lines
    assert r"/^tls-reports@example\.test$/ OK" in lines


def test_only_the_receivers_take_mail_in_and_only_primaries_ask_the_policy_service() -> None:
    model = lab_model()
    smtp1 = plan(model, "smtp1").as_dict()
    default = smtp1["instances"][0]["main_cf"]
    assert any(s["name"] == "relay_domains" for s in default)
    assert all(
        any(s["name"] == "smtpd_recipient_restrictions" for s in i["main_cf"])
        for i in smtp1["instances"]
    )
    lanes = [i for i in smtp1["instances"] if i["instance"] != "-"]
    for instance in lanes:
        assert not any(s["name"] == "relay_domains" for s in instance["main_cf"])
        (maps,) = [s["value"] for s in instance["main_cf"] if s["name"] == "transport_maps"]
        assert maps.startswith("regexp:/etc/postfix/own_notices.regexp")
    smtp2 = plan(model, "smtp2").as_dict()
    for instance in smtp2["instances"]:
        names = {s["name"] for s in instance["main_cf"]}
        assert "relay_domains" not in names and "smtpd_recipient_restrictions" not in names


def test_own_notices_and_policy_are_empty_when_there_is_nothing_to_do() -> None:
    assert own_notices([]) == {"table": None, "transport_maps": []}
    assert postfix_policy("") == []


def test_the_processor_config_and_the_unsubscribe_link() -> None:
    model = lab_model()
    config = processor_config(model.domains, model.submission_accounts)
    assert config["return_path_domains"] == {"bounces.example.test": "example.test"}
    assert config["tenants"]["domains"]["shop.test"] == "shop.test"
    assert unsubscribe_url(model.domains[0]) == "https://unsubscribe.example.test/u/"


def test_the_processor_config_names_every_smtp_host_as_our_reporting_mta() -> None:
    model = lab_model()
    config = processor_config(model.domains, model.submission_accounts, smtp_hosts=model.smtp_hosts)
    # smtp1 (a primary with lanes) and smtp2 (the graveyard); never dns1, db1 or web1.
    own = config["own_reporting_mtas"]
    assert own == ["mta1.example.test", "mta2.example.test"]
    others = {h.hostname for h in model.hosts} - {h.hostname for h in model.smtp_hosts}
    assert others >= {"ns1.example.test", "db1.example.test", "web1.example.test"}
    assert isinstance(own, list) and not others & set(own)


def test_every_instance_of_every_smtp_host_reports_as_a_name_of_the_list() -> None:
    """What Postfix writes in Reporting-MTA is each instance's myhostname: the plan's."""
    model = lab_model()
    own = own_reporting_mtas(model.smtp_hosts)
    seen: set[str] = set()
    lanes = 0
    for host in model.smtp_hosts:
        for instance in plan(model, host.inventory_name).as_dict()["instances"]:
            names = [s["value"] for s in instance["main_cf"] if s["name"] == "myhostname"]
            assert len(names) == 1, instance["instance"]
            seen.add(names[0].lower())
            lanes += instance["instance"] != "-"
    assert lanes >= 2  # smtp1's bulk intake and its provider instances, not only defaults
    assert sorted(seen) == own


def test_own_reporting_mtas_follow_the_inventory() -> None:
    hosts = lab_hosts()
    hosts["smtp_fallback"].append(
        {"inventory_hostname": "smtp3", "bulkmail_hostname": "mta3.example.test",
         "bulkmail_public_ipv4": "198.51.100.13", "bulkmail_internal_ipv4": "10.25.0.13"}
    )  # fmt: skip
    variables = lab_variables()
    variables["bulkmail_ip_pools"]["bulk"].append("198.51.100.13")
    model = build_model(variables, **hosts)
    assert own_reporting_mtas(model.smtp_hosts) == [
        "mta1.example.test", "mta2.example.test", "mta3.example.test",
    ]  # fmt: skip


def test_the_processor_config_survives_its_json_file() -> None:
    model = lab_model()
    config = processor_config(
        model.domains,
        model.submission_accounts,
        hard_bounce_scope="global",
        smtp_hosts=model.smtp_hosts,
    )
    loaded = FeedbackConfig.load(json.loads(json.dumps(config)), "feedback.json")
    assert loaded.own_reporting_mtas == frozenset({"mta1.example.test", "mta2.example.test"})
    assert loaded.hard_bounce_scope == "global"
    assert loaded.return_paths == {"bounces.example.test": "example.test"}


def test_without_smtp_hosts_the_list_is_empty_and_every_notice_counts() -> None:
    model = lab_model()
    config = processor_config(model.domains, model.submission_accounts)
    assert config["own_reporting_mtas"] == []
    assert FeedbackConfig.load(config).own_reporting_mtas == frozenset()
    old = {k: v for k, v in config.items() if k != "own_reporting_mtas"}
    assert FeedbackConfig.load(old).own_reporting_mtas == frozenset()


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        ({"operator_address": "not an address"}, "bulkmail_feedback.operator_address: "),
        ({"operator_address": "noc@x.test", "receivers": []}, "bulkmail_feedback.receivers: "),
        ({"operator_address": "noc@x.test", "receivers": ["nosuch"]},
         "bulkmail_feedback.receivers[0]: 'nosuch' is not in the smtp group"),
        ({"operator_address": "noc@x.test", "receivers": ["smtp2"]},
         "bulkmail_feedback.receivers[0]: 'smtp2' is a graveyard"),
        ({"operator_address": "noc@x.test", "hard_bounce_scope": "everyone"},
         "bulkmail_feedback.hard_bounce_scope: "),
        ({"operator_address": "noc@x.test", "soft_bounces": {"threshold": 0}},
         "bulkmail_feedback.soft_bounces.threshold: "),
        ({"receivers": ["smtp1"]}, "bulkmail_feedback.operator_address: missing"),
    ],
)  # fmt: skip
def test_a_broken_bulkmail_feedback_is_refused_naming_the_field(
    feedback: dict[str, object], message: str
) -> None:
    assert problem(lab_inventory(bulkmail_feedback=feedback)).startswith(message)


def test_unsubscribe_keys_are_checked_without_being_shown() -> None:
    short = "ab" * 8
    text = problem(lab_inventory(bulkmail_unsubscribe_keys=[short]))
    assert text.startswith("bulkmail_unsubscribe_keys[0]: ") and short not in text
    assert lab_model(bulkmail_unsubscribe_keys=["ab" * 32]).domains
