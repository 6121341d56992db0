"""Zone files: what named loads, and a serial that moves only when a record does."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.zone_file import (
    Soa,
    next_serial,
    normalize_record,
    parse_serial,
    plan_zone_file,
    quote_txt,
    render_zone,
    rname_from_email,
    soa_from_mapping,
    txt_strings,
    without_serial,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError

SOA = Soa(mname="ns1.example.com.", rname="hostmaster.example.com.")
TODAY = datetime.date(2026, 11, 23)
RECORDS: list[dict[str, Any]] = [
    {"name": "@", "type": "NS", "value": "ns1.example.com.", "ttl": 3600},
    {"name": "@", "type": "MX", "value": "10 mta1.example.com.", "ttl": 3600},
    {"name": "@", "type": "TXT", "value": ["v=spf1 ip4:198.51.100.10 -all"], "ttl": 3600},
    {"name": "s1._domainkey", "type": "TXT", "value": ["a" * 255, "b" * 40], "ttl": 300},
    {"name": "mta1", "type": "A", "value": "198.51.100.10", "ttl": 3600},
    {"name": "ns1", "type": "A", "value": "198.51.100.53", "ttl": 3600},
]
# Types only extra_zones brings: named-checkzone must load them too.
EXTRA_TYPES: list[dict[str, Any]] = [
    {"name": "@", "type": "CAA", "value": '0 issue "letsencrypt.org"', "ttl": 3600},
    {"name": "_sip._tcp", "type": "SRV", "value": "10 5 5060 mta1.example.com.", "ttl": 3600},
]


def test_render_writes_origin_ttl_soa_and_records() -> None:
    text = render_zone("example.com", SOA, 2026112301, RECORDS, 3600)
    lines = text.splitlines()
    assert "$ORIGIN example.com." in lines
    assert "$TTL 3600" in lines
    assert "@ IN SOA ns1.example.com. hostmaster.example.com. (" in " ".join(text.split())
    assert parse_serial(text) == 2026112301
    assert " ".join(lines[-1].split()) == "ns1 3600 IN A 198.51.100.53"
    assert f'300 IN TXT "{"a" * 255}" "{"b" * 40}"' in " ".join(text.split())


def test_txt_strings_split_at_255_bytes() -> None:
    assert txt_strings("x" * 600) == ["x" * 255, "x" * 255, "x" * 90]
    assert txt_strings(["short", "y" * 256]) == ["short", "y" * 255, "y"]


def test_txt_quoting_escapes_quotes_backslashes_and_non_ascii() -> None:
    assert quote_txt('say "hi" \\ ok') == '"say \\"hi\\" \\\\ ok"'
    assert quote_txt("café") == '"caf\\195\\169"'


@pytest.mark.parametrize(
    ("text", "serial"),
    [
        ("@ IN SOA ns1. host. ( 2026010100 ; serial\n 1 2 3 4 )", 2026010100),
        ("@ 3600 IN SOA ns1.x. h.x. 7 3600 600 86400 300", 7),
        ("@ IN soa ns1.x. h.x. (\n ; a comment\n 42 ; serial\n 1 2 3 4 )", 42),
        ("; no soa here\n@ IN A 192.0.2.1", None),
        ("", None),
    ],
)
def test_parse_serial_reads_ours_and_hand_written_files(text: str, serial: int | None) -> None:
    assert parse_serial(text) == serial


def test_without_serial_hides_only_the_serial() -> None:
    one = render_zone("example.com", SOA, 1, RECORDS)
    two = render_zone("example.com", SOA, 2, RECORDS)
    assert one != two
    assert without_serial(one) == without_serial(two)


@pytest.mark.parametrize(
    ("previous", "serial"),
    [
        (None, 2026112300),
        (2026010105, 2026112300),
        (2026112300, 2026112301),
        (2026112399, 2026112400),
        (2027010100, 2027010101),  # a serial from the future still only goes up
        (7, 2026112300),
    ],
)
def test_next_serial_is_yyyymmddnn_and_always_higher(previous: int | None, serial: int) -> None:
    assert next_serial(previous, TODAY) == serial


def test_next_serial_refuses_to_wrap_the_32_bit_space() -> None:
    with pytest.raises(ModelError, match=r"^serial: 4294967296 exceeds the 32-bit SOA serial"):
        next_serial(2**32 - 1, TODAY)


def test_a_new_zone_gets_todays_first_serial() -> None:
    plan = plan_zone_file(None, "example.com", SOA, RECORDS, 3600, TODAY)
    assert (plan.changed, plan.serial, plan.previous_serial) == (True, 2026112300, None)


def test_an_unchanged_zone_keeps_its_file_and_serial() -> None:
    existing = render_zone("example.com", SOA, 2026010107, RECORDS, 3600)
    plan = plan_zone_file(existing, "example.com", SOA, RECORDS, 3600, TODAY)
    assert (plan.changed, plan.serial, plan.text) == (False, 2026010107, existing)


def test_a_changed_record_bumps_the_serial() -> None:
    existing = render_zone("example.com", SOA, 2026112305, RECORDS, 3600)
    records = [*RECORDS, {"name": "mta2", "type": "A", "value": "198.51.100.11", "ttl": 3600}]
    plan = plan_zone_file(existing, "example.com", SOA, records, 3600, TODAY)
    assert (plan.changed, plan.serial, plan.previous_serial) == (True, 2026112306, 2026112305)
    assert "mta2" in plan.text


def test_a_changed_soa_parameter_bumps_the_serial() -> None:
    existing = render_zone("example.com", SOA, 2026112305, RECORDS, 3600)
    soa = Soa(mname=SOA.mname, rname=SOA.rname, minimum=60)
    assert plan_zone_file(existing, "example.com", soa, RECORDS, 3600, TODAY).changed


def test_a_hand_written_file_is_replaced_above_its_serial() -> None:
    existing = "@ IN SOA ns1.example.com. h.example.com. 2030010100 1 2 3 4\n@ IN NS ns1\n"
    plan = plan_zone_file(existing, "example.com", SOA, RECORDS, 3600, TODAY)
    assert (plan.changed, plan.serial) == (True, 2030010101)


def test_named_checkzone_loads_the_rendered_zone(tmp_path: Path) -> None:
    # `make unit` installs it (tests/bin/ensure-unit-tools); a plain pytest run says so.
    assert shutil.which("named-checkzone"), "needs named-checkzone: apt-get install bind9-utils"
    path = tmp_path / "db.example.com"
    path.write_text(render_zone("example.com", SOA, 2026112300, RECORDS + EXTRA_TYPES, 3600))
    result = subprocess.run(
        ["named-checkzone", "-i", "local", "example.com", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "loaded serial 2026112300" in result.stdout


# --- records from the inventory ------------------------------------------------------------


def test_normalize_record_canonicalises() -> None:
    assert normalize_record(
        {"name": "www.example.com.", "type": "mx", "value": "010 mx.example.com."},
        "example.com",
        "r",
        3600,
    ) == {"name": "www", "type": "MX", "value": "10 mx.example.com.", "ttl": 3600}
    assert normalize_record({"name": "*", "type": "TXT", "value": "x"}, "e.com", "r") == {
        "name": "*",
        "type": "TXT",
        "value": ["x"],
    }
    assert normalize_record({"name": "10", "type": "PTR", "value": "m.e.com."}, "z.arpa", "r")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"name": "", "type": "A", "value": "192.0.2.1"},
         "r.name: '' is not a record name; use '@' for the zone apex"),
        ({"name": "a b", "type": "A", "value": "192.0.2.1"},
         "r.name: 'a b' is not a valid domain name: label 'a b' may contain only letters, "
         "digits, hyphens and underscores"),
        ({"name": "@", "type": "AAAA", "value": "192.0.2.1"},
         "r.value: '192.0.2.1' is not a valid IPv6 address"),
        ({"name": "@", "type": "TXT", "value": 5},
         "r.value: 5 is not a string or a list of strings"),
        ({"name": "@", "type": "A", "value": "192.0.2.1", "ttl": -1},
         "r.ttl: -1 is not a number of seconds"),
        ({"name": "@", "type": "A", "value": "192.0.2.1", "class": "IN"},
         "r: unknown key 'class'; a record has name, type, value, ttl"),
    ],
)  # fmt: skip
def test_bad_records_are_refused(record: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError) as caught:
        normalize_record(record, "example.com", "r")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"name": "_sip._tcp", "type": "SRV", "value": "10 5 5060"},
         "r.value: '10 5 5060' is not '<priority> <weight> <port> <target>', "
         "e.g. '10 5 443 web1.example.com.'"),
        ({"name": "_sip._tcp", "type": "SRV", "value": "10 5 70000 sip.example.com."},
         "r.value: '10 5 70000 sip.example.com.' is not '<priority> <weight> <port> "
         "<target>', e.g. '10 5 443 web1.example.com.'"),
        ({"name": "@", "type": "CAA", "value": "0 issue letsencrypt.org"},
         "r.value: '0 issue letsencrypt.org' is not '<flags> <tag> \"<value>\"', "
         "e.g. '0 issue \"letsencrypt.org\"'"),
        ({"name": "@", "type": "CAA", "value": '0 issuer "letsencrypt.org"'},
         "r.value: '0 issuer \"letsencrypt.org\"': tag 'issuer' is not one of issue, "
         "issuewild, iodef"),
        ({"name": "@", "type": "CAA", "value": '0 issue "a"\n@ IN NS evil.example.'},
         "r.value: '0 issue \"a\"\\n@ IN NS evil.example.' contains a control character; "
         "one line only"),
        ({"name": "@", "type": "NS", "value": "ns1.example.com.\nwww IN A 192.0.2.9"},
         "r.value: 'ns1.example.com.\\nwww IN A 192.0.2.9' contains a control character; "
         "one line only"),
    ],
)  # fmt: skip
def test_srv_caa_and_one_line_values_are_checked(record: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError) as caught:
        normalize_record(record, "example.com", "r")
    assert str(caught.value) == message


def test_srv_and_caa_are_written_in_canonical_form() -> None:
    srv = {"name": "_sip._tcp", "type": "SRV", "value": "010 5 5060 sip.example.com."}
    assert normalize_record(srv, "example.com", "r")["value"] == "10 5 5060 sip.example.com."
    caa = {"name": "@", "type": "CAA", "value": '0 ISSUE "letsencrypt.org"'}
    assert normalize_record(caa, "example.com", "r")["value"] == '0 issue "letsencrypt.org"'


# --- SOA -----------------------------------------------------------------------------------


def test_rname_from_an_email_address() -> None:
    assert rname_from_email("hostmaster@example.com") == "hostmaster.example.com."
    assert rname_from_email("dns.admin@example.com") == "dns\\.admin.example.com."
    assert rname_from_email("hostmaster.example.com.") == "hostmaster.example.com."


def test_soa_from_mapping_fills_defaults() -> None:
    soa = soa_from_mapping({"mname": "ns1.example.com", "rname": "hostmaster@example.com"})
    assert soa == Soa("ns1.example.com.", "hostmaster.example.com.", 7200, 900, 1209600, 300)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"rname": "h@example.com"}, "soa.mname: missing"),
        ({"mname": "ns1.example.com", "rname": "h@example.com", "refresh": 0},
         "soa.refresh: 0 is not a positive number of seconds"),
        ({"mname": "ns1.example.com", "rname": "h@example.com", "serial": 1},
         "soa: unknown key 'serial'; known keys are mname, rname, refresh, retry, expire, "
         "minimum"),
    ],
)  # fmt: skip
def test_bad_soa_parameters_are_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelError) as caught:
        soa_from_mapping(raw)
    assert str(caught.value) == message
