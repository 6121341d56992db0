"""VERP return paths read back: which sender and which recipient a bounce is about."""

from __future__ import annotations

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.verp import (
    VerpAddress,
    VerpError,
    decode_verp,
    encode_verp,
    return_path_domains,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import Dmarc, Domain

RETURN_PATHS = {"bounces.example.test": "example.test", "rp.shop.test": "shop.test"}


def test_the_stacks_return_path_names_sender_and_recipient() -> None:
    assert decode_verp("news+alice=gmail.test@bounces.example.test", RETURN_PATHS) == VerpAddress(
        sender="news@example.test",
        recipient="alice@gmail.test",
        return_path="news+alice=gmail.test@bounces.example.test",
    )


def test_the_return_path_domain_maps_back_to_its_sending_domain() -> None:
    verp = decode_verp("orders+bob=example.net@rp.shop.test", RETURN_PATHS)
    assert verp is not None
    assert verp.sender == "orders@shop.test"


@pytest.mark.parametrize(
    ("address", "recipient"),
    [
        ("news+alice+tag=gmail.test@bounces.example.test", "alice+tag@gmail.test"),
        ("news+a=b=gmail.test@bounces.example.test", "a=b@gmail.test"),
        ("news+a+b=c+d=gmail.test@bounces.example.test", "a+b=c+d@gmail.test"),
        ("news+first.last=example.net@bounces.example.test", "first.last@example.net"),
    ],
)
def test_recipient_local_parts_keep_their_delimiters(address: str, recipient: str) -> None:
    verp = decode_verp(address, RETURN_PATHS)
    assert verp is not None
    assert verp.sender == "news@example.test"
    assert verp.recipient == recipient


def test_domains_compare_without_case_and_local_parts_keep_theirs() -> None:
    verp = decode_verp("<News+Alice=GMail.TEST@Bounces.Example.TEST>", RETURN_PATHS)
    assert verp == VerpAddress(
        sender="News@example.test",
        recipient="Alice@gmail.test",
        return_path="News+Alice=GMail.TEST@bounces.example.test",
    )


def test_a_known_sender_with_a_plus_of_its_own_is_split_right() -> None:
    address = "news+weekly+alice+x=gmail.test@bounces.example.test"
    assert decode_verp(address, RETURN_PATHS).sender == "news@example.test"
    verp = decode_verp(address, RETURN_PATHS, senders=["news+weekly@example.test"])
    assert verp.sender == "news+weekly@example.test"
    assert verp.recipient == "alice+x@gmail.test"
    # a sender of another domain does not count
    other = decode_verp(address, RETURN_PATHS, senders=["news+weekly@shop.test"])
    assert other.sender == "news@example.test"


@pytest.mark.parametrize(
    "address",
    [
        "postmaster@bounces.example.test",  # on the return-path domain, not VERP
        "news@bounces.example.test",  # a return path without XVERP
        "news+alice=gmail.test@example.test",  # the sending domain itself
        "news+alice=gmail.test@elsewhere.test",
        "news=gmail.test@bounces.example.test",  # no +
        "news+alice@bounces.example.test",  # no =
        "+alice=gmail.test@bounces.example.test",
        "news+=gmail.test@bounces.example.test",
        "not an address",
    ],
)
def test_anything_else_is_not_a_verp_address(address: str) -> None:
    assert decode_verp(address, RETURN_PATHS) is None


def test_quoted_local_parts_round_trip() -> None:
    address = encode_verp("news@example.test", '"john doe"@x.test', "bounces.example.test")
    assert address == '"news+john doe=x.test"@bounces.example.test'
    assert decode_verp(address, RETURN_PATHS).recipient == '"john doe"@x.test'
    # Postfix's pipe(8) hands the address over unquoted
    unquoted = decode_verp("news+john doe=x.test@bounces.example.test", RETURN_PATHS)
    assert unquoted.recipient == '"john doe"@x.test'


def test_encode_is_what_postfix_sends() -> None:
    assert (
        encode_verp("news@example.test", "alice@GMail.test", "bounces.example.test")
        == "news+alice=gmail.test@bounces.example.test"
    )
    with pytest.raises(VerpError, match="two addresses"):
        encode_verp("news", "alice@gmail.test", "bounces.example.test")


def test_other_delimiters() -> None:
    verp = decode_verp("news-alice~gmail.test@bounces.example.test", RETURN_PATHS, delimiters="-~")
    assert verp.recipient == "alice@gmail.test"
    with pytest.raises(VerpError, match="two characters"):
        decode_verp("news+a=b@bounces.example.test", RETURN_PATHS, delimiters="+")


def test_return_path_domains_from_the_model() -> None:
    dmarc = Dmarc(policy="none", rua=("mailto:dmarc@example.test",))
    domains = [
        Domain("Example.test", ("s1",), dmarc, return_path_domain="Bounces.Example.test"),
        Domain("shop.test", ("s1",), dmarc, return_path_domain="shop.test"),  # no VERP
        Domain("plain.test", ("s1",), dmarc),
    ]
    assert return_path_domains(domains) == {"bounces.example.test": "example.test"}
