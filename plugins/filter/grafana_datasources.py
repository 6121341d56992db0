# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: grafana_datasources
short_description: Grafana data source provisioning for the bulkmail database (and Prometheus)
version_added: 0.1.0
description:
  - Builds the document of C(provisioning/datasources/bulkmail.yaml), a PostgreSQL source with
    uid C(bulkmail-postgresql) and, when a URL is given, a Prometheus source with uid
    C(bulkmail-prometheus).
author:
  - bulkmail.infra developers
positional: _input, prometheus_url
options:
  _input:
    description: PostgreSQL settings, C(host), C(port), C(database), C(user), C(password),
      C(sslmode), C(version) (major).
    type: dict
    required: true
  prometheus_url:
    description: Prometheus URL; no Prometheus source when empty.
    type: str
"""

EXAMPLES = r"""
- name: Render the data sources
  ansible.builtin.copy:
    content: "{{ {'host': '192.0.2.5', 'database': 'bulkmail', 'user': 'bulkmail_reader',
      'password': reader_password} | bulkmail.infra.grafana_datasources | to_nice_yaml }}"
    dest: /etc/grafana/provisioning/datasources/bulkmail.yaml
    mode: "0640"
"""

RETURN = r"""
_value:
  description: The provisioning document (C(apiVersion), C(datasources)).
  type: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.grafana.datasources import (
    DatasourceError,
    grafana_datasources,
)


def _grafana_datasources(
    postgresql: dict[str, Any], prometheus_url: str | None = None
) -> dict[str, Any]:
    try:
        return grafana_datasources(postgresql, prometheus_url)
    except DatasourceError as exc:
        raise AnsibleFilterError(f"grafana_datasources: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"grafana_datasources": _grafana_datasources}
