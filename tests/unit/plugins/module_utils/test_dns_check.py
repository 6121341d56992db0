"""The DNS checker against a dict-backed resolver: what an operator reads when a record is wrong."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.keys import public_key_b64
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.check import (
    check_domain,
    check_domains,
    expectations_from_model,
    failure_lines,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.records import (
    dkim_txt_value,
    mta_sts_policy_id,
    render_dmarc_record,
    render_mta_sts_policy,
    render_mta_sts_record,
    render_spf_record,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.report import (
    FAIL,
    PASS,
    WARN,
    Check,
    DomainReport,
    Expectations,
    LookupFailed,
    ProbeResult,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import (
    MtaSts,
    parse_dmarc,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from cryptography.hazmat.primitives.asymmetric import rsa

POOL_IP = "198.51.100.10"
PTR_OWNER = "10.100.51.198.in-addr.arpa"
DOMAIN = "example.test"
SELECTOR = "lab2026a"
DKIM_OWNER = f"{SELECTOR}._domainkey.{DOMAIN}"
STS = MtaSts(mode="testing", max_age=86400)
STS_POLICY = render_mta_sts_policy(STS, ["mta1.example.test"])

Records = dict[tuple[str, str], list[str]]
Probe = Callable[[str, Sequence[str]], ProbeResult]
SERVFAIL = object()  # a value in Records that makes the lookup fail


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def resolver(records: Mapping[tuple[str, str], object]) -> Callable[[str, str], list[str]]:
    def resolve(name: str, rdtype: str) -> list[str]:
        answer = records.get((name, rdtype), [])
        if answer is SERVFAIL:
            raise LookupFailed(name, rdtype, "SERVFAIL")
        assert isinstance(answer, list)
        return list(answer)

    return resolve


def lab_records(key: rsa.RSAPrivateKey) -> Records:
    """What the dns tier publishes for example.test, made by the collection's own builders."""
    dmarc = parse_dmarc({"policy": "none", "rua": f"mailto:dmarc@{DOMAIN}"}, "dmarc")
    return {
        (DOMAIN, "TXT"): [render_spf_record([POOL_IP])],
        (DKIM_OWNER, "TXT"): [dkim_txt_value(public_key_b64(key))],
        (f"_dmarc.{DOMAIN}", "TXT"): [render_dmarc_record(dmarc)],
        (DOMAIN, "MX"): ["10 mta1.example.test."],
        ("mta1.example.test", "A"): [POOL_IP],
        (PTR_OWNER, "PTR"): ["mta1.example.test."],
        (f"_mta-sts.{DOMAIN}", "TXT"): [render_mta_sts_record(STS_POLICY)],
        (f"mta-sts.{DOMAIN}", "A"): ["198.51.100.80"],
        (f"_smtp._tls.{DOMAIN}", "TXT"): [f"v=TLSRPTv1; rua=mailto:tls-reports@{DOMAIN}"],
    }


def expect(key: rsa.RSAPrivateKey | None = None, **overrides: object) -> Expectations:
    values: dict[str, object] = {
        "domain": DOMAIN,
        "pool_ips": (POOL_IP,),
        "dkim_selectors": (SELECTOR,),
        "dkim_public_keys": {SELECTOR: public_key_b64(key)} if key else {},
        "dmarc": parse_dmarc({"policy": "none", "rua": f"mailto:dmarc@{DOMAIN}"}, "dmarc"),
    }
    values.update(overrides)
    return Expectations(**values)  # type: ignore[arg-type]


