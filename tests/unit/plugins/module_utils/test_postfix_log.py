"""Postfix log lines -> delivery events: one final event per message and recipient, across the
handoffs between a lane's intake, its provider instances and the graveyard."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.postfix_log import (
    BOUNCED,
    DEFERRED,
    DELIVERY,
    EXPIRED,
    HANDOFF,
    REFUSAL,
    REJECTED,
    SENT,
    TEMPFAILED,
    Event,
    Tracker,
    event_key,
    split_identifier,
)

# The lab's shape: smtp1 (internal 10.25.0.10, public 198.51.100.11) with the bulk lane's
# intake on 2525 and its google and yahoo instances on 2526 and 2527; the graveyard gy1
# (198.51.100.50); the application submitting from 10.25.0.100.
OWN = ("10.25.0.10", "198.51.100.11", "10.25.0.50", "198.51.100.50")
SENDER = "b+a=gmail.test@bounces.example.test"
T0 = datetime(2026, 12, 1, 17, 0, tzinfo=UTC).timestamp()
_SAFE = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"  # Postfix's long-id alphabet


def qid(number: int) -> str:
    """A long queue id (enable_long_queue_ids = yes): ten characters of time, 'z', inode."""

    def encode(value: int, alphabet: str, width: int) -> str:
        digits = ""
        while value or len(digits) < width:
            value, digit = divmod(value, len(alphabet))
            digits = alphabet[digit] + digits
        return digits

    return "4ZkRq" + encode(number, _SAFE, 5) + "z" + encode(number + 7, _SAFE[:-1], 1)


def stamp(second: int) -> str:
    """Dec 1 17:00:00 plus `second`, as classic syslog writes it."""
    minute, sec = divmod(second, 60)
    return f"Dec  1 17:{minute:02d}:{sec:02d}"


def line(second: int, host: str, ident: str, message: str) -> str:
    return f"{stamp(second)} {host} {ident}[{1000 + second}]: {message}"


def tracker(**options: object) -> Tracker:
    return Tracker(OWN, year=2026, **options)  # type: ignore[arg-type]


def run(lines: list[str], track: Tracker | None = None) -> list[Event]:
    track = tracker() if track is None else track
    events: list[Event] = []
    for text in lines:
        events += track.feed(text)
    return events


def finals(events: list[Event]) -> list[Event]:
    return [event for event in events if event.final]


def intake(
    up: str, second: int, rcpts: int = 1, message_id: str = "c1.0001@example.test"
) -> list[str]:
    """What the bulk lane's intake logs when the application submits a message."""
    return [
        line(second, "smtp1", "postfix-bulk/smtpd", f"{up}: client=app.internal[10.25.0.100]"),
        line(second, "smtp1", "postfix-bulk/cleanup", f"{up}: message-id=<{message_id}>"),
        line(second, "smtp1", "postfix-bulk/qmgr",
             f"{up}: from=<{SENDER}>, size=4211, nrcpt={rcpts} (queue active)"),
    ]  # fmt: skip


def provider_intake(
    down: str, second: int, instance: str, message_id: str, rcpts: int = 1
) -> list[str]:
    """What a provider instance logs when the intake hands it the message."""
    return [
        line(second, "smtp1", f"{instance}/smtpd", f"{down}: client=smtp1.internal[10.25.0.10]"),
        line(second, "smtp1", f"{instance}/cleanup", f"{down}: message-id=<{message_id}>"),
        line(second, "smtp1", f"{instance}/qmgr",
             f"{down}: from=<{SENDER}>, size=4520, nrcpt={rcpts} (queue active)"),
    ]  # fmt: skip


def handoff(up: str, down: str, second: int, rcpt: str, port: int = 2526) -> str:
    return line(second, "smtp1", "postfix-bulk/handoff/smtp",
                f"{up}: to=<{rcpt}>, relay=10.25.0.10[10.25.0.10]:{port}, delay=0.42, "
                f"delays=0.05/0.01/0.2/0.16, dsn=2.0.0, status=sent "
                f"(250 2.0.0 Ok: queued as {down})")  # fmt: skip


