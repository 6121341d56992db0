"""The feedback_settings filter hands the processor our own reporting MTAs: the pipe must not
count a bounce twice when our own Postfix mails a notice about it."""

from __future__ import annotations

from ansible_collections.bulkmail.infra.plugins.filter.model import feedback_settings
from model_inventory import lab_inventory


def test_the_processor_knows_our_own_reporting_mtas() -> None:
    settings = feedback_settings(lab_inventory())
    own = settings["processor"]["own_reporting_mtas"]
    assert own, "the lab's smtp hosts report as themselves"
    assert own == sorted(own)
    assert not any(name.startswith(("ns", "db", "web")) for name in own), own