def accepting(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
    """A report address's MX that takes RCPT TO."""
    return ProbeResult(250, "2.1.5 Ok", mx_hosts[0])


def run(records: Records, expectations: Expectations, probe: Probe = accepting) -> DomainReport:
    return check_domain(expectations, resolver(records), probe)


def only(report: DomainReport, name: str) -> Check:
    matches = [check for check in report.checks if check.name == name]
    assert len(matches) == 1, [check.name for check in report.checks]
    return matches[0]


def failed(report: DomainReport) -> list[str]:
    return [check.name for check in report.checks if check.failed]


# --- the lab as published passes ------------------------------------------------------------


def test_everything_published_passes(key: rsa.RSAPrivateKey) -> None:
    report = run(lab_records(key), expect(key))

    assert report.ok
    assert report.status == PASS, [c.as_dict() for c in report.checks if c.status != PASS]
    assert [check.name for check in report.checks] == [
        "spf.record",
        "spf.syntax",
        "spf.lookups",
        "spf.pool_ips",
        "spf.all",
        "dkim.lab2026a",
        "dmarc.record",
        "dmarc.syntax",
        "dmarc.policy",
        "dmarc.reports",
        "dmarc.alignment",
        "mx",
        f"ptr.{POOL_IP}",
        "mta_sts",
        "tls_rpt",
    ]
    assert only(report, "dkim.lab2026a").reason == "2048-bit rsa key; matches the private key"
    assert only(report, f"ptr.{POOL_IP}").reason == (
        "198.51.100.10 -> mta1.example.test -> 198.51.100.10"
    )
    assert "198.51.100.10 (198.51.100.10/32 in example.test)" in only(report, "spf.pool_ips").reason
    assert only(report, "spf.all").reason == "ends with -all: other addresses fail SPF"
    assert failure_lines([report]) == []


def test_report_is_plain_data_for_json(key: rsa.RSAPrivateKey) -> None:
    data = run(lab_records(key), expect(key)).as_dict()

    assert data["domain"] == DOMAIN
    assert data["ok"] is True
    check = data["checks"][0]
    assert set(check) == {"name", "status", "required", "reason", "fix", "subject", "details"}
    assert check["subject"] == DOMAIN


# --- DKIM ----------------------------------------------------------------------------------


def test_missing_dkim_selector_fails_with_where_and_what_to_publish(
    key: rsa.RSAPrivateKey,
) -> None:
    records = lab_records(key)
    del records[(DKIM_OWNER, "TXT")]

    report = run(records, expect(key))

    assert not report.ok
    assert failed(report) == ["dkim.lab2026a"]
    check = only(report, "dkim.lab2026a")
    assert check.reason == (
        "no DKIM key record at lab2026a._domainkey.example.test: mail signed with selector "
        "lab2026a fails DKIM, and DMARC then rests on SPF alone"
    )
    assert check.fix.startswith(
        "Publish the public key of selector lab2026a as TXT at lab2026a._domainkey.example.test"
    )


def test_second_selector_of_a_rotation_is_checked_too(key: rsa.RSAPrivateKey) -> None:
    report = run(lab_records(key), expect(key, dkim_selectors=(SELECTOR, "lab2026b")))

    assert failed(report) == ["dkim.lab2026b"]
    assert "no DKIM key record at lab2026b._domainkey.example.test" in (
        only(report, "dkim.lab2026b").reason
    )


def test_wrong_dkim_key_fails(key: rsa.RSAPrivateKey, other_key: rsa.RSAPrivateKey) -> None:
    records = lab_records(other_key)  # DNS publishes another key than the one that signs

    report = run(records, expect(key))

    assert failed(report) == ["dkim.lab2026a"]
    check = only(report, "dkim.lab2026a")
    assert check.reason == (
        "lab2026a._domainkey.example.test: the published key is not the public half of the "
        "private key of selector lab2026a, so mail signed with that key fails DKIM verification"
    )
    assert check.fix.startswith("Republish lab2026a._domainkey.example.test from the private key")
    assert check.details["bits"] == 2048
    assert check.details["matches_private_key"] is False


def test_without_the_private_key_only_the_record_is_checked(key: rsa.RSAPrivateKey) -> None:
    report = run(lab_records(key), expect(None))

    assert only(report, "dkim.lab2026a").status == PASS
    assert only(report, "dkim.lab2026a").reason == "2048-bit rsa key"


def test_revoked_dkim_key_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DKIM_OWNER, "TXT")] = ["v=DKIM1; k=rsa; p="]

    check = only(run(records, expect()), "dkim.lab2026a")

    assert check.status == FAIL
    assert "p= is empty: the key is revoked" in check.reason


