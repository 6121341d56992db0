"""The progress callback: one line per host and role, failures in full, a recap Molecule reads."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from molecule.command.idempotence import Idempotence

REPO = Path(__file__).resolve().parents[4]
ANSI = re.compile(r"\x1b\[[0-9;]*m")

ROLE_TASKS = """\
- name: Write a marker
  ansible.builtin.copy:
    dest: "{{ marker }}"
    content: "once\\n"
    mode: "0600"
"""

PLAYBOOK = """\
- name: Local play
  hosts: localhost
  connection: local
  gather_facts: false
  roles: [marker]
  tasks:
    - name: Fail when asked
      ansible.builtin.fail:
        msg: "asked to fail: {{ fail_reason }}"
      when: fail_reason is defined
"""


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "roles" / "marker" / "tasks").mkdir(parents=True, exist_ok=True)
    (tmp_path / "roles" / "marker" / "tasks" / "main.yml").write_text(ROLE_TASKS)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="bulkmail.infra.progress",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
    )
    command = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        "-i", "localhost,",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-e", f"marker={tmp_path / 'marker'}",
        *args,
        str(tmp_path / "play.yml"),
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def plain(output: str) -> str:
    return ANSI.sub("", output)


def is_idempotent(output: str) -> bool:
    return Idempotence._is_idempotent(Idempotence.__new__(Idempotence), output)


def not_idempotent(output: str) -> list[str]:
    return Idempotence._non_idempotent_tasks(Idempotence.__new__(Idempotence), output)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[subprocess.CompletedProcess[str]]:
    """The same playbook twice: the first run changes the marker, the second does not."""
    tmp_path = tmp_path_factory.mktemp("progress")
    return [run(tmp_path), run(tmp_path)]


def test_a_host_entering_a_role_or_play_gets_one_line(
    runs: list[subprocess.CompletedProcess[str]],
) -> None:
    first = runs[0]
    assert first.returncode == 0, first.stdout + first.stderr
    lines = plain(first.stdout).splitlines()
    progress = [line.split("] ", 1)[1].split() for line in lines if line.startswith("[")]
    assert progress == [["localhost", "marker"], ["localhost", "Local", "play"]]
    assert "TASK [" not in lines[0], "no banner per task"


def test_molecule_reads_changes_from_the_recap_and_names_the_tasks(
    runs: list[subprocess.CompletedProcess[str]],
) -> None:
    first, second = runs
    assert "localhost : ok=1 changed=1 unreachable=0 failed=0" in plain(first.stdout)
    assert not is_idempotent(first.stdout)
    assert not_idempotent(first.stdout) == ["* [localhost] => marker : Write a marker"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert "localhost : ok=1 changed=0 unreachable=0 failed=0" in plain(second.stdout)
    assert is_idempotent(second.stdout)


def test_a_failure_is_shown_in_full(tmp_path: Path) -> None:
    failed = run(tmp_path, "-e", '{"fail_reason": "on purpose"}')
    assert failed.returncode == 2
    shown = plain(failed.stdout)
    assert "localhost  FAILED: Fail when asked" in shown
    assert "msg: 'asked to fail: on purpose'" in shown, "the result, in callback_result_format"
    assert "failed=1" in shown
