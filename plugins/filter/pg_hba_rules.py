# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: pg_hba_rules
short_description: The bulkmail pg_hba.conf records, derived from the inventory
version_added: 0.1.0
description:
  - Builds the records of C(pg_hba.conf), first match wins, local administrator by peer, each
    client role from each of its hosts' C(bulkmail_internal_ipv4) (/32, scram-sha-256), the
    operator's extra rules, then an explicit C(reject) for everything else.
  - Fails with a message naming the host or rule when an address or method is wrong.
author:
  - bulkmail.infra developers
positional: _input, clients
options:
  _input:
    description: The database name (C(bulkmail_db_name)).
    type: str
    required: true
  clients:
    description: Roles and where they connect from; each item has C(role), C(group) and
      C(hosts) (host name to IPv4 address).
    type: list
    elements: dict
    required: true
  admin_user:
    description: Role allowed over the local socket by peer authentication.
    type: str
    default: postgres
  admin_ident_map:
    description: pg_ident.conf map for the administrator rule (which OS users may log in as it).
    type: str
  require_ssl:
    description: Use C(hostssl) for client rules (TLS required) instead of C(host).
    type: bool
    default: true
  extra_rules:
    description: Further records (C(type), C(database), C(user), C(address) in CIDR form,
      C(method), optional C(options) and C(comment)), placed before the final reject.
      C(trust), C(password) and C(md5) are refused.
    type: list
    elements: dict
    default: []
"""

EXAMPLES = r"""
- name: Derive pg_hba.conf
  ansible.builtin.set_fact:
    hba: >-
      {{ 'bulkmail' | bulkmail.infra.pg_hba_rules([
           {'role': 'bulkmail_app', 'group': 'smtp', 'hosts': {'smtp1': '192.0.2.10'}},
         ], admin_ident_map='bulkmail_admin') }}
"""

RETURN = r"""
_value:
  description: The records in order; each has C(type), C(database), C(user), C(address),
    C(method), C(options), C(comment) and C(line) (the formatted record).
  type: list
  elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from ansible_collections.bulkmail.infra.plugins.module_utils.postgresql.pg_hba import pg_hba_rules


def _pg_hba_rules(database: str, clients: list[Any], **options: Any) -> list[dict[str, str]]:
    try:
        return pg_hba_rules(database, clients, **options)
    except ModelError as exc:  # HbaError, or several of them (ModelErrors)
        raise AnsibleFilterError(f"pg_hba_rules: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"pg_hba_rules": _pg_hba_rules}