def test_1024_bit_dkim_key_is_a_warning() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    records = lab_records(small)

    report = run(records, expect(small))

    assert report.ok
    check = only(report, "dkim.lab2026a")
    assert check.status == WARN
    assert "the key has 1024 bits; mailbox providers ask for 2048" in check.reason


def test_dkim_record_that_is_not_a_key(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DKIM_OWNER, "TXT")] = ["v=DKIM1; k=rsa; p=bm90IGEga2V5"]

    check = only(run(records, expect()), "dkim.lab2026a")

    assert check.status == FAIL
    assert "p= is not a DER-encoded RSA public key" in check.reason


# --- SPF -----------------------------------------------------------------------------------


def chain(records: Records, length: int) -> None:
    """example.test includes chain1.test, which includes chain2.test, ... chain<length>.test."""
    records[(DOMAIN, "TXT")] = [f"v=spf1 ip4:{POOL_IP} include:chain1.test -all"]
    for index in range(1, length + 1):
        nested = f" include:chain{index + 1}.test" if index < length else ""
        records[(f"chain{index}.test", "TXT")] = [f"v=spf1{nested} ~all"]


def test_spf_include_chain_past_ten_lookups_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    chain(records, 11)

    report = run(records, expect(key))

    assert failed(report) == ["spf.lookups"]
    check = only(report, "spf.lookups")
    assert check.reason.startswith(
        "the SPF record at example.test needs 11 DNS lookups, counting nested includes "
        "(include:chain1.test (in example.test), include:chain2.test (in chain1.test), "
    )
    assert check.reason.endswith(
        "RFC 7208 allows at most 10, beyond which receivers return permerror and SPF fails"
    )
    assert check.details["lookups"] == 11
    assert "ip4: ranges" in check.fix


def test_spf_include_chain_of_ten_lookups_passes(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    chain(records, 10)

    check = only(run(records, expect(key)), "spf.lookups")

    assert check.status == PASS
    assert check.reason == "10 of at most 10 DNS lookups"


def test_spf_include_loop_is_reported_not_followed_forever(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "TXT")] = [f"v=spf1 ip4:{POOL_IP} include:loop.test -all"]
    records[("loop.test", "TXT")] = [f"v=spf1 include:{DOMAIN} -all"]

    check = only(run(records, expect(key)), "spf.lookups")

    assert check.status == FAIL
    assert (
        "include:example.test in loop.test loops back to example.test "
        "(example.test -> loop.test -> example.test)"
    ) in check.reason


def test_spf_include_without_spf_record_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "TXT")] = [f"v=spf1 ip4:{POOL_IP} include:_spf.gone.test -all"]

    check = only(run(records, expect(key)), "spf.lookups")

    assert check.status == FAIL
    assert (
        "include:_spf.gone.test in example.test: _spf.gone.test publishes no SPF record; "
        "receivers return permerror"
    ) in check.reason


def test_two_spf_records_fail(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "TXT")] = [
        f"v=spf1 ip4:{POOL_IP} -all",
        "v=spf1 include:_spf.google.test ~all",
        "google-site-verification=abc",
    ]

    report = run(records, expect(key))

    assert failed(report) == ["spf.record"]
    check = only(report, "spf.record")
    assert check.reason == (
        "2 SPF records at example.test ('v=spf1 ip4:198.51.100.10 -all', "
        "'v=spf1 include:_spf.google.test ~all'); RFC 7208 3.2 makes that a permanent error "
        "(permerror) at every receiver, so SPF fails for all mail"
    )
    assert check.fix == "Merge them into one TXT record at example.test and delete the others."


def test_missing_spf_record_suggests_the_record_to_publish(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "TXT")] = ["google-site-verification=abc"]

    check = only(run(records, expect(key)), "spf.record")

    assert check.status == FAIL
    assert check.fix == "Publish one TXT record at example.test: 'v=spf1 ip4:198.51.100.10 -all'."


