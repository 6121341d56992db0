"""What `bulkmail feedback` makes of each message a feedback address receives.

Samples: data/feedback/ (Postfix, Gmail, Yahoo CFL, an out-of-office), and messages built
here with the email package the way Postfix and the reporters write them.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.inbound import (
    KIND_AUTO_REPLY,
    KIND_BOUNCE,
    KIND_COMPLAINT,
    KIND_DMARC,
    KIND_TLS,
    KIND_UNPARSED,
    KIND_UNSUBSCRIBE,
    UNKNOWN,
    FeedbackConfig,
    FeedbackConfigError,
    Outcome,
    dmarc_record_statement,
    dmarc_report_statement,
    follow_up_statements,
    message_statement,
    process,
    route,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import GLOBAL
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.unsubscribe import (
    make_token,
    unsubscribe_headers,
)

DATA = Path(__file__).parent / "data" / "feedback"
NOW = datetime(2026, 10, 13, 13, 0, tzinfo=UTC)
CONFIG_DATA = {
    "tenants": {"domains": {"example.test": "example.test", "shop.test": "shop.test"}},
    "return_path_domains": {
        "bounces.example.test": "example.test",
        "bounces.shop.test": "shop.test",
    },
    "senders": ["news@example.test", "offers@shop.test"],
    "addresses": {
        "dmarc@example.test": "dmarc_report",
        "tls-reports@example.test": "tls_report",
        "fbl@example.test": "complaint",
        "unsubscribe@example.test": "unsubscribe",
        "unsubscribe@shop.test": "unsubscribe",
    },
}
CONFIG = FeedbackConfig.load(CONFIG_DATA)


def sample(name: str) -> bytes:
    return (DATA / name).read_bytes()


def postfix_dsn(
    recipient: str,
    verp: str,
    status: str,
    reply: str,
    *,
    reporting_mta: str | None = "dns; smtp1.example.test",
) -> bytes:
    """A Postfix bounce(8) report, as smtp1 sends it to the VERP return path (another MTA's
    with `reporting_mta`, or one naming none with None)."""
    report = MIMEMultipart("report", report_type="delivery-status")
    report["From"] = "MAILER-DAEMON@smtp1.example.test (Mail Delivery System)"
    report["To"] = verp
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report["Auto-Submitted"] = "auto-replied"
    report["Message-Id"] = "<4Bx9@smtp1.example.test>"
    report.attach(MIMEText(f"<{recipient}>: host mx said: {reply}\n"))
    per_message = Message()
    if reporting_mta is not None:
        per_message["Reporting-MTA"] = reporting_mta
    per_message["X-Postfix-Queue-ID"] = "4Bx1Yk2Lz3z9sQ"
    per_recipient = Message()
    per_recipient["Final-Recipient"] = f"rfc822; {recipient}"
    per_recipient["Original-Recipient"] = f"rfc822;{recipient}"
    per_recipient["Action"] = "failed"
    per_recipient["Status"] = status
    per_recipient["Remote-MTA"] = "dns; mx.example.net"
    per_recipient["Diagnostic-Code"] = f"smtp; {reply}"
    per_recipient["Last-Attempt-Date"] = "Tue, 13 Oct 2026 10:15:02 +0000"
    status_part = MIMEBase("message", "delivery-status")
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    headers = MIMEText(
        f"Return-Path: <{verp}>\nFrom: News <news@example.test>\nTo: {recipient}\n"
        "Message-ID: <20261013.1@app1.example.test>\nSubject: October\n",
        "rfc822-headers",
    )
    report.attach(headers)
    return report.as_bytes()


def arf(original_from: str, mail_from: str, rcpt: str, *, feedback_type: str = "abuse") -> bytes:
    """A Yahoo-style ARF report with the original's header."""
    report = MIMEMultipart("report", report_type="feedback-report")
    report["From"] = "Yahoo! Mail AntiSpam Feedback <feedback@arf.mail.yahoo.com>"
    report["To"] = "fbl@example.test"
    report["Subject"] = "FW: offers"
    report["Message-ID"] = "<fbl.1@arf.mail.yahoo.com>"
    report.attach(MIMEText("This is an email abuse report.\n"))
    fields = MIMEBase("message", "feedback-report")
    fields.set_payload(
        f"Feedback-Type: {feedback_type}\nUser-Agent: Yahoo!-Mail-Feedback/2.0\nVersion: 0.1\n"
        f"Original-Mail-From: <{mail_from}>\nOriginal-Rcpt-To: {rcpt}\n"
        "Arrival-Date: Tue, 13 Oct 2026 10:15:03 +0000\n"
    )
    report.attach(fields)
    report.attach(
        MIMEText(
            f"Return-Path: <{mail_from}>\nFrom: Offers <{original_from}>\nTo: {rcpt}\n"
            "Message-ID: <offer.7@app1.shop.test>\nFeedback-ID: oct:shop:offers:shop0001\n",
            "rfc822-headers",
        )
    )
    return report.as_bytes()


