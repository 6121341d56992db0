"""`bulkmail archive`: ship Postfix's raw journal lines to S3-compatible storage, gzip'd.

    bulkmail archive --config FILE --credentials-file FILE [--state-dir DIR] [--host NAME]
                     [--dry-run]

A oneshot, started by a systemd timer every `interval_minutes` on every smtp host. It reads
the local journal's mail facility (the entries `bulkmail ingest` reads: SYSLOG_FACILITY=2,
identifiers starting with `postfix`) from the entry after the saved cursor (the journal's
head the first time) to its current end, without waiting for more, and puts them in objects
of at most `chunk_lines` entries, gzip'd JSON lines under keys that follow from each object's
first entry (bulkmail.logic.feedback.archive). After each put the cursor of the object's last
entry is saved in `--state-dir` (write, fsync, rename), never before: a crash between a put
and the save puts the same object again, under the same key, the next time. A put that fails
(the store down, the credentials refused, no such bucket) is logged in one line with the
store's error code and the bucket, the cursor stays, and the run exits 1: the timer's next
run retries from there, nothing is skipped. When the journal no longer holds the saved entry
(vacuumed between runs) it warns and goes on from the oldest entry after it, as the ingester
does. A summary line ends every run: entries, objects, bytes, seconds.

`--dry-run` reads and packs, prints each key it would put with its entries and bytes, and
uploads and saves nothing. Exit 0 done (nothing new included), 1 a put or the cursor's save
failed (retry later), 2 bad configuration or arguments.

`--config` is the role's JSON (the `log_archive_settings` filter's `config`); the credentials
are in `--credentials-file` (JSON: access_key_id, secret_access_key), never logged or printed,
and an error about that file names the option, never its content. Deployed as a oneshot
service and timer on every smtp host, as a system account in the `systemd-journal` group
(to read the journal) with `StateDirectory=bulkmail-archive`; Debian's python3-boto3 and
python3-systemd.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from bulkmail.ingest import IDENTIFIER_PREFIX, open_journal
from bulkmail.logic.feedback.archive import (
    CONTENT_TYPE,
    Chunk,
    Credentials,
    check_host,
    describe_upload_error,
    load_config,
    load_credentials,
    pack,
)
from bulkmail.logic.model.archive import LogArchive
from bulkmail.logic.model.errors import ModelError

PROG = "archive"
LOG = logging.getLogger("bulkmail.archive")
STATE_DIR = Path("/var/lib/bulkmail-archive")
CURSOR_FILE = "cursor"
LOCK_FILE = "lock"
EXIT_DONE, EXIT_RETRY, EXIT_CONFIG = 0, 1, 2

# The saved cursor (None: none yet) -> the entries after it, to the journal's current end.
Journal = Callable[[str | None], Iterable[Mapping[str, Any]]]


class ConfigError(Exception):
    """Bad configuration or arguments (exit 2); the message names the option, no secret."""


class UploadFailed(Exception):
    """A put or the cursor's save failed (exit 1); the message is safe to log."""


# ---------------------------------------------------------------------- the files