def test_pool_ip_not_covered_by_spf_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)

    report = run(records, expect(key, pool_ips=(POOL_IP, "198.51.100.11")))

    check = only(report, "spf.pool_ips")
    assert check.status == FAIL
    assert check.reason == (
        "198.51.100.11 is not covered by any ip4 mechanism of the SPF record at example.test: "
        "mail sent from it fails SPF"
    )
    assert check.fix.startswith("Add ip4:198.51.100.11 to the SPF record at example.test")


def test_pool_ip_covered_through_an_include_passes(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "TXT")] = ["v=spf1 include:_spf.example.test -all"]
    records[("_spf.example.test", "TXT")] = ["v=spf1 ip4:198.51.100.0/24 -all"]

    check = only(run(records, expect(key)), "spf.pool_ips")

    assert check.status == PASS
    assert "198.51.100.10 (198.51.100.0/24 in _spf.example.test)" in check.reason


@pytest.mark.parametrize(
    ("record", "status", "words"),
    [
        ("v=spf1 ip4:198.51.100.10 ~all", PASS, "ends with ~all: other addresses softfail SPF"),
        ("v=spf1 ip4:198.51.100.10 +all", FAIL, "passes mail from every address"),
        ("v=spf1 ip4:198.51.100.10 ?all", FAIL, "says nothing"),
        ("v=spf1 ip4:198.51.100.10", FAIL, "has no 'all' at the end"),
        ("v=spf1 -all ip4:198.51.100.10", FAIL, "receivers stop at 'all' and never read them"),
    ],
)
def test_spf_all(key: rsa.RSAPrivateKey, record: str, status: str, words: str) -> None:
    records = lab_records(key)
    records[(DOMAIN, "TXT")] = [record]

    check = only(run(records, expect(key)), "spf.all")

    assert check.status == status
    assert words in check.reason


# --- DMARC ---------------------------------------------------------------------------------


