"""The host image's prefetched packages cover what the roles installed.

lab/images/host/prefetch-packages is a download hint, not a second list of what the roles
install: the roles stay the truth. When a role starts installing a package the hint lacks,
the converge only waits for the mirror again; this test says which package to add.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import lab_host

HOSTS = ("smtp1", "smtp2", "dns1", "dns2", "db1", "web1")


def listed(host: Any, path: str) -> set[str]:
    text = host.check_output("cat %s", path)
    return {line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"}


@pytest.mark.parametrize("name", HOSTS)
def test_every_package_a_role_installed_was_prefetched(name: str) -> None:
    host = lab_host(name)
    installed = set(host.check_output("apt-mark showmanual").split())
    base = listed(host, "/usr/share/lab-base-packages")
    prefetched = listed(host, "/usr/share/lab-prefetch-packages")
    missing = sorted(installed - base - prefetched)
    assert not missing, (
        f"{name}: the roles installed {missing}, which lab/images/host/prefetch-packages "
        "does not list: add them there"
    )