def _read_json(path: Path, option: str) -> Any:
    """A JSON file's content; errors name the option and the file, never the content."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{option} {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{option} {path}: is not UTF-8 text") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{option} {path}: is not JSON (line {error.lineno})") from None


def read_config(path: Path) -> LogArchive:
    try:
        return load_config(_read_json(path, "--config"))
    except ModelError as error:
        raise ConfigError(f"--config {path}: {error}") from None


def read_credentials(path: Path) -> Credentials:
    try:
        return load_credentials(_read_json(path, "--credentials-file"))
    except ModelError as error:
        # The messages name a key and the problem, never a value (secret() and
        # load_credentials' own checks).
        raise ConfigError(f"--credentials-file {path}: {error}") from None


class CursorFile:
    """The cursor of the last shipped entry, in `--state-dir`, saved atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / CURSOR_FILE

    def check(self) -> None:
        """The state directory exists and is ours to write (StateDirectory= makes it)."""
        if not self.directory.is_dir():
            raise ConfigError(f"--state-dir {self.directory}: no such directory")
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ConfigError(f"--state-dir {self.directory}: not writable by this account")

    def load(self) -> str | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not a journal cursor"
            raise ConfigError(f"--state-dir {self.directory}: {self.path.name}: {reason}") from None
        if not text:
            return None
        if any(c.isspace() or not c.isprintable() for c in text):
            raise ConfigError(
                f"--state-dir {self.directory}: {self.path.name} is not a journal cursor; "
                "remove it to ship from the journal's head"
            )
        return text

    def save(self, cursor: str) -> None:
        """Write a new file, fsync it, rename it over the old, fsync the directory: after a
        crash the file holds the old cursor or the new one, whole."""
        new = self.directory / f".{CURSOR_FILE}.new"
        fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, cursor.encode("ascii") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(new, self.path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    @contextlib.contextmanager
    def locked(self) -> Iterator[bool]:
        """Whether this run holds the state's lock: two runs at once (the timer's and a
        manual one) would save cursors over each other."""
        fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o640)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


# ---------------------------------------------------------------------- journal and store


def read_journal(after: str | None) -> Iterator[Mapping[str, Any]]:
    """The mail facility's entries after cursor `after` (from the head without one) up to
    the journal's current end; opened here, read lazily."""
    reader, first = open_journal(after, command=PROG, log=LOG)

    def entries() -> Iterator[Mapping[str, Any]]:
        try:
            if first:
                yield first
            while entry := reader.get_next():
                yield entry
        finally:
            reader.close()

    return entries()


