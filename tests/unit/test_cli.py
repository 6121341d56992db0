"""`bulkmail check-dns`: arguments, expectations files, output and exit status, with fake DNS."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from bulkmail.logic.dkim.keys import private_key_pem, public_key_b64
from bulkmail.logic.dns.records import dkim_txt_value
from bulkmail.logic.dns.report import LookupFailed, ProbeResult
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkmail import check_dns as check_dns_command
from bulkmail.cli import build_parser, main

POOL_IP = "198.51.100.10"
DOMAINS = ("example.test", "shop.test")

Records = dict[tuple[str, str], list[str]]


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def published(key: rsa.RSAPrivateKey, dmarc: dict[str, str] | None = None) -> Records:
    """The lab's two domains as the dns tier publishes them."""
    policies = dmarc or {"example.test": "none", "shop.test": "reject"}
    records: Records = {
        ("mta1.example.test", "A"): [POOL_IP],
        ("10.100.51.198.in-addr.arpa", "PTR"): ["mta1.example.test."],
    }
    for domain in DOMAINS:
        records[(domain, "TXT")] = [f"v=spf1 ip4:{POOL_IP} -all"]
        records[(f"lab2026a._domainkey.{domain}", "TXT")] = [dkim_txt_value(public_key_b64(key))]
        records[(f"_dmarc.{domain}", "TXT")] = [
            f"v=DMARC1; p={policies[domain]}; rua=mailto:dmarc@{domain}"
        ]
        records[(domain, "MX")] = ["10 mta1.example.test."]
    return records


def fake(records: Records) -> Callable[[str, str], list[str]]:
    def resolve(name: str, rdtype: str) -> list[str]:
        if name == "servfail.test":
            raise LookupFailed(name, rdtype, "SERVFAIL")
        return list(records.get((name, rdtype), []))

    return resolve


LAB_FLAGS = ["--pool-ip", POOL_IP, "--selector", "lab2026a"]

MODEL_YAML = """\
bulkmail_domains:
  - name: example.test
    dkim_selectors: [lab2026a]
    dmarc: {policy: none, rua: mailto:dmarc@example.test}
  - name: shop.test
    dkim_selectors: [lab2026a]
    dmarc: {policy: reject, rua: mailto:dmarc@shop.test}
bulkmail_ip_pools:
  default: [198.51.100.10]
"""


