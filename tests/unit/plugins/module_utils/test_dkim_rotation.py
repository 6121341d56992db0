"""The DKIM rotation guard: when a selector may start signing, and what the operator reads."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.key_store import (
    publication_path,
    read_publication,
    read_publications,
    store_publication_run,
    write_publication,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.rotation import (
    Publication,
    PublicationRun,
    SigningMove,
    check_signing_moves,
    decode_tables,
    format_duration,
    model_selectors,
    parse_signing_table,
    publication_run,
    served_key,
    signing_moves,
    signing_selectors,
    wait_until_served,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.report import LookupFailed
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import (
    ModelError,
    ModelErrors,
)

NOW = datetime(2026, 11, 23, 15, 0, 0, tzinfo=UTC)
KEY_A = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAaaaa"
KEY_B = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAbbbb"
TABLE = """#
# Ansible managed
#
# From address pattern -> key name: each domain signs with its first selector.
*@example.com s2026a._domainkey.example.com
*@shop.example s2026a._domainkey.shop.example
"""
TABLE_B = TABLE.replace("s2026a._domainkey.example.com", "s2026b._domainkey.example.com")


def moves_for(selectors: dict[str, list[str]], table: str | None = TABLE) -> list[SigningMove]:
    return signing_moves(selectors, signing_selectors({"smtp1": table}))


def published(minutes_ago: float, ttl: int = 3600) -> Publication:
    return Publication(NOW - timedelta(minutes=minutes_ago), ttl, ("198.51.100.53",))


# --- what signs today -----------------------------------------------------------------------


def test_the_signing_table_names_each_domains_selector() -> None:
    assert parse_signing_table(TABLE) == {"example.com": "s2026a", "shop.example": "s2026a"}


def test_lines_of_another_shape_are_not_signers() -> None:
    table = "*@example.com default\n*@other.example s1._domainkey.example.com\nexample.com\n"
    assert parse_signing_table(table) == {}


def test_every_hosts_signer_counts_and_a_host_without_a_table_signs_nothing() -> None:
    tables = {"smtp1": TABLE, "smtp2": TABLE_B, "smtp3": None}
    assert signing_selectors(tables) == {
        "example.com": {"s2026a", "s2026b"},
        "shop.example": {"s2026a"},
    }


def test_slurped_tables_are_decoded_and_a_missing_one_is_none() -> None:
    slurped = {"smtp1": "KkBleGFtcGxlLmNvbSBzMi5fZG9tYWlua2V5LmV4YW1wbGUuY29tCg==", "smtp2": None}
    assert decode_tables(slurped) == {
        "smtp1": "*@example.com s2._domainkey.example.com\n",
        "smtp2": None,
    }


def test_whole_slurp_results_are_read_and_a_failed_read_is_a_host_without_a_table() -> None:
    content = "KkBleGFtcGxlLmNvbSBzMi5fZG9tYWlua2V5LmV4YW1wbGUuY29tCg=="
    slurped = {
        "smtp1": {"content": content, "encoding": "base64", "changed": False},
        "smtp2": {"failed": False, "msg": "file not found: /etc/opendkim/SigningTable"},
    }
    assert decode_tables(slurped) == {
        "smtp1": "*@example.com s2._domainkey.example.com\n",
        "smtp2": None,
    }


def test_a_table_that_is_not_base64_is_named() -> None:
    with pytest.raises(ModelError) as error:
        decode_tables({"smtp1": "*@example.com s2"})
    assert str(error.value) == (
        "signing_tables['smtp1']: is not base64 (the content slurp returns)"
    )


def test_the_model_gives_each_domains_selectors_in_order() -> None:
    domains = [
        {"name": "example.com", "dkim_selectors": ["s2026b", "s2026a"], "dmarc": {}},
        {"name": "shop.example", "dkim_selectors": ["s2026a"]},
    ]
    assert model_selectors(domains) == {
        "example.com": ["s2026b", "s2026a"],
        "shop.example": ["s2026a"],
    }


def test_a_domain_without_selectors_is_named() -> None:
    with pytest.raises(ModelError) as error:
        model_selectors([{"name": "example.com", "dkim_selectors": []}])
    assert str(error.value) == (
        "bulkmail_domains[0].dkim_selectors: is empty; list the signing selector"
    )


# --- which domains move ---------------------------------------------------------------------


def test_rerunning_with_the_same_signer_moves_nothing() -> None:
    assert moves_for({"example.com": ["s2026a", "s2026b"], "shop.example": ["s2026a"]}) == []


def test_a_fresh_domain_and_a_fresh_host_move_nothing() -> None:
    assert moves_for({"new.example": ["s2026z"]}) == []
    assert moves_for({"example.com": ["s2026b"]}, table=None) == []


def test_a_new_first_selector_is_a_move_naming_the_field() -> None:
    (move,) = moves_for({"shop.example": ["s2026a"], "example.com": ["s2026b", "s2026a"]})
    assert move == SigningMove(
        path="bulkmail_domains[1].dkim_selectors",
        domain="example.com",
        selector="s2026b",
        signing_now=("s2026a",),
        selectors=("s2026b", "s2026a"),
    )


def test_hosts_that_disagree_make_a_move_even_to_one_of_their_signers() -> None:
    tables = {"smtp1": TABLE, "smtp2": TABLE_B}
    (move,) = signing_moves({"example.com": ["s2026b"]}, signing_selectors(tables))
    assert move.signing_now == ("s2026a", "s2026b")


# --- the guard ------------------------------------------------------------------------------

MOVE = SigningMove(
    path="bulkmail_domains[0].dkim_selectors",
    domain="example.com",
    selector="s2026b",
    signing_now=("s2026a",),
    selectors=("s2026b", "s2026a"),
)


def test_a_record_published_for_its_ttl_may_sign() -> None:
    report = check_signing_moves([MOVE], {("example.com", "s2026b"): published(60)}, NOW)
    assert report == [
        {
            "domain": "example.com",
            "selector": "s2026b",
            "signing_now": ["s2026a"],
            "published_at": "2026-11-23T14:00:00Z",
        }
    ]


def test_a_record_published_for_less_than_its_ttl_is_refused_with_when() -> None:
    with pytest.raises(ModelError) as error:
        check_signing_moves([MOVE], {("example.com", "s2026b"): published(12.5)}, NOW)
    assert str(error.value) == (
        "bulkmail_domains[0].dkim_selectors: s2026b would sign for example.com in place of "
        "s2026a, but its record s2026b._domainkey.example.com has been published for only "
        "12 min 30 s (since 2026-11-23T14:47:30Z), less than 1 h 0 min (the record's TTL, "
        "bind_ttl): resolvers may still cache 'no such selector' and fail mail signed with "
        "it. It may be moved first from 2026-11-23T15:47:30Z (in 47 min 30 s); until then "
        "keep [s2026a, s2026b]."
    )


def test_the_override_replaces_the_ttl_and_says_so() -> None:
    record = {("example.com", "s2026b"): published(1)}
    assert check_signing_moves([MOVE], record, NOW, min_seconds=30)
    with pytest.raises(ModelError) as error:
        check_signing_moves([MOVE], record, NOW, min_seconds=86400)
    message = str(error.value)
    assert "has been published for only 1 min 0 s (since 2026-11-23T14:59:00Z)" in message
    assert "less than 1 d 0 h (bulkmail_dkim_min_publish_seconds)" in message
    assert "It may be moved first from 2026-11-24T14:59:00Z (in 23 h 59 min)" in message


def test_a_selector_never_seen_published_is_refused_with_the_way_to_publish_it() -> None:
    with pytest.raises(ModelError) as error:
        check_signing_moves(
            [MOVE],
            {},
            NOW,
            record_paths={("example.com", "s2026b"): "/keys/example.com/s2026b.published"},
        )
    assert str(error.value) == (
        "bulkmail_domains[0].dkim_selectors: s2026b would sign for example.com in place of "
        "s2026a, but its record s2026b._domainkey.example.com has not been seen published by "
        "the dns tier yet (no /keys/example.com/s2026b.published): mail signed with it would "
        "fail DKIM. Publish it first with [s2026a, s2026b], run the dns tier, and move it "
        "first once it has been published for the record's TTL (bind_ttl; "
        "bulkmail_dkim_min_publish_seconds overrides it)."
    )


def test_zero_turns_the_guard_off() -> None:
    assert check_signing_moves([MOVE], {}, NOW, min_seconds=0) == [
        {
            "domain": "example.com",
            "selector": "s2026b",
            "signing_now": ["s2026a"],
            "published_at": None,
        }
    ]


def test_a_negative_minimum_is_refused() -> None:
    with pytest.raises(ModelError) as error:
        check_signing_moves([MOVE], {}, NOW, min_seconds=-1)
    assert str(error.value) == (
        "bulkmail_dkim_min_publish_seconds: -1 is negative; give seconds, 0 to not wait"
    )


def test_every_early_move_is_reported_at_once() -> None:
    other = SigningMove(
        "bulkmail_domains[1].dkim_selectors", "shop.example", "s2026b", ("s2026a",), ("s2026b",)
    )
    with pytest.raises(ModelErrors) as error:
        check_signing_moves([MOVE, other], {}, NOW)
    assert [e.path for e in error.value.errors] == [
        "bulkmail_domains[0].dkim_selectors",
        "bulkmail_domains[1].dkim_selectors",
    ]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0 s"), (59, "59 s"), (61, "1 min 1 s"), (3600, "1 h 0 min"), (90061, "1 d 1 h")],
)
def test_durations_read_at_a_glance(seconds: int, shown: str) -> None:
    assert format_duration(seconds) == shown


# --- publication records in the key store ---------------------------------------------------


def test_a_publication_record_sits_next_to_the_key_private_to_the_owner(tmp_path: Path) -> None:
    path = write_publication(str(tmp_path), "example.com", "s2026b", published(5, ttl=300))
    assert path == str(tmp_path / "example.com" / "s2026b.published")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(Path(path).read_text()) == {
        "published_at": "2026-11-23T14:55:00Z",
        "ttl": 300,
        "nameservers": ["198.51.100.53"],
    }
    assert read_publication(str(tmp_path), "example.com", "s2026b") == published(5, ttl=300)
    assert read_publication(str(tmp_path), "example.com", "s2026c") is None


def test_a_damaged_publication_record_says_how_to_recover(tmp_path: Path) -> None:
    path = Path(publication_path(str(tmp_path), "example.com", "s2026b"))
    path.parent.mkdir()
    path.write_text('{"published_at": "yesterday", "ttl": 300}')
    with pytest.raises(ModelError) as error:
        read_publication(str(tmp_path), "example.com", "s2026b")
    assert str(error.value) == (
        f"{path}: is not a DKIM publication record (Invalid isoformat string: 'yesterday'); "
        "delete it; the next run of the dns tier records the selector again"
    )


def test_the_served_key_is_the_single_p_tag() -> None:
    assert served_key([f"v=DKIM1; k=rsa; p={KEY_A[:20]} {KEY_A[20:]}"]) == KEY_A
    assert served_key(["v=spf1 -all"]) is None
    assert served_key([f"p={KEY_A}", f"p={KEY_B}"]) is None


class FakeDns:
    """Name servers that start serving records at given times of a fake clock."""

    def __init__(self) -> None:
        self.now = NOW.timestamp()
        self.records: dict[tuple[str, str], tuple[float, str]] = {}  # (ns, name) -> (from, key)
        self.broken: set[str] = set()

    def serve(self, nameserver: str, name: str, key: str, after: float = 0) -> None:
        self.records[(nameserver, name)] = (self.now + after, key)

    def ask(self, nameserver: str, name: str) -> tuple[list[str], int | None]:
        if nameserver in self.broken:
            raise LookupFailed(name, "TXT", "no answer within 5 s")
        start, key = self.records.get((nameserver, name), (float("inf"), ""))
        if self.now < start:
            return [], None
        return [f"v=DKIM1; k=rsa; p={key}"], 300

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


NS = ("10.25.0.53", "10.25.0.54")


def test_a_record_counts_once_every_name_server_serves_it() -> None:
    dns = FakeDns()
    dns.serve(NS[0], "s2026b._domainkey.example.com", KEY_B)
    dns.serve(NS[1], "s2026b._domainkey.example.com", KEY_B, after=3)
    served = wait_until_served(
        {("example.com", "s2026b"): KEY_B}, NS, dns.ask, dns.clock, dns.sleep, timeout=30
    )
    assert served.ttls == {("example.com", "s2026b"): 300}
    assert served.missing == {}
    assert dns.now == NOW.timestamp() + 3


def test_a_record_not_served_everywhere_in_time_says_by_whom() -> None:
    dns = FakeDns()
    dns.serve(NS[0], "s2026b._domainkey.example.com", KEY_A)
    dns.broken.add(NS[1])
    served = wait_until_served(
        {("example.com", "s2026b"): KEY_B}, NS, dns.ask, dns.clock, dns.sleep, timeout=5
    )
    assert served.ttls == {}
    assert served.missing == {
        ("example.com", "s2026b"): "s2026b._domainkey.example.com: 10.25.0.53: another key "
        "(p=MIIBIjANBgkqhkiG...); 10.25.0.54: no answer within 5 s"
    }


def record(
    tmp_path: Path, dns: FakeDns, selectors: dict[str, list[str]], check: bool = False
) -> PublicationRun:
    """What the dkim_publication module does: read the store, decide, store the outcome."""
    keys = {"example.com": {"s2026a": KEY_A, "s2026b": KEY_B}}
    run = publication_run(
        selectors, keys, read_publications(str(tmp_path), selectors), NS, dns.ask,
        clock=dns.clock, sleep=dns.sleep, timeout=30, check_mode=check,
    )  # fmt: skip
    if not check:
        store_publication_run(str(tmp_path), run)
    return run


def test_publication_is_recorded_once_and_kept(tmp_path: Path) -> None:
    dns = FakeDns()
    for ns in NS:
        dns.serve(ns, "s2026a._domainkey.example.com", KEY_A)
        dns.serve(ns, "s2026b._domainkey.example.com", KEY_B, after=2)
    first = record(tmp_path, dns, {"example.com": ["s2026a", "s2026b"]})
    assert first.changed and sorted(first.recorded) == [
        "s2026a._domainkey.example.com",
        "s2026b._domainkey.example.com",
    ]
    assert first.published["example.com"]["s2026b"].published_at == NOW + timedelta(seconds=2)
    assert first.after == (
        "s2026a._domainkey.example.com published_at=2026-11-23T15:00:02Z ttl=300\n"
        "s2026b._domainkey.example.com published_at=2026-11-23T15:00:02Z ttl=300\n"
    )
    dns.sleep(600)
    again = record(tmp_path, dns, {"example.com": ["s2026b", "s2026a"]})
    assert not again.changed
    assert again.published == first.published


def test_a_withdrawn_selector_loses_its_record_and_check_mode_writes_nothing(
    tmp_path: Path,
) -> None:
    dns = FakeDns()
    for ns in NS:
        dns.serve(ns, "s2026a._domainkey.example.com", KEY_A)
        dns.serve(ns, "s2026b._domainkey.example.com", KEY_B)
    record(tmp_path, dns, {"example.com": ["s2026a", "s2026b"]})
    preview = record(tmp_path, dns, {"example.com": ["s2026b"]}, check=True)
    assert preview.withdrawn == ["s2026a._domainkey.example.com"]
    assert (tmp_path / "example.com" / "s2026a.published").exists()
    done = record(tmp_path, dns, {"example.com": ["s2026b"]})
    assert done.withdrawn == ["s2026a._domainkey.example.com"]
    assert not (tmp_path / "example.com" / "s2026a.published").exists()
    assert list(done.published["example.com"]) == ["s2026b"]


def test_check_mode_does_not_wait_for_a_record_not_served_yet(tmp_path: Path) -> None:
    dns = FakeDns()
    run = record(tmp_path, dns, {"example.com": ["s2026a"]}, check=True)
    assert dns.now == NOW.timestamp()
    assert run.missing == [
        "s2026a._domainkey.example.com: 10.25.0.53: no TXT record; 10.25.0.54: no TXT record"
    ]
    assert not (tmp_path / "example.com").exists()
    assert (run.before, run.after) == (
        "",
        "s2026a._domainkey.example.com published_at=<once every name server serves it>\n",
    )


def test_a_selector_without_its_public_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as error:
        record(tmp_path, FakeDns(), {"example.com": ["s2026a", "s2026c"]})
    assert str(error.value) == (
        "public_keys['example.com']['s2026c']: missing (dkim_selectors[1] of example.com); "
        "pass bulkmail_dkim_public_keys as the dkim_keys role sets it"
    )