GMAIL_MX = "gmail-smtp-in.l.gmail.test[198.51.100.25]:25"


def sent(down: str, second: int, rcpt: str, instance: str = "postfix-bulk-google",
         transport: str = "google", mx: str = GMAIL_MX) -> str:  # fmt: skip
    return line(second, "smtp1", f"{instance}/{transport}/smtp",
                f"{down}: to=<{rcpt}>, relay={mx}, delay=0.9, delays=0.01/0.01/0.5/0.38, "
                f"dsn=2.0.0, status=sent (250 2.0.0 OK  1733072402 x12si123 - gsmtp)")  # fmt: skip


def removed(queue_id: str, second: int, instance: str) -> str:
    return line(second, "smtp1", f"{instance}/qmgr", f"{queue_id}: removed")


def through_google(number: int, second: int = 0, rcpt: str = "a@gmail.test") -> list[str]:
    """One message: intake -> handoff -> google instance -> sent."""
    up, down = qid(2 * number), qid(2 * number + 1)
    message_id = f"c1.{number:04d}@example.test"
    return [
        *intake(up, second, message_id=message_id),
        *provider_intake(down, second + 1, "postfix-bulk-google", message_id),
        handoff(up, down, second + 1, rcpt),
        removed(up, second + 1, "postfix-bulk"),
        sent(down, second + 2, rcpt),
        removed(down, second + 2, "postfix-bulk-google"),
    ]


# ---------------------------------------------------------------------- one message


def test_a_message_through_the_intake_and_its_provider_instance_has_one_final_event() -> None:
    events = run(through_google(1))
    (hop,) = [event for event in events if event.kind == HANDOFF]
    assert (hop.status, hop.final, hop.instance, hop.transport) == (
        SENT, False, "postfix-bulk", "handoff"
    )  # fmt: skip
    assert (hop.queue_id, hop.next_queue_id, hop.relay_port) == (qid(2), qid(3), 2526)

    (final,) = finals(events)
    assert final.kind == DELIVERY and final.status == SENT
    assert (final.instance, final.transport, final.queue_id) == (
        "postfix-bulk-google", "google", qid(3)
    )  # fmt: skip
    # the downstream relay, the first hop's client (not the intake's handoff address)
    assert (final.relay_host, final.relay_ip, final.relay_port) == (
        "gmail-smtp-in.l.gmail.test", "198.51.100.25", 25
    )  # fmt: skip
    assert (final.client_host, final.client_ip) == ("app.internal", "10.25.0.100")
    assert final.message_id == "c1.0001@example.test"
    assert final.sender == SENDER
    assert final.recipient == "a@gmail.test"
    assert final.origin_queue_id == qid(2)
    assert final.dsn == "2.0.0" and final.reply == "250 2.0.0 OK  1733072402 x12si123 - gsmtp"
    assert final.delay == 0.9 and final.delays == (0.01, 0.01, 0.5, 0.38)
    assert final.timestamp == T0 + 2
    assert final.host == "smtp1" and not final.upstream_unseen
    # both queue ids are forgotten at `removed`
    track = tracker()
    run(through_google(1), track)
    assert len(track) == 0


def test_the_journal_gives_the_same_events_as_syslog_lines() -> None:
    track = tracker()
    events: list[Event] = []
    for text in through_google(1):
        stamp_part, rest = text[:15], text[16:]
        host, ident_pid, message = rest.split(" ", maxsplit=2)
        ident = ident_pid.split("[", maxsplit=1)[0]
        seconds = datetime.strptime(f"2026 {stamp_part}", "%Y %b %d %H:%M:%S")
        events += track.feed_journal(ident, message, seconds.replace(tzinfo=UTC).timestamp(), host)
    assert events == run(through_google(1))