def accepting(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
    """A report address's MX that takes RCPT TO (the lab's, when its report mailbox exists)."""
    return ProbeResult(250, "2.1.5 Ok", mx_hosts[0])


def check_dns(
    argv: list[str],
    records: Records,
    capsys: pytest.CaptureFixture[str],
    probe: Callable[[str, Sequence[str]], ProbeResult] = accepting,
) -> tuple[int, str, str]:
    """The command as `bulkmail check-dns` parses it, with fake DNS and a fake SMTP probe."""
    args = build_parser().parse_args(["check-dns", *argv])
    code = check_dns_command.run(args, resolve=fake(records), probe=probe)
    out, err = capsys.readouterr()
    return code, out, err


# --- output and exit status ----------------------------------------------------------------


def test_table_by_default_and_exit_0_when_required_checks_pass(
    key: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = check_dns([*DOMAINS, *LAB_FLAGS], published(key), capsys)

    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["DOMAIN", "CHECK", "STATUS", "REASON", "/", "FIX"]
    assert lines[1].split()[:3] == ["example.test", "spf.record", "pass"]
    assert any(line.split()[:3] == ["shop.test", "dkim.lab2026a", "pass"] for line in lines)
    # MTA-STS and TLS-RPT are not published: warnings, with their fix, but no failure
    warn = next(line for line in lines if line.split()[:3] == ["example.test", "mta_sts", "WARN"])
    assert warn.endswith("(optional)")
    assert lines[lines.index(warn) + 1].strip().startswith("fix: Publish TXT 'v=STSv1;")
    assert lines[-2:] == [
        "example.test: WARN: required checks pass, 2 warning(s)",
        "shop.test: WARN: required checks pass, 2 warning(s)",
    ]


def test_exit_1_and_the_fix_when_a_required_check_fails(
    key: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    records = published(key)
    del records[("lab2026a._domainkey.shop.test", "TXT")]

    code, out, _err = check_dns([*DOMAINS, *LAB_FLAGS], records, capsys)

    assert code == 1
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("shop.test") and "dkim.lab2026a" in line)
    assert row.split()[2] == "FAIL"
    assert "no DKIM key record at lab2026a._domainkey.shop.test" in row
    assert (
        lines[lines.index(row) + 1]
        .strip()
        .startswith("fix: Publish the public key of selector lab2026a")
    )
    assert "shop.test: FAIL: 1 required check(s) failed, 2 warning(s)" in lines


def test_json_output(key: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]) -> None:
    records = published(key)
    records[("example.test", "TXT")].append("v=spf1 -all")

    code, out, _err = check_dns(["example.test", "--json", *LAB_FLAGS], records, capsys)

    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    [domain] = data["domains"]
    assert domain["domain"] == "example.test"
    assert domain["status"] == "fail"
    spf = domain["checks"][0]
    assert spf["name"] == "spf.record"
    assert spf["status"] == "fail"
    assert spf["required"] is True
    assert spf["reason"].startswith("2 SPF records at example.test")
    assert spf["fix"] == "Merge them into one TXT record at example.test and delete the others."


def test_a_lookup_that_fails_is_reported_per_check(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = check_dns(["servfail.test", "--json"], {}, capsys)

    assert code == 1
    checks = json.loads(out)["domains"][0]["checks"]
    assert checks[0]["reason"].startswith("the lookup of servfail.test TXT failed (SERVFAIL)")


def test_without_expectations_what_cannot_be_checked_is_a_warning(
    key: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _err = check_dns(["example.test", "--json"], published(key), capsys)

    assert code == 0
    checks = {c["name"]: c for c in json.loads(out)["domains"][0]["checks"]}
    assert checks["dkim"]["status"] == "warn"
    assert "no DKIM selectors given" in checks["dkim"]["reason"]
    assert checks["ptr"]["status"] == "warn"
    assert checks["spf.pool_ips"]["status"] == "warn"


def test_a_report_address_that_refuses_mail_fails_the_domain(
    key: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    def refusing(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
        return ProbeResult(550, "5.1.1 User unknown", mx_hosts[0])

    code, out, _err = check_dns(
        ["example.test", "--json", *LAB_FLAGS], published(key), capsys, refusing
    )

    assert code == 1
    reports = next(
        c for c in json.loads(out)["domains"][0]["checks"] if c["name"] == "dmarc.reports"
    )
    assert reports["status"] == "fail"
    assert reports["reason"] == (
        "aggregate reports cannot be delivered: dmarc@example.test: mta1.example.test refuses it: "
        "RCPT TO answered 550 5.1.1 User unknown"
    )


def test_no_probe_looks_up_the_mx_only_and_says_so(
    key: rsa.RSAPrivateKey, capsys: pytest.CaptureFixture[str]
) -> None:
    def unreachable(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
        raise AssertionError("--no-probe must not probe")

    code, out, _err = check_dns(
        ["example.test", "--json", "--no-probe", *LAB_FLAGS], published(key), capsys, unreachable
    )

    assert code == 0
    reports = next(
        c for c in json.loads(out)["domains"][0]["checks"] if c["name"] == "dmarc.reports"
    )
    assert reports["reason"] == (
        "aggregate reports to mailto:dmarc@example.test (MX mta1.example.test; not probed)"
    )


# --- where expectations come from ----------------------------------------------------------


def test_expect_file_gives_every_model_domain_and_its_dmarc_policy(
    key: rsa.RSAPrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect = tmp_path / "model.yml"
    expect.write_text(MODEL_YAML.replace("policy: reject", "policy: quarantine"))

    code, out, _err = check_dns(["--expect", str(expect), "--json"], published(key), capsys)

    assert code == 1
    domains = json.loads(out)["domains"]
    assert [d["domain"] for d in domains] == list(DOMAINS)
    assert domains[0]["ok"] is True
    policy = next(c for c in domains[1]["checks"] if c["name"] == "dmarc.policy")
    assert policy["reason"] == (
        "the DMARC policy at _dmarc.shop.test is not the model's: p=reject is published, the "
        "model says p=quarantine"
    )
    ptr = next(c for c in domains[0]["checks"] if c["name"] == f"ptr.{POOL_IP}")
    assert ptr["status"] == "pass"  # pool addresses from bulkmail_ip_pools


def test_expect_file_in_json_and_flags_win(
    key: rsa.RSAPrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect = tmp_path / "model.json"
    expect.write_text(
        json.dumps(
            {
                "bulkmail_domains": [
                    {"name": "example.test", "dkim_selectors": ["old"], "dmarc": {"policy": "none"}}
                ],
                "bulkmail_ip_pools": {"default": ["198.51.100.99"]},
            }
        )
    )

    code, out, _err = check_dns(
        ["example.test", "--expect", str(expect), "--json", *LAB_FLAGS], published(key), capsys
    )

    assert code == 0
    names = [c["name"] for c in json.loads(out)["domains"][0]["checks"]]
    assert "dkim.lab2026a" in names and "dkim.old" not in names
    assert f"ptr.{POOL_IP}" in names and "ptr.198.51.100.99" not in names


def test_inventory_reads_group_vars_all_and_skips_templates_and_vault(
    key: rsa.RSAPrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    all_vars = tmp_path / "inventory" / "group_vars" / "all"
    all_vars.mkdir(parents=True)
    (all_vars / "bulkmail.yml").write_text(
        MODEL_YAML + 'bulkmail_dkim_key_store: "{{ bulkmail_secret_dir }}/dkim"\n'
    )
    (all_vars / "vault.yml").write_text(
        "bulkmail_db_app_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6162\n"
    )

    code, out, err = check_dns(
        ["--inventory", str(tmp_path / "inventory"), "--json"], published(key), capsys
    )

    assert err == ""
    assert code == 0
    assert [d["domain"] for d in json.loads(out)["domains"]] == list(DOMAINS)


def test_key_store_makes_a_wrong_published_key_fail(
    key: rsa.RSAPrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signing = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "example.test").mkdir()
    (tmp_path / "example.test" / "lab2026a.private").write_bytes(private_key_pem(signing))

    code, out, _err = check_dns(
        ["example.test", *LAB_FLAGS, "--key-store", str(tmp_path), "--json"],
        published(key),
        capsys,
    )

    assert code == 1
    dkim = next(c for c in json.loads(out)["domains"][0]["checks"] if c["name"] == "dkim.lab2026a")
    assert "the published key is not the public half of the private key" in dkim["reason"]


# --- usage errors: exit 2 ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "name at least one domain, or give --expect/--inventory with bulkmail_domains"),
        (["example.test", "--pool-ip", "198.51.100"], "--pool-ip[0]: '198.51.100' is not a valid"),
        (["example..test"], "DOMAIN[0]: 'example..test' is not a valid domain name"),
        (["example.test", "--selector", "bad_selector!"], "--selector[0]: "),
        (["--expect", "/nonexistent/model.yml"], "cannot read /nonexistent/model.yml"),
        (["--inventory", "/nonexistent"], "/nonexistent has no group_vars/all.yml"),
    ],
)
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = check_dns(argv, {}, capsys)

    assert code == 2
    assert out == ""
    assert err.startswith("bulkmail check-dns: error: ")
    assert message in err


def test_model_errors_in_the_expect_file_name_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect = tmp_path / "model.yml"
    expect.write_text(MODEL_YAML.replace("policy: reject", "policy: block"))

    code, _out, err = check_dns(["--expect", str(expect)], {}, capsys)

    assert code == 2
    assert "bulkmail_domains[1].dmarc.policy: 'block' is not one of none, quarantine, reject" in err


def test_unknown_option_is_argparse_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["check-dns", "example.test", "--frobnicate"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_python_dash_m_bulkmail_is_the_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bulkmail", "check-dns", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0
    assert "usage: bulkmail check-dns" in result.stdout


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    """`bulkmail --version` names the version pyproject.toml gave the installed package."""
    from importlib import metadata

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"bulkmail {metadata.version('bulkmail')}\n"
