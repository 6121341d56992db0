#!/usr/bin/python
# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: dkim_rotation_guard
short_description: Refuse to sign with a DKIM selector published for less than its TTL
version_added: "0.2.0"
description:
  - Compares the first selector of each domain's C(dkim_selectors) (the one that signs) with
    what OpenDKIM signs that domain with today, read from the smtp hosts' signing tables.
  - When they differ, the new signer's record must have been published (as recorded by
    M(bulkmail.infra.dkim_publication) in the key store) for at least O(min_publish_seconds),
    by default the TTL the record was served with. Otherwise the module fails, naming the
    field, the selector, how long it has been published and from when it may move.
  - A selector OpenDKIM already signs with is not moved, so re-runs pass. A domain that no
    host signs yet (a new domain, the first run) may start with any selector.
  - Read-only; run it before any host changes.
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
  signing_tables:
    description:
      - "OpenDKIM's SigningTable on every smtp host, C({host: content}), the content base64 as
        M(ansible.builtin.slurp) returns it, or slurp's whole result; C(null) or a result
        without content for a host without one, which signs nothing."
    type: dict
    required: true
  min_publish_seconds:
    description:
      - How long a record must have been published before its selector signs. Unset, the
        TTL the name servers served it with (C(bind_ttl)). C(0) turns the guard off.
    type: int
  domains_path:
    description: How error messages name the domains' list.
    type: str
    default: bulkmail_domains
attributes:
  check_mode:
    support: full
    description: Read-only, runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing.
seealso:
  - module: bulkmail.infra.dkim_publication
author:
  - bulkmail.infra developers (@bulkmail)
"""

EXAMPLES = r"""
# In a play on the smtp hosts
- name: Read what OpenDKIM signs with on this host
  ansible.builtin.slurp:
    src: /etc/opendkim/SigningTable
  register: signing_table
  failed_when: >-
    signing_table.failed | default(false)
    and 'not found' not in signing_table.msg | default('') | lower

- name: Refuse a selector moved first too early
  bulkmail.infra.dkim_rotation_guard:
    store: "{{ bulkmail_dkim_key_store }}"
    domains: "{{ bulkmail_domains }}"
    signing_tables: >-
      {{ dict(ansible_play_hosts | zip(ansible_play_hosts
              | map('extract', hostvars, 'signing_table'))) }}
  delegate_to: localhost
  run_once: true
  become: false
"""

RETURN = r"""
signing:
  description: What OpenDKIM signs each domain with today, over all smtp hosts.
  returned: always
  type: dict
  sample: {example.com: [s2026a]}
moves:
  description: The domains whose signer changes in this run, each allowed.
  returned: always
  type: list
  elements: dict
  sample:
    - {domain: example.com, selector: s2026b, signing_now: [s2026a],
       published_at: "2026-11-23T14:07:00Z"}
"""

from datetime import UTC, datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import (
    publication_path,
    read_publication,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.rotation import (
    check_signing_moves,
    decode_tables,
    model_selectors,
    signing_moves,
    signing_selectors,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "store": {"type": "path", "required": True},
            "domains": {"type": "list", "elements": "dict", "required": True},
            "signing_tables": {"type": "dict", "required": True},
            "min_publish_seconds": {"type": "int"},
            "domains_path": {"type": "str", "default": "bulkmail_domains"},
        },
        supports_check_mode=True,
    )
    params = module.params
    store = params["store"]
    signing: dict[str, set[str]] = {}
    try:
        selectors = model_selectors(params["domains"], params["domains_path"])
        signing = signing_selectors(decode_tables(params["signing_tables"]))
        moves = signing_moves(selectors, signing, params["domains_path"])
        keys = [(move.domain, move.selector) for move in moves]
        allowed = check_signing_moves(
            moves,
            {key: read_publication(store, *key) for key in keys},
            datetime.now(UTC),
            params["min_publish_seconds"],
            {key: publication_path(store, *key) for key in keys},
        )
    except (ModelError, OSError) as error:
        module.fail_json(
            msg=str(error), signing={d: sorted(s) for d, s in signing.items()}, moves=[]
        )
    module.exit_json(
        changed=False, signing={d: sorted(s) for d, s in signing.items()}, moves=allowed
    )


if __name__ == "__main__":
    main()
