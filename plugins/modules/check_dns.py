#!/usr/bin/python
# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: check_dns
short_description: Check what sending domains publish in live DNS (SPF, DKIM, DMARC, MX, PTR)
version_added: "0.1.0"
description:
  - Queries DNS with dnspython and checks, per domain, SPF (one record, syntax, DNS lookups
    including nested includes, every pool address covered, C(-all) or C(~all)), every DKIM
    selector (present, C(v=DKIM1), key type, key size, the private key's public half),
    DMARC (one record, syntax, policy, reports, alignment, as the model says), MX (present,
    targets resolve), PTR with forward confirmation for every pool address, MTA-STS and
    TLS-RPT.
  - MTA-STS and TLS-RPT are warnings when absent, unless the domain sets C(mta_sts) or
    C(tls_rpt).
  - The same checker as the C(bulkmail check-dns) command of the bulkmail Python package.
  - Read-only, so it runs in check mode too, and never reports a change.
  - "Runs where dnspython is: usually the controller (C(delegate_to: localhost)) with
    O(nameserver) pointing at the authoritative server, which is what the lab does. On a
    target host it asks that host's resolver, so it sees what the host's mail sees."
options:
  domains:
    description:
      - The sending domains, as in C(bulkmail_domains) (C(name), C(dkim_selectors),
        C(dmarc), optional C(return_path_domain), C(mta_sts), C(tls_rpt)).
    type: list
    elements: dict
    required: true
  pool_ips:
    description:
      - The addresses mail leaves from; SPF must cover each, and each needs a PTR that
        resolves back to it. Empty skips those checks with a warning.
    type: list
    elements: str
    default: []
  nameserver:
    description: Ask this server (an address) instead of the system's resolver.
    type: str
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 5.0
  dkim_key_store:
    description:
      - The DKIM key store (C(<store>/<domain>/<selector>.private), the model's
        C(bulkmail_dkim_key_store)) on the host the module runs on. A published key must
        be the public half of the private key found there. Needs C(cryptography).
    type: path
  dkim_public_keys:
    description:
      - "The public keys the DKIM records must publish, C({domain: {selector: key}}), as in
        the C(bulkmail_dkim_public_keys) fact. Used where O(dkim_key_store) has no key."
    type: dict
    default: {}
  fail_on_required:
    description:
      - Fail when a required check fails, with every failing check's reason and fix.
        With C(false) the module only returns the report.
    type: bool
    default: true
requirements:
  - dnspython >= 2.3 (Debian package C(python3-dnspython))
  - cryptography, for DKIM key sizes and the key comparison (C(python3-cryptography))
notes:
  - Does not fetch the MTA-STS policy file over HTTPS; it checks that the policy host resolves.
  - DNS cannot list DKIM selectors, so the ones checked are the domain's C(dkim_selectors).
seealso:
  - module: bulkmail.infra.dkim_key
  - name: RFC 7208 Sender Policy Framework (SPF)
    description: The SPF record syntax and its limit of 10 DNS lookups.
    link: https://www.rfc-editor.org/rfc/rfc7208
  - name: RFC 6376 DomainKeys Identified Mail (DKIM) Signatures
    description: The DKIM key record (section 3.6.1).
    link: https://www.rfc-editor.org/rfc/rfc6376
  - name: RFC 7489 Domain-based Message Authentication, Reporting, and Conformance (DMARC)
    description: The DMARC record and its tags.
    link: https://www.rfc-editor.org/rfc/rfc7489
author:
  - bulkmail.infra developers (@bulkmail)
"""

EXAMPLES = r"""
- name: Check the published records against the authoritative server
  bulkmail.infra.check_dns:
    domains: "{{ bulkmail_domains }}"
    pool_ips: "{{ bulkmail_ip_pools | dict2items | map(attribute='value') | flatten | unique }}"
    nameserver: "{{ hostvars[groups['dns'][0]].bulkmail_public_ipv4 }}"
    dkim_key_store: "{{ bulkmail_dkim_key_store }}"
  delegate_to: localhost
  run_once: true
  become: false

- name: Report only, without failing
  bulkmail.infra.check_dns:
    domains: "{{ bulkmail_domains }}"
    fail_on_required: false
  register: dns_check

- name: Show what failed
  ansible.builtin.debug:
    msg: "{{ dns_check.failures }}"
"""

RETURN = r"""
ok:
  description: Whether every required check passed.
  returned: always
  type: bool
  sample: true
report:
  description: One entry per domain, with every check.
  returned: always
  type: list
  elements: dict
  contains:
    domain:
      description: The domain.
      type: str
      sample: example.com
    status:
      description: fail when a required check failed, warn when something else did, else pass.
      type: str
      sample: pass
    ok:
      description: Whether every required check of the domain passed.
      type: bool
    checks:
      description:
        - The checks, each with C(name) (C(spf.record), C(dkim.s2026a), C(ptr.198.51.100.10),
          ...), C(status) (pass, warn or fail), C(required), C(reason), C(fix) (empty when
          it passes), C(subject) (the DNS name looked at) and C(details).
      type: list
      elements: dict
  sample:
    - domain: example.com
      status: pass
      ok: true
      checks:
        - name: spf.record
          status: pass
          required: true
          reason: "one SPF record: 'v=spf1 ip4:198.51.100.10 -all'"
          fix: ""
          subject: example.com
          details: {record: "v=spf1 ip4:198.51.100.10 -all"}
failures:
  description: "One line per failing required check: C(<domain> <check>: <reason>. Fix: <fix>)."
  returned: always
  type: list
  elements: str
  sample: ["example.com dkim.s2026b: no DKIM key record at s2026b._domainkey.example.com: ..."]
warned:
  description: One line per check that warned (not required, or required but not failing).
  returned: always
  type: list
  elements: str
  sample: ["example.com mta_sts: no MTA-STS record at _mta-sts.example.com: ..."]
"""

import traceback
from dataclasses import replace
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.dns_lookup import (
    dnspython_missing,
    dnspython_resolve,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import (
    public_keys_from_store,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.check import (
    check_domains,
    expectations_from_model,
    failure_lines,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.report import PASS, Expectations
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError


def build_expectations(params: dict[str, Any]) -> list[Expectations]:
    expectations = []
    for index, raw in enumerate(params["domains"]):
        expect = expectations_from_model(
            raw,
            params["pool_ips"],
            params["dkim_public_keys"],
            path=f"domains[{index}]",
        )
        if params["dkim_key_store"]:
            stored = public_keys_from_store(
                params["dkim_key_store"], expect.domain, expect.dkim_selectors
            )
            expect = replace(expect, dkim_public_keys={**expect.dkim_public_keys, **stored})
        expectations.append(expect)
    return expectations


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "domains": {"type": "list", "elements": "dict", "required": True},
            "pool_ips": {"type": "list", "elements": "str", "default": []},
            "nameserver": {"type": "str"},
            "timeout": {"type": "float", "default": 5.0},
            "dkim_key_store": {"type": "path"},
            "dkim_public_keys": {"type": "dict", "default": {}},
            "fail_on_required": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    dnspython_error = dnspython_missing()
    if dnspython_error is not None:
        module.fail_json(msg=missing_required_lib("dnspython"), exception=dnspython_error)
    params = module.params
    try:
        expectations = build_expectations(params)
    except ModelError as error:
        module.fail_json(msg=str(error))
    except ImportError:
        module.fail_json(
            msg=missing_required_lib("cryptography", reason="to read dkim_key_store"),
            exception=traceback.format_exc(),
        )

    reports = check_domains(
        expectations, dnspython_resolve(params["nameserver"], params["timeout"])
    )
    failures = failure_lines(reports)
    result = {
        "changed": False,
        "ok": not failures,
        "report": [report.as_dict() for report in reports],
        "failures": failures,
        "warned": [
            f"{report.domain} {check.name}: {check.reason}. Fix: {check.fix}"
            for report in reports
            for check in report.checks
            if check.status != PASS and not check.failed
        ],
    }
    if failures and params["fail_on_required"]:
        lines = "\n".join(f"- {line}" for line in failures)
        module.fail_json(msg=f"{len(failures)} required DNS check(s) failed:\n{lines}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