def s3_client(config: LogArchive, credentials: Credentials) -> Any:
    """boto3's S3 client for the store (Debian's python3-boto3 1.26), three attempts with
    standard backoff, bounded timeouts, SigV4."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("boto3 is missing: install Debian's python3-boto3") from None
    try:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            config=Config(
                s3={"addressing_style": config.addressing_style},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                signature_version="s3v4",
            ),
        )
    except Exception as error:
        raise ConfigError(
            f"--config: the S3 client refused the settings: "
            f"{describe_upload_error(error, credentials.secrets)}"
        ) from None


def put(client: Any, bucket: str, chunk: Chunk) -> None:
    """One object, with Content-MD5 so the store refuses bytes that changed on the way."""
    client.put_object(
        Bucket=bucket,
        Key=chunk.key,
        Body=chunk.body,
        ContentType=CONTENT_TYPE,
        ContentMD5=chunk.md5,
        Metadata=chunk.metadata,
    )


# ---------------------------------------------------------------------- shipping


@dataclass
class Shipped:
    entries: int = 0
    objects: int = 0
    size: int = 0  # bytes


def ship(
    entries: Iterable[Mapping[str, Any]],
    *,
    config: LogArchive,
    host: str,
    client: Any,
    cursor: CursorFile | None,
    secrets: Sequence[str] = (),
    out: TextIO | None = None,
    shipped: Shipped | None = None,
) -> Shipped:
    """Put every object of `entries`, saving the cursor after each; `cursor` None is a dry
    run (each object printed to `out`, nothing put, nothing saved). Raises UploadFailed at
    the first failure, with what was shipped before it in `shipped`."""
    done = shipped if shipped is not None else Shipped()
    chunks = pack(
        entries,
        prefix=config.prefix,
        host=host,
        chunk_lines=config.chunk_lines,
        identifier_prefix=IDENTIFIER_PREFIX,
    )
    for chunk in chunks:
        if chunk.entries:
            if cursor is None:
                print(
                    f"would put {chunk.key}: {chunk.entries} entries, {len(chunk.body)} bytes",
                    file=out or sys.stdout,
                )
            else:
                try:
                    put(client, config.bucket, chunk)
                except Exception as error:
                    raise UploadFailed(
                        f"put {chunk.key} into bucket {config.bucket} failed: "
                        f"{describe_upload_error(error, secrets)}; the cursor stays after the "
                        "last shipped entry, the next run retries"
                    ) from None
                LOG.info("put %s: %d entries, %d bytes", chunk.key, chunk.entries, len(chunk.body))
            done.entries += chunk.entries
            done.objects += 1
            done.size += len(chunk.body)
        if cursor is not None:
            try:
                cursor.save(chunk.last_cursor)
            except OSError as error:
                raise UploadFailed(
                    f"saving the cursor in {cursor.path} failed ({error.strerror}): the next "
                    f"run puts {chunk.key or 'the same entries'} again, under the same key"
                ) from None
    return done


# ---------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        required=True,
        help="JSON: endpoint, bucket, region, prefix, addressing_style, chunk_lines, "
        "interval_minutes (the model's bulkmail_log_archive)",
    )
    parser.add_argument(
        "--credentials-file",
        type=Path,
        required=True,
        help="JSON: access_key_id, secret_access_key (never logged)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=STATE_DIR,
        help=f"where the cursor of the last shipped entry is kept (default {STATE_DIR})",
    )
    parser.add_argument(
        "--host", help="this host's name in the keys (default: the system's host name)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read and pack, print what would be put; upload nothing, save nothing",
    )


def _require_systemd() -> None:
    try:
        import systemd.journal  # noqa: F401
    except ImportError:
        raise ConfigError("python-systemd is missing: install Debian's python3-systemd") from None


def run(
    args: argparse.Namespace,
    *,
    journal: Journal | None = None,
    client: Any = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """One run; `journal` and `client` replace the local journal and boto3 (the tests'
    fakes: a function of the saved cursor giving entries, an object with put_object)."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    started = clock()
    try:
        config = read_config(args.config)
        credentials = read_credentials(args.credentials_file)
        try:
            host = check_host(args.host or socket.gethostname())
        except ModelError as error:
            raise ConfigError(f"--host: {error}") from None
        state = CursorFile(args.state_dir)
        if not args.dry_run:
            state.check()
        if journal is None:
            _require_systemd()
            journal = read_journal
        if client is None and not args.dry_run:
            client = s3_client(config, credentials)
    except ConfigError as error:
        print(f"{PROG}: {error}", file=err)
        return EXIT_CONFIG
    with contextlib.ExitStack() as stack:
        if not args.dry_run and not stack.enter_context(state.locked()):
            LOG.info("another run is shipping from %s: leaving this one to it", state.directory)
            return EXIT_DONE
        try:  # read under the lock: a run that just ended has saved its cursor
            after = state.load() if state.directory.is_dir() else None
        except ConfigError as error:
            print(f"{PROG}: {error}", file=err)
            return EXIT_CONFIG
        if after is None:
            LOG.info("no saved cursor: shipping the journal of %s from its head", host)
        try:
            entries = journal(after)
        except (OSError, ValueError) as error:
            if after is None:
                LOG.error("opening the journal failed (%s): the next run retries", error)
                return EXIT_RETRY
            print(
                f"{PROG}: --state-dir {state.directory}: the saved cursor is not one of this "
                f"journal ({error}); remove {state.path} to ship from the journal's head",
                file=err,
            )
            return EXIT_CONFIG
        done = Shipped()
        try:
            ship(
                entries,
                config=config,
                host=host,
                client=client,
                cursor=None if args.dry_run else state,
                secrets=credentials.secrets,
                out=out,
                shipped=done,
            )
        except UploadFailed as error:
            LOG.error("%s", error)
            status = EXIT_RETRY
        except OSError as error:
            LOG.error("reading the journal failed (%s): the next run retries", error.strerror)
            status = EXIT_RETRY
        else:
            status = EXIT_DONE
    seconds = clock() - started
    if args.dry_run:
        print(
            f"dry run: would ship {done.entries} entries in {done.objects} objects, "
            f"{done.size} bytes, to bucket {config.bucket}; nothing put, no cursor saved "
            f"({seconds:.1f} s)",
            file=out,
        )
    else:
        LOG.info(
            "shipped %d entries in %d objects, %d bytes, to bucket %s in %.1f s",
            done.entries,
            done.objects,
            done.size,
            config.bucket,
            seconds,
        )
    return status
