"""The filters' conversion of Ansible's lazy containers into plain data."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.model.errors import ModelError
from ansible_collections.bulkmail.infra.plugins.module_utils.model.plain import plain, plain_hosts


class LazyVars(Mapping[str, Any]):
    """Stands in for HostVarsVars: a mapping that is not a dict."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


def test_mappings_and_lists_become_dicts_and_lists() -> None:
    assert plain(LazyVars(a=1)) == {"a": 1}
    assert isinstance(plain(LazyVars(a=1)), dict)
    assert plain(x for x in (1, 2)) == [1, 2]
    assert plain("text") == "text"
    assert plain(None) is None


def test_hosts_become_a_list_of_dicts() -> None:
    hosts = plain_hosts(iter([LazyVars(inventory_hostname="smtp1")]))
    assert hosts == [{"inventory_hostname": "smtp1"}]
    assert isinstance(hosts[0], dict)
    assert plain_hosts(None) is None


@pytest.mark.parametrize("value", ["smtp1", {"smtp1": {}}, 3])
def test_hosts_that_are_not_a_list_are_refused_with_the_argument_named(value: Any) -> None:
    with pytest.raises(ModelError, match=r"^postfix_instances: graveyards: must be a list"):
        plain_hosts(value, "postfix_instances: graveyards")
