"""Bounce classes from (enhanced status code, reply text), the rule file and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.adapters.bounce_rule_file import (
    load_bounce_rules,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.bounce_rules import (
    DEFAULT_BOUNCE_RULES,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.classify import (
    BOUNCE_CLASSES,
    DEFAULT_RULES,
    BounceRuleError,
    classify,
    combined_rules,
    dsn_matches,
    normalize_reply,
    parse_rules,
)

GMAIL_5_1_1 = (
    "smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
    " 550-5.1.1 double-checking the recipient's email address for typos or\n"
    " 550-5.1.1 unnecessary spaces. For more information, go to\n"
    " 550 5.1.1  https://support.google.com/mail/?p=NoSuchUser 6a1803df08f44-6c - gsmtp"
)

# (dsn, reply text) -> class: the providers' published replies (PROVIDERS.md), as a DSN's
# Status/Diagnostic-Code or a Postfix log line's dsn= and reply give them.
CASES = [
    # invalid recipients
    ("5.1.1", GMAIL_5_1_1, "invalid_recipient"),
    (
        "5.5.0",
        "smtp; 550 5.5.0 Requested action not taken: mailbox unavailable",
        "invalid_recipient",
    ),
    (
        "5.0.0",
        "554 delivery error: dd This user doesn't have a yahoo.com account (d@yahoo.com) [0]",
        "invalid_recipient",
    ),
    (
        "5.1.1",
        "host mx.example.net[192.0.2.25] said: 550 5.1.1 <bob@example.net>: Recipient address "
        "rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
        "invalid_recipient",
    ),
    (
        "5.4.1",
        "550 5.4.1 Recipient address rejected: Access denied. AS(201806281)",
        "invalid_recipient",
    ),
    ("5.0.0", "550 Requested action not taken: mailbox unavailable", "invalid_recipient"),
    (None, "Sorry, no mailbox here by that name. (#5.1.1)", "invalid_recipient"),
    (
        "5.2.1",
        "550-5.2.1 The email account that you tried to reach is disabled.",
        "inactive_mailbox",
    ),
    # domains
    (
        "5.4.4",
        "Host or domain name not found. Name service error for name=nx.test type=A: Host not found",
        "bad_domain",
    ),
    ("5.1.10", "556 5.1.10 Recipient address has null MX", "bad_domain"),
    (
        "4.4.3",
        "Host or domain name not found. Name service error for name=x.test type=MX: Host not "
        "found, try again",
        "dns_failure",
    ),
    # quota: temporary at Google, permanent elsewhere, soft either way
    ("4.2.2", "452-4.2.2 The email account that you tried to reach is over quota.", "mailbox_full"),
    (
        "5.2.2",
        "552 5.2.2 <erin@example.org>: Quota exceeded (mailbox for user is full)",
        "mailbox_full",
    ),
    ("5.2.2", "552 5.2.2 Mailbox full", "mailbox_full"),
    # throttling
    (
        "4.7.28",
        "421-4.7.28 [198.51.100.11] Our system has detected an unusual rate of unsolicited mail "
        "originating from your IP address.",
        "rate_limit",
    ),
    (
        "4.7.0",
        "421 4.7.0 [TSS04] Messages from 198.51.100.11 temporarily deferred due to unexpected "
        "volume or user complaints - 4.16.55.1",
        "rate_limit",
    ),
    (
        "4.7.500",
        "451 4.7.500 Server busy. Please try again later from [198.51.100.11]. (AS761)",
        "rate_limit",
    ),
    (
        "4.7.650",
        "451 4.7.650 The mail server [198.51.100.11] has been temporarily rate limited due to IP "
        "reputation.",
        "rate_limit",
    ),
    (
        "4.3.2",
        "421 4.3.2 The maximum number of concurrent connections has exceeded a limit, closing "
        "transmission channel",
        "rate_limit",
    ),
    (
        "4.2.1",
        "450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
        "additional messages from being delivered.",
        "rate_limit",
    ),
    # authentication
    (
        "5.7.26",
        "550-5.7.26 This mail has been blocked because the sender is unauthenticated.",
        "authentication",
    ),
    ("5.7.27", "550-5.7.27 The sender's domain does not pass SPF", "authentication"),
    (
        "5.7.9",
        "550 5.7.9 This mail has been blocked because the sender is unauthenticated.",
        "authentication",
    ),
    (
        "5.7.515",
        "550 5.7.515 Access denied, sending domain example.test doesn't meet the required "
        "authentication level.",
        "authentication",
    ),
    # blocklists, content
    (
        "5.7.1",
        "550 5.7.1 Unfortunately, messages from [198.51.100.11] weren't sent. Please contact "
        "your Internet service provider since part of their network is on our block list (S3150).",
        "reputation_block",
    ),
    (
        "5.7.1",
        "553 5.7.1 [BL21] Connections will not be accepted from 198.51.100.11, because the ip is "
        "in Spamhaus's list",
        "reputation_block",
    ),
    (
        "5.7.1",
        "550-5.7.1 Our system has detected that this message is likely unsolicited mail.",
        "spam_content",
    ),
    (
        "5.0.0",
        "554 Message not allowed - [PH01] Email not accepted for policy reasons",
        "spam_content",
    ),
    ("5.7.1", "554 5.7.1 <x@y>: Relay access denied", "routing"),
    ("5.7.1", "550 5.7.1 Message rejected by the recipient's administrator", "policy"),
    # network and the rest
    ("4.4.1", "connect to mx.slow.example[192.0.2.80]:25: Connection timed out", "connection"),
    (
        "4.4.2",
        "lost connection with mx.example.net[192.0.2.25] while sending RCPT TO",
        "connection",
    ),
    ("5.4.6", "mail for example.net loops back to myself", "routing"),
    ("5.3.4", "552 5.3.4 Message size exceeds fixed maximum message size", "message_too_large"),
    (
        "5.1.8",
        "553 5.1.8 <news+a=b.test@bounces.example.test>: Sender address rejected: Domain not found",
        "invalid_sender",
    ),
    ("4.5.3", "452 4.5.3 Too many recipients", "too_many_recipients"),
    (
        "4.7.1",
        "450 4.7.1 <a@b.test>: Recipient address rejected: Greylisted, try again later",
        "transient",
    ),
    ("4.0.0", "421 Service not available, closing transmission channel", "transient"),
    ("4.4.7", "delivery time expired", "expired"),
    ("5.0.0", "554 Transaction failed", "unknown"),
    (None, "", "unknown"),
]


@pytest.mark.parametrize(("dsn", "text", "expected"), CASES)
def test_provider_replies_get_their_class(dsn: str | None, text: str, expected: str) -> None:
    assert classify(dsn, text).bounce_class == expected


def test_each_class_says_what_a_final_failure_does() -> None:
    assert classify("5.1.1", GMAIL_5_1_1).is_hard
    assert classify("5.2.2", "552 5.2.2 Mailbox full").is_soft
    blocked = classify("5.7.1", "550 5.7.1 ... on our block list (S3150)")
    assert (blocked.disposition, blocked.sender_side) == ("none", True)
    assert {c.disposition for c in BOUNCE_CLASSES.values()} == {"hard", "soft", "none"}


def test_gmails_multi_line_reply_reads_as_one_line() -> None:
    reply = normalize_reply(GMAIL_5_1_1)
    assert (reply.code, reply.dsn) == ("550", "5.1.1")
    assert reply.text.startswith(
        "550 5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces."
    )
    assert "550-" not in reply.text


def test_smtp_time_rejections_read_their_codes_from_the_log_text() -> None:
    """A Postfix log line's reply, without a DSN field: the codes come from the text."""
    verdict = classify(None, "host gmail-smtp-in.l.google.com[142.250.1.26] said: 550-5.1.1 The "
                       "email account that you tried to reach does not exist. (in reply to RCPT TO "
                       "command)")  # fmt: skip
    assert (verdict.bounce_class, verdict.dsn, verdict.reply_code) == (
        "invalid_recipient", "5.1.1", "550",
    )  # fmt: skip
    assert classify(None, "550 no such user here").dsn == "5.0.0"


