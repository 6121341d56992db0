"""`bulkmail_feedback`: who receives what comes back, and where people's mail to us goes.

    bulkmail_feedback:
      operator_address: noc@operator.example   # postmaster@ and abuse@ of every sending domain
      receivers: [smtp1]                       # default: every primary smtp host
      hard_bounce_scope: tenant                # or global: a 5.1.1 stops every tenant's mail
      soft_bounces: {threshold: 3, days: 7}    # a recipient is refused after 3 in 7 days

The receivers are the MX hosts of every sending domain and return-path domain (the zones
follow them): they accept mail for the feedback addresses (`feedback_addresses`) and for
nothing else. A graveyard need not receive: it only retries. `operator_address` is required
once there is a sending domain, because RFC 5321 (4.5.1) and RFC 2142 require postmaster@ and
abuse@ of a mail domain to reach a person, and Yahoo's feedback-loop enrolment writes there.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..feedback.unsubscribe import parse_keys
from .errors import ModelError, raise_collected
from .fields import (
    check_keys,
    secret,
    show,
    single_line,
    str_list,
    validate_domain_name,
    whole_number,
)

VARIABLE = "bulkmail_feedback"
KEYS_VARIABLE = "bulkmail_unsubscribe_keys"
KEYS = ("operator_address", "receivers", "hard_bounce_scope", "soft_bounces")
SCOPES = ("tenant", "global")
SOFT_KEYS = ("threshold", "days")
DEFAULT_SOFT_THRESHOLD = 3
DEFAULT_SOFT_DAYS = 7


@dataclass(frozen=True)
class Feedback:
    """What `bulkmail_feedback` says; `receivers` None means every primary smtp host."""

    operator_address: str | None = None
    receivers: tuple[str, ...] | None = None
    hard_bounce_scope: str = "tenant"
    soft_bounce_threshold: int = DEFAULT_SOFT_THRESHOLD
    soft_bounce_days: int = DEFAULT_SOFT_DAYS


def parse_address(raw: Any, path: str) -> str:
    """One mailbox `local@domain`, lower-case domain, no display name or angle brackets."""
    text = single_line(raw, path, "a mail address such as noc@operator.example")
    local, at, domain = text.strip().rpartition("@")
    if not at or not local or any(c.isspace() or c in '<>,;"' for c in local):
        raise ModelError(path, f"{show(raw)} is not a mail address such as noc@operator.example")
    return f"{local}@{validate_domain_name(domain, path).lower()}"


def parse_feedback(raw: Any, path: str = VARIABLE) -> Feedback:
    """The validated `bulkmail_feedback` mapping (absent: defaults, no operator address)."""
    if raw is None:
        return Feedback()
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{show(raw)} is not a mapping such as {{operator_address: noc@operator.example}}"
        )
    check_keys(raw, KEYS, path)
    errors: list[ModelError] = []
    address = None
    if raw.get("operator_address") is not None:
        try:
            address = parse_address(raw["operator_address"], f"{path}.operator_address")
        except ModelError as error:
            errors.append(error)
    receivers = None
    if raw.get("receivers") is not None:
        try:
            names = [
                single_line(name, f"{path}.receivers[{index}]", "an inventory host name")
                for index, name in enumerate(str_list(raw["receivers"], f"{path}.receivers"))
            ]
            if not names:
                raise ModelError(
                    f"{path}.receivers",
                    "is empty: no host would take bounces, complaints or reports; name the smtp "
                    "hosts that receive, or leave it out for every primary",
                )
            receivers = tuple(dict.fromkeys(names))
        except ModelError as error:
            errors.append(error)
    scope = raw.get("hard_bounce_scope", "tenant")
    if scope not in SCOPES:
        errors.append(
            ModelError(
                f"{path}.hard_bounce_scope", f"{show(scope)} is not one of {', '.join(SCOPES)}"
            )
        )
    soft = raw.get("soft_bounces") or {}
    threshold, days = DEFAULT_SOFT_THRESHOLD, DEFAULT_SOFT_DAYS
    if not isinstance(soft, Mapping):
        errors.append(
            ModelError(
                f"{path}.soft_bounces",
                f"{show(soft)} is not a mapping such as {{threshold: 3, days: 7}}",
            )
        )
    else:
        try:
            check_keys(soft, SOFT_KEYS, f"{path}.soft_bounces")
            threshold = whole_number(
                soft, "threshold", f"{path}.soft_bounces", DEFAULT_SOFT_THRESHOLD, 1
            )
            days = whole_number(soft, "days", f"{path}.soft_bounces", DEFAULT_SOFT_DAYS, 1)
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return Feedback(address, receivers, str(scope), threshold, days)


def check_feedback(
    feedback: Feedback, smtp_names: Sequence[str], graveyards: Sequence[str], has_domains: bool
) -> list[ModelError]:
    """What holds against the rest of the model: receivers are smtp hosts, an operator
    address exists once there is a domain to be postmaster of."""
    errors: list[ModelError] = []
    for index, name in enumerate(feedback.receivers or ()):
        if name not in smtp_names:
            errors.append(
                ModelError(
                    f"{VARIABLE}.receivers[{index}]",
                    f"{name!r} is not in the smtp group (known: {', '.join(smtp_names) or 'none'})",
                )
            )
        elif name in graveyards:
            errors.append(
                ModelError(
                    f"{VARIABLE}.receivers[{index}]",
                    f"{name!r} is a graveyard "
                    "(smtp_fallback): it retries, it does not take mail in",
                )
            )
    if has_domains and smtp_names and feedback.operator_address is None:
        errors.append(
            ModelError(
                f"{VARIABLE}.operator_address",
                "missing: postmaster@ and abuse@ of every sending domain must reach a person "
                "(RFC 5321, RFC 2142); give the address they are forwarded to, e.g. "
                "operator_address: noc@operator.example",
            )
        )
    return errors


def parse_unsubscribe_keys(raw: Any, path: str = KEYS_VARIABLE) -> int:
    """`bulkmail_unsubscribe_keys`: the HMAC keys of the one-click links (RFC 8058), hex or
    base64, at least 32 bytes each; the first signs, all verify (a rotation keeps the old
    one listed until its links have aged out). `bulkmail_erasure_keys` (the keyed hashes
    `bulkmail forget` keeps, which the policy service refuses) are checked the same way.
    Returns how many: the keys stay in the inputs, where the roles read them with no_log,
    and are never part of the Model."""
    if raw is None:
        return 0
    values = [raw] if isinstance(raw, str) else str_list(raw, path)
    vault = "vault_" + path.removeprefix("bulkmail_").removesuffix("s")
    hint = f'keep them in vault, e.g. {path}: ["{{{{ {vault} }}}}"]'
    for index, value in enumerate(values):
        where = path if isinstance(raw, str) else f"{path}[{index}]"
        try:
            parse_keys(secret(value, where, hint), where)
        except ValueError as error:
            raise ModelError(where, str(error).split(": ", 1)[-1]) from None
    return len(values)
