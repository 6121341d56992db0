"""`bulkmail unsubscribe-web`: the HTTPS end of RFC 8058 one-click unsubscribe.

    bulkmail unsubscribe-web --keys-file FILE --database-file FILE [--listen 127.0.0.1:8460]
                             [--spool-file /var/lib/bulkmail-unsubscribe/spool.jsonl]
                             [--max-connections 256] [--header-timeout 10] [--flush-every 30]
                             [--max-age-days N]

Bulk mail carries `List-Unsubscribe: <https://.../u/TOKEN>` and `List-Unsubscribe-Post:
List-Unsubscribe=One-Click` (`bulkmail submit --unsubscribe-...`, the tokens of
`bulkmail.logic.feedback.unsubscribe`). Gmail, Yahoo and the others POST to that URI when the
person clicks their unsubscribe button, with no cookie and no confirmation step, and expect it
honoured within 2 days. This server sits behind nginx, which terminates TLS and proxies to it
on loopback; it speaks plain HTTP/1.1 with the standard library's asyncio streams.

- `POST /u/<token>`: the token is verified with the keys (no database lookup), and the
  suppression row it gives (the tenant's `unsubscribe` of the address, the campaign as note)
  is inserted `ON CONFLICT (tenant, address) DO NOTHING`; 200. The body is read (at most
  MAX_BODY) and not required to be `List-Unsubscribe=One-Click`: RFC 8058 allows urlencoded
  and multipart forms, and the token, not the body, is the proof; the POST method alone is
  what keeps link scanners out.
- `GET /u/<token>` (or HEAD): a small page with a button that POSTs the same form; a GET never
  unsubscribes, since scanners and previews follow links.
- A token that is not ours, whatever the reason: 400 "invalid link", nothing more.
- `GET /healthz`: 200.

An unsubscribe is never lost: when the database does not answer (or not within
DB_TIMEOUT), the row is appended to the spool file (JSON lines, fsync'd, mode 0600, in the
StateDirectory) and the answer is 200 all the same; a background task moves the spool into the
database once it answers. Only when the spool cannot be written either is the answer 503 with
Retry-After, which the provider retries.

Limits: the request head at most MAX_HEAD bytes, read within `--header-timeout`; a body at
most MAX_BODY (a Content-Length is required: nginx sends one); at most `--max-connections` at
once (more get 503 at once). One log line per unsubscribe with the tenant, the campaign and a
short keyed hash of the address, never the address itself.

The keys file holds one hex or base64 key a line, the signing key first (the same file as
`bulkmail submit --unsubscribe-keys-file`); the connection string comes from
`--database-file` or $BULKMAIL_UNSUBSCRIBE_DATABASE, never logged. The role needs INSERT on
`suppression` only (its id is an identity column: no sequence grant).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import hmac
import html
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bulkmail.logic.feedback.unsubscribe import (
    INSERT_SUPPRESSION,
    ONE_CLICK,
    TokenError,
    UnsubscribeRow,
    insert_params,
    read_token,
    row_from_record,
    spool_line,
    suppression_row,
    token_from_path,
)
from bulkmail.policy import conninfo_password, describe_error, read_keys_file
from bulkmail.policy import read_conninfo as policy_read_conninfo

LOG = logging.getLogger("bulkmail.unsubscribe")
DEFAULT_LISTEN = "127.0.0.1:8460"
DEFAULT_SPOOL = Path("/var/lib/bulkmail-unsubscribe/spool.jsonl")
DATABASE_ENV = "BULKMAIL_UNSUBSCRIBE_DATABASE"
MAX_HEAD = 8192
MAX_BODY = 4096
DB_TIMEOUT = 5.0
BODY_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
LINGER = 1.0
RETRY_AFTER = 300
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class DatabaseUnavailable(Exception):
    """The database could not take the rows; the message is safe to log (no password)."""


class RowsRejected(Exception):
    """The database refused the rows themselves (a CHECK): retrying would not help."""


# Rows -> inserted, in one transaction. PostgresStore in production; tests pass a fake.
Insert = Callable[[Sequence[UnsubscribeRow]], Awaitable[None]]


class PostgresStore:
    """Inserts suppression rows with psycopg 3 (Debian's python3-psycopg), one connection
    opened at the first insert and again after any failure."""

    def __init__(self, conninfo: str, *, connect_timeout: int = 5) -> None:
        self._password = conninfo_password(conninfo)
        self._conninfo = conninfo
        self._connect_timeout = connect_timeout
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def __call__(self, rows: Sequence[UnsubscribeRow]) -> None:
        import psycopg

        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._conninfo,
                        autocommit=True,
                        connect_timeout=self._connect_timeout,
                        application_name="bulkmail-unsubscribe",
                    )
                async with self._conn.transaction(), self._conn.cursor() as cursor:
                    await cursor.executemany(INSERT_SUPPRESSION, [insert_params(r) for r in rows])
            except (psycopg.errors.IntegrityError, psycopg.errors.DataError) as error:
                raise RowsRejected(self._describe(error)) from None
            except Exception as error:
                await self.close()
                raise DatabaseUnavailable(self._describe(error)) from None
            except BaseException:  # cancelled (timed out): the connection is in an unknown state
                await self.close()
                raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _describe(self, error: Exception) -> str:
        return describe_error(error, self._password)


class Spool:
    """Unsubscribes the database did not take yet: JSON lines, appended and fsync'd.

    A flush renames the file aside (`.flushing`), inserts its rows in one transaction and
    deletes it; a failed flush keeps it for the next. Rows the database refuses go to
    `.rejected` for a person to look at. Appends and the rename share a lock, so no append
    lands in a file already read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.flushing = path.with_name(path.name + ".flushing")
        self.rejected = path.with_name(path.name + ".rejected")
        self._lock = asyncio.Lock()

    @staticmethod
    def _append(path: Path, lines: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    async def append(self, row: UnsubscribeRow) -> None:
        """Keep one row; OSError when it cannot be written (the caller answers 503)."""
        async with self._lock:
            await asyncio.to_thread(self._append, self.path, spool_line(row))

    async def reject(self, rows: Sequence[UnsubscribeRow]) -> None:
        await asyncio.to_thread(self._append, self.rejected, "".join(map(spool_line, rows)))

    def pending(self) -> bool:
        return self.flushing.exists() or (self.path.exists() and self.path.stat().st_size > 0)

    async def flush(self, insert: Insert) -> int:
        """Move the spooled rows into the database; how many. Raises what `insert` raises
        (DatabaseUnavailable: they stay spooled)."""
        async with self._lock:
            if not self.flushing.exists():
                if not self.path.exists():
                    return 0
                os.replace(self.path, self.flushing)
        rows, skipped = [], 0
        with self.flushing.open(encoding="utf-8") as stream:
            for line in stream:
                try:
                    rows.append(row_from_record(json.loads(line)))
                except ValueError:
                    skipped += 1  # a line cut short by a crash during its write
        if skipped:
            LOG.warning("%s: %d lines were not rows and were skipped", self.flushing, skipped)
        if rows:
            try:
                await insert(rows)
            except RowsRejected:
                await self._one_by_one(insert, rows)
        self.flushing.unlink()
        return len(rows)

    async def _one_by_one(self, insert: Insert, rows: Sequence[UnsubscribeRow]) -> None:
        for row in rows:
            try:
                await insert([row])
            except RowsRejected as error:
                await self.reject([row])
                LOG.error("a spooled row was refused (%s): kept in %s", error, self.rejected)


@dataclass
class Request:
    method: str
    path: str
    version: str
    headers: Mapping[str, str]


class HttpError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


def parse_head(head: bytes) -> Request:
    """The request line and headers (names lower-cased); HttpError 400 when malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover: latin-1 decodes anything
        raise HttpError(400, "bad request") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise HttpError(400, "bad request")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, "bad request")
        key = name.lower()
        if key in headers and key in ("content-length", "transfer-encoding", "host"):
            raise HttpError(400, "bad request")  # request smuggling: refuse, never choose
        headers[key] = value.strip()
    return Request(parts[0], parts[1], parts[2], headers)


def keep_alive(request: Request) -> bool:
    tokens = {t.strip().lower() for t in request.headers.get("connection", "").split(",")}
    if request.version == "HTTP/1.0":
        return "keep-alive" in tokens
    return "close" not in tokens


def response(
    status: int,
    body: str,
    *,
    content_type: str = "text/plain; charset=utf-8",
    close: bool = False,
    extra: Sequence[tuple[str, str]] = (),
    head_only: bool = False,
) -> bytes:
    """A whole HTTP/1.1 response; nothing cached, no referrer (the token is in the URL)."""
    data = body.encode("utf-8")
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
        ("Referrer-Policy", "no-referrer"),
        ("X-Content-Type-Options", "nosniff"),
        *extra,
    ]
    if close:
        headers.append(("Connection", "close"))
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else data)


PAGE_CSP = ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self'; frame-ancestors 'none'")  # fmt: skip


def confirmation_page(tenant: str) -> str:
    """The GET page: one button that POSTs the one-click form to this same URL."""
    name, value = ONE_CLICK.split("=")
    who = html.escape(tenant)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width">'
        f'<title>Unsubscribe</title></head><body style="font-family:sans-serif;margin:3em">'
        f"<h1>Unsubscribe</h1><p>Stop receiving these emails from {who}?</p>"
        f'<form method="post"><input type="hidden" name="{name}" value="{value}">'
        '<button type="submit">Unsubscribe</button></form></body></html>'
    )


class UnsubscribeService:
    """The HTTP server's logic: one `handle()` per connection."""

    def __init__(
        self,
        keys: Sequence[bytes],
        insert: Insert,
        spool: Spool,
        *,
        max_connections: int = 256,
        header_timeout: float = 10.0,
        db_timeout: float = DB_TIMEOUT,
        max_age_days: int | None = None,
        today: Callable[[], int] | None = None,
    ) -> None:
        if not keys:
            raise ValueError("no key")
        self.keys = list(keys)
        self.insert = insert
        self.spool = spool
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.db_timeout = db_timeout
        self.max_age_days = max_age_days
        self.today = today or _today
        self.active = 0
        self.unsubscribed = 0
        self.spooled = 0
        self.database_up: bool | None = None

    def address_tag(self, address: str) -> str:
        """A short keyed hash of the address for the log: lines about one person can be
        matched, the address cannot be read back."""
        mac = hmac.new(self.keys[0], b"log\0" + address.encode(), hashlib.sha256)
        return mac.hexdigest()[:12]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            with contextlib.suppress(OSError):
                await self._refuse(reader, writer, 503, "busy, try again", [("Retry-After", "5")])
            writer.close()
            return
        self.active += 1
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client went away
        except Exception:
            LOG.exception("answering a request failed")
            with contextlib.suppress(Exception):
                writer.write(response(500, "internal error\n", close=True))
        finally:
            self.active -= 1
            with contextlib.suppress(Exception):
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self.header_timeout
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
            except asyncio.IncompleteReadError:
                return  # closed between requests, or in the middle of a head
            except asyncio.LimitOverrunError:
                await self._refuse(reader, writer, 431, "request head too large")
                return
            except TimeoutError:
                return
            try:
                request = parse_head(head[:-4])
                body = await self._body(reader, request)
                answer, close = await self.respond(request, body)
            except HttpError as error:
                await self._refuse(reader, writer, error.status, error.text)
                return
            writer.write(answer)
            await writer.drain()
            if close:
                return
            timeout = max(self.header_timeout, IDLE_TIMEOUT)

    @staticmethod
    async def _refuse(
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        status: int,
        text: str,
        extra: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Answer an error and close gently: what the client is still sending is read and
        dropped for a moment, or closing with it unread would reset the connection and lose
        the answer."""
        writer.write(response(status, text + "\n", close=True, extra=extra))
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(LINGER):
                while await reader.read(65536):
                    pass

    async def _body(self, reader: asyncio.StreamReader, request: Request) -> bytes:
        if "transfer-encoding" in request.headers:
            raise HttpError(411, "a Content-Length is required")
        length_text = request.headers.get("content-length", "0")
        if not length_text.isdigit():
            raise HttpError(400, "bad request")
        length = int(length_text)
        if length > MAX_BODY:
            raise HttpError(413, "request body too large")
        if not length:
            return b""
        try:
            return await asyncio.wait_for(reader.readexactly(length), BODY_TIMEOUT)
        except TimeoutError:
            raise HttpError(408, "request timeout") from None

    async def respond(self, request: Request, body: bytes) -> tuple[bytes, bool]:
        """The response to one request, and whether to close the connection after it."""
        close = not keep_alive(request)
        head_only = request.method == "HEAD"
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            if request.method not in ("GET", "HEAD"):
                return self._not_allowed("GET, HEAD", close), close
            return response(200, "ok\n", close=close, head_only=head_only), close
        token = token_from_path(path)
        if token is None:
            return response(404, "not found\n", close=close, head_only=head_only), close
        if request.method not in ("GET", "HEAD", "POST"):
            return self._not_allowed("GET, HEAD, POST", close), close
        try:
            data = read_token(self.keys, token, max_age_days=self.max_age_days, today=self.today())
        except TokenError:
            return response(400, "invalid link\n", close=close, head_only=head_only), close
        row = suppression_row(data)
        if request.method != "POST":
            page = confirmation_page(row.tenant)
            kind = "text/html; charset=utf-8"
            return response(200, page, content_type=kind, close=close, head_only=head_only,
                            extra=[PAGE_CSP]), close  # fmt: skip
        return await self.unsubscribe(row, close), close

    @staticmethod
    def _not_allowed(allow: str, close: bool) -> bytes:
        return response(405, "method not allowed\n", close=close, extra=[("Allow", allow)])

    async def unsubscribe(self, row: UnsubscribeRow, close: bool) -> bytes:
        done = response(200, "You are unsubscribed.\n", close=close)
        where = f"tenant={row.tenant} campaign={row.note} address={self.address_tag(row.address)}"
        try:
            await asyncio.wait_for(self.insert([row]), self.db_timeout)
        except RowsRejected as error:
            with contextlib.suppress(OSError):
                await self.spool.reject([row])
            LOG.error("unsubscribe %s refused by the database (%s): kept in %s", where, error,
                      self.spool.rejected)  # fmt: skip
            return done
        except (DatabaseUnavailable, TimeoutError) as error:
            self._database_failed(error)
        else:
            self._database_answered()
            self.unsubscribed += 1
            LOG.info("unsubscribed %s", where)
            return done
        try:
            await self.spool.append(row)
        except OSError as error:
            LOG.error("unsubscribe %s NOT recorded: database down and spool %s unwritable (%s); "
                      "answered 503", where, self.spool.path, error.strerror or error)  # fmt: skip
            extra = [("Retry-After", str(RETRY_AFTER))]
            return response(503, "try again later\n", close=close, extra=extra)
        self.spooled += 1
        LOG.info("unsubscribed %s (spooled until the database answers)", where)
        return done

    async def flush(self) -> None:
        """Move the spool into the database, if it holds anything."""
        if not self.spool.pending():
            return
        count = await self.spool.flush(self.insert)
        if count:
            LOG.info("%d spooled unsubscribes written to the database", count)

    async def keep_flushing(self, every: float) -> None:
        while True:
            try:
                await asyncio.wait_for(self.flush(), max(self.db_timeout, 30.0))
            except (DatabaseUnavailable, TimeoutError) as error:
                self._database_failed(error)
            except OSError as error:
                LOG.warning("cannot read the spool %s: %s", self.spool.flushing, error)
            else:
                self._database_answered()
            await asyncio.sleep(every)

    def _database_failed(self, error: Exception) -> None:
        if self.database_up is not False:
            LOG.warning("database unavailable (%s): unsubscribes go to the spool %s",
                        str(error) or type(error).__name__, self.spool.path)  # fmt: skip
        self.database_up = False

    def _database_answered(self) -> None:
        if self.database_up is False:
            LOG.warning("database answers again")
        self.database_up = True


def _today() -> int:
    import time

    return int(time.time() // 86400)


def load_keys(path: Path, command: str = "unsubscribe-web") -> list[bytes]:
    """The keys file's keys (first signs); SystemExit naming the file, never a key."""
    try:
        return read_keys_file(path, "--keys-file")
    except ValueError as error:
        raise SystemExit(f"{command}: {error}") from None


# The one reader of --database-file (bulkmail.policy's), with this command's name and variable.
read_conninfo = functools.partial(policy_read_conninfo, command="unsubscribe-web", env=DATABASE_ENV)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--keys-file",
        type=Path,
        required=True,
        help="the token keys, one hex or base64 key a line, the signing key first",
    )
    parser.add_argument(
        "--database-file",
        type=Path,
        help=f"file holding the database's connection string (else ${DATABASE_ENV})",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help="host:port to listen on")
    parser.add_argument(
        "--spool-file",
        type=Path,
        default=DEFAULT_SPOOL,
        help="where unsubscribes wait while the database is down (in the StateDirectory)",
    )
    parser.add_argument(
        "--max-connections", type=int, default=256, help="connections served at once"
    )
    parser.add_argument(
        "--header-timeout", type=float, default=10.0, help="seconds to read a request head"
    )
    parser.add_argument(
        "--flush-every", type=float, default=30.0, help="seconds between spool flushes"
    )
    parser.add_argument(
        "--max-age-days",
        type=int,
        default=None,
        help="refuse tokens older than this (default: never; RFC 8058 links should last)",
    )


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SystemExit(f"unsubscribe-web: --listen {listen!r}: give host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


async def serve(service: UnsubscribeService, listen: str, flush_every: float) -> None:
    host, port = parse_listen(listen)
    server = await asyncio.start_server(service.handle, host, port, limit=MAX_HEAD)
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    if this is not None:  # systemd stops it with SIGTERM: leave through the finally blocks
        loop.add_signal_handler(signal.SIGTERM, this.cancel)
    bound = server.sockets[0].getsockname()
    LOG.info("answering unsubscribe requests on %s:%d", bound[0], bound[1])
    flusher = asyncio.create_task(service.keep_flushing(flush_every))
    try:
        async with server:
            await server.serve_forever()
    finally:
        flusher.cancel()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    keys = load_keys(args.keys_file)
    for name in ("max_connections", "header_timeout", "flush_every"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"unsubscribe-web: --{name.replace('_', '-')} must be more than 0")
    conninfo = read_conninfo(args.database_file)
    try:
        store = PostgresStore(conninfo)
    except ImportError:
        raise SystemExit(
            "unsubscribe-web: psycopg 3 is missing: install Debian's python3-psycopg"
        ) from None
    except ValueError as error:
        raise SystemExit(f"unsubscribe-web: {error}") from None
    service = UnsubscribeService(
        keys,
        store,
        Spool(args.spool_file),
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        max_age_days=args.max_age_days,
    )
    with contextlib.suppress(asyncio.CancelledError):
        asyncio.run(serve(service, args.listen, args.flush_every))
    LOG.info("stopped")
    return 0