def test_rfc3339_stamps_and_a_pri_are_read() -> None:
    text = (
        "<22>2026-12-01T17:00:02.250000+00:00 smtp1 postfix/smtp[7]: D53A72713E5: "
        "to=<x@outlook.test>, relay=mx.outlook.test[198.51.100.40]:25, conn_use=2, delay=0.57, "
        "delays=0.11/0.03/0.23/0.19, dsn=2.0.0, status=sent (250 2.6.0 Queued mail for delivery)"
    )
    (event,) = run([text])
    assert event.timestamp == T0 + 2.25
    assert (event.queue_id, event.instance, event.transport) == ("D53A72713E5", "postfix", "smtp")
    assert event.final and event.reply == "250 2.6.0 Queued mail for delivery"


def test_names_of_instances_and_services() -> None:
    assert split_identifier("postfix/smtp") == ("postfix", "smtp", "smtp")
    assert split_identifier("postfix/submission/smtpd") == ("postfix", "submission", "smtpd")
    assert split_identifier("postfix-bulk/handoff/smtp") == ("postfix-bulk", "handoff", "smtp")
    assert split_identifier("postfix-bulk-google/smtp") == ("postfix-bulk-google", "smtp", "smtp")
    assert split_identifier("postfix-bulk-google/google/smtp") == (
        "postfix-bulk-google", "google", "smtp"
    )  # fmt: skip


def test_submission_login_and_the_relay_transport() -> None:
    lines = [
        line(0, "smtp1", "postfix/submission/smtpd",
             "D53A72713E5: client=unknown[10.25.0.101], sasl_method=PLAIN, "
             "sasl_username=app@example.test"),
        line(0, "smtp1", "postfix/cleanup", "D53A72713E5: message-id=<r1@example.test>"),
        line(0, "smtp1", "postfix/qmgr",
             "D53A72713E5: from=<app@example.test>, size=900, nrcpt=1 (queue active)"),
        line(1, "smtp1", "postfix/relay/smtp",
             "D53A72713E5: to=<z@customer.test>, relay=email-smtp.eu-west-1.amazonaws.test"
             "[198.51.100.90]:587, delay=1.1, delays=0.1/0/0.5/0.5, dsn=2.0.0, "
             "status=sent (250 Ok 0102018d-abc)"),
    ]  # fmt: skip
    (event,) = run(lines)
    assert (event.transport, event.sasl_username, event.client_ip, event.relay_port) == (
        "relay", "app@example.test", "10.25.0.101", 587
    )  # fmt: skip


# ---------------------------------------------------------------------- the graveyard


def graveyard_message(second: int = 0) -> tuple[list[str], list[str]]:
    """A first attempt that fails hands the message to the graveyard, which delivers it after
    one deferral: (smtp1's lines, gy1's lines)."""
    up, grave = qid(100), qid(101)
    rcpt = "d@yahoo.test"
    primary = [
        *intake(up, second, message_id="g1@example.test"),
        line(second + 1, "smtp1", "postfix-bulk/smtp",
             f"{up}: host mx.yahoo.test[198.51.100.30] said: 421 4.7.0 [TSS04] Messages from "
             f"198.51.100.11 temporarily deferred (in reply to MAIL FROM command)"),
        line(second + 2, "smtp1", "postfix-bulk/smtp",
             f"{up}: to=<{rcpt}>, relay=198.51.100.50[198.51.100.50]:25, delay=2.1, "
             f"delays=0.05/0/1.9/0.15, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {grave})"),
        removed(up, second + 2, "postfix-bulk"),
    ]  # fmt: skip
    graveyard = [
        line(second + 2, "gy1", "postfix/smtpd",
             f"{grave}: client=smtp1.example.test[198.51.100.11]"),
        line(second + 2, "gy1", "postfix/cleanup", f"{grave}: message-id=<g1@example.test>"),
        line(second + 2, "gy1", "postfix/qmgr",
             f"{grave}: from=<{SENDER}>, size=4700, nrcpt=1 (queue active)"),
        line(second + 3, "gy1", "postfix/smtp",
             f"{grave}: to=<{rcpt}>, relay=mx.yahoo.test[198.51.100.30]:25, delay=1.2, "
             f"delays=0.01/0/0.6/0.6, dsn=4.7.0, status=deferred (host mx.yahoo.test"
             f"[198.51.100.30] said: 421 4.7.0 [TSS04] Messages temporarily deferred "
             f"(in reply to MAIL FROM command))"),
        line(second + 600, "gy1", "postfix/qmgr",
             f"{grave}: from=<{SENDER}>, size=4700, nrcpt=1 (queue active)"),
        line(second + 601, "gy1", "postfix/smtp",
             f"{grave}: to=<{rcpt}>, relay=mx.yahoo.test[198.51.100.30]:25, delay=599, "
             f"delays=598/0/0.6/0.4, dsn=2.0.0, status=sent (250 ok dirdel)"),
        line(second + 601, "gy1", "postfix/qmgr", f"{grave}: removed"),
    ]  # fmt: skip
    return primary, graveyard