DMARC_XML = sample("dmarc_google.xml")
TLSRPT = json.loads(sample("tlsrpt_google.json"))


def report_mail(to: str, payload: bytes, maintype: str, subtype: str, filename: str) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc-support@google.com"
    message["To"] = to
    message["Subject"] = "Report domain: example.test Submitter: google.com"
    message["Message-ID"] = "<report.1@google.com>"
    message.set_content("This is an aggregate report from google.com.")
    message.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


# ------------------------------------------------------------------------------ config


def test_config_rejects_unknown_keys_and_kinds() -> None:
    with pytest.raises(FeedbackConfigError, match="unknown key 'adresses'"):
        FeedbackConfig.load({**CONFIG_DATA, "adresses": {}})
    with pytest.raises(FeedbackConfigError, match="'dmarc' is not one of"):
        FeedbackConfig.load({**CONFIG_DATA, "addresses": {"d@example.test": "dmarc"}})
    with pytest.raises(FeedbackConfigError, match="hard_bounce_scope"):
        FeedbackConfig.load({**CONFIG_DATA, "hard_bounce_scope": "everyone"})
    with pytest.raises(FeedbackConfigError, match="tenants"):
        FeedbackConfig.load({"return_path_domains": {}})


def test_an_old_config_without_own_reporting_mtas_loads_and_counts_every_notice() -> None:
    assert "own_reporting_mtas" not in CONFIG_DATA
    assert CONFIG.own_reporting_mtas == frozenset()
    verp = "news+bob=example.net@bounces.example.test"
    outcome = process(sample("postfix_5.1.1.eml"), "", verp, CONFIG, NOW)
    assert len(outcome.bounces) == 1 and len(outcome.suppressions) == 1


@pytest.mark.parametrize("value", ["mta1.example.test", ["mta1.example.test", ""], [7]])
def test_own_reporting_mtas_must_be_a_list_of_names(value: object) -> None:
    with pytest.raises(FeedbackConfigError, match=r"\.own_reporting_mtas: a list"):
        FeedbackConfig.load({**CONFIG_DATA, "own_reporting_mtas": value})


def test_route() -> None:
    assert route("news+bob=example.net@bounces.example.test", CONFIG) == KIND_BOUNCE
    assert route("postmaster@BOUNCES.example.test", CONFIG) == KIND_BOUNCE
    assert route("<DMARC@example.test>", CONFIG) == KIND_DMARC
    assert route("tls-reports@example.test", CONFIG) == KIND_TLS
    assert route("fbl@example.test", CONFIG) == KIND_COMPLAINT
    assert route("unsubscribe+t0k3n@example.test", CONFIG) == KIND_UNSUBSCRIBE
    assert route("someone@example.test", CONFIG) == UNKNOWN


# ------------------------------------------------------------------------------ bounces


