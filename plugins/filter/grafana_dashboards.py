# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: grafana_dashboards
short_description: Check dashboard files as Grafana dashboard JSON
version_added: 0.1.0
description:
  - Parses each file and checks C(title), C(uid), C(schemaVersion) and every panel's C(type),
    C(gridPos) and C(targets), and that the targets use provisioned data sources; also that no
    two files share a file name or a uid.
  - Fails with a message naming the file and the field; returns a summary per file.
author:
  - bulkmail.infra developers
positional: _input
options:
  _input:
    description:
      - Pairs of (path, JSON text),
        e.g. C(paths | zip(query('ansible.builtin.file', *paths))).
    type: list
    elements: list
    required: true
  datasource_uids:
    description: The only data source uids targets may use (besides built-ins and C($variables)).
      Not checked when omitted.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Check the dashboards
  ansible.builtin.debug:
    msg: "{{ files | zip(query('ansible.builtin.file', *files))
      | bulkmail.infra.grafana_dashboards(datasource_uids=['bulkmail-postgresql']) }}"
  vars:
    files: "{{ query('ansible.builtin.fileglob', 'dashboards/*.json') }}"
"""

RETURN = r"""
_value:
  description: One summary per file, C(file), C(title), C(uid), C(schemaVersion), C(panels).
  type: list
  elements: dict
"""

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.grafana.dashboard import (
    DashboardError,
    check_dashboard_files,
)


def _grafana_dashboards(
    files: list[Any], datasource_uids: list[str] | None = None
) -> list[dict[str, Any]]:
    try:
        summaries = check_dashboard_files(
            [(str(path), str(text)) for path, text in files], datasource_uids=datasource_uids
        )
    except DashboardError as exc:
        raise AnsibleFilterError(f"grafana_dashboards: {exc}") from exc
    return [summary.as_dict() for summary in summaries]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"grafana_dashboards": _grafana_dashboards}
