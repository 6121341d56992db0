"""Erasure: the person's rows go from every table, a keyed hash stays per tenant."""

from __future__ import annotations

import pytest
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.erasure import (
    delete_steps,
    erasure_forms,
    feedback_ids_query,
    tenants_query,
    tombstone_insert,
    tombstone_tenants,
)
from ansible_collections.bulkmail.infra.plugins.module_utils.feedback.suppression import (
    address_hash,
)

KEY = bytes(range(32))


def test_the_address_is_matched_as_stored_and_as_given() -> None:
    assert erasure_forms("<John@Example.COM>") == ["john@example.com"]
    assert erasure_forms("ü@Bücher.example") == ["ü@bücher.example", "ü@xn--bcher-kva.example"]
    for bad in ("", "nobody", "@example.com"):
        with pytest.raises(ValueError, match="is not an address"):
            erasure_forms(bad)


def test_every_table_that_names_a_recipient_is_cleared_children_first() -> None:
    steps = delete_steps(["john@example.com"], [7, 3, 7])

    assert [step.table for step in steps] == [
        "delivery_events", "messages", "bounces", "complaints", "soft_bounces", "suppression",
        "feedback_messages",
    ]  # fmt: skip
    assert "original_recipient" in steps[0].sql
    assert steps[-1].params == {"ids": [3, 7]}
    assert all(step.sql.startswith("DELETE FROM ") for step in steps)


def test_reports_about_other_recipients_too_are_kept() -> None:
    sql, params = feedback_ids_query(["john@example.com"])

    assert "b.recipient <> ALL(%(forms)s)" in sql and "c.recipient IS NULL" in sql
    assert "lower(fm.envelope_sender)" in sql and sql.endswith("FOR UPDATE OF fm")
    assert params == {"forms": ["john@example.com"]}


def test_the_hash_is_kept_per_tenant_or_globally() -> None:
    step = tombstone_insert(KEY, "John@Example.com", ["shop", "other", "shop"])

    assert step.params == {
        "address": address_hash(KEY, "john@example.com"),
        "reason": "manual",
        "note": "erased",
        "tenants": ["other", "shop"],
    }
    assert "ON CONFLICT (tenant, address) DO NOTHING" in step.sql
    assert tombstone_tenants([]) == ["global"]
    sql, params = tenants_query(["john@example.com"], step.params["address"])
    assert params["hashed"] == step.params["address"] and "address = %(hashed)s" in sql