def test_a_finer_code_in_the_reply_beats_a_generic_status() -> None:
    verdict = classify("5.0.0", "smtp; 550 5.1.1 <x@y.test>... User unknown")
    assert verdict.dsn == "5.1.1"
    assert verdict.rule == "invalid-recipient-status"
    # but not across classes: a 5.0.0 failure stays permanent
    assert classify("5.0.0", "452 4.2.2 over quota").dsn == "5.0.0"


def test_an_expiry_counts_as_soft_unless_the_last_answer_was_about_us() -> None:
    expired = classify("4.4.1", "connect to mx.slow.example[192.0.2.80]:25: Connection timed out",
                       expired=True)  # fmt: skip
    assert (expired.bounce_class, expired.disposition, expired.cause) == (
        "expired", "soft", "connection",
    )  # fmt: skip
    throttled = classify("4.7.28", "421-4.7.28 unusual rate of unsolicited mail", expired=True)
    assert (throttled.bounce_class, throttled.disposition) == ("rate_limit", "none")
    # no answer at all (qmgr's "status=expired"): still expired
    assert classify(None, None, expired=True).bounce_class == "expired"


@pytest.mark.parametrize(
    ("pattern", "dsn", "matches"),
    [
        ("5.1.1", "5.1.1", True),
        ("5.1.1", "5.1.10", False),
        ("5.1", "5.1.10", True),
        ("5", "5.7.1", True),
        ("x.7.26", "4.7.26", True),
        ("x.7", "5.1.7", False),
        ("4", "5.0.0", False),
    ],
)
def test_code_prefixes_match_whole_components(pattern: str, dsn: str, matches: bool) -> None:
    assert dsn_matches(pattern, dsn) is matches