def test_a_message_handed_to_the_graveyard_ends_in_the_graveyards_log() -> None:
    primary, graveyard = graveyard_message()
    events = run(primary + graveyard)
    assert [(e.host, e.kind, e.status, e.final) for e in events] == [
        ("smtp1", HANDOFF, SENT, False),
        ("gy1", DELIVERY, DEFERRED, False),
        ("gy1", DELIVERY, SENT, True),
    ]
    final = events[-1]
    assert (final.queue_id, final.origin_queue_id, final.client_ip) == (
        qid(101), qid(100), "10.25.0.100"
    )  # fmt: skip
    assert final.message_id == "g1@example.test" and not final.upstream_unseen
    assert final.relay_host == "mx.yahoo.test"
    # the deferral on the way is reported too, with the receiver's words
    assert events[1].dsn == "4.7.0" and "[TSS04]" in (events[1].reply or "")


def test_a_graveyard_read_by_its_own_ingester_says_where_to_join() -> None:
    primary, graveyard = graveyard_message()
    (hop,) = run(primary)
    events = run(graveyard)
    (final,) = finals(events)
    # its client is smtp1: the primary's HANDOFF names this queue id
    assert final.upstream_unseen and final.client_ip == "198.51.100.11"
    assert hop.next_queue_id == final.queue_id
    assert final.message_id == "g1@example.test"


# ---------------------------------------------------------------------- outcomes


def test_an_smtp_time_5_1_1_bounce_is_final_with_the_reply() -> None:
    up = qid(200)
    reply = (
        "host mx.yahoo.test[198.51.100.30] said: 550 5.1.1 <unknown-7@yahoo.test>: Recipient "
        "address rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)"
    )
    lines = [
        *intake(up, 0, message_id="b1@example.test"),
        line(1, "smtp1", "postfix-bulk/smtp",
             f"{up}: to=<unknown-7@yahoo.test>, relay=mx.yahoo.test[198.51.100.30]:25, "
             f"delay=0.3, delays=0.01/0/0.2/0.09, dsn=5.1.1, status=bounced ({reply})"),
        line(1, "smtp1", "postfix-bulk/cleanup", f"{qid(201)}: message-id=<n1@smtp1.test>"),
        line(1, "smtp1", "postfix-bulk/bounce",
             f"{up}: sender non-delivery notification: {qid(201)}"),
        line(1, "smtp1", "postfix-bulk/qmgr",
             f"{qid(201)}: from=<>, size=2400, nrcpt=1 (queue active)"),
        removed(up, 1, "postfix-bulk"),
        line(2, "smtp1", "postfix-bulk/smtp",
             f"{qid(201)}: to=<{SENDER}>, relay=10.25.0.10[10.25.0.10]:25, delay=0.1, "
             f"delays=0/0/0.05/0.05, dsn=2.0.0, status=sent (250 2.0.0 Ok)"),
    ]  # fmt: skip
    bounce, notice = run(lines)
    assert (bounce.status, bounce.final, bounce.dsn) == (BOUNCED, True, "5.1.1")
    assert bounce.reply == reply
    assert bounce.recipient == "unknown-7@yahoo.test" and bounce.message_id == "b1@example.test"
    # the non-delivery notification's own delivery says which message it reports on
    assert (notice.sender, notice.notice_of, notice.status) == ("", up, SENT)


