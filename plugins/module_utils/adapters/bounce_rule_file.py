"""The operator's bounce rule file on disk (YAML), read for feedback/classify.py.

The file holds `rules:`, a list in the format classify.py documents; its rules are tried
before the defaults (feedback/bounce_rules.py). No file configured: the defaults alone.
"""

from __future__ import annotations

from pathlib import Path

try:
    import yaml
except ImportError:  # the runtime depends on PyYAML; Ansible brings it on the controller
    yaml = None

from ..feedback.classify import DEFAULT_RULES, BounceRuleError, Rule, combined_rules, parse_rules


def load_bounce_rules(path: str | Path | None) -> tuple[Rule, ...]:
    """The rules to classify with: the file's (if `path` is given), then the defaults.

    Raises BounceRuleError naming the file, and the rule and field when one is wrong.
    """
    if path is None:
        return DEFAULT_RULES
    source = str(path)
    if yaml is None:
        raise BounceRuleError(source, "reading it needs PyYAML (Debian: python3-yaml)")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise BounceRuleError(
            source, "does not exist; create it (rules: [...]) or configure no rule file"
        ) from error
    except (OSError, UnicodeDecodeError) as error:
        raise BounceRuleError(source, f"cannot be read: {error}") from error
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise BounceRuleError(source, f"is not valid YAML: {error}") from error
    return combined_rules(parse_rules(data, source=source))
