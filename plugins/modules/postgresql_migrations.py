#!/usr/bin/python
# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgresql_migrations
short_description: Apply numbered SQL migration files to a PostgreSQL database, once each
version_added: 0.1.0
description:
  - Reads C(NNNN_name.sql) files from a directory on the managed host and applies those not yet
    recorded in a tracking table, in version order, each in its own transaction together with
    its tracking row.
  - Refuses to run when an applied file changed (checksum), was renamed or removed, or when a
    new file is numbered before one already applied; the error names the file.
  - Connects with psycopg 3 over the local socket, normally as C(postgres) with peer
    authentication.
author:
  - bulkmail.infra developers (@bulkmail)
options:
  path:
    description: Directory on the managed host holding the migration files. Files not ending in
      C(.sql) are ignored.
    type: path
    required: true
  db:
    description: Database to migrate.
    type: str
    required: true
    aliases: [database]
  login_user:
    description: Database user to connect as; it owns the tracking table.
    type: str
    default: postgres
  login_unix_socket:
    description: Directory of the server's Unix socket.
    type: path
    default: /var/run/postgresql
  port:
    description: Server port (selects the socket file).
    type: int
    default: 5432
  session_role:
    description:
      - Role each migration runs as (C(SET LOCAL ROLE)), so the objects it creates belong to
        that role rather than to O(login_user).
    type: str
  table:
    description: Name of the tracking table (in the connecting user's default schema).
    type: str
    default: schema_migrations
requirements:
  - psycopg >= 3.1 on the managed host (Debian package C(python3-psycopg))
attributes:
  check_mode:
    description: Can run in check_mode and predict changes without touching the target.
    support: full
    details: Lists the pending files without applying them.
  diff_mode:
    description: Returns what changed (or would change in check_mode) in diff mode.
    support: full
    details: Before and after are the lists of applied files.
notes:
  - A file must not contain C(BEGIN)/C(COMMIT); statements that cannot run inside a transaction
    (C(CREATE INDEX CONCURRENTLY)) are not supported.
"""

EXAMPLES = r"""
- name: Apply the bulkmail schema
  bulkmail.infra.postgresql_migrations:
    path: /usr/local/share/bulkmail/migrations
    db: bulkmail
    session_role: bulkmail_owner

- name: List pending migrations without applying them
  bulkmail.infra.postgresql_migrations:
    path: /usr/local/share/bulkmail/migrations
    db: bulkmail
  check_mode: true
  register: pending_migrations
"""

RETURN = r"""
applied:
  description: Files applied by this run, in order.
  returned: always
  type: list
  elements: str
  sample: [0001_initial.sql]
pending:
  description: Files still pending after this run (in check mode, what would be applied).
  returned: always
  type: list
  elements: str
  sample: []
version:
  description: Highest applied version after this run (in check mode, before it); null when none.
  returned: always
  type: int
  sample: 1
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.migration_files import (
    discover_migrations,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.postgresql.migrations import (
    MigrationApplyError,
    MigrationError,
    run_migrations,
)

try:
    import psycopg
except ImportError:
    psycopg = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()
else:
    PSYCOPG_IMPORT_ERROR = None


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "db": {"type": "str", "required": True, "aliases": ["database"]},
            "login_user": {"type": "str", "default": "postgres"},
            "login_unix_socket": {"type": "path", "default": "/var/run/postgresql"},
            "port": {"type": "int", "default": 5432},
            "session_role": {"type": "str"},
            "table": {"type": "str", "default": "schema_migrations"},
        },
        supports_check_mode=True,
    )
    if psycopg is None:
        module.fail_json(
            msg=missing_required_lib("psycopg (Debian: python3-psycopg)"),
            exception=PSYCOPG_IMPORT_ERROR,
        )
    params = module.params
    try:
        migrations = discover_migrations(params["path"])
    except MigrationError as exc:
        module.fail_json(msg=str(exc), applied=[], pending=[], version=None)

    try:
        conn = psycopg.connect(
            dbname=params["db"],
            user=params["login_user"],
            host=params["login_unix_socket"],
            port=params["port"],
            autocommit=True,
            application_name="ansible postgresql_migrations",
        )
    except psycopg.OperationalError as exc:
        if module.check_mode and "does not exist" in str(exc):
            # First run in check mode: the database would be created by an earlier task.
            module.exit_json(
                changed=bool(migrations),
                applied=[],
                pending=[m.filename for m in migrations],
                version=None,
            )
        module.fail_json(msg=f"cannot connect to database {params['db']}: {exc}".strip())

    try:
        with conn:
            result = run_migrations(
                conn,
                migrations,
                table=params["table"],
                session_role=params["session_role"],
                check_mode=module.check_mode,
            )
    except MigrationApplyError as exc:
        module.fail_json(msg=str(exc), applied=exc.applied, pending=[], version=None)
    except MigrationError as exc:
        module.fail_json(msg=str(exc), applied=[], pending=[], version=None)

    would_apply = result.pending if module.check_mode else result.applied
    after = result.before + would_apply
    module.exit_json(
        changed=bool(would_apply),
        applied=result.applied,
        pending=result.pending,
        version=result.current_version,
        diff={
            "before": "".join(f"{name}\n" for name in result.before),
            "after": "".join(f"{name}\n" for name in after),
            "before_header": f"{params['db']}.{params['table']}",
            "after_header": f"{params['db']}.{params['table']}",
        },
    )


if __name__ == "__main__":
    main()
