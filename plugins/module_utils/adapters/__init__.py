"""Files and network DNS for both doors, kept out of the pure packages.

Why this package exists and what tests/unit/plugins/module_utils/test_pure_wall.py enforces:
docs/decisions.md, "The pure-logic wall".
"""
