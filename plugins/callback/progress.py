# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stdout callback that shows a long converge's progress in a few lines."""

from __future__ import annotations

DOCUMENTATION = r"""
name: progress
type: stdout
short_description: One line per host and role as a run goes, failures in full, the recap
version_added: "0.1.0"
author: bulkmail.infra developers (@bulkmail)
description:
  - Prints C([  37s] smtp1  postfix) when a host enters a new role (or, outside roles, a new
    play), with the seconds since the run started, so a converge of many hosts shows where it
    is without a screen per task.
  - "Prints a failed or unreachable result in full (in O(result_format)), a retry in one line,
    and the recap as the default callback does (C(host : ok=N changed=N ...)), so tools that
    read the recap, such as Molecule's idempotence check, read it unchanged."
  - "After the recap it lists the tasks that changed, in the default callback's form
    (C(TASK [name]) then C(changed: [host])), when there are at most O(changed_limit) of them:
    a second run that should change nothing lists what was not idempotent."
  - "Use it with C(ANSIBLE_STDOUT_CALLBACK=bulkmail.infra.progress) or C(stdout_callback) in
    C(ansible.cfg)."
extends_documentation_fragment:
  - ansible.builtin.result_format_callback
options:
  changed_limit:
    description:
      - List the changed tasks after the recap when there are at most this many changed
        results; beyond it only their number is printed. V(0) never lists them.
    type: int
    default: 20
    env:
      - name: BULKMAIL_PROGRESS_CHANGED_LIMIT
    ini:
      - section: callback_progress
        key: changed_limit
"""

import sys
import time
from typing import Any

from ansible import constants as C
from ansible.playbook.handler import Handler
from ansible.plugins.callback import CallbackBase

STATS_FIELDS = (
    ("ok", "ok"),
    ("changed", "changed"),
    ("unreachable", "unreachable"),
    ("failed", "failures"),
    ("skipped", "skipped"),
    ("rescued", "rescued"),
    ("ignored", "ignored"),
)


def _result(result: Any) -> Any:
    """The result's data (ansible-core 2.19 names it `result`, older ones `_result`)."""
    return result.result if hasattr(result, "result") else result._result


def _task(result: Any) -> Any:
    return result.task if hasattr(result, "task") else result._task


def _host(result: Any) -> str:
    host = result.host if hasattr(result, "host") else result._host
    return str(host.get_name())


class CallbackModule(CallbackBase):
    """Progress by host and role; failures in full; the recap."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "bulkmail.infra.progress"

    def __init__(self) -> None:
        super().__init__()
        self._started = time.monotonic()
        self._play_name = ""
        self._stage: dict[str, str] = {}  # host -> the role or play it is in
        self._changed: list[tuple[str, str]] = []  # (task name, host), in order
        self._width = 8

    # --- output --------------------------------------------------------------

    def _line(self, host: str, text: str, color: str | None = None) -> None:
        self._width = max(self._width, len(host))
        elapsed = time.monotonic() - self._started
        self._display.display(f"[{elapsed:4.0f}s] {host:<{self._width}}  {text}", color=color)
        sys.stdout.flush()  # Display does not flush: behind a pipe (docker logs) lines would wait

    @staticmethod
    def _task_name(task: Any) -> str:
        name = task.get_name().strip()
        return name or str(task.action)

    def _where(self, task: Any) -> str:
        """The role a task belongs to, or the play's name for a task outside roles."""
        role = getattr(task, "_role", None)
        where = role.get_name(include_role_fqcn=False) if role is not None else self._play_name
        return f"{where} (handlers)" if isinstance(task, Handler) else where

    def _warnings(self, result: Any) -> None:
        if hasattr(self, "_handle_warnings_and_exception"):  # ansible-core 2.19
            self._handle_warnings_and_exception(result)
        else:
            self._handle_warnings(_result(result))
            self._handle_exception(_result(result))

    # --- events --------------------------------------------------------------

    def v2_playbook_on_start(self, playbook: Any) -> None:
        self._started = time.monotonic()

    def v2_playbook_on_play_start(self, play: Any) -> None:
        self._play_name = play.get_name().strip() or "play"
        self._stage = {}

    def v2_runner_on_start(self, host: Any, task: Any) -> None:
        name = str(host.get_name())
        where = self._where(task)
        if self._stage.get(name) != where:
            self._stage[name] = where
            self._line(name, where)

    def v2_runner_on_ok(self, result: Any) -> None:
        self._warnings(result)
        if _result(result).get("changed", False):
            self._changed.append((self._task_name(_task(result)), _host(result)))

    def v2_on_file_diff(self, result: Any) -> None:
        if _task(result).loop and "results" in _result(result):
            diffs = [item["diff"] for item in _result(result)["results"] if "diff" in item]
        else:
            diffs = [_result(result)["diff"]] if "diff" in _result(result) else []
        for diff in diffs:
            self._display.display(self._get_diff(diff))

    def _failure(self, result: Any, what: str, color: str, item: bool = False) -> None:
        self._warnings(result)
        task = self._task_name(_task(result))
        label = f" (item={self._get_item_label(_result(result))})" if item else ""
        self._line(_host(result), f"{what}: {task}{label}", color=color)
        dump = self._dump_results(_result(result), indent=4).strip("\n")
        self._display.display(dump, color=color)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if ignore_errors:
            task = self._task_name(_task(result))
            self._line(_host(result), f"failed, ignored: {task}", color=C.COLOR_SKIP)
            return
        if _task(result).loop and "results" in _result(result):
            task = self._task_name(_task(result))
            self._line(_host(result), f"FAILED: {task} (the failed items are above)", C.COLOR_ERROR)
            return
        self._failure(result, "FAILED", C.COLOR_ERROR)

    def v2_runner_item_on_failed(self, result: Any) -> None:
        if _task(result).ignore_errors:
            return  # the task's own line says it failed and was ignored
        self._failure(result, "FAILED", C.COLOR_ERROR, item=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._failure(result, "UNREACHABLE", C.COLOR_UNREACHABLE)

    def v2_runner_retry(self, result: Any) -> None:
        data = _result(result)
        left = int(data.get("retries", 0)) - int(data.get("attempts", 0))
        self._line(_host(result), f"retrying: {self._task_name(_task(result))} ({left} left)")

    def v2_playbook_on_no_hosts_matched(self) -> None:
        self._line("-", f"{self._play_name}: no hosts matched", color=C.COLOR_SKIP)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        elapsed = time.monotonic() - self._started
        self._display.display(f"\nPLAY RECAP ({elapsed:.0f} s)")
        for host in sorted(stats.processed.keys()):
            summary = stats.summarize(host)
            counts = " ".join(f"{label}={summary[key]}" for label, key in STATS_FIELDS)
            failed = summary["failures"] or summary["unreachable"]
            color = C.COLOR_ERROR if failed else C.COLOR_CHANGED if summary["changed"] else None
            self._display.display(f"{host:<{self._width}} : {counts}", color=color)
        self._list_changed(int(self.get_option("changed_limit")))
        sys.stdout.flush()

    def _list_changed(self, limit: int) -> None:
        if not self._changed:
            return
        if len(self._changed) > limit:
            count = len(self._changed)
            self._display.display(f"{count} changed (listed up to changed_limit={limit})")
            return
        self._display.display("\nChanged:")
        for task, host in self._changed:
            self._display.display(f"TASK [{task}]\nchanged: [{host}]", color=C.COLOR_CHANGED)
