#!/usr/bin/env python3
"""Submit lab mail the way an application does, and print one JSON line per message.

Standard library only: it runs with Debian's python3 in the client container.

  # 10 messages, authenticated submission (STARTTLS, then AUTH) on 587
  send_mail.py --host 10.25.0.10 --user app@example.test --password ... \\
      --from app@example.test --to alice@gmail.test,bob@outlook.test --count 10
  # trusted-network submission on 25, no AUTH (from the tenant network's address)
  send_mail.py --host 10.25.0.10 --port 25 --source 10.25.0.113 --from app@shop.test \\
      --to carol@yahoo.test
  # safety checks: passes only when every message is refused with an SMTP reply
  send_mail.py --host 198.51.100.10 --port 25 --from x@stranger.test \\
      --to victim@gmail.test --expect-refusal

Each line: n, message_id, from, mail_from, to, accepted, and for a refusal
error {stage, code, text}. Exit status: 0 when every message was accepted (with
--expect-refusal: when every message was refused by the server), 1 otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import email.policy
import email.utils
import json
import os
import secrets
import smtplib
import ssl
import sys
import time
from email.message import EmailMessage
from typing import Any

BODY_LINE = (
    "This is a bulkmail lab message. It exists to be signed, shaped, delivered and verified; "
    "nobody reads it.\n"
)


class Refusal(Exception):
    """The server answered with an error reply (code is None when it did not offer something)."""

    def __init__(self, stage: str, code: int | None, text: str) -> None:
        super().__init__(f"{stage}: {code} {text}")
        self.stage, self.code, self.text = stage, code, text


def build_message(
    n: int, sender: str, recipient: str, subject: str, extra_headers: list[str]
) -> EmailMessage:
    domain = sender.rpartition("@")[2] or "localhost"
    token = secrets.token_hex(8)
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = f"{subject} #{n}"
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = email.utils.make_msgid(idstring=f"lab{n}", domain=domain)
    message["List-Unsubscribe"] = (
        f"<mailto:unsubscribe@{domain}?subject=unsubscribe-{token}>, "
        f"<https://{domain}/unsubscribe/{token}>"
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for header in extra_headers:
        name, _, value = header.partition(":")
        message[name.strip()] = value.strip()
    body = f"Message {n} to {recipient}, token {token}.\n\n" + BODY_LINE * 20  # about 2 KB
    message.set_content(body)
    return message


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


class Submitter:
    """One SMTP session, reused across messages and reopened after an error."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.client: smtplib.SMTP | None = None

    def _tls_context(self) -> ssl.SSLContext:
        if self.args.cafile:
            return ssl.create_default_context(cafile=self.args.cafile)
        context = ssl.create_default_context()
        context.check_hostname = False  # the lab's certificates are self-signed
        context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        args = self.args
        source = (args.source, 0) if args.source else None
        client = smtplib.SMTP(
            args.host,
            args.port,
            local_hostname=args.helo,
            timeout=args.timeout,
            source_address=source,
        )
        try:
            code, reply = client.ehlo()
            if code != 250:
                raise Refusal("ehlo", code, _text(reply))
            if args.tls != "none" and client.has_extn("starttls"):
                code, reply = client.starttls(context=self._tls_context())
                client.ehlo()
            elif args.tls == "required":
                raise Refusal("starttls", None, "server does not offer STARTTLS")
            if args.user:
                if not client.has_extn("auth"):
                    raise Refusal("auth", None, "server does not offer AUTH")
                client.login(args.user, args.password or "")
        except smtplib.SMTPAuthenticationError as error:
            client.close()
            raise Refusal("auth", error.smtp_code, _text(error.smtp_error)) from error
        except BaseException:
            client.close()
            raise
        return client

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.quit()
            except (OSError, smtplib.SMTPException):
                self.client.close()
            self.client = None

    def send(self, mail_from: str, recipient: str, message: EmailMessage) -> None:
        """Raises Refusal for a server's error reply, OSError or SMTPException otherwise."""
        try:
            if self.client is None:
                self.client = self._connect()
            self.client.send_message(message, from_addr=mail_from, to_addrs=[recipient])
        except Refusal:
            self.close()
            raise
        except smtplib.SMTPSenderRefused as error:
            self.close()
            raise Refusal("mail", error.smtp_code, _text(error.smtp_error)) from error
        except smtplib.SMTPRecipientsRefused as error:
            self.close()
            code, reply = next(iter(error.recipients.values()))
            raise Refusal("rcpt", code, _text(reply)) from error
        except smtplib.SMTPDataError as error:
            self.close()
            raise Refusal("data", error.smtp_code, _text(error.smtp_error)) from error
        except smtplib.SMTPResponseException as error:
            self.close()
            raise Refusal("session", error.smtp_code, _text(error.smtp_error)) from error
        except (OSError, smtplib.SMTPException):
            self.close()
            raise