def test_the_defaults_are_valid_and_named_once() -> None:
    assert len(DEFAULT_RULES) == len(DEFAULT_BOUNCE_RULES)
    assert len({rule.name for rule in DEFAULT_RULES}) == len(DEFAULT_RULES)
    assert parse_rules({"rules": list(DEFAULT_BOUNCE_RULES)}, source="defaults") == DEFAULT_RULES


# --------------------------------------------------------------------- operator rules


def test_operator_rules_come_before_the_defaults() -> None:
    operator = parse_rules(
        {
            "version": 1,
            "rules": [
                {
                    "name": "acme-closed",
                    "class": "inactive_mailbox",
                    "dsn": "5.2.2",
                    "text": "account (is )?closed",
                },
                {
                    "name": "acme-full-is-gone",
                    "class": "mailbox_full",
                    "dsn": ["5.2.2"],
                    "text": r"acme\.example",
                    "disposition": "hard",
                },
            ],
        },
        source="/etc/bulkmail/bounce_rules.yml",
    )
    rules = combined_rules(operator)
    closed = classify("5.2.2", "552 5.2.2 mailbox full: account closed", rules)
    assert (closed.bounce_class, closed.rule, closed.disposition) == (
        "inactive_mailbox", "acme-closed", "hard",
    )  # fmt: skip
    acme = classify("5.2.2", "552 5.2.2 full at acme.example", rules)
    assert (acme.bounce_class, acme.disposition) == ("mailbox_full", "hard")
    # what the operator's rules do not match still meets the defaults
    assert classify("5.2.2", "552 5.2.2 Mailbox full", rules).disposition == "soft"
    assert operator[0].source == "/etc/bulkmail/bounce_rules.yml"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a mapping with a 'rules' list"),
        ({"rule": []}, "unknown key 'rule'"),
        ({"version": 2, "rules": []}, "f.yml: version: 2 is not 1"),
        ({"rules": {"name": "x"}}, "f.yml: rules: must be a list"),
        ({"rules": ["x"]}, r"f.yml: rules\[0\]: must be a mapping"),
        (
            {"rules": [{"class": "invalid_recipient", "dsn": "5.1.1"}]},
            r"rules\[0\].name: is required",
        ),
        (
            {"rules": [{"name": "a", "class": "bounced", "dsn": "5.1.1"}]},
            r"rules\[0\] \(a\).class: 'bounced' is not a bounce class; use one of "
            r"invalid_recipient",
        ),
        (
            {"rules": [{"name": "a", "class": "policy", "dsn": 5.1}]},
            r"rules\[0\] \(a\).dsn: 5.1 is a number to YAML; write the code in quotes",
        ),
        (
            {"rules": [{"name": "a", "class": "policy", "dsn": "550"}]},
            r"'550' is not a status code prefix; write e.g. '5.1.1'",
        ),
        (
            {"rules": [{"name": "a", "class": "policy", "text": "mailbox (full"}]},
            r"rules\[0\] \(a\).text: 'mailbox \(full' is not a regular expression: missing \)",
        ),
        (
            {"rules": [{"name": "a", "class": "policy", "dsn_regex": "5\\.7\\.["}]},
            r"rules\[0\] \(a\).dsn_regex: .* is not a regular expression",
        ),
        ({"rules": [{"name": "a", "class": "policy"}]}, r"rules\[0\] \(a\): matches everything"),
        (
            {"rules": [{"name": "a", "class": "policy", "txt": "x"}]},
            r"rules\[0\] \(a\).txt: is not a rule field .*; did you mean 'text'\?",
        ),
        (
            {"rules": [{"name": "a", "class": "policy", "text": "x", "disposition": "suppress"}]},
            r"rules\[0\] \(a\).disposition: 'suppress' is not one of hard, soft, none",
        ),
        (
            {
                "rules": [
                    {"name": "a", "class": "policy", "text": "x"},
                    {"name": "a", "class": "policy", "text": "y"},
                ]
            },
            r"rules\[1\] \(a\).name: 'a' is also the name of rules\[0\]",
        ),
    ],
)
def test_a_bad_rule_file_names_the_rule_and_the_field(data: object, message: str) -> None:
    with pytest.raises(BounceRuleError, match=message):
        parse_rules(data, source="f.yml")


