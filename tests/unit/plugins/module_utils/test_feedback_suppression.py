"""Suppression at send time: the policy protocol, the decision, and what the loader reads."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import (
    DUNNO,
    GLOBAL,
    SOFT_BOUNCE_TABLE,
    SUPPRESSION_TABLE,
    Fetch,
    IdCursor,
    ProtocolError,
    RequestParser,
    SoftBouncePolicy,
    SoftBounceRow,
    SuppressionRow,
    SuppressionSnapshot,
    TenantMap,
    address_hash,
    decide,
    default_tenants,
    fetch_query,
    format_response,
    map_rows,
    normalise_address,
    row_from_record,
)

MIGRATIONS = Path(__file__).parents[4] / "roles" / "postgresql" / "files" / "migrations"
DAY = 86400.0
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
NOV_30 = datetime(2026, 11, 30, 9, 30, tzinfo=UTC).timestamp()
TENANTS = TenantMap.load(default_tenants(["acme.test", "shop.test"]))

# What Postfix 3.7's smtpd sends at RCPT TO for a message submitted on 587.
POSTFIX_REQUEST = b"""request=smtpd_access_policy
protocol_state=RCPT
protocol_name=ESMTP
client_address=10.25.0.100
client_name=app.acme.test
reverse_client_name=app.acme.test
helo_name=app.acme.test
sender=bounces+x1y2@bounces.acme.test
recipient=Alice@Example.ORG
recipient_count=0
queue_id=
instance=2b7e.6751f2a1.8e3c1.0
size=0
etrn_domain=
stress=
sasl_method=PLAIN
sasl_username=news@acme.test
sasl_sender=
ccert_subject=
ccert_issuer=
ccert_fingerprint=
ccert_pubkey_fingerprint=
encryption_protocol=TLSv1.3
encryption_cipher=TLS_AES_256_GCM_SHA384
encryption_keysize=256
policy_context=
server_address=10.25.0.10
server_port=587

