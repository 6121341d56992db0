"""Every broken inventory stops site.yml before any host changes, naming the field.

Each case is the lab's inventory with one variable broken through extra vars (which win over
every inventory value), run as an operator would: `ansible-playbook site.yml`. The run must
fail in the validate play, print the field's path, and change nothing: no task of any other
play starts. A broken value is never printed back when it is a secret.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import ansible_playbook

SECRET_LOOKING = "Lab-not-a-secret-9kQ2x7Vw"
ACCOUNT = {"username": "app@example.test", "password": SECRET_LOOKING}
RELAY = {"host": "relay2.relays.test", "port": 587, "username": "lab", "password": SECRET_LOOKING}

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("trusted /0",
     {"bulkmail_trusted_networks": [{"network": "0.0.0.0/0", "domains": "all"}]},
     "bulkmail_trusted_networks[0].network: '0.0.0.0/0' is every address"),
    ("trusted /33",
     {"bulkmail_trusted_networks": [{"network": "10.25.0.96/33", "domains": "all"}]},
     "bulkmail_trusted_networks[0].network: '10.25.0.96/33' is not a network"),
    ("trusted wider than /16",
     {"bulkmail_trusted_networks": [{"network": "10.0.0.0/8", "domains": "all"}]},
     "bulkmail_trusted_networks[0].network: 10.0.0.0/8 is wider than /16"),
    ("trusted without domains",
     {"bulkmail_trusted_networks": ["10.25.0.96/27"]},
     "bulkmail_trusted_networks[0]: '10.25.0.96/27' names no domains"),
    ("trusted for a foreign domain",
     {"bulkmail_trusted_networks": [{"network": "10.25.0.96/27", "domains": ["gmail.test"]}]},
     "bulkmail_trusted_networks[0].domains[0]: 'gmail.test' is not a sending domain"),
    ("empty password",
     {"bulkmail_submission_accounts": [{**ACCOUNT, "password": ""}]},
     "bulkmail_submission_accounts[0].password: "),
    ("placeholder password",
     {"bulkmail_submission_accounts": [{**ACCOUNT, "password": "CHANGE-ME"}]},
     "bulkmail_submission_accounts[0].password: "),
    ("password ending in a newline",
     {"bulkmail_submission_accounts": [{**ACCOUNT, "password": SECRET_LOOKING + "\n"}]},
     "bulkmail_submission_accounts[0].password: "),
    ("empty database password", {"bulkmail_db_app_password": ""}, "bulkmail_db_app_password: "),
    ("relay fingerprint",
     {"bulkmail_relays": {"relay1": {**RELAY, "host": "relay1.relays.test"},
                          "relay2": {**RELAY, "tls_fingerprint": "not-a-digest"}}},
     "bulkmail_relays.relay2.tls_fingerprint: "),
    ("no admin networks", {"bulkmail_admin_networks": []}, "bulkmail_admin_networks: "),
    ("pg_hba ident",
     {"postgresql_hba_extra_rules": [{"type": "hostssl", "database": "bulkmail", "user": "x",
                                      "address": "10.25.0.0/24", "method": "ident"}]},
     "hostvars['db1'].postgresql_hba_extra_rules[0].method: 'ident'"),
    ("pg_hba comment with a newline",
     {"postgresql_hba_extra_rules": [{"type": "hostssl", "database": "bulkmail", "user": "x",
                                      "address": "10.25.0.0/24", "method": "scram-sha-256",
                                      "comment": "ok\nhost all all 0.0.0.0/0 trust"}]},
     "hostvars['db1'].postgresql_hba_extra_rules[0].comment: "),
    ("CAA record",
     {"bind_extra_zones": [{"name": "caa.test", "records": [
         {"name": "@", "type": "CAA", "value": "0 issuer letsencrypt.org"}]}]},
     "hostvars['dns1'].bind_extra_zones[0].records[0].value: "),
    ("SRV record",
     {"bind_extra_zones": [{"name": "srv.test", "records": [
         {"name": "_sip._tcp", "type": "SRV", "value": "10 5 70000 sip.srv.test."}]}]},
     "hostvars['dns1'].bind_extra_zones[0].records[0].value: "),
]  # fmt: skip


@pytest.mark.parametrize(("broken", "extra", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_inventory_stops_before_any_host_changes(
    broken: str, extra: dict[str, Any], field: str
) -> None:
    run = ansible_playbook("site.yml", extra_vars=extra, timeout=120)
    output = run.stdout + run.stderr
    assert run.returncode != 0, f"{broken}: site.yml went on\n{output[-3000:]}"
    assert field in output, f"{broken}: {field!r} not named\n{output[-3000:]}"
    plays = re.findall(r"^PLAY \[(.+?)\]", run.stdout, flags=re.MULTILINE)
    assert plays == ["Validate the inventory model"], plays
    assert not re.search(r"changed=[1-9]", run.stdout), run.stdout[-2000:]
    assert SECRET_LOOKING not in output, f"{broken}: a password was printed"
