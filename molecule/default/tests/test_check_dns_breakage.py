"""The checker fails, with the right reason, when the lab's DNS does not match what is expected.

Nothing in the lab changes: `bulkmail check-dns` is asked to expect more than is published (a
DKIM selector that was never published, a pool address the SPF record and the reverse zone
do not know), which is what an operator sees after dropping a record by mistake.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from conftest import INVENTORY, REPO, SECRETS

DNS_PUBLIC = "198.51.100.53"
UNKNOWN_IP = "198.51.100.99"


def check_dns(*args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    run = subprocess.run(
        [str(REPO / ".venv" / "bin" / "bulkmail"), "check-dns", "--json", "--nameserver",
         DNS_PUBLIC, "--inventory", str(INVENTORY), "--key-store", str(SECRETS / "dkim"), *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    report = json.loads(run.stdout)
    (domain,) = report["domains"]
    return run.returncode, {check["name"]: check for check in domain["checks"]}


def test_the_published_lab_passes() -> None:
    code, checks = check_dns("example.test")
    assert code == 0, {n: c["reason"] for n, c in checks.items() if c["status"] == "fail"}


def test_a_selector_that_is_not_published_fails_with_its_name() -> None:
    code, checks = check_dns("--selector", "lab2026a", "--selector", "gone2026a", "example.test")
    assert code == 1
    assert checks["dkim.lab2026a"]["status"] == "pass"
    failed = checks["dkim.gone2026a"]
    assert failed["status"] == "fail"
    assert failed["reason"].startswith("no DKIM key record at gone2026a._domainkey.example.test")
    assert "remove gone2026a from dkim_selectors" in failed["fix"]


def test_a_pool_address_outside_spf_and_reverse_dns_fails_both() -> None:
    code, checks = check_dns("--pool-ip", "198.51.100.10", "--pool-ip", UNKNOWN_IP, "example.test")
    assert code == 1
    spf = checks["spf.pool_ips"]
    assert spf["status"] == "fail"
    assert spf["reason"].startswith(f"{UNKNOWN_IP} is not covered by any ip4 mechanism")
    assert checks["ptr.198.51.100.10"]["status"] == "pass"
    ptr = checks[f"ptr.{UNKNOWN_IP}"]
    assert ptr["status"] == "fail"
    assert ptr["reason"].startswith(f"no PTR record for {UNKNOWN_IP}")
