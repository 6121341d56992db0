"""One plan per smtp host: every Postfix instance's final main.cf and master.cf, the tables
they name, the lanes' routes, the provider table and the sender logins.

The postfix role sets the plan once (`bulkmail.infra.postfix_plan`) and its templates only
place its values: nothing is derived twice, nothing goes Python -> Jinja -> Python.
Layers merge in this order over the base main.cf and master.cf: the tuning model, VERP, the
user's `postfix_main_cf_layers` / `postfix_master_cf_layers`, then the instance's own layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..feedback.addresses import feedback_addresses
from ..feedback.verp import return_path_domains
from ..model import Model, ModelError
from ..model.fields import check_keys, whole_number
from .config import (
    OPTION_KEYS,
    Setting,
    merge_services,
    merge_settings,
    postfix_main_cf,
    postfix_master_services,
    postfix_sender_logins,
    postfix_verp,
    services_from_data,
    settings_from_data,
    smtp_host,
)
from .inbound import DEFAULT_POLICY_SERVICE, own_notices, postfix_inbound, postfix_policy
from .lanes import lane_routes, postfix_instances
from .tuning import active_queue_limit, postfix_tuning, provider_suffixes

PLAN_OPTION_KEYS = (
    *OPTION_KEYS,
    "provider_map_port",
    "main_cf_layers",
    "master_cf_layers",
    "policy_service",
    "feedback_command",
    "feedback_user",
    "feedback_arguments",
)
DEFAULT_PROVIDER_MAP_PORT = 10028
DEFAULT_FEEDBACK_COMMAND = "/opt/bulkmail/bin/bulkmail"
DEFAULT_FEEDBACK_USER = "bulkmail-feedback"


@dataclass(frozen=True)
class Plan:
    """What the postfix role writes on one host, as plain data (`as_dict`)."""

    instances: tuple[dict[str, Any], ...]
    tables: tuple[dict[str, Any], ...]
    secret_tables: tuple[dict[str, Any], ...]
    lane_routes: dict[str, dict[str, str]]
    provider_suffixes: dict[str, list[str]]
    sender_logins: tuple[dict[str, str], ...]
    provider_map_socket: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "instances": [dict(instance) for instance in self.instances],
            "tables": [dict(table) for table in self.tables],
            "secret_tables": [dict(table) for table in self.secret_tables],
            "lane_routes": dict(self.lane_routes),
            "provider_suffixes": dict(self.provider_suffixes),
            "sender_logins": [dict(entry) for entry in self.sender_logins],
            "provider_map_socket": self.provider_map_socket,
        }


def _present(settings: Any) -> list[tuple[Any, bool]]:
    return [(item, True) for item in settings]


def provider_routing(model: Model, name: str) -> dict[str, Any]:
    """What the provider classifier of smtp host `name` serves: the MX suffix table and the
    lanes' routes. Needs no role option, so the runtime role takes it before Postfix's plan."""
    return {
        "provider_suffixes": provider_suffixes(model.providers),
        "lane_routes": lane_routes(model, name),
    }


def plan(model: Model, name: str, options: Mapping[str, Any] | None = None) -> Plan:
    """The plan of smtp host `name`; `options` are the postfix role's `postfix_<key>`s."""
    options = dict(options or {})
    check_keys(options, PLAN_OPTION_KEYS, "postfix role options")
    if not any(host.inventory_name == name for host in model.smtp_hosts):
        raise ModelError(f"hostvars[{name!r}]", "is not in the smtp group: it has no plan")
    port = whole_number(options, "provider_map_port", "postfix", DEFAULT_PROVIDER_MAP_PORT, 1)
    socket = f"inet:127.0.0.1:{port}"
    primaries = len(model.primaries)
    tuning = postfix_tuning(
        model, primaries=primaries, provider_map=f"socketmap:{socket}:transport"
    )
    verp = postfix_verp(model.domains)
    # One writer of message_size_limit: the volume profile, through the base main.cf.
    if model.volume is None:
        raise ModelError("bulkmail_volume", "missing; the smtp tier is sized from it")
    size_limit = model.volume.message_size_limit
    host = smtp_host(
        model, name, {k: options[k] for k in OPTION_KEYS if k in options}, size_limit=size_limit
    )
    user_main = [
        settings_from_data(layer, f"postfix_main_cf_layers[{index}]")
        for index, layer in enumerate(options.get("main_cf_layers") or [])
    ]
    user_master = [
        services_from_data(layer, f"postfix_master_cf_layers[{index}]")
        for index, layer in enumerate(options.get("master_cf_layers") or [])
    ]
    base_main = postfix_main_cf(host)
    base_master = postfix_master_services(host)
    # A graveyard takes only mail a primary already asked about, and receives nothing.
    graveyard = model.is_graveyard(name)
    policy = (
        []
        if graveyard
        else postfix_policy(str(options.get("policy_service", DEFAULT_POLICY_SERVICE) or ""))
    )
    inbound = _inbound(model, name, options, tuning.main_cf)
    instances = postfix_instances(
        model,
        name,
        active_limit=active_queue_limit(model.volume, primaries),
        size_limit=size_limit,
        provider_map_socket=socket,
    )
    notices = own_notices(sorted(return_path_domains(model.domains)))
    planned = []
    for instance in instances:
        main_cf = merge_settings(
            base_main,
            _present(tuning.main_cf),
            _present(verp["main_cf"]),
            _present(policy),
            _present(inbound["main_cf"] if instance.lane.instance == "-" else []),
            *user_main,
            _present(instance.main_cf),
        )
        master_cf = merge_services(
            base_master,
            _present(tuning.master_cf),
            _present(inbound["master_cf"] if instance.lane.instance == "-" else []),
            *user_master,
            instance.master_cf,
        )
        if instance.lane.instance != "-" and not graveyard:
            main_cf = _discarding_own_notices(main_cf, notices["transport_maps"])
        data = instance.as_dict()
        data.pop("route_map")
        data["main_cf"] = [setting.as_dict() for setting in main_cf]
        data["master_cf"] = [service.as_dict() for service in master_cf]
        planned.append(data)
    tables = [*verp["tables"], *inbound["tables"], *tuning.tables]
    if notices["table"] is not None and len(instances) > 1 and not graveyard:
        tables.append(notices["table"])
    return Plan(
        instances=tuple(planned),
        tables=tuple(t for t in tables if not t.get("secret")),
        secret_tables=tuple(t for t in tables if t.get("secret")),
        **provider_routing(model, name),
        sender_logins=tuple(
            {"key": key, "owners": owners} for key, owners in postfix_sender_logins(model)
        ),
        provider_map_socket=socket,
    )


