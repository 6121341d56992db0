"""Erasure (GDPR Art. 17, `bulkmail forget`): the SQL that deletes a person's rows everywhere
and keeps only a keyed hash, so the person is not mailed again.

`bulkmail forget` runs these in one transaction, in this order:

1. `tenants_query`: the tenants with a suppression row for the address or its hash (read
   before deleting);
2. `feedback_ids_query`: the raw feedback messages that are the person's: sent by them (a
   reply to the unsubscribe address, an auto-reply), or reports (DSNs, ARF) about them and
   nobody else; a report that also names other recipients is kept for them (its own rows of
   this person are deleted, not the raw message: the lead decides if that is enough);
3. `delete_steps`: the person's rows in each table, as recipient (delivery events, recipient
   and original recipient; messages; bounces; complaints; soft bounces; suppression), then the
   feedback messages of step 2;
4. `tombstone_insert`: a suppression row per tenant of step 1 (`global` if none), whose address
   is `suppression.address_hash(key, address)`, reason `manual`, note `erased`.

Addresses are matched in every form a writer may have stored: the normalised one (the CHECKed
tables) and, in the tables written as Postfix logged them (delivery events, messages, feedback
messages), case-insensitively.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .suppression import GLOBAL, MANUAL, address_hash, normalise_address

ERASED_NOTE = "erased"


@dataclass(frozen=True)
class Step:
    """One statement of the erasure; `table` names what its row count counts."""

    table: str
    sql: str
    params: dict[str, Any]


def erasure_forms(address: str) -> list[str]:
    """The spellings to match: the normalised address and the address as given, lower-case."""
    given = address.strip()
    if given.startswith("<") and given.endswith(">"):
        given = given[1:-1].strip()
    normalised = normalise_address(address)
    if "@" not in normalised or not normalised.partition("@")[0]:
        raise ValueError(f"{address!r} is not an address (local@domain)")
    return sorted({normalised, given.lower()})


def tenants_query(forms: Sequence[str], hashed: str) -> tuple[str, dict[str, Any]]:
    """The tenants (or `global`) that suppressed the address, before it is deleted, or whose
    hash an earlier erasure left (run again, it does not widen them to `global`)."""
    return (
        "SELECT DISTINCT tenant FROM suppression"
        " WHERE address = ANY(%(forms)s) OR address = %(hashed)s ORDER BY 1",
        {"forms": list(forms), "hashed": hashed},
    )


def feedback_ids_query(forms: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The feedback messages that are only the person's (locked until the transaction ends)."""
    return (
        "SELECT fm.id FROM feedback_messages fm"
        " WHERE lower(fm.envelope_sender) = ANY(%(forms)s)"
        " OR (fm.id IN (SELECT feedback_message FROM bounces WHERE recipient = ANY(%(forms)s)"
        " UNION SELECT feedback_message FROM complaints WHERE recipient = ANY(%(forms)s))"
        " AND NOT EXISTS (SELECT 1 FROM bounces b WHERE b.feedback_message = fm.id"
        " AND b.recipient <> ALL(%(forms)s))"
        " AND NOT EXISTS (SELECT 1 FROM complaints c WHERE c.feedback_message = fm.id"
        " AND (c.recipient IS NULL OR c.recipient <> ALL(%(forms)s))))"
        " ORDER BY fm.id FOR UPDATE OF fm",
        {"forms": list(forms)},
    )


def delete_steps(forms: Sequence[str], feedback_ids: Iterable[int]) -> list[Step]:
    """The deletes, children before parents, so each count is the table's own rows."""
    matched = {"forms": list(forms)}
    return [
        Step(
            "delivery_events",
            "DELETE FROM delivery_events WHERE lower(recipient) = ANY(%(forms)s)"
            " OR lower(original_recipient) = ANY(%(forms)s)",
            matched,
        ),
        Step("messages", "DELETE FROM messages WHERE lower(recipient) = ANY(%(forms)s)", matched),
        Step("bounces", "DELETE FROM bounces WHERE recipient = ANY(%(forms)s)", matched),
        Step("complaints", "DELETE FROM complaints WHERE recipient = ANY(%(forms)s)", matched),
        Step("soft_bounces", "DELETE FROM soft_bounces WHERE address = ANY(%(forms)s)", matched),
        Step("suppression", "DELETE FROM suppression WHERE address = ANY(%(forms)s)", matched),
        Step(
            "feedback_messages",
            "DELETE FROM feedback_messages WHERE id = ANY(%(ids)s::bigint[])",
            {"ids": sorted(set(feedback_ids))},
        ),
    ]


def tombstone_tenants(tenants: Iterable[str]) -> list[str]:
    """Where the hash is kept: each tenant that suppressed the address, else every tenant."""
    found = sorted({tenant for tenant in tenants if tenant})
    return found or [GLOBAL]


def tombstone_insert(key: bytes, address: str, tenants: Iterable[str]) -> Step:
    """The hashed suppression rows that keep the erased person from being mailed again."""
    return Step(
        "suppression (hashed)",
        "INSERT INTO suppression (tenant, address, reason, note)"
        " SELECT tenant, %(address)s, %(reason)s, %(note)s"
        " FROM unnest(%(tenants)s::text[]) AS tenant"
        " ON CONFLICT (tenant, address) DO NOTHING",
        {
            "address": address_hash(key, address),
            "reason": MANUAL,
            "note": ERASED_NOTE,
            "tenants": tombstone_tenants(tenants),
        },
    )