def test_deferred_then_sent() -> None:
    up = qid(300)
    lines = [
        *intake(up, 0),
        line(1, "smtp1", "postfix-bulk/smtp",
             f"{up}: to=<defer-1@outlook.test>, relay=mx.outlook.test[198.51.100.40]:25, "
             f"delay=0.4, delays=0.01/0/0.2/0.2, dsn=4.7.650, status=deferred (host "
             f"mx.outlook.test[198.51.100.40] said: 451 4.7.650 The mail server has been "
             f"temporarily rate limited (in reply to end of DATA command))"),
        line(301, "smtp1", "postfix-bulk/smtp",
             f"{up}: to=<defer-1@outlook.test>, relay=mx.outlook.test[198.51.100.40]:25, "
             f"delay=301, delays=300/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.6.0 Queued)"),
    ]  # fmt: skip
    deferred, final = run(lines)
    assert (deferred.status, deferred.final, deferred.dsn) == (DEFERRED, False, "4.7.650")
    assert (final.status, final.final, final.timestamp) == (SENT, True, T0 + 301)
    assert deferred.key != final.key


def test_relay_none_and_an_expiry_name_the_last_reason() -> None:
    up = qid(400)
    lines = [
        *intake(up, 0, rcpts=2),
        line(1, "smtp1", "postfix-bulk/smtp",
             f"{up}: to=<x@gone.test>, relay=none, delay=30, delays=0.01/0/30/0, dsn=4.4.1, "
             f"status=deferred (connect to mx.gone.test[198.51.100.66]:25: Connection timed out)"),
        line(1, "smtp1", "postfix-bulk/smtp",
             f"{up}: to=<y@gone.test>, orig_to=<y-alias@example.test>, relay=none, delay=30, "
             f"delays=0.01/0/30/0, dsn=4.4.1, status=deferred (connect to mx.gone.test"
             f"[198.51.100.66]:25: Connection timed out)"),
        line(2, "smtp1", "postfix-bulk/qmgr",
             f"{up}: from=<{SENDER}>, status=expired, returned to sender"),
    ]  # fmt: skip
    events = run(lines)
    assert events[0].relay_host is None and events[0].relay_ip is None
    expired = finals(events)
    assert [(e.recipient, e.status, e.dsn) for e in expired] == [
        ("x@gone.test", EXPIRED, "4.4.1"),
        ("y@gone.test", EXPIRED, "4.4.1"),
    ]
    assert expired[1].original_recipient == "y-alias@example.test"
    assert "Connection timed out" in (expired[0].reply or "")
    assert expired[0].message_id == "c1.0001@example.test"


def test_an_expiry_of_a_message_the_tracker_never_saw_deferred() -> None:
    text = line(0, "gy1", "postfix/qmgr",
                f"{qid(500)}: from=<{SENDER}>, status=expired, returned to sender")  # fmt: skip
    (event,) = run([text])
    assert (event.status, event.final, event.recipient, event.sender) == (
        EXPIRED, True, None, SENDER
    )  # fmt: skip


