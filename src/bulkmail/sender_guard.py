"""`bulkmail sender-guard`: a milter that lets an identity send only as the domains it owns.

    bulkmail sender-guard --identities FILE [--listen 127.0.0.1:8893]

Postfix calls it before OpenDKIM (`smtpd_milters = inet:127.0.0.1:8893, inet:127.0.0.1:8891`)
on every listener that signs. For each message it learns who sent it, the SASL login
(`{auth_authen}`, Postfix sends it with MAIL FROM) or the client address, and, at the end of
the headers, asks `bulkmail.logic.sender_guard.refusal` whether the From and Sender headers
(and a trusted network's envelope sender) name only domains of that identity. When not, the
message is rejected with `550 5.7.1 <account or network> may not send as <domain> ...`:
OpenDKIM never sees its end and never signs it. The body is never asked for.

The identities come from `--identities FILE` (`sender_identities()` of the model, written by
the bulkmail_runtime role; no secret in it), read once at start. The milter is Debian's
python3-milter (pymilter over libmilter): one thread per SMTP session, as Postfix opens them.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from bulkmail.logic.sender_guard import Identities, Identity, refusal

LOG = logging.getLogger("bulkmail.sender-guard")
DEFAULT_LISTEN = "127.0.0.1:8893"
# libmilter's wait for Postfix between two commands of a session, seconds.
TIMEOUT = 600


def load_identities(path: Path) -> Identities:
    try:
        return Identities.load(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as error:
        raise SystemExit(f"sender-guard: {path}: {error}") from error


def milter_socket(listen: str) -> str:
    """libmilter's `inet:PORT@HOST` for `HOST:PORT`."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SystemExit(f"sender-guard: --listen {listen!r} is not HOST:PORT")
    return f"inet:{port}@{host}"


def build_milter(identities: Identities) -> type[Any]:
    """The pymilter class for these identities (imported here: Debian's python3-milter)."""
    import Milter  # Debian's python3-milter: only the daemon needs it

    class SenderGuard(Milter.Base):
        def __init__(self) -> None:
            self.client: str | None = None
            self.identity: Identity | None = None
            self.envelope: str | None = None
            self.headers: list[tuple[str, str]] = []

        @Milter.noreply
        def connect(self, hostname: str, family: int, hostaddr: Any) -> int:
            # inet: (address, port); inet6: (address, port, flow, scope); local: None
            self.client = hostaddr[0] if isinstance(hostaddr, tuple) and hostaddr else None
            return Milter.CONTINUE

        def envfrom(self, mailfrom: str, *params: str) -> int:
            self.identity = identities.identify(self.getsymval("{auth_authen}"), self.client)
            self.envelope = mailfrom
            self.headers = []
            return Milter.CONTINUE

        @Milter.noreply
        def header(self, name: str, value: str) -> int:
            if self.identity is not None and name.lower() in ("from", "sender"):
                self.headers.append((name, value))
            return Milter.CONTINUE

        def eoh(self) -> int:
            reason = refusal(
                self.identity,
                envelope=self.envelope,
                headers=self.headers,
                return_paths=identities.return_paths,
            )
            if reason is None:
                # Nothing else to look at: the rest of the message is not sent to us.
                return Milter.ACCEPT
            queue_id = self.getsymval("i") or "-"
            LOG.warning("%s: refused: %s", queue_id, reason)
            self.setreply("550", "5.7.1", reason.replace("%", "%%"))
            return Milter.REJECT

    return SenderGuard


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--identities",
        type=Path,
        required=True,
        help="JSON file: accounts and trusted networks -> sending domains",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port to listen on")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    identities = load_identities(args.identities)
    socket = milter_socket(args.listen)
    import Milter

    Milter.factory = build_milter(identities)
    # No action on the message: only accept or reject (libmilter asks nothing more of Postfix).
    Milter.set_flags(0)
    LOG.info(
        "guarding %d accounts and %d trusted networks on %s",
        len(identities.accounts),
        len(identities.networks),
        args.listen,
    )
    Milter.runmilter("bulkmail-sender-guard", socket, timeout=TIMEOUT)
    return 0
