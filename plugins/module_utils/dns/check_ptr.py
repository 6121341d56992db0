"""The reverse DNS check of a sending address: a PTR, confirmed forward (FCrDNS).

Pure Python, no network code (also `bulkmail.logic.dns.check_ptr`): DNS through `resolve`.
"""

from __future__ import annotations

from .records import reverse_pointer
from .report import (
    Check,
    LookupFailed,
    Resolve,
    bare_host,
    lookup_failed_check,
    ok_check,
    problem_check,
)


def check_ptr(address: str, resolve: Resolve) -> Check:
    """PTR for a sending address, confirmed forward: the PTR name's A record is the address."""
    name = f"ptr.{address}"
    owner = reverse_pointer(address)
    try:
        names = [bare_host(answer) for answer in resolve(owner, "PTR")]
    except LookupFailed as error:
        return lookup_failed_check(name, error)
    if not names:
        return problem_check(
            name,
            f"no PTR record for {address} ({owner}): Gmail, Outlook and Yahoo reject or "
            "spam-folder mail from addresses without reverse DNS",
            f"Have the owner of {address} (your provider, or the dns tier where it serves the "
            f"reverse zone) set its PTR to the sending host's name, whose A record is {address}.",
            owner,
        )
    forward: dict[str, list[str]] = {}
    for ptr_name in names:
        try:
            forward[ptr_name] = resolve(ptr_name, "A")
        except LookupFailed as error:
            return lookup_failed_check(name, error)
    confirmed = [ptr_name for ptr_name in names if address in forward[ptr_name]]
    details = {"ptr": names, "forward": forward}
    if not confirmed:
        seen = "; ".join(
            f"{ptr_name} resolves to {', '.join(forward[ptr_name]) or 'no address'}"
            for ptr_name in names
        )
        return problem_check(
            name,
            f"{address} has PTR {', '.join(names)}, but {seen}, not {address}: the reverse DNS "
            "is not forward-confirmed (FCrDNS), which receivers treat like no PTR",
            f"Set the A record of {names[0]} to {address}, or point the PTR of {address} at a "
            f"name whose A record is {address}.",
            owner,
            details=details,
        )
    return ok_check(name, f"{address} -> {confirmed[0]} -> {address}", owner, details=details)