def test_postfix_dsn_for_a_verp_address_suppresses_for_its_tenant() -> None:
    raw = sample("postfix_5.1.1.eml")
    verp = "news+bob=example.net@bounces.example.test"
    outcome = process(raw, "", verp, CONFIG, NOW)
    assert outcome.kind == KIND_BOUNCE
    assert outcome.message.envelope_recipient == verp
    assert outcome.message.envelope_sender == ""
    assert outcome.message.message_id == "4Bx1Yk3nWqz9sR@smtp1.example.test"
    assert len(outcome.message.digest) == 64
    (bounce,) = outcome.bounces
    assert (bounce.tenant, bounce.recipient, bounce.sender) == (
        "example.test", "bob@example.net", "news@example.test",
    )  # fmt: skip
    assert (bounce.dsn, bounce.bounce_class, bounce.hard) == ("5.1.1", "invalid_recipient", True)
    assert bounce.message_id == "20261013101500.4711@app1.example.test"
    (suppression,) = outcome.suppressions
    assert (suppression.tenant, suppression.address, suppression.reason, suppression.dsn) == (
        "example.test", "bob@example.net", "hard_bounce", "5.1.1",
    )  # fmt: skip
    assert outcome.soft_bounces == ()
    assert "suppressed for example.test" in outcome.summary()


def test_built_dsn_for_a_shop_address_and_global_scope() -> None:
    verp = "offers+Carol=example.net@bounces.shop.test"
    raw = postfix_dsn("Carol@example.net", verp, "5.1.1", "550 5.1.1 user unknown")
    outcome = process(raw, "MAILER-DAEMON", verp, CONFIG, NOW)
    (bounce,) = outcome.bounces
    assert (bounce.tenant, bounce.recipient) == ("shop.test", "carol@example.net")
    assert bounce.occurred_at == datetime(2026, 10, 13, 10, 15, 2, tzinfo=UTC)
    assert outcome.suppressions[0].tenant == "shop.test"
    glob = FeedbackConfig.load({**CONFIG_DATA, "hard_bounce_scope": "global"})
    assert process(raw, "", verp, glob, NOW).suppressions[0].tenant == GLOBAL


def test_soft_bounce_counts_without_suppressing() -> None:
    verp = "news+erin=example.org@bounces.example.test"
    outcome = process(sample("mailbox_full_552.eml"), "", verp, CONFIG, NOW)
    assert outcome.kind == KIND_BOUNCE
    assert outcome.suppressions == ()
    (soft,) = outcome.soft_bounces
    assert (soft.tenant, soft.address) == ("example.test", "erin@example.org")
    assert outcome.bounces[0].hard is False


def test_sender_side_bounce_is_recorded_only() -> None:
    verp = "news+dan=example.net@bounces.example.test"
    raw = postfix_dsn("dan@example.net", verp, "5.7.1", "550 5.7.1 blocked using Spamhaus")
    outcome = process(raw, "", verp, CONFIG, NOW)
    (bounce,) = outcome.bounces
    assert bounce.bounce_class == "reputation_block"
    assert outcome.suppressions == () and outcome.soft_bounces == ()


# Our smtp hosts' names, as processor_config writes them; a case and a dot the DSN may differ in.
OWN = FeedbackConfig.load(
    {**CONFIG_DATA, "own_reporting_mtas": ["SMTP1.example.test.", "mta2.example.test"]}
)


def assert_stored_only(outcome: Outcome, mta: str) -> None:
    """Our own notice: kept as kind bounce, and not one row more."""
    assert outcome.kind == KIND_BOUNCE
    assert (outcome.bounces, outcome.suppressions, outcome.soft_bounces) == ((), (), ())
    assert outcome.complaints == ()
    assert follow_up_statements(outcome, 42) == []
    note = outcome.message.note or ""
    assert note.startswith("our own notice; the bounce is counted from the log")
    assert mta in note


def test_our_own_hard_bounce_notice_is_stored_and_counts_nothing() -> None:
    raw = sample("postfix_5.1.1.eml")  # Reporting-MTA: dns; smtp1.example.test
    verp = "news+bob=example.net@bounces.example.test"
    outcome = process(raw, "", verp, OWN, NOW)
    assert_stored_only(outcome, "smtp1.example.test")
    assert "bob@example.net" in (outcome.message.note or "")
    assert outcome.message.raw == raw
    sql, params = message_statement(outcome.message)
    assert "feedback_messages" in sql and params[0] == KIND_BOUNCE


def test_our_own_soft_bounce_notice_writes_no_soft_bounce() -> None:
    verp = "news+erin=example.org@bounces.example.test"
    outcome = process(sample("mailbox_full_552.eml"), "", verp, OWN, NOW)
    assert_stored_only(outcome, "smtp1.example.test")