def test_noqueue_rejects_are_refusals() -> None:
    lines = [
        line(0, "smtp1", "postfix-bulk/smtpd",
             "NOQUEUE: reject: RCPT from app.internal[10.25.0.100]: 550 5.7.1 "
             "<complain-3@yahoo.test>: Recipient address rejected: suppressed: complaint on "
             "2026-11-30; from=<b@bounces.example.test> to=<complain-3@yahoo.test> proto=ESMTP "
             "helo=<app.internal>"),
        line(1, "smtp1", "postfix/smtpd",
             "NOQUEUE: reject: RCPT from unknown[198.51.100.200]:41234: 450 4.7.1 "
             "<a@example.test>: Recipient address rejected: try again; from=<x@spam.test> "
             "to=<a@example.test> proto=ESMTP helo=<spam.test>"),
        line(2, "smtp1", "postfix/smtpd",
             "NOQUEUE: reject: CONNECT from unknown[198.51.100.201]: 554 5.7.1 "
             "<unknown[198.51.100.201]>: Client host rejected: Access denied; proto=SMTP"),
    ]  # fmt: skip
    suppressed, later, connect = run(lines)
    assert (suppressed.kind, suppressed.status, suppressed.final) == (REFUSAL, REJECTED, False)
    assert (suppressed.recipient, suppressed.sender, suppressed.client_ip) == (
        "complain-3@yahoo.test", "b@bounces.example.test", "10.25.0.100"
    )  # fmt: skip
    assert suppressed.dsn == "5.7.1" and suppressed.queue_id is None
    assert suppressed.reply is not None and suppressed.reply.endswith("complaint on 2026-11-30")
    assert (later.status, later.dsn, later.client_ip) == (TEMPFAILED, "4.7.1", "198.51.100.200")
    assert (connect.status, connect.recipient, connect.sender) == (REJECTED, None, None)
    assert len({suppressed.key, later.key, connect.key}) == 3


def test_a_milter_reject_refuses_the_message_and_forgets_it() -> None:
    up = qid(600)
    track = tracker()
    lines = [
        line(0, "smtp1", "postfix/smtpd", f"{up}: client=app.internal[10.25.0.100]"),
        line(0, "smtp1", "postfix/cleanup", f"{up}: message-id=<m1@shop.test>"),
        line(0, "smtp1", "postfix/cleanup",
             f"{up}: milter-reject: END-OF-MESSAGE from app.internal[10.25.0.100]: 5.7.1 "
             f"app@shop.test may not send as example.test; from=<x@example.test> "
             f"to=<c@gmail.test> proto=ESMTP helo=<app.internal>"),
    ]  # fmt: skip
    (event,) = run(lines, track)
    assert (event.kind, event.status, event.dsn, event.queue_id) == (REFUSAL, REJECTED, "5.7.1", up)
    assert event.message_id == "m1@shop.test" and event.reply is not None
    assert len(track) == 0


# ---------------------------------------------------------------------- many recipients, many


