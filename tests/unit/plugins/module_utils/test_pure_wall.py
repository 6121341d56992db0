"""The pure-logic wall: module_utils' pure packages import no Ansible and do no I/O.

Why: docs/decisions.md, "The pure-logic wall". What does I/O lives in module_utils/adapters/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

MODULE_UTILS = Path(__file__).parents[4] / "plugins" / "module_utils"
PURE_PACKAGES = ("model", "dns", "postfix", "dkim", "postgresql", "grafana", "feedback", "outreach")
# Top-level modules that mean Ansible, the file system, processes or sockets.
FORBIDDEN_MODULES = frozenset(
    {"ansible", "os", "socket", "tempfile", "shutil", "subprocess", "pathlib"}
)
# dnspython's network halves; its parsing modules would be data, but nothing here needs them.
FORBIDDEN_DOTTED = ("dns.resolver", "dns.query")
FORBIDDEN_CALLS = frozenset({"open"})


def _forbidden_module(name: str) -> bool:
    if name.split(".")[0] in FORBIDDEN_MODULES:
        return True
    return any(name == dotted or name.startswith(f"{dotted}.") for dotted in FORBIDDEN_DOTTED)


def wall_breaches(source: str, filename: str) -> list[str]:
    """`file:line: what` for every forbidden import or call in `source`."""
    breaches = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from dns import resolver` imports dns.resolver
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            breaches.append(f"{filename}:{node.lineno}: calls {node.func.id}()")
            continue
        else:
            continue
        for name in names:
            if _forbidden_module(name):
                breaches.append(f"{filename}:{node.lineno}: imports {name}")
                break
    return breaches


def test_every_pure_package_is_there() -> None:
    for package in PURE_PACKAGES:
        assert (MODULE_UTILS / package / "__init__.py").is_file(), package


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_do_no_io_and_import_no_ansible(package: str) -> None:
    breaches = []
    for path in sorted((MODULE_UTILS / package).rglob("*.py")):
        name = str(path.relative_to(MODULE_UTILS.parents[1]))
        breaches += wall_breaches(path.read_text(encoding="utf-8"), name)
    assert not breaches, "move this I/O to plugins/module_utils/adapters/:\n" + "\n".join(breaches)


@pytest.mark.parametrize(
    ("source", "breach"),
    [
        ("import os\n", "x.py:1: imports os"),
        ("import os.path as p\n", "x.py:1: imports os.path"),
        ("from pathlib import Path\n", "x.py:1: imports pathlib"),
        ("def f():\n    import dns.resolver\n", "x.py:2: imports dns.resolver"),
        ("from dns import query\n", "x.py:1: imports dns.query"),
        (
            "from ansible.module_utils.basic import AnsibleModule\n",
            "x.py:1: imports ansible.module_utils.basic",
        ),
        ("text = open('f').read()\n", "x.py:1: calls open()"),
    ],
)
def test_the_wall_names_the_file_and_line(source: str, breach: str) -> None:
    assert wall_breaches(source, "x.py") == [breach]


def test_relative_imports_and_dns_parsing_are_allowed() -> None:
    source = "from ..dns.report import Check\nfrom . import os_names\nimport dns.name\n"
    assert wall_breaches(source, "x.py") == []
