"""Check that each role's README documents exactly its argument_specs.

Every role's README has a `## Variables` section whose table lists, one row
each and in backticks in the first column, the options of the `main` entry
point of `meta/argument_specs.yml`; and a section that says what the role
opens to the network (a `## ...` heading with "opens"). Exit 1 and name the
missing and extra variables per role otherwise.

    tests/lint/check_role_readmes.py [ROLES_DIR]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

TABLE_NAME = re.compile(r"^\|\s*`([A-Za-z_][A-Za-z0-9_]*)`\s*\|")
HEADING = re.compile(r"^##\s+(.*)$")


def spec_options(role: Path) -> set[str]:
    """The option names of the role's main entry point."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    return set(specs.get("argument_specs", {}).get("main", {}).get("options") or {})


def readme_sections(text: str) -> dict[str, list[str]]:
    """Level-2 heading -> its lines (the text before the first heading is dropped)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            current = sections.setdefault(match.group(1).strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def table_names(lines: list[str]) -> list[str]:
    """The backticked names in the first column of the section's table rows."""
    return [m.group(1) for m in map(TABLE_NAME.match, lines) if m]


def problems(role: Path) -> list[str]:
    """What is wrong with one role's README, as sentences naming the fix."""
    readme = role / "README.md"
    if not readme.is_file():
        return [f"{role.name}: README.md is missing"]
    if not (role / "meta" / "argument_specs.yml").is_file():
        return [f"{role.name}: meta/argument_specs.yml is missing"]
    sections = readme_sections(readme.read_text(encoding="utf-8"))
    found: list[str] = []
    if "Variables" not in sections:
        found.append(f"{role.name}: README.md has no '## Variables' section")
    listed = table_names(sections.get("Variables", []))
    options = spec_options(role)
    missing = sorted(options - set(listed))
    extra = sorted(set(listed) - options)
    twice = sorted({name for name in listed if listed.count(name) > 1})
    if missing:
        found.append(f"{role.name}: README's variable table lacks {', '.join(missing)}")
    if extra:
        found.append(
            f"{role.name}: README's variable table lists {', '.join(extra)}, "
            "which meta/argument_specs.yml (main) does not have"
        )
    if twice:
        found.append(f"{role.name}: README's variable table lists {', '.join(twice)} twice")
    if not any("opens" in heading.lower() for heading in sections):
        found.append(
            f"{role.name}: README.md says nowhere what the role opens to the network "
            "(add a '## What it opens to the network' section)"
        )
    return found


def main(argv: list[str]) -> int:
    roles_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "roles"
    found = [p for role in sorted(roles_dir.iterdir()) if role.is_dir() for p in problems(role)]
    for problem in found:
        print(problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
