"""What the providers received: one JSON line per accepted message and provider, and the .eml.

received.jsonl holds one object per accepted message *per provider*: `rcpt_to` lists that
provider's recipients of the transaction (Postfix sends one transaction per destination, so
in the lab this is one record per message and destination). Each line is flushed and fsynced
before the SMTP reply goes out, so a test that reads the file right after delivery sees it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class MailStore:
    def __init__(self, data_dir: Path) -> None:
        self.log_path = data_dir / "received.jsonl"
        self.message_dir = data_dir / "messages"
        self.message_dir.mkdir(parents=True, exist_ok=True)
        self._next_number: dict[str, int] = {}

    def _first_free_number(self, directory: Path) -> int:
        numbers = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
        return max(numbers, default=0) + 1

    def store_message(self, provider: str, raw: bytes) -> Path:
        """messages/<provider>/<n>.eml, numbered from 1; never overwrites."""
        directory = self.message_dir / provider
        directory.mkdir(parents=True, exist_ok=True)
        number = self._next_number.get(provider) or self._first_free_number(directory)
        while True:
            path = directory / f"{number}.eml"
            try:
                with path.open("xb") as file:
                    file.write(raw)
                    file.flush()
                    os.fsync(file.fileno())
            except FileExistsError:
                number += 1
                continue
            self._next_number[provider] = number + 1
            return path

    def append_record(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
        with self.log_path.open("a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())


def read_records(log_path: Path, since: int = 0) -> Iterator[dict[str, Any]]:
    """The records after the first `since` ones (a count a test remembered earlier)."""
    try:
        file = log_path.open(encoding="utf-8")
    except FileNotFoundError:
        return
    with file:
        for number, line in enumerate(file):
            if number >= since and line.strip():
                yield json.loads(line)


def reset(log_path: Path, message_dir: Path | None = None) -> int:
    """Truncate the log (and remove stored messages when asked); return the records dropped."""
    dropped = sum(1 for _ in read_records(log_path))
    if log_path.exists():
        with log_path.open("r+b") as file:
            file.truncate(0)
            os.fsync(file.fileno())
    if message_dir is not None and message_dir.is_dir():
        for path in message_dir.glob("*/*.eml"):
            path.unlink()
    return dropped
