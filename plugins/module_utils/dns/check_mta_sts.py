"""The MTA-STS check: the `_mta-sts` record, its id against the model's policy, the policy host.

Pure Python, no network code (also `bulkmail.logic.dns.check_mta_sts`): DNS through `resolve`.
"""

from __future__ import annotations

import re

from ..model.domains import MtaSts
from ..model.errors import ModelError
from .parsers import tag_list
from .records import (
    MTA_STS_ID_LENGTH,
    MTA_STS_POLICY_PATH,
    mta_sts_policy_id,
    render_mta_sts_policy,
)
from .report import (
    Check,
    LookupFailed,
    Resolve,
    bare_host,
    join_reasons,
    ok_check,
    one_versioned_txt,
    problem_check,
    resolve_addresses,
)

_STS_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")


def expected_mta_sts_id(domain: str, mta_sts: MtaSts, resolve: Resolve) -> str | None:
    """The id= the dns tier derives for the policy the model implies, with the MX it serves.

    The builder hashes the policy file (dns_records.mta_sts_policy_id), whose `mx:` lines are
    the smtp hosts, which are also the domain's MX. None when the MX cannot be read.
    """
    try:
        answers = resolve(domain, "MX")
    except LookupFailed:
        return None
    mx_hosts = [bare_host(answer.partition(" ")[2]) for answer in answers]
    try:
        return mta_sts_policy_id(render_mta_sts_policy(mta_sts, [h for h in mx_hosts if h]))
    except ModelError:
        return None


def check_mta_sts(
    domain: str, resolve: Resolve, required: bool = False, mta_sts: MtaSts | None = None
) -> Check:
    """`_mta-sts` TXT `v=STSv1; id=...` (RFC 8461 3.1) and a host to serve the policy from.

    With the model's `mta_sts`, the id must be the one the dns tier derives from the policy.
    """
    name = "mta_sts"
    owner = f"_mta-sts.{domain}"
    policy_host = f"mta-sts.{domain}"
    expected_id = expected_mta_sts_id(domain, mta_sts, resolve) if mta_sts else None
    shown_id = expected_id or (
        f"<the first {MTA_STS_ID_LENGTH} hex digits of the SHA-256 of the policy file>"
    )
    fix = (
        f"Publish TXT 'v=STSv1; id={shown_id}' at {owner} (the dns tier derives the id from "
        f"the policy, so it changes exactly when the policy does) and serve the policy at "
        f"https://{policy_host}{MTA_STS_POLICY_PATH}."
    )
    record = one_versioned_txt(
        name,
        owner,
        "STSv1",
        resolve,
        required,
        kind="MTA-STS",
        absent=(
            f"no MTA-STS record at {owner}: senders to {domain} cannot insist on TLS to its MX "
            "(RFC 8461)"
        ),
        fix=fix,
        several="RFC 8461 3.1 says senders then apply no policy",
    )
    if isinstance(record, Check):
        return record
    tags, problems = tag_list(record)
    published_id = tags.get("id", "")
    if not _STS_ID.match(published_id):
        problems.append("id= must be 1 to 32 letters or digits, changed with every policy")
    elif expected_id and published_id != expected_id:
        problems.append(
            f"id={published_id} is not the id of the policy the model implies ({expected_id}): "
            "senders that cached an older policy keep it"
        )
    try:
        hosts = resolve_addresses(policy_host, resolve)
    except LookupFailed as error:
        problems.append(f"the lookup of {policy_host} failed ({error.problem})")
        hosts = ["?"]
    if not hosts:
        problems.append(f"{policy_host} has no address, so no sender can fetch the policy")
    if problems:
        return problem_check(
            name, f"{owner}: {join_reasons(problems)}", fix, owner, required=required
        )
    return ok_check(
        name,
        f"{record!r}; the policy host {policy_host} resolves (the policy file itself is not "
        "fetched here)",
        owner,
        required=required,
    )
