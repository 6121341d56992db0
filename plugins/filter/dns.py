# Copyright: bulkmail.infra developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters over the inventory model: validation, SPF/DKIM/DMARC records and whole zones.

Thin wrappers around plugins/module_utils; documentation in the <filter>.yml files beside
this one. A ModelError becomes an AnsibleFilterError with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from functools import wraps
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.bulkmail.infra.plugins.module_utils.dkim.keys import public_key_map
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.records import (
    build_zones,
    dkim_txt_chunks,
    mta_sts_policies,
    render_dmarc_record,
    render_spf_record,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.dns.zone_transfer import (
    plan_zone_transfers,
    render_tsig_key,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model import ModelError, parse_model
from ansible_collections.bulkmail.infra.plugins.module_utils.model.domains import (
    parse_domain,
    pool_addresses,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.model.plain import (
    plain,
    plain_hosts,
)


def _model_errors_as_filter_errors(function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ModelError as error:
            raise AnsibleFilterError(str(error)) from None

    return wrapper


@_model_errors_as_filter_errors
def spf_record(
    addresses: Any, includes: Any = None, all_qualifier: str = "-", mechanisms: Any = None
) -> str:
    """Input: a pools mapping (bulkmail_ip_pools) or a list of addresses."""
    if isinstance(addresses, Mapping):
        ip4: Iterable[str] = pool_addresses(addresses)
    elif isinstance(addresses, str):
        ip4 = [addresses]
    else:
        ip4 = list(addresses or [])
    if isinstance(includes, str):
        includes = [includes]
    return render_spf_record(
        ip4, list(includes or []), mechanisms=list(mechanisms or []), all_qualifier=all_qualifier
    )


@_model_errors_as_filter_errors
def dkim_txt(public_key: str, key_type: str = "rsa") -> list[str]:
    return dkim_txt_chunks(public_key, key_type)


@_model_errors_as_filter_errors
def dmarc_record(dmarc: Any) -> str:
    """Input: a domain's dmarc mapping, or a whole bulkmail_domains item."""
    dmarc = plain(dmarc)
    if isinstance(dmarc, Mapping) and "name" in dmarc:
        return render_dmarc_record(parse_domain(dmarc, "domain").dmarc)
    return render_dmarc_record(dmarc)


@_model_errors_as_filter_errors
def zones(
    model: Any,
    dkim_keys: Any = None,
    extra_zones: Any = None,
    soa: Any = None,
    ttl: int = 3600,
    reverse_zones: bool = True,
) -> list[dict[str, Any]]:
    """Input: the `bulkmail_model` fact (playbooks/validate.yml)."""
    parsed = parse_model(model)
    keys = None
    if dkim_keys is not None:
        keys = {domain: plain(selectors) for domain, selectors in plain(dkim_keys).items()}
    return build_zones(
        parsed.domains,
        parsed.ip_pools,
        parsed.smtp_hosts,
        parsed.dns_hosts,
        parsed.hosts,
        keys,
        extra_zones=extra_zones,
        soa=plain(soa),
        ttl=int(ttl),
        reverse_zones=bool(reverse_zones),
        web_hosts=parsed.web_hosts,
        mx_hosts=parsed.receivers,
        unsubscribe=bool(model["variables"].get("bulkmail_unsubscribe_keys")),
    )


@_model_errors_as_filter_errors
def mta_sts_policies_filter(model: Any) -> list[dict[str, Any]]:
    """Input: the `bulkmail_model` fact; the receiving smtp hosts give the policies' mx lines."""
    parsed = parse_model(model)
    return mta_sts_policies(list(parsed.domains), parsed.receivers)


@_model_errors_as_filter_errors
def dkim_public_keys(results: Any) -> dict[str, dict[str, str]]:
    """Input: the `results` of a looped, registered bulkmail.infra.dkim_key task."""
    if isinstance(results, Mapping) and "results" in results:
        results = results["results"]
    return public_key_map(plain(result) for result in plain(results))


@_model_errors_as_filter_errors
def zone_transfers(
    dns_hosts: Any, this_host: str, primary: Any = None, key_name: str = "bulkmail-transfer"
) -> dict[str, Any]:
    """Input: the dns hosts' variables in group order."""
    return plan_zone_transfers(
        plain_hosts(dns_hosts) or [], str(this_host), plain(primary), str(key_name)
    ).as_dict()


@_model_errors_as_filter_errors
def tsig_key(secret: Any, key_name: str = "bulkmail-transfer") -> str:
    return render_tsig_key(str(key_name), secret)


class FilterModule:
    """bulkmail.infra DNS and model filters."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "spf_record": spf_record,
            "dkim_txt": dkim_txt,
            "dmarc_record": dmarc_record,
            "zones": zones,
            "dkim_public_keys": dkim_public_keys,
            "zone_transfers": zone_transfers,
            "mta_sts_policies": mta_sts_policies_filter,
            "tsig_key": tsig_key,
        }