@pytest.mark.parametrize(
    "reporting_mta", ["dns; mta2.example.test", "DNS;MTA2.Example.Test.", "mta2.example.test"]
)
def test_our_own_notice_is_known_by_name_whatever_its_case_and_type(reporting_mta: str) -> None:
    verp = "offers+Carol=example.net@bounces.shop.test"
    raw = postfix_dsn(
        "Carol@example.net", verp, "5.1.1", "550 5.1.1 user unknown", reporting_mta=reporting_mta
    )
    assert_stored_only(process(raw, "", verp, OWN, NOW), "mta2.example.test")


def test_our_own_notice_to_a_fixed_return_path_counts_nothing() -> None:
    config = FeedbackConfig.load(
        {**CONFIG_DATA, "addresses": {"app@shop.test": "bounce"},
         "own_reporting_mtas": ["smtp1.example.test"]}
    )  # fmt: skip
    raw = postfix_dsn("carol@example.net", "app@shop.test", "5.1.1", "550 5.1.1 user unknown")
    assert_stored_only(process(raw, "", "app@shop.test", config, NOW), "smtp1.example.test")


@pytest.mark.parametrize(
    "reporting_mta", ["dns; mx.example.net", "dns; smtp1.example.test.evil.test", None]
)
def test_a_foreign_or_unnamed_dsn_for_the_same_recipient_counts_as_before(
    reporting_mta: str | None,
) -> None:
    verp = "offers+Carol=example.net@bounces.shop.test"
    raw = postfix_dsn(
        "Carol@example.net", verp, "5.1.1", "550 5.1.1 user unknown", reporting_mta=reporting_mta
    )
    outcome = process(raw, "", verp, OWN, NOW)
    assert outcome == process(raw, "", verp, CONFIG, NOW)
    (bounce,) = outcome.bounces
    assert (bounce.tenant, bounce.recipient) == ("shop.test", "carol@example.net")
    assert bounce.hard
    assert bounce.reporting_mta == (reporting_mta.partition("; ")[2] if reporting_mta else None)
    (suppression,) = outcome.suppressions
    assert (suppression.tenant, suppression.address) == ("shop.test", "carol@example.net")
    assert not (outcome.message.note or "").startswith("our own notice")


def test_our_own_delay_warning_is_stored_as_before() -> None:
    verp = "news+frank=example.org@bounces.example.test"
    raw = sample("delayed_4.4.1.eml")
    assert process(raw, "", verp, OWN, NOW) == process(raw, "", verp, CONFIG, NOW)


def test_out_of_office_is_stored_and_suppresses_nothing() -> None:
    verp = "news+grace=example.org@bounces.example.test"
    outcome = process(sample("out_of_office.eml"), "grace@example.org", verp, CONFIG, NOW)
    assert outcome.kind == KIND_AUTO_REPLY
    assert (outcome.bounces, outcome.suppressions, outcome.soft_bounces) == ((), (), ())
    assert outcome.message.raw == sample("out_of_office.eml")


def test_delay_warning_is_no_bounce() -> None:
    verp = "news+frank=example.org@bounces.example.test"
    outcome = process(sample("delayed_4.4.1.eml"), "", verp, CONFIG, NOW)
    assert outcome.kind == KIND_BOUNCE
    assert outcome.bounces == () and outcome.suppressions == ()
    assert "delay" in (outcome.message.note or "")


# ------------------------------------------------------------------------------ complaints