def test_dmarc_missing_fails_with_the_record_to_publish(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    del records[(f"_dmarc.{DOMAIN}", "TXT")]

    check = only(run(records, expect(key)), "dmarc.record")

    assert check.status == FAIL
    assert check.reason.startswith("no DMARC record at _dmarc.example.test")
    assert "'v=DMARC1; p=none; rua=mailto:dmarc@example.test'" in check.fix


def test_two_dmarc_records_fail(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none", "v=DMARC1; p=reject"]

    check = only(run(records, expect(key)), "dmarc.record")

    assert check.status == FAIL
    assert "2 DMARC records at _dmarc.example.test" in check.reason


def test_dmarc_policy_not_the_models_fails(key: rsa.RSAPrivateKey) -> None:
    wanted = parse_dmarc(
        {"policy": "quarantine", "pct": 25, "rua": f"mailto:dmarc@{DOMAIN}"}, "dmarc"
    )

    report = run(lab_records(key), expect(key, dmarc=wanted))

    check = only(report, "dmarc.policy")
    assert check.status == FAIL
    assert check.reason == (
        "the DMARC policy at _dmarc.example.test is not the model's: p=none is published, the "
        "model says p=quarantine; pct=100 is published, the model says pct=25"
    )
    assert "v=DMARC1; p=quarantine; pct=25; rua=mailto:dmarc@example.test" in check.fix


def test_dmarc_syntax_error_names_the_tag(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=block; pct=150"]

    check = only(run(records, expect(key)), "dmarc.syntax")

    assert check.status == FAIL
    assert check.reason == (
        "the DMARC record at _dmarc.example.test is invalid: p=block is not one of none, "
        "quarantine, reject; pct=150 is not a whole percentage from 0 to 100"
    )


def test_dmarc_without_rua_is_a_warning(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none"]

    report = run(records, expect(None, dmarc=None))

    assert report.ok
    assert only(report, "dmarc.reports").status == WARN


def test_dmarc_reports_to_another_domain_need_its_authorization(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none; rua=mailto:d@reports.test"]

    check = only(run(records, expect(None, dmarc=None)), "dmarc.reports")

    assert check.status == WARN
    assert check.fix == "Publish TXT 'v=DMARC1' at example.test._report._dmarc.reports.test."


# --- report addresses must receive mail ----------------------------------------------------


def answering(code: int | None, reply: str, stage: str = "RCPT TO") -> Probe:
    asked: list[tuple[str, tuple[str, ...]]] = []

    def probe(address: str, mx_hosts: Sequence[str]) -> ProbeResult:
        asked.append((address, tuple(mx_hosts)))
        return ProbeResult(code, reply, mx_hosts[0] if code is not None else "", stage)

    probe.asked = asked  # type: ignore[attr-defined]
    return probe


def test_a_report_address_whose_mx_accepts_it_passes(key: rsa.RSAPrivateKey) -> None:
    probe = answering(250, "2.1.5 Ok")
    records = lab_records(key)
    records[("example.test", "MX")] = ["20 mx2.example.test.", "10 mta1.example.test."]

    report = run(records, expect(key), probe)

    check = only(report, "dmarc.reports")
    assert check.status == PASS
    assert check.reason == (
        "aggregate reports to mailto:dmarc@example.test (mta1.example.test accepts it "
        "(250 2.1.5 Ok))"
    )
    assert only(report, "tls_rpt").reason == (
        "reports to mailto:tls-reports@example.test (mta1.example.test accepts it (250 2.1.5 Ok))"
    )
    # the MX hosts by preference, and the size limit of a DMARC URI is not part of the address
    assert probe.asked[0] == (  # type: ignore[attr-defined]
        "dmarc@example.test",
        ("mta1.example.test", "mx2.example.test"),
    )


def test_a_report_address_refused_with_5xx_fails_naming_the_reply(
    key: rsa.RSAPrivateKey,
) -> None:
    report = run(lab_records(key), expect(key), answering(550, "5.1.1 <dmarc@example.test>: no"))

    check = only(report, "dmarc.reports")
    assert check.status == FAIL and check.required
    assert check.reason == (
        "aggregate reports cannot be delivered: dmarc@example.test: mta1.example.test refuses "
        "it: RCPT TO answered 550 5.1.1 <dmarc@example.test>: no"
    )
    assert check.fix.startswith("Make each address receive mail")
    assert not report.ok
    assert failed(report) == ["dmarc.reports", "tls_rpt"]  # the TLS-RPT address is refused too


def test_a_report_address_deferred_with_4xx_is_a_warning(key: rsa.RSAPrivateKey) -> None:
    report = run(lab_records(key), expect(key), answering(451, "4.3.0 try later", "MAIL FROM:<>"))

    check = only(report, "dmarc.reports")
    assert check.status == WARN
    assert check.reason == (
        "aggregate reports: dmarc@example.test: mta1.example.test answered MAIL FROM:<> with "
        "451 4.3.0 try later: a temporary refusal, try later"
    )
    assert report.ok


def test_a_report_address_whose_mx_does_not_answer_fails(key: rsa.RSAPrivateKey) -> None:
    probe = answering(None, "mta1.example.test[198.51.100.10]: timed out")

    check = only(run(lab_records(key), expect(key), probe), "dmarc.reports")

    assert check.status == FAIL
    assert "no MX of example.test answered on port 25 (mta1.example.test[198.51.100.10]: " in (
        check.reason
    )


@pytest.mark.parametrize(
    ("mx", "address", "words"),
    [
        ([], [], "agency.test has no MX and no address: nobody receives mail for it"),
        (["0 ."], [], "agency.test publishes a null MX (RFC 7505): it accepts no mail"),
        (SERVFAIL, [], "the MX lookup of agency.test failed (SERVFAIL)"),
    ],
)
def test_a_report_domain_without_mx_fails_without_a_probe(
    key: rsa.RSAPrivateKey, mx: object, address: list[str], words: str
) -> None:
    records: dict[tuple[str, str], object] = dict(lab_records(key))
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none; rua=mailto:dmarc@agency.test"]
    records[(f"{DOMAIN}._report._dmarc.agency.test", "TXT")] = ["v=DMARC1"]
    records[("agency.test", "MX")] = mx
    records[("agency.test", "A")] = address
    probe = answering(250, "2.1.5 Ok")

    check = only(check_domain(expect(None, dmarc=None), resolver(records), probe), "dmarc.reports")

    assert check.status == FAIL
    assert check.reason == f"aggregate reports cannot be delivered: dmarc@agency.test: {words}"
    asked = [address for address, _hosts in probe.asked]  # type: ignore[attr-defined]
    assert "dmarc@agency.test" not in asked


def test_a_report_domain_without_mx_but_with_an_address_is_its_own_mx(
    key: rsa.RSAPrivateKey,
) -> None:
    records = lab_records(key)
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none; rua=mailto:d@example.test!10m"]
    del records[(DOMAIN, "MX")]
    records[(DOMAIN, "A")] = ["198.51.100.25"]
    probe = answering(251, "2.1.5 forwarded")

    check = only(run(records, expect(None, dmarc=None), probe), "dmarc.reports")

    assert check.status == PASS
    assert probe.asked[0] == ("d@example.test", (DOMAIN,))  # type: ignore[attr-defined]


def test_without_a_probe_the_reports_check_says_not_probed(key: rsa.RSAPrivateKey) -> None:
    report = check_domain(expect(key), resolver(lab_records(key)))

    assert only(report, "dmarc.reports").reason == (
        "aggregate reports to mailto:dmarc@example.test (MX mta1.example.test; not probed)"
    )
    assert only(report, "tls_rpt").reason == (
        "reports to mailto:tls-reports@example.test (MX mta1.example.test; not probed)"
    )
    assert report.status == PASS


def test_a_tls_rpt_https_destination_is_not_probed(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_smtp._tls.{DOMAIN}", "TXT")] = ["v=TLSRPTv1; rua=https://reports.example.test/t"]
    probe = answering(550, "5.1.1 no")

    check = only(run(records, expect(None, dmarc=None), probe), "tls_rpt")

    assert check.status == PASS
    assert check.reason == "reports to https://reports.example.test/t"


def test_an_unauthorized_destination_is_not_probed(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none; rua=mailto:d@reports.test"]
    probe = answering(550, "5.1.1 no")

    check = only(run(records, expect(None, dmarc=None), probe), "dmarc.reports")

    assert check.status == WARN  # receivers send nothing there, so nothing bounces
    assert ("d@reports.test", ("mta1.example.test",)) not in probe.asked  # type: ignore[attr-defined]


def test_check_domains_probes_a_shared_report_address_once(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records.update({(name.replace(DOMAIN, "shop.test"), t): v for (name, t), v in records.items()})
    records[("_dmarc.shop.test", "TXT")] = ["v=DMARC1; p=none; rua=mailto:dmarc@example.test"]
    records[("shop.test._report._dmarc.example.test", "TXT")] = ["v=DMARC1"]
    probe = answering(250, "2.1.5 Ok")

    check_domains([expect(key), expect(key, domain="shop.test")], resolver(records), probe)

    addresses = [address for address, _hosts in probe.asked]  # type: ignore[attr-defined]
    assert addresses.count("dmarc@example.test") == 1


# --- MX and PTR ----------------------------------------------------------------------------


def test_ptr_that_does_not_forward_confirm_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[("mta1.example.test", "A")] = ["198.51.100.99"]

    report = run(records, expect(key))

    assert f"ptr.{POOL_IP}" in failed(report)
    check = only(report, f"ptr.{POOL_IP}")
    assert check.reason == (
        "198.51.100.10 has PTR mta1.example.test, but mta1.example.test resolves to "
        "198.51.100.99, not 198.51.100.10: the reverse DNS is not forward-confirmed (FCrDNS), "
        "which receivers treat like no PTR"
    )
    assert check.fix == (
        "Set the A record of mta1.example.test to 198.51.100.10, or point the PTR of "
        "198.51.100.10 at a name whose A record is 198.51.100.10."
    )


def test_missing_ptr_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    del records[(PTR_OWNER, "PTR")]

    check = only(run(records, expect(key)), f"ptr.{POOL_IP}")

    assert check.status == FAIL
    assert check.reason.startswith("no PTR record for 198.51.100.10 (10.100.51.198.in-addr.arpa)")


def test_mx_target_without_address_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "MX")] = ["10 mta1.example.test.", "20 mta2.example.test."]

    check = only(run(records, expect(key)), "mx")

    assert check.status == FAIL
    assert check.reason == (
        "MX targets of example.test do not resolve: mta2.example.test (MX 20) has no A or AAAA "
        "record"
    )


def test_null_mx_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(DOMAIN, "MX")] = ["0 ."]

    check = only(run(records, expect(key)), "mx")

    assert check.status == FAIL
    assert "null MX (RFC 7505)" in check.reason


def test_return_path_domain_gets_its_own_spf_and_mx(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"bounce.{DOMAIN}", "MX")] = ["10 mta1.example.test."]

    report = run(records, expect(key, return_path_domain=f"bounce.{DOMAIN}"))

    assert failed(report) == ["return_path.spf.record"]
    assert only(report, "return_path.mx").status == PASS
    assert only(report, "return_path.spf.record").subject == "bounce.example.test"


# --- MTA-STS and TLS-RPT -------------------------------------------------------------------


def test_mta_sts_and_tls_rpt_absent_are_warnings(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    del records[(f"_mta-sts.{DOMAIN}", "TXT")]
    del records[(f"_smtp._tls.{DOMAIN}", "TXT")]

    report = run(records, expect(key))

    assert report.ok
    assert report.status == WARN
    assert only(report, "mta_sts").status == WARN
    assert only(report, "mta_sts").reason.startswith("no MTA-STS record at _mta-sts.example.test")
    assert only(report, "tls_rpt").status == WARN


def test_mta_sts_and_tls_rpt_absent_fail_when_the_model_asks(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    del records[(f"_mta-sts.{DOMAIN}", "TXT")]
    del records[(f"_smtp._tls.{DOMAIN}", "TXT")]

    report = run(records, expect(key, require_mta_sts=True, require_tls_rpt=True))

    assert failed(report) == ["mta_sts", "tls_rpt"]


def test_mta_sts_with_a_bad_id_and_no_policy_host(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_mta-sts.{DOMAIN}", "TXT")] = ["v=STSv1; id=2026-11-23"]
    del records[(f"mta-sts.{DOMAIN}", "A")]

    check = only(run(records, expect(key)), "mta_sts")

    assert check.status == WARN
    assert "id= must be 1 to 32 letters or digits" in check.reason
    assert "mta-sts.example.test has no address, so no sender can fetch the policy" in (
        check.reason
    )


def test_a_missing_mta_sts_record_is_fixed_with_the_id_the_dns_tier_derives(
    key: rsa.RSAPrivateKey,
) -> None:
    records = lab_records(key)
    del records[(f"_mta-sts.{DOMAIN}", "TXT")]

    check = only(run(records, expect(key, require_mta_sts=True, mta_sts=STS)), "mta_sts")

    assert check.failed
    policy_id = mta_sts_policy_id(STS_POLICY)
    assert len(policy_id) == 20
    assert check.fix == (
        f"Publish TXT 'v=STSv1; id={policy_id}' at _mta-sts.example.test (the dns tier derives "
        "the id from the policy, so it changes exactly when the policy does) and serve the "
        "policy at https://mta-sts.example.test/.well-known/mta-sts.txt."
    )


def test_without_the_model_the_fix_says_how_the_id_is_derived(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    del records[(f"_mta-sts.{DOMAIN}", "TXT")]

    check = only(run(records, expect(key)), "mta_sts")

    assert check.fix.startswith(
        "Publish TXT 'v=STSv1; id=<the first 20 hex digits of the SHA-256 of the policy "
        "file>' at _mta-sts.example.test"
    )


def test_an_mta_sts_id_that_is_not_the_policys_fails(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_mta-sts.{DOMAIN}", "TXT")] = ["v=STSv1; id=2026112301"]

    model = expect(key, require_mta_sts=True, mta_sts=STS)

    assert only(run(lab_records(key), model), "mta_sts").status == PASS
    check = only(run(records, model), "mta_sts")

    assert check.failed
    assert check.reason == (
        "_mta-sts.example.test: id=2026112301 is not the id of the policy the model implies "
        f"({mta_sts_policy_id(STS_POLICY)}): senders that cached an older policy keep it"
    )


def test_several_mta_sts_or_tls_rpt_records_are_named(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records[(f"_mta-sts.{DOMAIN}", "TXT")] *= 2
    records[(f"_smtp._tls.{DOMAIN}", "TXT")] *= 2

    report = run(records, expect(key))

    assert only(report, "mta_sts").reason == (
        "2 MTA-STS records at _mta-sts.example.test; RFC 8461 3.1 says senders then apply no policy"
    )
    assert only(report, "tls_rpt").reason == (
        "2 TLS-RPT records at _smtp._tls.example.test; senders then send no reports"
    )


# --- lookups that fail, several domains ----------------------------------------------------


def test_a_failed_lookup_is_a_failure_not_an_absence(key: rsa.RSAPrivateKey) -> None:
    records: dict[tuple[str, str], object] = dict(lab_records(key))
    records[(DKIM_OWNER, "TXT")] = SERVFAIL

    report = check_domain(expect(key), resolver(records), accepting)

    check = only(report, "dkim.lab2026a")
    assert check.status == FAIL
    assert check.reason.startswith(
        "the lookup of lab2026a._domainkey.example.test TXT failed (SERVFAIL)"
    )


def test_check_domains_asks_each_question_once(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    records.update({(name.replace(DOMAIN, "shop.test"), t): v for (name, t), v in records.items()})
    asked: list[tuple[str, str]] = []
    inner = resolver(records)

    def counting(name: str, rdtype: str) -> list[str]:
        asked.append((name, rdtype))
        return inner(name, rdtype)

    reports = check_domains([expect(key), expect(key, domain="shop.test")], counting, accepting)

    assert [report.domain for report in reports] == [DOMAIN, "shop.test"]
    assert asked.count((PTR_OWNER, "PTR")) == 1
    assert len(asked) == len(set(asked))


def test_failure_lines_carry_reason_and_fix(key: rsa.RSAPrivateKey) -> None:
    records = lab_records(key)
    del records[(DKIM_OWNER, "TXT")]

    lines = failure_lines([run(records, expect(key))])

    assert len(lines) == 1
    assert lines[0].startswith("example.test dkim.lab2026a: no DKIM key record at ")
    assert ". Fix: Publish the public key of selector lab2026a" in lines[0]


# --- expectations from the model -----------------------------------------------------------


def test_expectations_from_a_model_domain() -> None:
    raw = {
        "name": "example.test",
        "dkim_selectors": ["lab2026a", "lab2026b"],
        "dmarc": {"policy": "quarantine", "pct": 50, "rua": "mailto:dmarc@example.test"},
        "return_path_domain": "bounce.example.test",
        "mta_sts": {"mode": "enforce"},
    }

    got = expectations_from_model(raw, ["198.51.100.10"], {"example.test": {"lab2026a": "KEY"}})

    assert got.domain == "example.test"
    assert got.dkim_selectors == ("lab2026a", "lab2026b")
    assert got.dkim_public_keys == {"lab2026a": "KEY"}
    assert got.dmarc is not None and got.dmarc.pct == 50
    assert got.require_mta_sts is True
    assert got.mta_sts == MtaSts(mode="enforce")
    assert got.require_tls_rpt is False


def test_expectations_from_a_bad_model_domain_name_the_field() -> None:
    with pytest.raises(ModelError, match=r"^bulkmail_domains\[1\]\.dmarc\.policy: "):
        expectations_from_model(
            {"name": "shop.test", "dkim_selectors": ["s1"], "dmarc": {"policy": "block"}},
            path="bulkmail_domains[1]",
        )
    with pytest.raises(ModelError, match=r"^pool_ips\[0\]: "):
        expectations_from_model(
            {"name": "shop.test", "dkim_selectors": ["s1"], "dmarc": {"policy": "none"}},
            ["198.51.100"],
        )