def test_an_empty_rule_file_is_no_rules() -> None:
    assert parse_rules(None) == ()
    assert parse_rules({"rules": None}) == ()


# ------------------------------------------------------------------- the file on disk


def test_the_adapter_reads_the_operators_yaml_before_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "bounce_rules.yml"
    path.write_text(
        "# tried before the defaults; the first match wins\n"
        "rules:\n"
        "  - name: acme-closed\n"
        "    class: inactive_mailbox\n"
        "    dsn: '5.2.2'\n"
        "    text: 'account (is )?closed'\n",
        encoding="utf-8",
    )
    rules = load_bounce_rules(path)
    assert rules[0].name == "acme-closed"
    assert rules[1:] == DEFAULT_RULES
    assert classify("5.2.2", "552 5.2.2 account closed", rules).bounce_class == "inactive_mailbox"
    assert load_bounce_rules(None) == DEFAULT_RULES


def test_the_adapter_names_the_file_in_its_errors(tmp_path: Path) -> None:
    with pytest.raises(BounceRuleError, match=r"missing.yml: does not exist"):
        load_bounce_rules(tmp_path / "missing.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("rules: [\n", encoding="utf-8")
    with pytest.raises(BounceRuleError, match=r"broken.yml: is not valid YAML"):
        load_bounce_rules(broken)
    unquoted = tmp_path / "unquoted.yml"
    unquoted.write_text("rules:\n  - {name: a, class: policy, dsn: 5.7}\n", encoding="utf-8")
    with pytest.raises(
        BounceRuleError, match=r"unquoted.yml: rules\[0\] \(a\).dsn: 5.7 is a number"
    ):
        load_bounce_rules(unquoted)
