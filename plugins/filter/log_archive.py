# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Thin filter over plugins/module_utils/model/archive.py (documented in log_archive.yml)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.model import ModelError, parse_model
from ansible_collections.bulkmail.infra.plugins.module_utils.model.archive import (
    VARIABLE,
    archive_settings,
)


def log_archive_settings(inputs: Any) -> dict[str, Any]:
    """`{}` without an archive, else `{config, credentials}`: the two files the role writes.
    The credentials come from the validated inputs (the Model holds none); set with no_log."""
    try:
        parsed = parse_model(inputs)
    except ModelError as error:
        raise AnsibleFilterError(str(error)) from error
    variables = inputs.get("variables") if isinstance(inputs, Mapping) else None
    return archive_settings(parsed.log_archive, (variables or {}).get(VARIABLE))


class FilterModule:
    """The S3 log archive, derived from the bulkmail model."""

    def filters(self) -> dict[str, Any]:
        return {"log_archive_settings": log_archive_settings}