def test_a_message_to_three_recipients_over_two_providers() -> None:
    up, google, yahoo = qid(700), qid(701), qid(702)
    mid = "multi@example.test"
    lines = [
        *intake(up, 0, rcpts=3, message_id=mid),
        *provider_intake(google, 1, "postfix-bulk-google", mid, rcpts=2),
        handoff(up, google, 1, "a@gmail.test"),
        handoff(up, google, 1, "b@gmail.test"),
        *provider_intake(yahoo, 1, "postfix-bulk-yahoo", mid),
        line(1, "smtp1", "postfix-bulk/handoff/smtp",
             f"{up}: to=<unknown-1@yahoo.test>, orig_to=<list-9@example.test>, "
             f"relay=10.25.0.10[10.25.0.10]:2527, delay=0.4, delays=0.05/0.01/0.2/0.14, "
             f"dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as {yahoo})"),
        removed(up, 1, "postfix-bulk"),
        sent(google, 2, "b@gmail.test"),
        line(2, "smtp1", "postfix-bulk-yahoo/yahoo/smtp",
             f"{yahoo}: to=<unknown-1@yahoo.test>, relay=mx.yahoo.test[198.51.100.30]:25, "
             f"delay=0.5, delays=0/0/0.3/0.2, dsn=5.1.1, status=bounced (host mx.yahoo.test"
             f"[198.51.100.30] said: 554 5.1.1 <unknown-1@yahoo.test>: delivery error: "
             f"dd This user doesn't have a yahoo.test account (in reply to end of DATA "
             f"command))"),
        sent(google, 3, "a@gmail.test"),
        removed(google, 3, "postfix-bulk-google"),
    ]  # fmt: skip
    events = run(lines)
    assert sum(event.kind == HANDOFF for event in events) == 3
    got = {(e.recipient, e.status, e.transport, e.queue_id) for e in finals(events)}
    assert got == {
        ("a@gmail.test", SENT, "google", google),
        ("b@gmail.test", SENT, "google", google),
        ("unknown-1@yahoo.test", BOUNCED, "yahoo", yahoo),
    }
    for event in finals(events):
        assert (event.message_id, event.sender, event.client_ip, event.origin_queue_id) == (
            mid, SENDER, "10.25.0.100", up
        )  # fmt: skip
    (bounce,) = [event for event in finals(events) if event.status == BOUNCED]
    # orig_to travels with the handoff
    assert bounce.original_recipient == "list-9@example.test"


def _interleave(
    streams: list[list[str]], rng: random.Random, waits: dict[int, int] | None = None
) -> list[str]:
    """Merge the streams in a random order, each stream's own order kept; a stream in `waits`
    starts only once the stream it waits for is done (a later host's lines)."""
    waits = dict(waits or {})
    positions = [0] * len(streams)
    merged = []
    live = [index for index, stream in enumerate(streams) if stream and index not in waits]
    while live:
        pick = rng.choice(live)
        merged.append(streams[pick][positions[pick]])
        positions[pick] += 1
        if positions[pick] == len(streams[pick]):
            live.remove(pick)
            live += [index for index, after in waits.items() if after == pick]
    return merged


def _summary(events: list[Event]) -> list[tuple[object, ...]]:
    return sorted(
        (e.recipient, e.status, e.queue_id, e.origin_queue_id, e.message_id, e.client_ip, e.key)
        for e in finals(events)
    )


@pytest.mark.parametrize("seed", range(6))
def test_any_interleaving_of_several_messages_gives_the_same_finals(seed: int) -> None:
    primary, graveyard = graveyard_message()
    streams = [through_google(number, second=number) for number in range(1, 8)]
    # gy1 queues the message (smtpd, cleanup, qmgr) before smtp1 hears its 250 and logs the
    # handoff; what gy1 delivers comes after.
    streams += [primary, graveyard[:3], graveyard[3:]]
    in_order = run([text for stream in streams for text in stream])
    mixed = run(_interleave(streams, random.Random(seed), waits={9: 7}))
    assert _summary(mixed) == _summary(in_order)
    assert len(finals(mixed)) == 8
    assert all(event.client_ip == "10.25.0.100" for event in finals(mixed))


def test_a_next_hop_that_logs_its_delivery_before_the_handoff_is_joined_later() -> None:
    """Two hosts' journals read by one ingester, one of them late: the final event comes
    first, marked for the join; the handoff still says it is not final."""
    primary, graveyard = graveyard_message()
    events = run(graveyard + primary)
    assert [(e.kind, e.final) for e in events] == [
        (DELIVERY, False), (DELIVERY, True), (HANDOFF, False)
    ]  # fmt: skip
    assert events[1].upstream_unseen and events[2].next_queue_id == events[1].queue_id


# ---------------------------------------------------------------------- bounded state, restart


