"""`bulkmail sign`: OpenDKIM's kind of signature from OpenDKIM's tables, verified by dkimpy."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bulkmail.cli import build_parser
from bulkmail.signer import Signer, SigningError, run

MESSAGE = (
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: October offers\r\n"
    b"Date: Thu, 01 Oct 2026 10:00:00 +0000\r\n"
    b"Message-ID: <1@example.test>\r\n"
    b"Received: from app1 by mta1\r\n"
    b"X-Campaign: 42\r\n"
    b"List-Unsubscribe: <https://example.test/u/1>\r\n"
    b"\r\n"
    + b"Hello Bob,\r\n"
    + b"An offer line of about seventy characters, for a 2 KB body.\r\n" * 30
)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_tables(tmp_path: Path, key: rsa.RSAPrivateKey) -> tuple[Path, Path]:
    """The files the opendkim role writes: a PKCS#8 key, KeyTable, SigningTable."""
    key_file = tmp_path / "keys" / "example.test" / "lab2026a.private"
    key_file.parent.mkdir(parents=True)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_table, signing_table = tmp_path / "KeyTable", tmp_path / "SigningTable"
    key_table.write_text(
        "# <key name> <domain>:<selector>:<private key>\n"
        f"lab2026a._domainkey.example.test example.test:lab2026a:{key_file}\n"
    )
    signing_table.write_text("*@example.test lab2026a._domainkey.example.test\n")
    (tmp_path / "opendkim.conf").write_text(CONF.format(tmp=tmp_path))
    return key_table, signing_table


# What the opendkim role writes, the parts the signer reads.
CONF = """Canonicalization        relaxed/simple
SignatureAlgorithm      rsa-sha256
SignHeaders             From,Reply-To,Subject,Date,To,Cc,Message-ID,In-Reply-To,References,\
MIME-Version,Content-Type,Content-Transfer-Encoding,List-Id,List-Unsubscribe,\
List-Unsubscribe-Post,Feedback-ID
OversignHeaders         From
KeyTable                file:{tmp}/KeyTable
SigningTable            refile:{tmp}/SigningTable
"""  # Python joins the backslash-ended lines: SignHeaders is one line, as the role writes it


