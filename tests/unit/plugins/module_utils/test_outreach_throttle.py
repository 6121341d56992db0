"""Provider rate limiting: the replies that mean "slow down", and the throttle per
(provider, source IP) that halves on each and lifts when the provider stays quiet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.outreach.throttle import (
    BLOCKED,
    RATE_LIMIT,
    YAHOO_HOLD,
    Observed,
    ProviderSignal,
    Reply,
    Throttle,
    ThrottlePolicy,
    after_signal,
    apply_replies,
    classify_reply,
    throttle_factor,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GMAIL_TEXT = (
    "[198.51.100.10] Our system has detected an unusual rate of unsolicited mail originating "
    "from your IP address. To protect our users from spam, mail sent from your IP address has "
    "been temporarily rate limited."
)
SIGNAL = ProviderSignal("google", "4.7.28", RATE_LIMIT)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


@pytest.mark.parametrize(
    ("reply", "provider", "rule"),
    [
        (Reply(421, "4.7.28", GMAIL_TEXT), "google", "4.7.28"),
        (Reply(450, "4.7.28", GMAIL_TEXT), "google", "4.7.28"),
        (Reply(451, "", "4.7.28 " + GMAIL_TEXT), "google", "4.7.28"),
        (
            Reply(
                421,
                "4.7.0",
                "[TSS04] Messages from 198.51.100.10 temporarily deferred due to unexpected "
                "volume or user complaints - 4.16.55.1",
            ),
            "yahoo",
            "TSS04",
        ),
        (Reply(421, "4.7.0", "[TS04] deferred"), "yahoo", "TS04"),
        (Reply(421, "4.7.0", "[TS01] Messages from x temporarily deferred"), "yahoo", "TS01"),
        (
            Reply(451, "4.7.500", "Server busy. Please try again later from [198.51.100.10]."),
            "microsoft",
            "4.7.500",
        ),
        (
            Reply(
                451,
                "4.7.650",
                "The mail server [198.51.100.10] has been temporarily rate limited due to IP "
                "reputation.",
            ),
            "microsoft",
            "4.7.650",
        ),
        (
            Reply(
                421, "4.3.2", "The maximum number of concurrent connections has exceeded a limit"
            ),
            "microsoft",
            "4.3.2",
        ),
        (Reply(450, "4.2.1", "Too many connections from your host"), "generic", "too many"),
        (Reply(421, "", "Rate limit exceeded, slow down"), "generic", "rate limit"),
        (Reply(451, "4.7.1", "You are being throttled"), "generic", "throttled"),
    ],
)
def test_rate_limit_replies_are_recognised(reply: Reply, provider: str, rule: str) -> None:
    signal = classify_reply(reply)
    assert signal is not None
    assert (signal.provider, signal.rule, signal.kind) == (provider, rule, RATE_LIMIT)


def test_yahoo_asks_for_four_hours() -> None:
    signal = classify_reply(Reply(421, "4.7.0", "[TSS04] Messages from IP temporarily deferred"))
    assert signal is not None and signal.hold == YAHOO_HOLD == timedelta(hours=4)


@pytest.mark.parametrize(
    ("reply", "rule"),
    [
        (
            Reply(
                550,
                "5.7.1",
                "Unfortunately, messages from [198.51.100.10] weren't sent. ... part of their "
                "network is on our block list (S3150)",
            ),
            "S3150",
        ),
        (Reply(553, "5.7.1", "[BL21] Connections will not be accepted ... Spamhaus"), "BL21"),
    ],
)
def test_block_list_replies_are_blocks_not_rate_limits(reply: Reply, rule: str) -> None:
    signal = classify_reply(reply)
    assert signal is not None and (signal.rule, signal.kind) == (rule, BLOCKED)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(250, "2.0.0", "OK"),
        Reply(550, "5.1.1", "The email account that you tried to reach does not exist."),
        Reply(452, "4.2.2", "The email account that you tried to reach is over quota"),
        Reply(452, "4.5.3", "Too many recipients"),
        Reply(550, "5.7.1", "rate limit policy violation"),  # permanent: a refusal
        Reply(550, "5.7.28", GMAIL_TEXT),
    ],
)
def test_ordinary_replies_are_no_signal(reply: Reply) -> None:
    assert classify_reply(reply) is None


def test_each_signal_halves_down_to_a_sixteenth() -> None:
    throttle = Throttle()
    factors = []
    for n in range(6):
        throttle = after_signal(throttle, SIGNAL, minutes(n))
        factors.append(throttle_factor(throttle, minutes(n)))
    assert factors == [0.5, 0.25, 0.125, 0.0625, 0.0625, 0.0625]


def test_it_doubles_every_fifteen_quiet_minutes_up_to_one() -> None:
    throttle = Throttle(1 / 16, T0)
    assert [throttle_factor(throttle, minutes(m)) for m in (0, 14, 15, 30, 45, 60, 75, 600)] == [
        0.0625, 0.0625, 0.125, 0.25, 0.5, 1.0, 1.0, 1.0,
    ]  # fmt: skip


def test_a_signal_while_lifting_halves_what_it_had_lifted_to() -> None:
    throttle = Throttle(1 / 16, T0)
    again = after_signal(throttle, SIGNAL, minutes(45))  # had lifted to 0.5
    assert again == Throttle(0.25, minutes(45))
    assert throttle_factor(again, minutes(59)) == 0.25
    assert throttle_factor(again, minutes(60)) == 0.5


def test_a_hold_delays_the_lifting() -> None:
    signal = ProviderSignal("yahoo", "TSS04", RATE_LIMIT, timedelta(hours=4))
    throttle = after_signal(Throttle(), signal, T0)
    assert throttle_factor(throttle, minutes(239)) == 0.5
    assert throttle_factor(throttle, minutes(255)) == 1.0
    # a later signal without a hold keeps what remains of the first one's
    later = after_signal(throttle, SIGNAL, minutes(60))
    assert later.hold == timedelta(hours=3)


def test_a_block_drops_to_the_floor_at_once() -> None:
    block = ProviderSignal("microsoft", "S3150", BLOCKED)
    assert after_signal(Throttle(), block, T0).factor == 1 / 16


def test_throttles_are_per_provider_and_source_ip() -> None:
    rate_limited = Reply(421, "4.7.28", GMAIL_TEXT)
    observed = [
        Observed(minutes(1), "google", "198.51.100.10", rate_limited),
        Observed(minutes(0), "google", "198.51.100.10", rate_limited),
        Observed(minutes(0), "google", "198.51.100.11", Reply(250, "2.0.0", "OK")),
        # a generic text from Yahoo slows Yahoo: keyed by the destination, not the rule
        Observed(minutes(0), "yahoo", "198.51.100.10", Reply(421, "", "rate limit exceeded")),
    ]
    throttles = apply_replies({}, observed)
    assert set(throttles) == {("google", "198.51.100.10"), ("yahoo", "198.51.100.10")}
    assert throttles[("google", "198.51.100.10")] == Throttle(0.25, minutes(1))
    assert throttle_factor(throttles[("yahoo", "198.51.100.10")], minutes(2)) == 0.5
    unchanged = apply_replies(throttles, [])
    assert unchanged == throttles and unchanged is not throttles


def test_policy_is_configurable_and_checked() -> None:
    gentle = ThrottlePolicy(divisor=4, floor=1 / 64, quiet=timedelta(minutes=5))
    throttle = after_signal(Throttle(), SIGNAL, T0, gentle)
    assert throttle.factor == 0.25
    assert throttle_factor(throttle, minutes(5), gentle) == 1.0
    with pytest.raises(ValueError):
        ThrottlePolicy(divisor=1)
    with pytest.raises(ValueError):
        ThrottlePolicy(floor=0)
