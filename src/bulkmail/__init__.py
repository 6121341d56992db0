"""bulkmail: the runtime for what Postfix does not do alone.

The domain logic lives in the collection's ``plugins/module_utils`` and is
importable here as :mod:`bulkmail.logic` (mapped in ``pyproject.toml``).
"""
