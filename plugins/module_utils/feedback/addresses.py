"""The feedback addresses: the only mail the receiving smtp hosts take in, derived from the model.

What comes back to a sending platform, and where it is addressed:

- any local part at a `return_path_domain` (`bounce`): DSNs to VERP addresses, ARF
  reports and auto-replies to the envelope sender;
- a submission account's own address, on a domain without a return-path domain
  (`bounce`): the same, for mail sent without VERP;
- the DMARC `rua` mailto addresses in our domains (`dmarc_report`): aggregate reports;
- the TLS-RPT `rua` mailto addresses in our domains (`tls_report`): RFC 8460 reports;
- `fbl@` the return-path domain, or the domain (`complaint`): feedback-loop reports, the
  address given at Yahoo's CFL or Microsoft's JMRP enrolment;
- `unsubscribe@` the return-path domain, or the domain (`unsubscribe`): RFC 2369 mailto
  unsubscribes;
- `postmaster@` and `abuse@` every sending and return-path domain: people's mail, forwarded
  to `bulkmail_feedback.operator_address` (RFC 5321 4.5.1, RFC 2142).

Everything else in those domains is refused at RCPT (`relay_recipient_maps`), every other
domain by `reject_unauth_destination`. A report address in a domain that is not ours is not
received here: `bulkmail check-dns` probes whether it takes mail.

The same derivation gives the Postfix tables (postfix/config.py `postfix_inbound`) and the
feedback processor's configuration (`processor_config`), so the two cannot disagree.

The processor's configuration also names our own reporting MTAs (`own_reporting_mtas`): a
bounce in one of our Postfix instances is read from its log by the ingester, and the same
Postfix mails a non-delivery notice about it to the VERP return path, which is our own MX;
the processor stores that notice but must not count the bounce a second time.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..model.access import SubmissionAccount
from ..model.domains import Domain
from ..model.hosts import Host
from .suppression import default_tenants
from .verp import return_path_domains

RETURN_PATH = "bounce"
DMARC_REPORT = "dmarc_report"
TLS_REPORT = "tls_report"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
FORWARDED_LOCALS = ("postmaster", "abuse")
COMPLAINT_LOCAL = "fbl"
UNSUBSCRIBE_LOCAL = "unsubscribe"


@dataclass(frozen=True)
class FeedbackAddresses:
    """Who receives what; `domains` are Postfix's relay_domains, in model order."""

    domains: tuple[str, ...] = ()
    # return-path domain -> its sending domain: any local part there is a return path.
    verp_domains: dict[str, str] = field(default_factory=dict)
    # address -> kind (RETURN_PATH, DMARC_REPORT, TLS_REPORT, COMPLAINT, UNSUBSCRIBE).
    fixed: dict[str, str] = field(default_factory=dict)
    # address -> where it is forwarded (postmaster@, abuse@).
    forwarded: dict[str, str] = field(default_factory=dict)


def mailto_address(uri: str) -> str:
    """`mailto:dmarc@example.com!10m` -> `dmarc@example.com` (RFC 7489 6.2's size suffix)."""
    return uri.removeprefix("mailto:").split("!", 1)[0].strip().lower()


def return_path_of(domain: Domain) -> str:
    """Where `domain`'s mail comes back to: its return-path domain, else itself."""
    return (domain.return_path_domain or domain.name).lower()


def complaint_address(domain: Domain) -> str:
    return f"{COMPLAINT_LOCAL}@{return_path_of(domain)}"


def unsubscribe_address(domain: Domain) -> str:
    """The mailto of `domain`'s List-Unsubscribe header."""
    return f"{UNSUBSCRIBE_LOCAL}@{return_path_of(domain)}"


UNSUBSCRIBE_HOST_LABEL = "unsubscribe"
UNSUBSCRIBE_PATH = "/u/"


def unsubscribe_host(domain: Domain) -> str:
    """The one-click endpoint's host name for `domain`: the link stays in the sender's own
    domain, as receivers and readers expect (the web hosts serve it, roles/nginx)."""
    return f"{UNSUBSCRIBE_HOST_LABEL}.{domain.name.lower()}"


def unsubscribe_url(domain: Domain) -> str:
    """The base of `domain`'s one-click links: the token follows (`bulkmail submit
    --unsubscribe-url`)."""
    return f"https://{unsubscribe_host(domain)}{UNSUBSCRIBE_PATH}"


def feedback_addresses(
    domains: Sequence[Domain],
    accounts: Sequence[SubmissionAccount] = (),
    operator_address: str | None = None,
) -> FeedbackAddresses:
    """The feedback addresses of these sending domains (see the module's table)."""
    verp = return_path_domains(domains)
    ours = list(
        dict.fromkeys([name for d in domains for name in (d.name.lower(), return_path_of(d))])
    )
    fixed: dict[str, str] = {}

    def take(address: str, kind: str) -> None:
        if address.rpartition("@")[2] in ours:
            fixed.setdefault(address, kind)

    for domain in domains:
        for uri in domain.dmarc.rua:
            take(mailto_address(uri), DMARC_REPORT)
        if domain.tls_rpt is not None:
            for uri in domain.tls_rpt.rua:
                if uri.startswith("mailto:"):
                    take(mailto_address(uri), TLS_REPORT)
        take(complaint_address(domain), COMPLAINT)
        take(unsubscribe_address(domain), UNSUBSCRIBE)
        if return_path_of(domain) not in verp:
            for account in accounts:
                if account.domain.lower() == domain.name.lower():
                    take(account.username.lower(), RETURN_PATH)
    forwarded: dict[str, str] = {}
    if operator_address:
        for name in ours:
            for local in FORWARDED_LOCALS:
                address = f"{local}@{name}"
                if address not in fixed:
                    forwarded[address] = operator_address
    return FeedbackAddresses(tuple(ours), verp, fixed, forwarded)


def own_reporting_mtas(smtp_hosts: Sequence[Host]) -> list[str]:
    """The names our Postfix instances write in their notices' `Reporting-MTA: dns; <name>`:
    Postfix's bounce(8) names `myhostname` there, and every instance of an smtp host
    (graveyards included: they give up on mail too) has the host's `bulkmail_hostname` as
    its myhostname (postfix/config.py `postfix_main_cf`; no lane's layer sets its own,
    postfix/lanes.py). Sorted, each once (the model keeps names lower case, without a dot)."""
    return sorted({h.hostname for h in smtp_hosts if h.hostname})


def processor_config(
    domains: Sequence[Domain],
    accounts: Sequence[SubmissionAccount] = (),
    *,
    hard_bounce_scope: str = "tenant",
    smtp_hosts: Sequence[Host] = (),
) -> dict[str, object]:
    """The feedback processor's configuration file (`bulkmail feedback --config`), as data.

    `smtp_hosts` are the model's smtp hosts (never the web, db or dns hosts: they send no
    mail through a Postfix of ours): their names become `own_reporting_mtas`, so that a
    notice our own Postfix sends about a bounce its log already told is stored without a
    second bounces row or suppression (inbound.py). None given: an empty list, and every
    notice counts, as before.
    """
    addresses = feedback_addresses(domains, accounts)
    return {
        "tenants": default_tenants(d.name for d in domains),
        "return_path_domains": dict(addresses.verp_domains),
        "senders": sorted(a.username.lower() for a in accounts),
        "addresses": dict(addresses.fixed),
        "hard_bounce_scope": hard_bounce_scope,
        "own_reporting_mtas": own_reporting_mtas(smtp_hosts),
    }