def test_memory_is_bounded_by_count_and_by_age() -> None:
    track = tracker(max_messages=100)
    for number in range(5000):
        track.feed(intake(qid(10_000 + number), 0)[0])  # never removed
    assert len(track) == 100
    assert track.stats["evicted"] == 4900

    track = tracker(max_age=3600.0)
    run(intake(qid(20_000), 0), track)
    run(intake(qid(20_001), 3500), track)
    assert len(track) == 2
    track.feed(line(3700, "smtp1", "postfix/smtpd", "connect from x[198.51.100.9]"))
    assert len(track) == 1  # the first message was silent for more than an hour


def test_a_forgotten_message_still_gets_its_final_event() -> None:
    lines = through_google(1)
    track = tracker(max_messages=1)
    events = run(lines, track)
    assert len(finals(events)) == 1


def test_a_snapshot_carries_the_state_over_a_restart() -> None:
    lines = through_google(1) + graveyard_message()[0] + graveyard_message()[1]
    whole = run(lines)
    for cut in (3, 7, 12):
        first = tracker()
        events = run(lines[:cut], first)
        second = tracker()
        second.restore(json.loads(json.dumps(first.snapshot())))
        events += run(lines[cut:], second)
        assert events == whole
    with pytest.raises(ValueError, match="version"):
        tracker().restore({"version": 0})


def test_event_keys_are_stable_and_tell_events_apart() -> None:
    assert run(through_google(1)) == run(through_google(1))  # the same keys on a second read
    assert event_key("smtp1", "Q", "a@x", SENT, T0) == event_key("smtp1", "Q", "a@x", SENT, T0)
    keys = {
        event_key("smtp1", "Q", "a@x", SENT, T0),
        event_key("smtp1", "Q", "b@x", SENT, T0),
        event_key("smtp1", "Q", "a@x", DEFERRED, T0),
        event_key("smtp1", "Q", "a@x", SENT, T0 + 0.000001),
        event_key("smtp2", "Q", "a@x", SENT, T0),
    }
    assert len(keys) == 5
    row = run(through_google(1))[-1].as_row()
    assert row["delays"] == [0.01, 0.01, 0.5, 0.38] and json.dumps(row)


def test_other_lines_give_nothing() -> None:
    lines = [
        line(0, "smtp1", "opendkim", "4ZkRqN0Yb3z9vQ1: DKIM-Signature field added (s=s1, d=x)"),
        line(0, "smtp1", "postfix/smtpd", "connect from app.internal[10.25.0.100]"),
        line(0, "smtp1", "postfix/smtp", "warning: TLS library problem: unexpected eof"),
        line(0, "smtp1", "postfix/smtp",
             "Trusted TLS connection established to mx.test[198.51.100.25]:25: TLSv1.3"),
        line(0, "smtp1", "postfix/smtp",
             f"{qid(900)}: to=<probe@gmail.test>, relay=mx.test[198.51.100.25]:25, delay=1, "
             f"delays=0/0/0.5/0.5, dsn=2.1.5, status=deliverable (250 2.1.5 OK)"),
        "not a syslog line at all",
        "",
    ]  # fmt: skip
    track = tracker()
    assert run(lines, track) == []
    assert track.stats["lines"] == len(lines)


# ---------------------------------------------------------------------- speed


def test_ingest_speed() -> None:
    """Lines per second on this machine (printed: `pytest -s`); no assertion on the figure."""
    lines: list[str] = []
    number = 0
    while len(lines) < 100_000:
        lines += through_google(number, second=number % 3000)
        lines.append(line(number % 3000, "smtp1", "postfix-bulk/smtpd",
                          "disconnect from app.internal[10.25.0.100] ehlo=1 mail=1 rcpt=1 "
                          "data=1 quit=1 commands=5"))  # fmt: skip
        number += 1
    track = tracker()
    started = time.perf_counter()
    count = 0
    for text in lines:
        count += len(track.feed(text))
    elapsed = time.perf_counter() - started
    assert count == 2 * number  # a handoff and a final per message
    print(f"\ningest_lines_per_s: {len(lines) / elapsed:.0f} ({len(lines)} lines, {count} events)")