def test_yahoo_arf_to_the_fbl_address() -> None:
    outcome = process(sample("yahoo_cfl.eml"), "", "fbl@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_COMPLAINT
    (complaint,) = outcome.complaints
    assert (complaint.tenant, complaint.recipient, complaint.sender) == (
        "example.test", "judy@yahoo.test", "news@example.test",
    )  # fmt: skip
    assert complaint.feedback_id == "oct26:example:news:exnews01"
    assert complaint.reporter == "feedback@arf.mail.yahoo.com"
    (suppression,) = outcome.suppressions
    assert (suppression.tenant, suppression.address, suppression.reason) == (
        "example.test", "judy@yahoo.test", "complaint",
    )  # fmt: skip


def test_arf_to_a_verp_return_path_is_a_complaint() -> None:
    verp = "news+ivan=isp.example@bounces.example.test"
    outcome = process(sample("arf_abuse.eml"), "", verp, CONFIG, NOW)
    assert outcome.kind == KIND_COMPLAINT
    assert outcome.suppressions[0].address == "ivan@isp.example"
    assert outcome.bounces == ()


def test_complaint_for_shop_suppresses_for_shop_only() -> None:
    """The FBL mailbox is example.test's, the complained-about mail shop.test's."""
    raw = arf("offers@shop.test", "offers+kim=yahoo.test@bounces.shop.test", "kim@yahoo.test")
    outcome = process(raw, "", "fbl@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_COMPLAINT
    assert [(s.tenant, s.address) for s in outcome.suppressions] == [
        ("shop.test", "kim@yahoo.test")
    ]
    assert outcome.complaints[0].tenant == "shop.test"


def test_complaint_about_mail_not_ours_suppresses_nothing() -> None:
    raw = arf("promo@elsewhere.example", "promo@elsewhere.example", "lee@yahoo.test")
    outcome = process(raw, "", "fbl@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_COMPLAINT
    assert outcome.suppressions == ()
    assert outcome.complaints[0].tenant == "example.test"  # the mailbox's, for the record


def test_not_spam_report_suppresses_nothing() -> None:
    raw = arf(
        "offers@shop.test",
        "offers+kim=yahoo.test@bounces.shop.test",
        "kim@yahoo.test",
        feedback_type="not-spam",
    )
    outcome = process(raw, "", "fbl@example.test", CONFIG, NOW)
    assert outcome.complaints[0].feedback_type == "not-spam"
    assert outcome.suppressions == ()


# ------------------------------------------------------------------------------ unsubscribe


def test_mailto_unsubscribe_for_the_mailbox_tenant() -> None:
    message = EmailMessage()
    message["From"] = "Mia <Mia@Gmail.test>"
    message["To"] = "unsubscribe+abc123@shop.test"
    message["Subject"] = "unsubscribe"
    message["Date"] = "Tue, 13 Oct 2026 11:00:00 +0000"
    message.set_content("unsubscribe")
    outcome = process(
        message.as_bytes(), "mia@gmail.test", "unsubscribe+abc123@shop.test", CONFIG, NOW
    )
    assert outcome.kind == KIND_UNSUBSCRIBE
    (suppression,) = outcome.suppressions
    assert (suppression.tenant, suppression.address, suppression.reason) == (
        "shop.test", "mia@gmail.test", "unsubscribe",
    )  # fmt: skip
    assert "abc123" in (suppression.note or "")
    assert suppression.suppressed_at == datetime(2026, 10, 13, 11, 0, tzinfo=UTC)


def test_auto_reply_to_the_unsubscribe_address_suppresses_nothing() -> None:
    raw = sample("out_of_office.eml")
    outcome = process(raw, "grace@example.org", "unsubscribe@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_AUTO_REPLY
    assert outcome.suppressions == ()


NEW_KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
KEYS = (NEW_KEY, OLD_KEY)
DAY = int(NOW.timestamp() // 86400)
UNSUBSCRIBE = "unsubscribe@shop.test"


def mailto_reply(
    subject: str | None,
    *,
    sender: str = "Mia <mia@forward.test>",
    to: str = "unsubscribe@shop.test",
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if subject is not None:
        message["Subject"] = subject
    message["Date"] = "Tue, 13 Oct 2026 11:00:00 +0000"
    message.set_content("unsubscribe")
    return message.as_bytes()


def token(key: bytes = NEW_KEY, recipient: str = "Bob@Example.NET", day: int = DAY) -> str:
    return make_token(key, "shop.test", recipient, "october-sale", day)


def assert_secret_free(outcome: Outcome, token_text: str) -> None:
    """No note holds the token, nothing at all a key (the summary names the envelope
    recipient, extension and all, as Postfix's own log does)."""
    notes = [outcome.message.note or ""] + [s.note or "" for s in outcome.suppressions]
    assert all(token_text not in note for note in notes)
    everything = repr(outcome.message) + repr(outcome.suppressions) + outcome.summary()
    for key in KEYS:
        assert key.hex() not in everything and repr(key) not in everything


def test_a_valid_token_in_the_subject_wins_over_the_from() -> None:
    # the subject as unsubscribe_headers writes it, answered with Re: and folded by the client
    ((_name, value), _post) = unsubscribe_headers(
        NEW_KEY, "shop.test", "bob@example.net", "october-sale",
        "https://u.shop.test", "unsubscribe@shop.test", DAY,
    )  # fmt: skip
    subject = value.split("subject=", 1)[1].rstrip(">")
    # the client folds the long subject: a line break and a space inside the token
    raw = mailto_reply("Re: FOLDED").replace(
        b"Re: FOLDED", f"RE: {subject[:30]}\n {subject[30:]}".encode()
    )
    outcome = process(
        raw, "srs0=x@forward.test", "unsubscribe@shop.test", CONFIG, NOW, unsubscribe_keys=KEYS
    )
    assert outcome.kind == KIND_UNSUBSCRIBE
    (suppression,) = outcome.suppressions
    assert (suppression.tenant, suppression.address, suppression.reason) == (
        "shop.test", "bob@example.net", "unsubscribe",
    )  # fmt: skip
    assert suppression.note == "mailto unsubscribe with a valid token (campaign 'october-sale')"
    assert suppression.suppressed_at == datetime(2026, 10, 13, 11, 0, tzinfo=UTC)
    assert "mia@forward.test" in (outcome.message.note or "")  # who wrote, for the record
    assert_secret_free(outcome, subject.removeprefix("unsubscribe-"))


def test_the_token_names_the_tenant_not_the_mailbox() -> None:
    signed = make_token(NEW_KEY, "example.test", "bob@example.net", "news", DAY)
    outcome = process(
        mailto_reply(f"unsubscribe-{signed}"), "mia@forward.test", "unsubscribe@shop.test",
        CONFIG, NOW, unsubscribe_keys=KEYS,
    )  # fmt: skip
    ((tenant, address),) = [(s.tenant, s.address) for s in outcome.suppressions]
    assert (tenant, address) == ("example.test", "bob@example.net")


def test_a_valid_token_in_the_address_extension() -> None:
    signed = token()
    recipient = f"unsubscribe+{signed}@shop.test"
    outcome = process(
        mailto_reply(None, to=recipient), "mia@forward.test", recipient, CONFIG, NOW,
        unsubscribe_keys=KEYS,
    )  # fmt: skip
    ((tenant, address),) = [(s.tenant, s.address) for s in outcome.suppressions]
    assert (tenant, address) == ("shop.test", "bob@example.net")
    assert "in the address extension, to unsubscribe@shop.test" in (outcome.message.note or "")
    assert_secret_free(outcome, signed)


def test_the_subject_comes_before_the_address_extension() -> None:
    in_subject, in_extension = token(recipient="subject@example.net"), token()
    recipient = f"unsubscribe+{in_extension}@shop.test"
    outcome = process(
        mailto_reply(f"unsubscribe-{in_subject}", to=recipient), "mia@forward.test", recipient,
        CONFIG, NOW, unsubscribe_keys=KEYS,
    )  # fmt: skip
    assert [s.address for s in outcome.suppressions] == ["subject@example.net"]
    # a forged subject does not hide a genuine extension
    outcome = process(
        mailto_reply("unsubscribe-" + token(key=b"x" * 32), to=recipient), "mia@forward.test",
        recipient, CONFIG, NOW, unsubscribe_keys=KEYS,
    )  # fmt: skip
    assert [s.address for s in outcome.suppressions] == ["bob@example.net"]


def test_a_token_signed_with_the_old_key_verifies() -> None:
    outcome = process(
        mailto_reply(f"unsubscribe-{token(key=OLD_KEY)}"), "mia@forward.test",
        "unsubscribe@shop.test", CONFIG, NOW, unsubscribe_keys=KEYS,
    )  # fmt: skip
    assert [s.address for s in outcome.suppressions] == ["bob@example.net"]


@pytest.mark.parametrize(
    ("forged", "why"),
    [
        (token(key=b"k" * 32), "bad signature"),  # another key
        (token()[:-2] + ("AA" if not token().endswith("AA") else "BB"), "bad signature"),
        ("abc123", "too short"),  # malformed
        ("x" * 5, "bad format"),
    ],
)
def test_a_token_that_does_not_verify_suppresses_nothing(forged: str, why: str) -> None:
    victim = "Victim <victim@example.net>"
    outcome = process(
        mailto_reply(f"unsubscribe-{forged}", sender=victim), "victim@example.net",
        "unsubscribe@shop.test", CONFIG, NOW, unsubscribe_keys=KEYS,
    )  # fmt: skip
    assert outcome.kind == KIND_UNSUBSCRIBE  # read, not acted on: not unparsed
    assert outcome.suppressions == ()
    note = outcome.message.note or ""
    assert "the token did not verify" in note and why in note and "nothing suppressed" in note
    assert_secret_free(outcome, forged)


def test_a_forged_extension_token_suppresses_nothing() -> None:
    recipient = "unsubscribe+forged0token0here0forged0token0here@shop.test"
    outcome = process(
        mailto_reply(None, to=recipient), "mia@forward.test", recipient, CONFIG, NOW,
        unsubscribe_keys=KEYS,
    )  # fmt: skip
    assert outcome.suppressions == ()
    assert "the address extension: " in (outcome.message.note or "")
    assert "forged0token" not in (outcome.message.note or "")


def test_an_expired_token_when_tokens_expire() -> None:
    old = token(day=DAY - 31)
    args = (mailto_reply(f"unsubscribe-{old}"), "m@f.test", "unsubscribe@shop.test", CONFIG, NOW)
    outcome = process(*args, unsubscribe_keys=KEYS, unsubscribe_max_age_days=30)
    assert outcome.suppressions == ()
    assert "31 days old" in (outcome.message.note or "")
    assert process(*args, unsubscribe_keys=KEYS).suppressions  # no expiry by default


def test_no_token_trusts_the_from_for_the_mailbox_tenant() -> None:
    outcome = process(
        mailto_reply("unsubscribe"), "mia@forward.test", "unsubscribe@shop.test", CONFIG, NOW,
        unsubscribe_keys=KEYS,
    )  # fmt: skip
    ((tenant, address),) = [(s.tenant, s.address) for s in outcome.suppressions]
    assert (tenant, address) == ("shop.test", "mia@forward.test")
    assert "no token: the From is trusted" in (outcome.message.note or "")


def test_without_keys_a_token_is_only_noted() -> None:
    signed = token()
    recipient = f"unsubscribe+{signed}@shop.test"
    outcome = process(
        mailto_reply(f"unsubscribe-{signed}", to=recipient), "mia@forward.test", recipient,
        CONFIG, NOW,
    )  # fmt: skip
    ((tenant, address),) = [(s.tenant, s.address) for s in outcome.suppressions]
    assert (tenant, address) == ("shop.test", "mia@forward.test")
    assert f"token {signed}" in (outcome.suppressions[0].note or "")


def test_auto_replies_and_null_senders_with_a_token_suppress_nothing() -> None:
    raw = sample("out_of_office.eml")
    outcome = process(raw, "grace@example.org", "unsubscribe@example.test", CONFIG, NOW,
                      unsubscribe_keys=KEYS)  # fmt: skip
    assert outcome.kind == KIND_AUTO_REPLY and outcome.suppressions == ()
    outcome = process(
        mailto_reply(f"unsubscribe-{token()}"), "", "unsubscribe@shop.test", CONFIG, NOW,
        unsubscribe_keys=KEYS,
    )  # fmt: skip
    assert outcome.kind == KIND_UNPARSED and outcome.suppressions == ()


# ------------------------------------------------------------------------------ reports


def test_dmarc_report_xml_gz() -> None:
    raw = report_mail(
        "dmarc@example.test", gzip.compress(DMARC_XML), "application", "gzip",
        "google.com!example.test!1791849600!1791935999.xml.gz",
    )  # fmt: skip
    outcome = process(raw, "noreply-dmarc-support@google.com", "dmarc@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_DMARC
    (report,) = outcome.dmarc_reports
    assert (report.org_name, report.report_id, report.domain) == (
        "google.com", "12345678901234567890", "example.test",
    )  # fmt: skip
    assert report.policy_published["p"] == "none"
    assert [(r.source_ip, r.count, r.dkim_aligned, r.spf_aligned) for r in report.records] == [
        ("198.51.100.11", 940, True, True),
        ("203.0.113.9", 60, False, False),
    ]
    sql, params = dmarc_report_statement(report, 7)
    assert "ON CONFLICT (org_name, report_id) DO NOTHING RETURNING id" in sql
    assert json.loads(params[-1])["domain"] == "example.test"
    sql, rows = dmarc_record_statement(report, 3)
    assert sql.count("%s") == len(rows[0]) == 12
    assert rows[0][:3] == (3, "198.51.100.11", 940)


def test_dmarc_report_zip() -> None:
    raw = report_mail(
        "dmarc@example.test", zipped("google.com!example.test.xml", DMARC_XML),
        "application", "zip", "google.com!example.test.zip",
    )  # fmt: skip
    outcome = process(raw, "noreply-dmarc-support@google.com", "dmarc@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_DMARC
    assert outcome.dmarc_reports[0].messages == 1000


def test_tls_report_gzip_json() -> None:
    raw = report_mail(
        "tls-reports@example.test", gzip.compress(json.dumps(TLSRPT).encode()),
        "application", "tlsrpt+gzip", "google.com!example.test!1791849600.json.gz",
    )  # fmt: skip
    outcome = process(raw, "noreply@google.com", "tls-reports@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_TLS
    (row,) = outcome.tls_reports
    assert (row.policy_domain, row.policy_type, row.successful, row.failed) == (
        "example.test", "sts", 120, 2,
    )  # fmt: skip
    (statement,) = follow_up_statements(outcome, 11)
    assert statement[1][0] == 11
    assert json.loads(statement[1][-1])[0]["result-type"] == "certificate-expired"


def test_report_address_without_a_report_is_unparsed() -> None:
    raw = report_mail("dmarc@example.test", b"\x1f\x8bnot gzip", "application", "gzip", "x.gz")
    outcome = process(raw, "someone@example.org", "dmarc@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_UNPARSED
    assert "gzip" in (outcome.message.note or "")


# ------------------------------------------------------------------------------ garbage


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
        b"From: nobody\nSubject: =?utf-8?b?////?=\n\nhello",
    ],
)
def test_garbage_is_kept_unparsed(raw: bytes) -> None:
    outcome = process(raw, "", "news+x=example.net@bounces.example.test", CONFIG, NOW)
    assert outcome.kind in (KIND_UNPARSED, KIND_BOUNCE)
    assert outcome.suppressions == ()
    assert outcome.message.raw == raw


def test_garbage_to_the_fbl_address_is_unparsed() -> None:
    outcome = process(b"\x00\x01binary", "", "fbl@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_UNPARSED
    assert outcome.complaints == () and outcome.suppressions == ()


def test_unknown_address_is_unparsed() -> None:
    outcome = process(b"Subject: hi\n\nhi", "a@b.test", "nobody@example.test", CONFIG, NOW)
    assert outcome.kind == KIND_UNPARSED


# ------------------------------------------------------------------------------ SQL


def test_statements_carry_every_column() -> None:
    raw = sample("postfix_5.1.1.eml")
    outcome = process(raw, "", "news+bob=example.net@bounces.example.test", CONFIG, NOW)
    sql, params = message_statement(outcome.message)
    assert "ON CONFLICT (digest, envelope_recipient) DO NOTHING RETURNING id" in sql
    assert sql.count("%s") == len(params) == 7
    assert params[5] == raw
    statements = follow_up_statements(outcome, 42)
    assert [s.split()[2] for s, _p in statements] == ["bounces", "suppression"]
    for statement, values in statements:
        assert statement.count("%s") == len(values)
    assert statements[0][1][0] == 42
    assert "ON CONFLICT (tenant, address) DO NOTHING" in statements[1][0]