def txt_for(key: rsa.RSAPrivateKey) -> Callable[..., bytes | None]:
    """dkimpy's dnsfunc: the key record at lab2026a._domainkey.example.test only."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == b"lab2026a._domainkey.example.test." else None

    return dnsfunc


def tags(signed: bytes) -> dict[bytes, bytes]:
    header = signed.split(b"\r\nFrom:", 1)[0]
    assert header.startswith(b"DKIM-Signature: ")
    value = b"".join(header[len(b"DKIM-Signature: ") :].split())
    return dict(tag.split(b"=", 1) for tag in value.split(b";"))


@pytest.fixture
def signer(tmp_path: Path, key: rsa.RSAPrivateKey) -> Signer:
    write_tables(tmp_path, key)
    return Signer.from_conf(tmp_path / "opendkim.conf")


def test_the_signature_verifies_and_is_opendkims_kind(
    signer: Signer, key: rsa.RSAPrivateKey
) -> None:
    signed = signer.sign(MESSAGE)

    assert signed.endswith(MESSAGE)
    assert dkim.verify(signed, dnsfunc=txt_for(key))
    found = tags(signed)
    assert (found[b"a"], found[b"c"]) == (b"rsa-sha256", b"relaxed/simple")
    assert (found[b"d"], found[b"s"]) == (b"example.test", b"lab2026a")
    # SignHeaders that are present, From once more (OversignHeaders); not Received, X-Campaign
    assert found[b"h"].split(b":") == [
        b"from", b"to", b"subject", b"date", b"message-id", b"list-unsubscribe", b"from"
    ]  # fmt: skip


def test_a_second_from_added_after_signing_breaks_the_signature(
    signer: Signer, key: rsa.RSAPrivateKey
) -> None:
    signed = signer.sign(MESSAGE)
    header, _sep, rest = signed.partition(b"\r\nFrom:")
    forged = header + b"\r\nFrom: Mallory <ceo@example.test>\r\nFrom:" + rest

    assert not dkim.verify(forged, dnsfunc=txt_for(key))


def test_a_message_with_lf_line_ends_is_signed_in_lf(
    signer: Signer, key: rsa.RSAPrivateKey
) -> None:
    signed = signer.sign(MESSAGE.replace(b"\r\n", b"\n"))

    assert b"\r" not in signed
    assert dkim.verify(signed, dnsfunc=txt_for(key))


def test_no_key_for_the_from_domain_is_an_error_naming_it(signer: Signer) -> None:
    with pytest.raises(SigningError, match="no KeyTable/SigningTable entry signs mail from shop"):
        signer.sign(MESSAGE.replace(b"alice@example.test", b"alice@shop.test"))


@pytest.mark.parametrize(
    ("mail", "message"),
    [
        (b"From: Mallory <ceo@example.test>\r\n" + MESSAGE, "the message has 2 From headers"),
        (MESSAGE.replace(b"From: ", b"Sender: "), "the message has 0 From headers"),
        (MESSAGE.replace(b" <alice@example.test>", b""), "'Alice' has no address with a domain"),
    ],
)
def test_a_from_that_cannot_choose_a_key_is_refused(
    signer: Signer, mail: bytes, message: str
) -> None:
    with pytest.raises(SigningError, match=message):
        signer.sign(mail)


def test_the_first_matching_pattern_chooses_the_key(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    key_table, signing_table = write_tables(tmp_path, key)
    with key_table.open("a") as table:
        table.write("news._domainkey.example.test example.test:news:/nonexistent.private\n")
    signing_table.write_text(
        "news@example.test news._domainkey.example.test\n"
        "*@example.test lab2026a._domainkey.example.test\n"
    )
    signer = Signer.from_conf(tmp_path / "opendkim.conf")

    assert signer.key_name("NEWS@Example.test") == "news._domainkey.example.test"
    assert signer.key_name("alice@example.test") == "lab2026a._domainkey.example.test"
    assert signer.key_name("alice@sub.example.test") is None
    assert dkim.verify(signer.sign(MESSAGE), dnsfunc=txt_for(key))  # a bad key of another
    with pytest.raises(
        SigningError, match=re.escape(f"{key_table}:3: cannot read key /nonexistent")
    ):
        signer.sign(MESSAGE.replace(b"alice@", b"news@"))


@pytest.mark.parametrize(
    ("table", "line", "message"),
    [
        ("KeyTable", "lab2026a._domainkey.example.test example.test:lab2026a", "expected '<key"),
        ("SigningTable", "*@example.test", "expected '<address pattern> <key name>'"),
        (
            "SigningTable",
            "*@shop.test lab2026a._domainkey.shop.test",
            "key 'lab2026a._domainkey.shop.test' is not in the KeyTable",
        ),
    ],
)
def test_a_table_line_error_names_file_and_line(
    tmp_path: Path, key: rsa.RSAPrivateKey, table: str, line: str, message: str
) -> None:
    tables = dict(zip(("KeyTable", "SigningTable"), write_tables(tmp_path, key), strict=True))
    with tables[table].open("a") as file:
        file.write("\n# a comment\n" + line + "\n")
    lines = len(tables[table].read_text().splitlines())

    with pytest.raises(SigningError, match="^" + re.escape(f"{tables[table]}:{lines}: {message}")):
        Signer.from_conf(tmp_path / "opendkim.conf")


def test_a_key_that_is_not_pem_names_the_keytable_line(
    tmp_path: Path, key: rsa.RSAPrivateKey, signer: Signer
) -> None:
    (tmp_path / "keys" / "example.test" / "lab2026a.private").write_text("not a key\n")

    with pytest.raises(SigningError, match=r"KeyTable:2: .*lab2026a.private is not a PEM"):
        signer.sign(MESSAGE)


def test_signing_is_much_faster_than_dkimpy(signer: Signer, key: rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # dkimpy 1.0.5 reads only PKCS#1
        serialization.NoEncryption(),
    )
    signer.sign(MESSAGE)  # the key loads on the first message
    started = time.perf_counter()
    for _round in range(200):
        signer.sign(MESSAGE)
    ours = (time.perf_counter() - started) / 200
    started = time.perf_counter()
    for _round in range(20):  # dkimpy takes ~15 ms a message: 20 are enough to compare
        dkim.sign(MESSAGE, b"lab2026a", b"example.test", pem)
    theirs = (time.perf_counter() - started) / 20

    assert ours < theirs / 2, f"{ours * 1000:.2f} ms a message, dkimpy {theirs * 1000:.2f} ms"


def sign_command(argv: list[str], stdin: bytes) -> tuple[int, bytes, str]:
    stdout, stderr = io.BytesIO(), io.StringIO()
    code = run(build_parser().parse_args(["sign", *argv]), io.BytesIO(stdin), stdout, stderr)
    return code, stdout.getvalue(), stderr.getvalue()


def test_the_command_signs_stdin_to_stdout(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    write_tables(tmp_path, key)
    tables = ["--opendkim-conf", str(tmp_path / "opendkim.conf")]

    code, out, err = sign_command(tables, MESSAGE)
    assert (code, err) == (0, "")
    assert dkim.verify(out, dnsfunc=txt_for(key))

    code, out, err = sign_command([*tables, "--count", "20"], MESSAGE)
    assert (code, err) == (0, "")
    assert out.startswith(b"signs_per_s: ") and out.count(b"\n") == 1
    assert float(out.split()[1]) > 0

    code, out, err = sign_command(tables, MESSAGE.replace(b"@example.test", b"@shop.test"))
    assert (code, out) == (2, b"")
    assert err.startswith("bulkmail sign: error: no KeyTable/SigningTable entry signs mail from")


def test_python_dash_m_bulkmail_sign(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    write_tables(tmp_path, key)
    result = subprocess.run(
        [sys.executable, "-m", "bulkmail", "sign", "--opendkim-conf",
         str(tmp_path / "opendkim.conf")],
        input=MESSAGE, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert dkim.verify(result.stdout, dnsfunc=txt_for(key))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("relaxed/simple", "simple/simple"), "canonicalization is 'simple/simple'; bulkmail"),
        (("refile:", "file:"), "signingtable 'file:"),
    ],
)
def test_an_opendkim_conf_of_another_kind_is_refused(
    tmp_path: Path, key: rsa.RSAPrivateKey, change: tuple[str, str], message: str
) -> None:
    write_tables(tmp_path, key)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(conf.read_text().replace(*change))
    with pytest.raises(SigningError, match="^" + re.escape(f"{conf}: {message}")):
        Signer.from_conf(conf)


def test_the_signed_headers_are_opendkims_own(tmp_path: Path, key: rsa.RSAPrivateKey) -> None:
    write_tables(tmp_path, key)
    conf = tmp_path / "opendkim.conf"
    conf.write_text(conf.read_text().replace("OversignHeaders         From", ""))
    signed = Signer.from_conf(conf).sign(MESSAGE)
    assert tags(signed)[b"h"].split(b":").count(b"from") == 1
