#!/usr/bin/python
# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dkim_publication
short_description: Record in the DKIM key store when each selector's record was first served
version_added: "0.2.0"
description:
  - For every selector of every domain, asks each name server directly (no recursion, the
    answer must be authoritative) for C(<selector>._domainkey.<domain>) TXT until all of them
    serve the public key of the selector, then writes C(<store>/<domain>/<selector>.published)
    next to the private key, with the time (C(published_at), UTC) and the TTL served.
  - A selector that already has a record keeps it, since its first publication is what counts.
  - The record of a selector that is no longer in the domain's C(dkim_selectors) is deleted,
    because the dns tier withdrew its TXT record; if it comes back, its wait starts again.
  - M(bulkmail.infra.dkim_rotation_guard) reads these records before a selector may sign.
  - "Meant to run on the controller (C(delegate_to: localhost), C(run_once: true)) after the
    dns tier has reloaded its zones; needs dnspython there."
options:
  store:
    description: The key store directory (the model's C(bulkmail_dkim_key_store)).
    type: path
    required: true
  domains:
    description:
      - The sending domains, as in C(bulkmail_domains); C(name) and C(dkim_selectors) are read.
    type: list
    elements: dict
    required: true
  public_keys:
    description:
      - "The public key each record must serve, C({domain: {selector: key}}), as the fact
        C(bulkmail_dkim_public_keys) that the bulkmail.infra.dkim_keys role sets."
    type: dict
    required: true
  nameservers:
    description: Addresses of every authoritative name server of the domains, primary first.
    type: list
    elements: str
    required: true
  timeout:
    description:
      - Seconds to wait for every name server to serve a new selector (zone reloads and
        NOTIFY to the secondaries take a moment). The module fails when one does not.
    type: float
    default: 30.0
requirements:
  - dnspython >= 2.3 (Debian package C(python3-dnspython))
notes:
  - In check mode nothing is written and nothing is waited for; a selector not served yet is
    listed in RV(waiting).
attributes:
  check_mode:
    support: full
    description: Asks the name servers once, writes and deletes nothing.
  diff_mode:
    support: full
    description: The publication records of the domains, before and after.
seealso:
  - module: bulkmail.infra.dkim_rotation_guard
  - module: bulkmail.infra.dkim_key
author:
  - bulkmail.infra developers (@bulkmail)
"""

EXAMPLES = r"""
- name: Record when every name server first served each selector
  bulkmail.infra.dkim_publication:
    store: "{{ bulkmail_dkim_key_store }}"
    domains: "{{ bulkmail_domains }}"
    public_keys: "{{ bulkmail_dkim_public_keys }}"
    nameservers: "{{ groups['dns'] | map('extract', hostvars, 'bulkmail_public_ipv4') }}"
  delegate_to: localhost
  run_once: true
  become: false
"""

RETURN = r"""
published:
  description: Every selector of the domains known to be published, with its record.
  returned: always
  type: dict
  sample:
    example.com:
      s2026b: {published_at: "2026-11-23T14:07:00Z", ttl: 3600, nameservers: [198.51.100.53]}
recorded:
  description: The records written in this run (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [s2026b._domainkey.example.com]
withdrawn:
  description: Records deleted because their selector left C(dkim_selectors).
  returned: always
  type: list
  elements: str
  sample: [s2026a._domainkey.example.com]
waiting:
  description: In check mode, the selectors not served yet, with what each server said.
  returned: always
  type: list
  elements: str
  sample: ["s2026b._domainkey.example.com: 198.51.100.53: no TXT record"]
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.dns_lookup import (
    ask_authoritative,
    dnspython_missing,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import (
    read_publications,
    store_publication_run,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.rotation import (
    model_selectors,
    publication_run,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "store": {"type": "path", "required": True},
            "domains": {"type": "list", "elements": "dict", "required": True},
            "public_keys": {"type": "dict", "required": True},
            "nameservers": {"type": "list", "elements": "str", "required": True},
            "timeout": {"type": "float", "default": 30.0},
        },
        supports_check_mode=True,
    )
    dnspython_error = dnspython_missing()
    if dnspython_error is not None:
        module.fail_json(msg=missing_required_lib("dnspython"), exception=dnspython_error)
    params = module.params
    try:
        selectors = model_selectors(params["domains"], "domains")
        run = publication_run(
            selectors,
            params["public_keys"],
            read_publications(params["store"], selectors),
            params["nameservers"],
            lambda nameserver, name: ask_authoritative(nameserver, name, "TXT"),
            clock=time.time,
            sleep=time.sleep,
            timeout=params["timeout"],
            check_mode=module.check_mode,
        )
        if not module.check_mode:
            store_publication_run(params["store"], run)
    except (ModelError, OSError) as error:
        module.fail_json(msg=str(error))
    published = {
        domain: {selector: pub.as_dict() for selector, pub in selectors.items()}
        for domain, selectors in run.published.items()
    }
    result = {
        "changed": run.changed or (module.check_mode and bool(run.missing)),
        "published": published,
        "recorded": run.recorded,
        "withdrawn": run.withdrawn,
        "waiting": run.missing if module.check_mode else [],
        "diff": {"before": run.before, "after": run.after},
    }
    if run.missing and not module.check_mode:
        module.fail_json(
            msg=(
                f"not served by every name server after {params['timeout']:g} s, so not "
                f"recorded as published: {'; '.join(run.missing)}. Check the zone on the "
                "primary and the transfers to the secondaries; the next run records it once "
                "it is served, and until then it may not sign."
            ),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
