"""The outreach package is pure logic too: no I/O, no Ansible, the standard library only.

test_pure_wall.py's list of packages is the lead's to extend; until it names `outreach`,
this applies the same check, and also refuses any third-party import (the dispatcher and the
policy service on Debian 12 import this package as `bulkmail.logic.outreach`).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from test_pure_wall import MODULE_UTILS, wall_breaches

OUTREACH = MODULE_UTILS / "outreach"


def sources() -> list[Path]:
    return sorted(OUTREACH.rglob("*.py"))


def test_outreach_does_no_io_and_imports_no_ansible() -> None:
    breaches = []
    for path in sources():
        breaches += wall_breaches(path.read_text(encoding="utf-8"), path.name)
    assert sources() and not breaches, breaches


def test_outreach_imports_the_standard_library_and_its_siblings_only() -> None:
    foreign = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            foreign += [
                f"{path.name}: {name}"
                for name in names
                if name.split(".")[0] not in sys.stdlib_module_names
            ]
    assert not foreign, foreign
