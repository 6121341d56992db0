#!/usr/bin/python
# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: bind_zone
short_description: Write a BIND zone file from a record list, bumping the serial only on change
version_added: "0.1.0"
description:
  - Renders a primary zone file from SOA parameters and a list of records, such as the zones
    the M(bulkmail.infra.dkim_key) keys and the C(bulkmail.infra.zones) filter produce.
  - The SOA serial goes up only when a record changed; the existing file is compared with
    the candidate without its serial. The new serial is the larger of the old one plus one
    and today's C(YYYYMMDD00).
  - The candidate is checked with C(named-checkzone) before it replaces the file.
  - Does not reload BIND; notify a handler when the module reports a change.
options:
  zone:
    description: The zone's name, for example C(example.com) or C(100.51.198.in-addr.arpa).
    type: str
    required: true
  path:
    description: The zone file to write.
    type: path
    required: true
  soa:
    description:
      - SOA parameters. C(mname) is the primary name server, C(rname) the responsible
        mailbox (C(hostmaster@example.com) or C(hostmaster.example.com.)).
    type: dict
    required: true
    suboptions:
      mname:
        description: The primary name server.
        type: str
        required: true
      rname:
        description: The zone's contact mailbox.
        type: str
        required: true
      refresh:
        description: Seconds between secondaries' SOA checks.
        type: int
        default: 7200
      retry:
        description: Seconds before a secondary retries a failed refresh.
        type: int
        default: 900
      expire:
        description: Seconds after which a secondary stops answering without a refresh.
        type: int
        default: 1209600
      minimum:
        description: Negative-caching TTL in seconds (RFC 2308).
        type: int
        default: 300
  ttl:
    description: The zone's default TTL (C($TTL)) and the TTL of records that set none.
    type: int
    default: 3600
  records:
    description:
      - Records, each C({name, type, value[, ttl]}). C(name) is relative to the zone (C(@)
        for the apex). C(value) is the record data in zone-file syntax; for TXT it is a string
        or a list of character-strings (longer strings are split at 255 bytes).
      - Names in values without a trailing dot are relative to the zone, as in any zone file.
    type: list
    elements: dict
    default: []
  checkzone:
    description: The C(named-checkzone) program; empty to skip the check.
    type: str
    default: named-checkzone
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Reports the serial and the diff it would write; the candidate is still checked.
  diff_mode:
    support: full
    description: Shows the zone file before and after.
notes:
  - The check runs with C(-i local), so it does not depend on DNS resolution from the host.
author:
  - bulkmail.infra developers (@bulkmail)
"""

EXAMPLES = r"""
- name: Write the zone example.com
  bulkmail.infra.bind_zone:
    zone: example.com
    path: /etc/bind/zones/db.example.com
    soa:
      mname: ns1.example.com.
      rname: hostmaster@example.com
    records:
      - {name: "@", type: NS, value: ns1.example.com.}
      - {name: "@", type: MX, value: "10 mta1.example.com."}
      - {name: "@", type: TXT, value: "v=spf1 ip4:198.51.100.10 -all"}
      - {name: ns1, type: A, value: 198.51.100.53}
      - {name: mta1, type: A, value: 198.51.100.10}
    owner: root
    group: bind
    mode: "0644"
  notify: Reload bind
"""

RETURN = r"""
serial:
  description: The zone's SOA serial after the run.
  returned: always
  type: int
  sample: 2026112300
previous_serial:
  description: The serial of the file before the run, if there was one.
  returned: always
  type: int
  sample: 2026112201
records:
  description: How many records the zone holds, SOA excluded.
  returned: always
  type: int
  sample: 9
"""

import datetime
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_native
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.zone_file import (
    normalize_record,
    plan_zone_file,
    soa_from_mapping,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from ansible_collections.bulkmail.infra.plugins.module_utils.model.fields import (
    validate_domain_name,
)


def check_zone(module: AnsibleModule, zone: str, text: str) -> None:
    """Fail the module unless named-checkzone accepts `text` as zone `zone`."""
    program = module.params["checkzone"]
    if not program:
        return
    binary = module.get_bin_path(program, required=not module.check_mode)
    if binary is None:
        module.warn(f"{program} is not installed yet: the zone {zone} was not checked")
        return
    fd, candidate = tempfile.mkstemp(prefix=f"{zone}.", dir=module.tmpdir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        rc, out, err = module.run_command([binary, "-i", "local", "-k", "fail", zone, candidate])
    finally:
        os.unlink(candidate)
    if rc != 0:
        module.fail_json(
            msg=f"named-checkzone refused the zone {zone}; the file was not changed",
            checkzone_output=(out + err).replace(candidate, module.params["path"]),
            candidate=text,
        )


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "zone": {"type": "str", "required": True},
            "path": {"type": "path", "required": True},
            "soa": {
                "type": "dict",
                "required": True,
                "options": {
                    "mname": {"type": "str", "required": True},
                    "rname": {"type": "str", "required": True},
                    "refresh": {"type": "int", "default": 7200},
                    "retry": {"type": "int", "default": 900},
                    "expire": {"type": "int", "default": 1209600},
                    "minimum": {"type": "int", "default": 300},
                },
            },
            "ttl": {"type": "int", "default": 3600},
            "records": {"type": "list", "elements": "dict", "default": []},
            "checkzone": {"type": "str", "default": "named-checkzone"},
        },
        add_file_common_args=True,
        supports_check_mode=True,
    )
    params = module.params
    path = params["path"]
    try:
        zone = validate_domain_name(params["zone"].rstrip("."), "zone", min_labels=1)
        soa = soa_from_mapping(params["soa"], "soa")
        records = [
            normalize_record(record, zone, f"records[{index}]", params["ttl"])
            for index, record in enumerate(params["records"])
        ]
    except ModelError as error:
        module.fail_json(msg=str(error))

    existing = None
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                existing = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            module.fail_json(msg=f"cannot read {path}: {to_native(error)}")
    try:
        plan = plan_zone_file(existing, zone, soa, records, params["ttl"], datetime.date.today())
    except ModelError as error:
        module.fail_json(msg=str(error))

    result = {
        "changed": plan.changed,
        "serial": plan.serial,
        "previous_serial": plan.previous_serial,
        "records": len(records),
    }
    if plan.changed:
        check_zone(module, zone, plan.text)
        if module._diff:
            result["diff"] = {
                "before": existing or "",
                "after": plan.text,
                "before_header": path,
                "after_header": path,
            }
        if not module.check_mode:
            directory = os.path.dirname(path) or "."
            if not os.path.isdir(directory):
                module.fail_json(msg=f"{directory} does not exist; create it before the zone")
            fd, staged = tempfile.mkstemp(prefix=".bulkmail-zone-", dir=directory)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(plan.text)
            module.atomic_move(staged, path)

    file_args = module.load_file_common_arguments(params)
    if os.path.exists(path) or not module.check_mode:
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
