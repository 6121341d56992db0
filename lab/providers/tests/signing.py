"""A DKIM key made for the test run, and messages signed with it by dkimpy."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import cache

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclass(frozen=True)
class DkimKey:
    private_pem: bytes
    txt: str  # the selector's TXT record


@cache
def dkim_key() -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return DkimKey(private_pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(public_der).decode())


def make_message(
    from_addr: str = "App <app@example.test>", to: str = "someone@gmail.test"
) -> bytes:
    return (
        f"From: {from_addr}\r\n"
        f"To: {to}\r\n"
        "Subject: lab test\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <test-1@example.test>\r\n"
        "List-Unsubscribe: <mailto:unsub@example.test>, <https://example.test/u/1>\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Hello from the lab.\r\n"
    ).encode()


def sign(message: bytes, domain: str = "example.test", selector: str = "lab2026a") -> bytes:
    signature = dkim.sign(
        message,
        selector.encode(),
        domain.encode(),
        dkim_key().private_pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return signature + message