def _discarding_own_notices(main_cf: list[Setting], maps: list[str]) -> list[Setting]:
    """main_cf with `maps` ahead of its transport_maps (added when it had none)."""
    if not maps:
        return main_cf
    reason = "our own bounce notices to our VERP addresses are discarded (recorded from the log)"
    for index, setting in enumerate(main_cf):
        if setting.name == "transport_maps":
            value = ", ".join([*maps, setting.value]) if setting.value else ", ".join(maps)
            main_cf[index] = Setting("transport_maps", value, f"{setting.reason}; {reason}")
            return main_cf
    return [*main_cf, Setting("transport_maps", ", ".join(maps), reason)]


def _inbound(model: Model, name: str, options: Mapping[str, Any], tuned: Any) -> dict[str, Any]:
    """The default instance's inbound layer when `name` receives (Model.receivers)."""
    if not model.receives(name):
        return {"main_cf": [], "master_cf": [], "tables": []}
    addresses = feedback_addresses(
        model.domains, model.submission_accounts, model.feedback.operator_address
    )
    transport_maps = [s.value for s in tuned if s.name == "transport_maps"]
    arguments = options.get("feedback_arguments") or []
    if isinstance(arguments, str) or not all(isinstance(a, str) for a in arguments):
        raise ModelError("postfix_feedback_arguments", "is not a list of strings")
    return postfix_inbound(
        addresses,
        command=str(options.get("feedback_command") or DEFAULT_FEEDBACK_COMMAND),
        user=str(options.get("feedback_user") or DEFAULT_FEEDBACK_USER),
        transport_maps=[v for value in transport_maps for v in value.split(", ") if v],
        arguments=list(arguments),
    )


__all__ = ["Plan", "Setting", "plan", "provider_routing"]
