"""The roles' own extra inputs, checked with the model before any host changes.

`postgresql_hba_extra_rules` (read by the postgresql role on the db hosts) and
`bind_extra_zones` (read by the bind role on the dns hosts) are checked where the roles
render them, which is after other tiers may have converged. parse_model runs the very
same checks (`pg_hba.parse_extra_rules`, `records.parse_extra_zones`) on each of those
hosts' values first, so playbooks/validate.yml stops the run and names the host and the
field. An extra zone that repeats a reverse zone is still found by the role only: whether
it serves reverse zones is the role's `bind_reverse_zones`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import ModelError, ModelErrors, raise_collected

# The host variables read here, with the group whose hosts' role reads each.
ROLE_GROUPS = {"postgresql_hba_extra_rules": "db", "bind_extra_zones": "dns"}
ROLE_VARIABLES = tuple(ROLE_GROUPS)


def _checks(domain_names: Sequence[str]) -> dict[str, Callable[[Any], object]]:
    # Imported here: dns and postgresql import the model package, which imports this module
    # (a module-level import breaks whichever of them is imported first, e.g. by bind_zone).
    from ..dns import records
    from ..postgresql import pg_hba

    return {
        "postgresql_hba_extra_rules": pg_hba.parse_extra_rules,
        "bind_extra_zones": lambda raw: records.parse_extra_zones(
            raw, domain_names, records.DEFAULT_TTL
        ),
    }


def _values_by_hosts(inputs: Mapping[str, Any], variable: str) -> list[tuple[Any, list[str]]]:
    """Each distinct value the group's hosts set (None: the role's default), with its hosts."""
    hosts = inputs.get("hosts") or {}
    found: list[tuple[Any, list[str]]] = []
    for name in (inputs.get("groups") or {}).get(ROLE_GROUPS[variable]) or []:
        value = (hosts.get(name) or {}).get(variable)
        if value is None:
            continue
        for seen, names in found:
            if seen == value:
                names.append(name)
                break
        else:
            found.append((value, [name]))
    return found


def _on_hosts(error: ModelError, hosts: Sequence[str]) -> ModelError:
    """The error with its field named as the host's (`hostvars['db1'].<field>`)."""
    path, problem = error.path, error.problem
    if not path:  # HbaError: its message is `<field>: <problem>`
        path, _sep, problem = problem.partition(": ")
    if len(hosts) > 1:
        problem += f" (the same value is set on {', '.join(hosts[1:])})"
    return ModelError(f"hostvars[{hosts[0]!r}].{path}", problem)


def check_role_extras(inputs: Mapping[str, Any], domain_names: Sequence[str]) -> None:
    """Raise every problem of the roles' extra inputs (`domain_names`: the sending domains,
    whose zones the model serves already)."""
    errors: list[ModelError] = []
    for variable, check in _checks(domain_names).items():
        for value, hosts in _values_by_hosts(inputs, variable):
            try:
                check(value)
            except ModelError as error:
                found = error.errors if isinstance(error, ModelErrors) else [error]
                errors += [_on_hosts(one, hosts) for one in found]
    raise_collected(errors)