"""


def rcpt(recipient: str, sender: str = "news@acme.test", **extra: str) -> dict[str, str]:
    return {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "sender": sender,
        "recipient": recipient,
        **extra,
    }


def snapshot(*rows: SuppressionRow | SoftBounceRow, **policy: float) -> SuppressionSnapshot:
    held = SuppressionSnapshot(SoftBouncePolicy(**policy))  # type: ignore[arg-type]
    held.apply_all(rows)
    return held


def suppressed(row_id: int, tenant: str, address: str, reason: str, dsn: str | None = None):
    return SuppressionRow(row_id, tenant, address, reason, dsn, NOV_30)


def soft(row_id: int, address: str, days_ago: float, tenant: str = "acme.test") -> SoftBounceRow:
    return SoftBounceRow(row_id, tenant, address, "4.2.2", NOW - days_ago * DAY)


# -- the protocol -------------------------------------------------------------------------


def test_a_postfix_request_is_one_dict_of_its_attributes() -> None:
    [request] = RequestParser().feed(POSTFIX_REQUEST)
    assert request["recipient"] == "Alice@Example.ORG"
    assert request["sasl_username"] == "news@acme.test"
    assert request["queue_id"] == ""
    assert len(request) == 28


def test_requests_on_one_connection_come_out_in_order_however_the_bytes_are_cut() -> None:
    stream = b"".join(
        f"request=smtpd_access_policy\nrecipient=r{i}@example.org\n\n".encode() for i in range(5)
    )
    for size in (1, 7, 64, len(stream)):
        parser = RequestParser()
        got = []
        for start in range(0, len(stream), size):
            got += parser.feed(stream[start : start + size])
        assert [r["recipient"] for r in got] == [f"r{i}@example.org" for i in range(5)]
        assert not parser.pending


def test_a_request_cut_short_is_pending_until_its_empty_line() -> None:
    parser = RequestParser()
    assert parser.feed(b"request=smtpd_access_policy\nrecipient=a@b") == []
    assert parser.pending
    assert parser.feed(b".test\n") == []
    assert parser.feed(b"\n") == [{"request": "smtpd_access_policy", "recipient": "a@b.test"}]


def test_crlf_and_blank_lines_between_requests_are_tolerated() -> None:
    got = RequestParser().feed(b"\r\n\nrecipient=a@b.test\r\nsender=\r\n\r\n\n")
    assert got == [{"recipient": "a@b.test", "sender": ""}]


def test_a_value_may_hold_an_equals_sign_and_non_ascii() -> None:
    [request] = RequestParser().feed(
        "ccert_subject=CN=x=y\nrecipient=jörg@bücher.test\n\n".encode()
    )
    assert request == {"ccert_subject": "CN=x=y", "recipient": "jörg@bücher.test"}


@pytest.mark.parametrize(
    ("garbage", "message"),
    [
        (b"GET / HTTP/1.1\r\n", "is not name=value"),
        (b"=value\n", "is not name=value"),
        (b"recipient value\n", "is not name=value"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n", "is not name=value"),
        (b"recipient=" + b"x" * 9000, "a line longer than 8192 bytes"),
        (b"recipient=" + b"x" * 9000 + b"\n", "a line longer than 8192 bytes"),
        (b"".join(b"a%d=1\n" % i for i in range(300)), "more than 256 attributes"),
    ],
)
def test_garbage_is_a_protocol_error(garbage: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)):
        RequestParser().feed(garbage)


def test_an_answer_is_one_action_line_and_the_empty_line() -> None:
    assert format_response("DUNNO") == b"action=DUNNO\n\n"
    # nothing in a reason may end the answer early or start a second one
    assert format_response("REJECT 5.7.1 a\r\nb\n") == b"action=REJECT 5.7.1 a??b?\n\n"


# -- addresses and tenants ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "normal"),
    [
        ("Alice@Example.ORG", "alice@example.org"),
        ("<bob@example.org.>", "bob@example.org"),
        ("  Carol+News@example.org ", "carol+news@example.org"),
        ("d.a.v.e@gmail.com", "d.a.v.e@gmail.com"),
        ("jörg@Bücher.example", "jörg@xn--bcher-kva.example"),
        ("postmaster", "postmaster"),
    ],
)
def test_addresses_are_compared_lower_case_and_otherwise_as_written(
    address: str, normal: str
) -> None:
    assert normalise_address(address) == normal


def test_a_sender_belongs_to_its_domain_s_tenant_or_its_parent_s() -> None:
    tenants = TenantMap.load({"domains": {"acme.test": "acme", "Shop.TEST": "Shop"}})
    assert tenants.tenant_for_sender("news@acme.test") == "acme"
    assert tenants.tenant_for_sender("bounces+x1@bounces.acme.test") == "acme"  # VERP
    assert tenants.tenant_for_sender("orders@SHOP.test") == "shop"
    # a domain the model does not know is a tenant of its own
    assert tenants.tenant_for_sender("someone@elsewhere.example") == "elsewhere.example"
    # the null sender has no tenant: only global rows apply to it
    assert tenants.tenant_for_sender("") is None
    assert tenants.tenant_for_sender("<>") is None
    assert tenants.tenant_for_sender("MAILER-DAEMON") is None


def test_without_tenants_in_the_model_each_sending_domain_is_its_own() -> None:
    assert default_tenants(["shop.test", "Acme.test."]) == {
        "domains": {"acme.test": "acme.test", "shop.test": "shop.test"}
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], 'expected {"domains": {sending domain: tenant}}'),
        ({"domains": {"acme.test": ""}}, "tenants.domains.acme.test: the tenant must be"),
        ({"domains": {"acme.test": "Global"}}, "'global' means every tenant"),
    ],
)
def test_a_bad_tenant_map_names_the_field_and_the_fix(data: object, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TenantMap.load(data)


# -- the decision ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "dsn", "action"),
    [
        (
            "hard_bounce",
            "5.1.1",
            "REJECT 5.7.1 alice@example.org is suppressed for acme.test: "
            "hard bounce on 2026-11-30 (5.1.1)",
        ),
        (
            "complaint",
            None,
            "REJECT 5.7.1 alice@example.org is suppressed for acme.test: complaint on 2026-11-30",
        ),
        (
            "unsubscribe",
            None,
            "REJECT 5.7.1 alice@example.org is suppressed for acme.test: unsubscribe on 2026-11-30",
        ),
        (
            "manual",
            None,
            "REJECT 5.7.1 alice@example.org is suppressed for acme.test: "
            "manual suppression on 2026-11-30",
        ),
    ],
)
def test_a_suppressed_recipient_is_refused_at_once_with_the_reason_and_date(
    reason: str, dsn: str | None, action: str
) -> None:
    held = snapshot(suppressed(1, "acme.test", "alice@example.org", reason, dsn))
    decision = decide(rcpt("Alice@Example.ORG"), held, TENANTS, NOW)
    assert decision.action == action
    assert decision.tenant == "acme.test"


def test_a_recipient_suppressed_for_nobody_gets_dunno() -> None:
    held = snapshot(suppressed(1, "acme.test", "alice@example.org", "complaint"))
    assert decide(rcpt("bob@example.org"), held, TENANTS, NOW).action == DUNNO


def test_one_tenant_s_unsubscribe_does_not_stop_another_tenant_s_mail() -> None:
    held = snapshot(suppressed(1, "acme.test", "alice@example.org", "unsubscribe"))
    assert decide(rcpt("alice@example.org", "orders@shop.test"), held, TENANTS, NOW).action == DUNNO
    # the same tenant's mail from its VERP return path and its subdomains is refused
    for sender in ("bounces+a1@bounces.acme.test", "news@mail.acme.test"):
        assert decide(rcpt("alice@example.org", sender), held, TENANTS, NOW).refusal


def test_a_global_row_stops_every_tenant_and_the_null_sender() -> None:
    held = snapshot(suppressed(1, GLOBAL, "alice@example.org", "complaint"))
    for sender in ("news@acme.test", "orders@shop.test", "x@unknown.example", ""):
        decision = decide(rcpt("alice@example.org", sender), held, TENANTS, NOW)
        assert decision.action == (
            "REJECT 5.7.1 alice@example.org is suppressed for every tenant (global): "
            "complaint on 2026-11-30"
        )


def test_the_tenant_s_own_row_is_the_reason_given_when_both_exist() -> None:
    held = snapshot(
        suppressed(1, GLOBAL, "alice@example.org", "complaint"),
        suppressed(2, "acme.test", "alice@example.org", "hard_bounce", "5.1.1"),
    )
    refusal = decide(rcpt("alice@example.org"), held, TENANTS, NOW).refusal
    assert refusal is not None
    assert (refusal.tenant, refusal.reason) == ("acme.test", "hard_bounce")


def test_soft_bounces_refuse_from_the_third_within_seven_days() -> None:
    two = snapshot(soft(1, "full@example.org", 6), soft(2, "full@example.org", 1))
    assert decide(rcpt("full@example.org"), two, TENANTS, NOW).action == DUNNO
    three = snapshot(*[soft(i, "full@example.org", d) for i, d in enumerate((6, 3, 1))])
    assert decide(rcpt("full@example.org"), three, TENANTS, NOW).action == (
        "REJECT 5.7.1 full@example.org is suppressed for acme.test: "
        "3 soft bounces in 7 days, the last on 2026-11-30 (4.2.2)"
    )


def test_soft_bounces_outside_the_window_do_not_count_and_refusal_ends_with_it() -> None:
    held = snapshot(*[soft(i, "full@example.org", d) for i, d in enumerate((8, 3, 1))])
    assert decide(rcpt("full@example.org"), held, TENANTS, NOW).action == DUNNO
    recent = snapshot(*[soft(i, "full@example.org", d) for i, d in enumerate((6.5, 3, 1))])
    assert decide(rcpt("full@example.org"), recent, TENANTS, NOW).refusal
    assert decide(rcpt("full@example.org"), recent, TENANTS, NOW + DAY).action == DUNNO


def test_the_soft_bounce_threshold_and_window_are_parameters() -> None:
    rows = [soft(i, "full@example.org", d) for i, d in enumerate((20, 12))]
    held = snapshot(*rows, threshold=2, window_days=30)
    refusal = decide(rcpt("full@example.org"), held, TENANTS, NOW).refusal
    assert refusal is not None
    assert "2 soft bounces in 30 days, the last on 2026-11-19 (4.2.2)" in refusal.text()
    assert decide(rcpt("full@example.org"), snapshot(*rows), TENANTS, NOW).action == DUNNO


def test_soft_bounces_count_per_tenant_and_a_row_read_twice_counts_once() -> None:
    rows = [soft(1, "full@example.org", 3), soft(2, "full@example.org", 2)]
    held = snapshot(*rows, rows[0], soft(3, "full@example.org", 1, tenant="shop.test"))
    assert decide(rcpt("full@example.org"), held, TENANTS, NOW).action == DUNNO


@pytest.mark.parametrize(
    "request_",
    [
        rcpt("alice@example.org", protocol_state="DATA"),
        rcpt("alice@example.org", protocol_state="END-OF-MESSAGE"),
        rcpt("alice@example.org", request="junk"),
        rcpt(""),
    ],
)
def test_only_rcpt_is_judged(request_: dict[str, str]) -> None:
    held = snapshot(suppressed(1, GLOBAL, "alice@example.org", "complaint"))
    assert decide(request_, held, TENANTS, NOW).action == DUNNO


def test_the_postfix_request_is_judged_by_its_verp_sender_s_tenant() -> None:
    [request] = RequestParser().feed(POSTFIX_REQUEST)
    held = snapshot(suppressed(1, "acme.test", "alice@example.org", "complaint"))
    assert decide(request, held, TENANTS, NOW).refusal is not None


def test_soft_bounce_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SoftBouncePolicy(threshold=0)
    with pytest.raises(ValueError, match="more than 0"):
        SoftBouncePolicy(window_days=0)


def test_a_replaced_snapshot_is_emptied_a_little_at_a_time() -> None:
    held = snapshot(
        *[suppressed(i, "acme.test", f"u{i}@example.org", "complaint") for i in range(5)],
        *[soft(10 + i, f"u{i}@example.org", 1, tenant=GLOBAL) for i in range(3)],
    )
    assert held.shrink(4)
    assert held.shrink(3)
    assert not held.shrink(4)
    assert list(held.rows()) == []


# -- what the loader reads ------------------------------------------------------------------


def test_the_cursor_asks_again_for_ids_skipped_by_transactions_not_yet_committed() -> None:
    cursor = IdCursor(hole_ttl=60)
    assert cursor.advance([1, 2, 5], NOW)
    assert (cursor.after, cursor.holes(NOW)) == (5, (3, 4))
    assert cursor.advance([4, 6], NOW + 10)  # 4 committed late
    assert (cursor.after, cursor.holes(NOW + 10)) == (6, (3,))
    assert not cursor.advance([6], NOW + 20)  # nothing new
    assert cursor.holes(NOW + 61) == ()  # 3 was a rollback or a conflict: forgotten


def test_the_cursor_keeps_only_the_highest_holes() -> None:
    cursor = IdCursor(max_holes=3)
    cursor.advance([1, 100], NOW)
    assert cursor.holes(NOW) == (97, 98, 99)
    cursor.advance([103], NOW)
    assert cursor.holes(NOW) == (99, 101, 102)


def test_the_queries_read_new_rows_and_holes_by_primary_key() -> None:
    query, params = fetch_query(Fetch(SUPPRESSION_TABLE, 41, (7, 9), 500))
    assert params == {"after": 41, "holes": [7, 9], "limit": 500}
    assert query == (
        "(SELECT id, tenant, address, reason, dsn, extract(epoch FROM suppressed_at)::float8"
        " FROM suppression WHERE id > %(after)s ORDER BY id LIMIT %(limit)s)"
        " UNION ALL"
        " (SELECT id, tenant, address, reason, dsn, extract(epoch FROM suppressed_at)::float8"
        " FROM suppression WHERE id = ANY(%(holes)s::bigint[]) AND id <= %(after)s)"
        " ORDER BY 1"
    )
    query, params = fetch_query(Fetch(SOFT_BOUNCE_TABLE, 0, (), 1000, NOW - 7 * DAY))
    assert params == {"after": 0, "holes": [], "limit": 1000, "since": NOW - 7 * DAY}
    assert query.count("occurred_at >= to_timestamp(%(since)s)") == 2
    assert "FROM soft_bounces WHERE id > %(after)s" in query
    with pytest.raises(ValueError, match="table 'messages'"):
        fetch_query(Fetch("messages", 0))


def test_the_queries_name_only_columns_the_migrations_create() -> None:
    schema = "\n".join(path.read_text() for path in sorted(MIGRATIONS.glob("*.sql")))
    for table, columns in (
        ("suppression", ("id", "tenant", "address", "reason", "dsn", "suppressed_at")),
        ("soft_bounces", ("id", "tenant", "address", "dsn", "occurred_at")),
    ):
        query = fetch_query(Fetch(table, 0))[0]
        for column in columns:
            assert re.search(rf"\b{column}\b", query), (table, column)
            created = rf"CREATE TABLE {table} \([^;]*\b{column}\b"
            added = rf"ALTER TABLE {table} ADD COLUMN {column}\b"
            assert re.search(created, schema) or re.search(added, schema), (table, column)
    assert "UNIQUE (tenant, address)" in schema


def test_result_rows_map_to_snapshot_rows() -> None:
    rows = map_rows(SUPPRESSION_TABLE, [(3, "acme.test", "a@b.test", "hard_bounce", "5.1.1", 1.5)])
    assert rows == [SuppressionRow(3, "acme.test", "a@b.test", "hard_bounce", "5.1.1", 1.5)]
    rows = map_rows(SOFT_BOUNCE_TABLE, [(4, "global", "a@b.test", None, 2)])
    assert rows == [SoftBounceRow(4, "global", "a@b.test", None, 2.0)]


def test_rows_survive_the_snapshot_file_and_garbage_does_not() -> None:
    for row in (suppressed(1, GLOBAL, "a@b.test", "complaint"), soft(2, "a@b.test", 1)):
        assert row_from_record(row.record()) == row
    for garbage in (
        None,
        [],
        ["s", 1],
        ["x", 1, "t", "a", "d", 1.0],
        ["b", "1", "t", "a", None, 1],
    ):
        with pytest.raises(ValueError, match="not a snapshot record"):
            row_from_record(garbage)


# -- erased people (`bulkmail forget`): refused by their keyed hash ------------------------

KEY = bytes(range(32))
OLD_KEY = bytes(range(32, 64))


def erased(row_id: int, tenant: str, address: str, key: bytes = KEY) -> SuppressionRow:
    return SuppressionRow(row_id, tenant, address_hash(key, address), "manual", None, NOV_30)


def keyed(*rows: SuppressionRow, keys: tuple[bytes, ...] = (KEY,)) -> SuppressionSnapshot:
    held = SuppressionSnapshot(hash_keys=keys)
    held.apply_all(rows)
    return held


def test_an_erased_address_is_refused_for_its_tenant_and_not_for_another() -> None:
    held = keyed(erased(1, "acme.test", "gone@example.org"))
    refusal = held.refusal("gone@example.org", "acme.test", NOW)
    assert refusal is not None
    # the refusal names the recipient, never the hash that found it
    assert refusal.text() == (
        "gone@example.org is suppressed for acme.test: manual suppression on 2026-11-30"
    )
    assert held.refusal("gone@example.org", "shop.test", NOW) is None
    assert held.refusal("other@example.org", "acme.test", NOW) is None


def test_an_erased_address_is_refused_however_postfix_spells_it() -> None:
    held = keyed(erased(1, "acme.test", "Gone@Example.ORG"))
    decision = decide(rcpt("<GONE@example.org>"), held, TENANTS, NOW)
    assert decision.action.startswith("REJECT 5.7.1 gone@example.org is suppressed for acme.test")


def test_a_global_erasure_stops_every_tenant_and_the_null_sender() -> None:
    held = keyed(erased(1, GLOBAL, "gone@example.org"))
    for sender in ("news@acme.test", "orders@shop.test", ""):
        refusal = decide(rcpt("gone@example.org", sender), held, TENANTS, NOW).refusal
        assert refusal is not None and refusal.tenant == GLOBAL


def test_every_key_is_tried_so_the_key_can_rotate() -> None:
    held = keyed(
        erased(1, "acme.test", "before@example.org", key=OLD_KEY),
        erased(2, "acme.test", "after@example.org"),
        keys=(KEY, OLD_KEY),
    )
    assert held.refusal("before@example.org", "acme.test", NOW) is not None
    assert held.refusal("after@example.org", "acme.test", NOW) is not None
    # a key the service does not hold finds nothing
    assert (
        keyed(erased(1, "acme.test", "x@example.org", key=OLD_KEY)).refusal(
            "x@example.org", "acme.test", NOW
        )
        is None
    )


def test_without_keys_an_erased_row_refuses_nobody_and_is_counted() -> None:
    held = SuppressionSnapshot()
    held.apply_all([erased(1, "acme.test", "gone@example.org")] * 2)  # read twice: one row
    assert held.refusal("gone@example.org", "acme.test", NOW) is None
    assert (held.suppressions, held.erased) == (1, 1)


class ExplodingHasher:
    """A key whose use fails the test: the lookup must not hash."""

    def copy(self) -> ExplodingHasher:
        raise AssertionError("hashed a recipient although no scope holds a hashed row")


def test_no_hash_is_computed_when_no_hashed_row_can_match() -> None:
    plain = keyed(suppressed(1, "acme.test", "alice@example.org", "complaint"))
    plain._hashers = (ExplodingHasher(),)  # type: ignore[assignment]
    assert plain.refusal("bob@example.org", "acme.test", NOW) is None
    assert plain.refusal("alice@example.org", "acme.test", NOW) is not None
    # hashed rows for another tenant only: this tenant's lookups stay plain
    other = keyed(erased(1, "shop.test", "gone@example.org"))
    other._hashers = (ExplodingHasher(),)  # type: ignore[assignment]
    assert other.refusal("gone@example.org", "acme.test", NOW) is None


def test_the_lookup_hash_is_the_one_forget_writes() -> None:
    held = keyed(erased(1, "acme.test", "a.b+tag@example.org"))
    assert held.refusal(normalise_address("A.B+tag@EXAMPLE.org."), "acme.test", NOW) is not None
    assert held.refusal("ab+tag@example.org", "acme.test", NOW) is None


def test_a_replaced_snapshot_being_emptied_looks_no_hash_up() -> None:
    held = keyed(erased(1, "acme.test", "gone@example.org"), erased(2, GLOBAL, "x@example.org"))
    assert held.erased == 2
    held.shrink(1)
    assert held.erased == 0
    assert held.refusal("x@example.org", "acme.test", NOW) is None