def recipients_from(values: list[str]) -> list[str]:
    return [r.strip() for value in values for r in value.split(",") if r.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, help="default 587 with --user, else 25")
    parser.add_argument("--user", default=os.environ.get("SMTP_USER"), help="env SMTP_USER")
    parser.add_argument(
        "--password", default=os.environ.get("SMTP_PASSWORD"), help="env SMTP_PASSWORD"
    )
    parser.add_argument("--from", dest="sender", required=True, help="From header address")
    parser.add_argument("--mail-from", help="envelope sender (default: the From address)")
    parser.add_argument(
        "--to", action="append", required=True, help="recipients, comma-separated or repeated"
    )
    parser.add_argument("--count", type=int, default=1, help="messages, recipients round-robin")
    parser.add_argument("--subject", default="bulkmail lab")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value'")
    parser.add_argument("--helo", default="client.lab.test")
    parser.add_argument("--source", help="local address to connect from (a trusted network's)")
    parser.add_argument(
        "--tls",
        choices=("auto", "required", "none"),
        default="auto",
        help="STARTTLS when offered (auto), always (required) or never",
    )
    parser.add_argument("--cafile", help="verify the server certificate against this CA")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument(
        "--expect-refusal",
        action="store_true",
        help="succeed only if the server refuses every message (open-relay and auth checks)",
    )
    args = parser.parse_args(argv)
    args.to = recipients_from(args.to)
    if not args.to:
        parser.error("--to: give at least one recipient")
    if args.count < 1:
        parser.error("--count: give a positive number")
    if args.port is None:
        args.port = 587 if args.user else 25
    if args.user and args.password is None:
        parser.error("--password (or SMTP_PASSWORD) is needed with --user")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mail_from = args.mail_from or args.sender
    submitter = Submitter(args)
    accepted = refused = failed = 0
    try:
        for n in range(1, args.count + 1):
            recipient = args.to[(n - 1) % len(args.to)]
            message = build_message(n, args.sender, recipient, args.subject, args.header)
            line: dict[str, Any] = {
                "n": n,
                "message_id": message["Message-ID"],
                "from": args.sender,
                "mail_from": mail_from,
                "to": recipient,
            }
            started = time.monotonic()
            try:
                submitter.send(mail_from, recipient, message)
                line["accepted"] = True
                accepted += 1
            except Refusal as refusal:
                line["accepted"] = False
                line["error"] = {"stage": refusal.stage, "code": refusal.code, "text": refusal.text}
                refused += 1
            except (OSError, smtplib.SMTPException) as error:
                # no answer from a server is not a refusal: --expect-refusal must not pass on it
                line["accepted"] = False
                line["error"] = {"stage": "connect", "code": None, "text": str(error)}
                failed += 1
            line["elapsed_ms"] = round((time.monotonic() - started) * 1000)
            print(json.dumps(line), flush=True)
    finally:
        submitter.close()
    print(
        f"send_mail: {args.count} messages to {args.host}:{args.port}: "
        f"{accepted} accepted, {refused} refused, {failed} failed",
        file=sys.stderr,
    )
    if args.expect_refusal:
        return 0 if refused == args.count else 1
    return 0 if accepted == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
