"""The roles' extra inputs (pg_hba extra rules, BIND's extra zones) fail in parse_model, so
playbooks/validate.yml stops before any host changes, naming the host and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible_collections.bulkmail.infra.plugins.filter.model import model as model_filter
from ansible_collections.bulkmail.infra.plugins.module_utils.model import (
    MODEL_VARIABLES,
    parse_model,
)
from model_inventory import LAB_VARIABLES, inventory, lab_hosts, problem, problems

INVENTORY = Path(__file__).resolve().parents[4] / "inventories" / "lab"
RULE = {"type": "hostssl", "database": "bulkmail", "user": "replicator", "address": "10.25.0.6/32"}
ZONE = {"name": "partner.test", "records": [{"name": "@", "type": "A", "value": "192.0.2.7"}]}


def lab_with(group: str, **variables: Any) -> dict[str, Any]:
    """The lab's inputs with `variables` set on every host of `group` (as its group_vars)."""
    hosts = lab_hosts()
    for host in hosts[group]:
        host.update(variables)
    return inventory(LAB_VARIABLES, **hosts)


def test_the_lab_s_extra_zones_and_a_good_extra_rule_pass() -> None:
    zones = yaml.safe_load((INVENTORY / "group_vars" / "dns.yml").read_text())["bind_extra_zones"]
    inputs = lab_with("dns", bind_extra_zones=zones)
    inputs["hosts"]["db1"]["postgresql_hba_extra_rules"] = [
        {**RULE, "method": "cert", "options": "clientcert=verify-full", "comment": "replica"}
    ]
    parse_model(inputs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"comment": "replica\nhost all all 0.0.0.0/0 trust"},
            "hostvars['db1'].postgresql_hba_extra_rules[0].comment: contains the control "
            "character '\\n'; keep it on one line",
        ),
        (
            {"method": "ident"},
            "hostvars['db1'].postgresql_hba_extra_rules[0].method: 'ident' is not allowed (it "
            "trusts another's word or a replayable password); use one of scram-sha-256, cert, "
            "peer, reject",
        ),
        (
            {"options": "clientcert=verify-full\nhost all all 0.0.0.0/0 trust"},
            "hostvars['db1'].postgresql_hba_extra_rules[0].options: contains the control "
            "character '\\n'; keep it on one line",
        ),
    ],
)
def test_a_broken_pg_hba_extra_rule_fails_in_the_model(
    change: dict[str, str], message: str
) -> None:
    assert problem(lab_with("db", postgresql_hba_extra_rules=[{**RULE, **change}])) == message


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            {"name": "@", "type": "CAA", "value": '0 issue "ca.test"\n@ IN A 192.0.2.66'},
            "contains a control character; one line only",
        ),
        (
            {"name": "@", "type": "CAA", "value": '0 policy "ca.test"'},
            "tag 'policy' is not one of issue, issuewild, iodef",
        ),
        (
            {"name": "_sip._tcp", "type": "SRV", "value": "10 5 70000 sip.partner.test."},
            "is not '<priority> <weight> <port> <target>'",
        ),
    ],
)
def test_a_bad_extra_zone_record_fails_in_the_model_once_for_every_dns_host(
    record: dict[str, str], message: str
) -> None:
    www = {"name": "www", "type": "A", "value": "192.0.2.7"}
    zone = {"name": "partner.test", "records": [www, record]}
    found = problem(lab_with("dns", bind_extra_zones=[zone]))
    assert found.startswith("hostvars['dns1'].bind_extra_zones[0].records[1].value: ")
    assert message in found
    assert found.endswith(" (the same value is set on dns2)")


def test_an_extra_zone_may_not_be_a_sending_domain() -> None:
    inputs = lab_with("dns", bind_extra_zones=[{**ZONE, "name": "shop.test"}])
    assert problem(inputs).startswith(
        "hostvars['dns1'].bind_extra_zones[0].name: 'shop.test' is already served"
    )


def test_every_problem_of_every_host_is_reported_at_once() -> None:
    inputs = lab_with("db")
    inputs["hosts"]["db1"]["postgresql_hba_extra_rules"] = [
        {**RULE, "method": "pam"},
        RULE,
        {**RULE, "comment": "a\rb"},
    ]
    inputs["hosts"]["dns2"]["bind_extra_zones"] = "partner.test"
    assert problems(inputs) == [
        "hostvars['db1'].postgresql_hba_extra_rules[0].method: 'pam' is not allowed (it trusts "
        "another's word or a replayable password); use one of scram-sha-256, cert, peer, reject",
        "hostvars['db1'].postgresql_hba_extra_rules[2].comment: contains the control character "
        "'\\r'; keep it on one line",
        "hostvars['dns2'].bind_extra_zones: is not a list of {name, records} zones",
    ]


def test_a_value_no_role_reads_on_that_host_is_not_checked() -> None:
    """The postgresql role runs on the db hosts only, bind on the dns hosts only."""
    inputs = lab_with("smtp", postgresql_hba_extra_rules=[{**RULE, "method": "trust"}])
    inputs["hosts"]["db1"]["bind_extra_zones"] = "not a list"
    parse_model(inputs)


def test_validate_yml_s_model_filter_refuses_them_and_carries_them_in_the_fact() -> None:
    """`bulkmail.infra.model` as playbooks/validate.yml calls it: the model's variables, the
    groups, and every host's hostvars."""
    hosts = lab_hosts()
    groups = {group: [host["inventory_hostname"] for host in members]
              for group, members in hosts.items()}  # fmt: skip
    groups["smtp"] += groups["smtp_fallback"]
    hostvars = {host["inventory_hostname"]: dict(host) for members in hosts.values()
                for host in members}  # fmt: skip
    groups["all"] = list(hostvars)
    variables = {key: LAB_VARIABLES.get(key) for key in MODEL_VARIABLES}

    hostvars["db1"]["postgresql_hba_extra_rules"] = [{**RULE, "method": "ident"}]
    result = model_filter(variables, groups, list(hostvars.values()))
    assert result == {
        "problems": "hostvars['db1'].postgresql_hba_extra_rules[0].method: 'ident' is not "
        "allowed (it trusts another's word or a replayable password); use one of "
        "scram-sha-256, cert, peer, reject"
    }

    hostvars["db1"]["postgresql_hba_extra_rules"] = [RULE]
    hostvars["dns1"]["bind_extra_zones"] = [ZONE]
    fact = model_filter(variables, groups, list(hostvars.values()))
    assert "problems" not in fact
    assert fact["hosts"]["db1"]["postgresql_hba_extra_rules"] == [RULE]
    assert fact["hosts"]["dns1"]["bind_extra_zones"] == [ZONE]
    assert fact["hosts"]["dns2"]["bind_extra_zones"] is None  # the role's default applies
    parse_model(fact)
