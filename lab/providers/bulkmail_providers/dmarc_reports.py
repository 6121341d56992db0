"""What the providers report later about the mail they received: DMARC aggregate reports
(RFC 7489 7.2 and appendix C) and TLS-RPT reports (RFC 8460).

Real receivers send these once a day; the lab sends them when asked (`dmarc-reports`), for the
records of received.jsonl not yet reported, so a lab test can follow a report from the
provider to the sending platform's report intake. One report per provider and From-header
domain goes to each `mailto:` of the domain's `rua` tag, through that domain's MX, the way
followups.py sends DSNs; each outcome is a line of followups.jsonl.
"""

from __future__ import annotations

import datetime
import email.policy
import email.utils
import gzip
import io
import json
import time
import uuid
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from bulkmail_providers.config import Provider, ServerConfig
from bulkmail_providers.dmarc_check import organizational_domain
from bulkmail_providers.dnssource import DnsSource, DnsTemporaryError
from bulkmail_providers.followups import (
    RETRY_DELAYS,
    FollowupError,
    append_outcome,
    deliver_report,
)
from bulkmail_providers.mailstore import read_records

STATE_FILE = "dmarc-reports.json"  # in the data dir: how many records have been reported
ZIP_PROVIDERS = frozenset({"google"})  # Google attaches .zip; Yahoo and Microsoft .xml.gz


# --- which records, grouped how ----------------------------------------------------------


def received_at(record: Mapping[str, Any]) -> int:
    """A record's arrival as seconds since the epoch (the report's date_range unit)."""
    text = str(record["received_at"]).replace("Z", "+00:00")
    return int(datetime.datetime.fromisoformat(text).timestamp())


def group_by_provider_and_domain(
    records: Iterable[Mapping[str, Any]], provider: str | None = None
) -> dict[tuple[str, str], list[Mapping[str, Any]]]:
    """(provider name, From-header domain) -> its records; records without a From domain
    (none or several) are about no one and go nowhere."""
    batches: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for record in records:
        domain = (record.get("from_header_domain") or "").lower()
        if not domain or (provider and record.get("provider") != provider):
            continue
        batches.setdefault((str(record["provider"]), domain), []).append(record)
    return batches


@dataclass(frozen=True)
class Row:
    """One <record> of an aggregate report: messages alike in what the report says of them."""

    source_ip: str
    disposition: str
    dkim: str  # the DMARC-aligned DKIM result: pass or fail
    spf: str  # the DMARC-aligned SPF result: pass or fail
    header_from: str
    envelope_from: str
    dkim_results: tuple[tuple[str, str, str], ...]  # (domain, selector, result) per signature
    spf_result: tuple[str, str, str]  # (domain, scope, result)


def row_of(record: Mapping[str, Any]) -> Row:
    dmarc = record.get("dmarc") or {}
    alignment = dmarc.get("alignment") or {}
    spf = record.get("spf") or {}
    mail_from = str(record.get("mail_from") or "")
    signatures = (record.get("dkim") or {}).get("signatures") or []
    return Row(
        source_ip=str(record.get("peer_ip") or ""),
        disposition=str(dmarc.get("disposition") or "none"),
        dkim="pass" if alignment.get("dkim") else "fail",
        spf="pass" if alignment.get("spf") else "fail",
        header_from=str(record["from_header_domain"]).lower(),
        # a null sender has no MAIL FROM domain; SPF then checked the HELO name
        envelope_from=(mail_from.rpartition("@")[2] or str(spf.get("domain") or "")).lower(),
        dkim_results=tuple(
            (str(s.get("domain") or ""), str(s.get("selector") or ""), str(s["result"]))
            for s in signatures
        ),
        spf_result=(
            str(spf.get("domain") or ""),
            "helo" if spf.get("identity") == "helo" else "mfrom",
            str(spf.get("result") or "none"),
        ),
    )


def group_rows(records: Iterable[Mapping[str, Any]]) -> list[tuple[Row, int]]:
    """Rows with their message counts, in the order first seen.

    The key is (source_ip, disposition, aligned DKIM, aligned SPF) as reporters group, plus
    the identifiers and authentication results the row states, so no row misreports a message.
    """
    counts: dict[Row, int] = {}
    for record in records:
        row = row_of(record)
        counts[row] = counts.get(row, 0) + 1
    return list(counts.items())


# --- the policy and where reports go --------------------------------------------------------


def tag_values(record: str) -> dict[str, str]:
    """`v=DMARC1; p=none; rua=...` as a dict of lower-cased tag names."""
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


def _one_record(dns: DnsSource, name: str, version: bytes) -> str | None:
    found = [t for t in dns.txt(name) if t.startswith(version)]
    return found[0].decode("ascii", "replace") if len(found) == 1 else None


@dataclass(frozen=True)
class Policy:
    """The DMARC record that applies to a From domain, and the domain it was found at."""

    domain: str
    tags: Mapping[str, str]


def find_policy(domain: str, dns: DnsSource) -> Policy | None:
    """`_dmarc.<domain>`, else the organisational domain's (RFC 7489 6.6.3)."""
    names = [domain]
    org = organizational_domain(domain)
    if org != domain:
        names.append(org)
    for name in names:
        record = _one_record(dns, f"_dmarc.{name}", b"v=DMARC1")
        if record is not None:
            return Policy(name, tag_values(record))
    return None


def mailto_addresses(rua: str) -> list[str]:
    """The addresses of a `rua` tag's mailto: URIs, without a size limit (`!10m`)."""
    addresses = []
    for uri in rua.split(","):
        uri = uri.strip()
        if uri.lower().startswith("mailto:"):
            address = uri[len("mailto:") :].partition("!")[0].strip()
            if "@" in address and address not in addresses:
                addresses.append(address)
    return addresses


def authorized_destination(domain: str, address: str, dns: DnsSource) -> bool:
    """RFC 7489 7.1: a report goes to another organisation only if it publishes its consent."""
    target = address.rpartition("@")[2].lower()
    if organizational_domain(target) == organizational_domain(domain):
        return True
    return _one_record(dns, f"{domain}._report._dmarc.{target}", b"v=DMARC1") is not None


# --- the aggregate report --------------------------------------------------------------


def reporting_domain(provider: Provider) -> str:
    """The domain a provider reports as (gmail.test for Google): From, filename, submitter."""
    return provider.domains[0]


def _text(parent: ET.Element, tag: str, value: object) -> ET.Element:
    element = ET.SubElement(parent, tag)
    element.text = str(value)
    return element


def build_aggregate_xml(
    provider: Provider,
    policy: Policy,
    records: Sequence[Mapping[str, Any]],
    report_id: str,
) -> bytes:
    """The XML of RFC 7489 appendix C, elements in the schema's order."""
    feedback = ET.Element("feedback")
    metadata = ET.SubElement(feedback, "report_metadata")
    _text(metadata, "org_name", provider.name)
    _text(metadata, "email", f"noreply-dmarc-support@{reporting_domain(provider)}")
    _text(metadata, "report_id", report_id)
    times = [received_at(record) for record in records]
    date_range = ET.SubElement(metadata, "date_range")
    _text(date_range, "begin", min(times))
    _text(date_range, "end", max(times))

    published = ET.SubElement(feedback, "policy_published")
    tags = policy.tags
    p = tags.get("p", "none")
    _text(published, "domain", policy.domain)
    _text(published, "adkim", tags.get("adkim", "r"))
    _text(published, "aspf", tags.get("aspf", "r"))
    _text(published, "p", p)
    _text(published, "sp", tags.get("sp", p))
    _text(published, "pct", tags.get("pct", "100"))

    for row, count in group_rows(records):
        element = ET.SubElement(feedback, "record")
        row_element = ET.SubElement(element, "row")
        _text(row_element, "source_ip", row.source_ip)
        _text(row_element, "count", count)
        evaluated = ET.SubElement(row_element, "policy_evaluated")
        _text(evaluated, "disposition", row.disposition)
        _text(evaluated, "dkim", row.dkim)
        _text(evaluated, "spf", row.spf)
        identifiers = ET.SubElement(element, "identifiers")
        _text(identifiers, "envelope_from", row.envelope_from)
        _text(identifiers, "header_from", row.header_from)
        results = ET.SubElement(element, "auth_results")
        for domain, selector, result in row.dkim_results:
            dkim = ET.SubElement(results, "dkim")
            _text(dkim, "domain", domain)
            if selector:
                _text(dkim, "selector", selector)
            _text(dkim, "result", result)
        spf = ET.SubElement(results, "spf")
        spf_domain, scope, spf_result = row.spf_result
        _text(spf, "domain", spf_domain)
        _text(spf, "scope", scope)
        _text(spf, "result", spf_result)
    ET.indent(feedback)
    return ET.tostring(feedback, encoding="utf-8", xml_declaration=True) + b"\n"


def report_filename(submitter: str, domain: str, begin: int, end: int, extension: str) -> str:
    """RFC 7489 7.2.1.1: `receiver!policy-domain!begin!end.extension`."""
    return f"{submitter}!{domain}!{begin}!{end}.{extension}"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # maintype/subtype
    data: bytes


def compress_report(provider: Provider, base: str, xml: bytes) -> Attachment:
    """As the provider attaches it: Google a .zip holding the .xml, the others .xml.gz."""
    if provider.name in ZIP_PROVIDERS:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(f"{base}.xml", xml)
        return Attachment(f"{base}.zip", "application/zip", buffer.getvalue())
    return Attachment(f"{base}.xml.gz", "application/gzip", gzip.compress(xml, mtime=0))


def _attach(message: MIMEMultipart, attachment: Attachment) -> None:
    subtype = attachment.content_type.partition("/")[2]
    part = MIMEApplication(attachment.data, _subtype=subtype, name=attachment.filename)
    part.add_header("Content-Disposition", "attachment", filename=attachment.filename)
    message.attach(part)


def _envelope(message: MIMEMultipart, sender: str, to: str, subject: str, domain: str) -> None:
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = email.utils.format_datetime(datetime.datetime.now(datetime.UTC))
    message["Message-ID"] = email.utils.make_msgid(domain=domain)


def build_dmarc_mail(
    provider: Provider, domain: str, to: str, report_id: str, attachment: Attachment
) -> bytes:
    """RFC 7489 7.2.1.1: the report as an attachment; the subject names domain and submitter."""
    submitter = reporting_domain(provider)
    message = MIMEMultipart("mixed")
    _envelope(
        message,
        f"noreply-dmarc-support@{submitter}",
        to,
        f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>",
        submitter,
    )
    message.attach(
        MIMEText(f"This is an aggregate report from {provider.name} for {domain} (RFC 7489).\n")
    )
    _attach(message, attachment)
    return message.as_bytes(policy=email.policy.SMTP)


# --- the TLS-RPT report ----------------------------------------------------------------------


def _rfc3339(seconds: int) -> str:
    when = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return when.isoformat().replace("+00:00", "Z")


def build_tlsrpt_json(
    provider: Provider, domain: str, records: Sequence[Mapping[str, Any]], report_id: str
) -> bytes:
    """RFC 8460 4: the sessions as counted from the records' `tls` field.

    A session without TLS is a failure of type starttls-not-supported. The lab fetches no
    MTA-STS policy here, so the policy type is no-policy-found.
    """
    times = [received_at(record) for record in records]
    plain: dict[str, int] = {}
    for record in records:
        if not record.get("tls"):
            ip = str(record.get("peer_ip") or "")
            plain[ip] = plain.get(ip, 0) + 1
    report = {
        "organization-name": provider.name,
        "date-range": {
            "start-datetime": _rfc3339(min(times)),
            "end-datetime": _rfc3339(max(times)),
        },
        "contact-info": f"smtp-tls-reporting@{reporting_domain(provider)}",
        "report-id": report_id,
        "policies": [
            {
                "policy": {"policy-type": "no-policy-found", "policy-domain": domain},
                "summary": {
                    "total-successful-session-count": len(records) - sum(plain.values()),
                    "total-failure-session-count": sum(plain.values()),
                },
                "failure-details": [
                    {
                        "result-type": "starttls-not-supported",
                        "sending-mta-ip": ip,
                        "receiving-mx-hostname": provider.hostname,
                        "failed-session-count": count,
                    }
                    for ip, count in plain.items()
                ],
            }
        ],
    }
    return json.dumps(report, indent=2).encode() + b"\n"


def find_tlsrpt_rua(domain: str, dns: DnsSource) -> list[str]:
    """The mailto: addresses of `_smtp._tls.<domain>` (RFC 8460 3); https: ones are skipped."""
    record = _one_record(dns, f"_smtp._tls.{domain}", b"v=TLSRPTv1")
    return mailto_addresses(tag_values(record).get("rua", "")) if record else []


def build_tlsrpt_mail(
    provider: Provider, domain: str, to: str, report_id: str, attachment: Attachment
) -> bytes:
    """RFC 8460 5.3: multipart/report; report-type=tlsrpt, with the gzip'd JSON."""
    submitter = reporting_domain(provider)
    message = MIMEMultipart("report", report_type="tlsrpt")
    _envelope(
        message,
        f"smtp-tls-reporting@{submitter}",
        to,
        f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{report_id}>",
        submitter,
    )
    message["TLS-Report-Domain"] = domain
    message["TLS-Report-Submitter"] = submitter
    message.attach(MIMEText(f"This is an SMTP TLS report from {provider.name} for {domain}.\n"))
    _attach(message, attachment)
    return message.as_bytes(policy=email.policy.SMTP)


# --- sending, state and the command --------------------------------------------------------


def read_state(data_dir: Path) -> dict[str, int]:
    """Per provider, how many received records have been reported (none without a state file)."""
    try:
        data = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
        return {str(name): int(count) for name, count in data["reported"].items()}
    except FileNotFoundError:
        return {}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}  # an unreadable state reports everything again rather than nothing


def write_state(data_dir: Path, reported: Mapping[str, int]) -> None:
    path = data_dir / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"reported": dict(reported)}) + "\n", encoding="utf-8")
    temporary.replace(path)


def _now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


Deliver = Callable[[bytes, str, DnsSource, str, int], str]


@dataclass
class Reporter:
    """Builds and sends the reports of one run; `deliver` and `sleep` are replaceable (tests)."""

    config: ServerConfig
    dns: DnsSource
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    deliver: Deliver = deliver_report
    sleep: Callable[[float], None] = time.sleep

    def send(self, kind: str, provider: Provider, mail: bytes, to: str, **about: Any) -> dict:
        """Deliver with the followups' retries; the outcome is logged and returned."""
        error = ""
        attempt = 0
        for attempt, pause in enumerate((*self.retry_delays, None), start=1):
            try:
                via = self.deliver(mail, to, self.dns, provider.hostname, self.config.followup_port)
            except FollowupError as failure:
                error = str(failure)
                if pause is None:
                    break
                self.sleep(pause)
                continue
            return self._outcome(kind, provider, "sent", to, via=via, attempts=attempt, **about)
        return self._outcome(kind, provider, "failed", to, error=error, attempts=attempt, **about)

    def _outcome(
        self, kind: str, provider: Provider, status: str, to: str, **extra: Any
    ) -> dict[str, Any]:
        record = {"kind": kind, "status": status, "provider": provider.name, "to": to}
        record.update(extra, at=_now())
        append_outcome(self.config.followup_log, record)
        return record

    def dmarc_report(
        self, provider: Provider, domain: str, records: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        kind = "dmarc_report"
        try:
            policy = find_policy(domain, self.dns)
        except DnsTemporaryError as error:
            return [self._outcome(kind, provider, "failed", "", domain=domain, error=str(error))]
        if policy is None:
            return []  # no DMARC record: nobody asked for reports
        report_id = uuid.uuid4().hex
        times = [received_at(record) for record in records]
        base = report_filename(
            reporting_domain(provider), domain, min(times), max(times), "xml"
        ).removesuffix(".xml")
        attachment = compress_report(
            provider, base, build_aggregate_xml(provider, policy, records, report_id)
        )
        about = {
            "domain": domain,
            "report_id": report_id,
            "filename": attachment.filename,
            "messages": len(records),
        }
        outcomes = []
        for address in mailto_addresses(policy.tags.get("rua", "")):
            try:
                allowed = authorized_destination(domain, address, self.dns)
            except DnsTemporaryError as error:
                outcomes.append(
                    self._outcome(kind, provider, "failed", address, error=str(error), **about)
                )
                continue
            if not allowed:
                refused = f"{address} is not authorized (RFC 7489 7.1)"
                outcomes.append(
                    self._outcome(kind, provider, "skipped", address, error=refused, **about)
                )
                continue
            mail = build_dmarc_mail(provider, domain, address, report_id, attachment)
            outcomes.append(self.send(kind, provider, mail, address, **about))
        return outcomes

    def tls_report(
        self, provider: Provider, domain: str, records: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        kind = "tls_report"
        try:
            addresses = find_tlsrpt_rua(domain, self.dns)
        except DnsTemporaryError as error:
            return [self._outcome(kind, provider, "failed", "", domain=domain, error=str(error))]
        if not addresses:
            return []
        report_id = uuid.uuid4().hex
        times = [received_at(record) for record in records]
        filename = (
            f"{reporting_domain(provider)}!{domain}!{min(times)}!{max(times)}!{report_id}.json.gz"
        )
        data = gzip.compress(build_tlsrpt_json(provider, domain, records, report_id), mtime=0)
        attachment = Attachment(filename, "application/tlsrpt+gzip", data)
        about = {
            "domain": domain,
            "report_id": report_id,
            "filename": filename,
            "messages": len(records),
        }
        outcomes = []
        for address in addresses:
            mail = build_tlsrpt_mail(provider, domain, address, report_id, attachment)
            outcomes.append(self.send(kind, provider, mail, address, **about))
        return outcomes

    def run(self, since: int | None = None, provider: str | None = None) -> list[dict[str, Any]]:
        """Report the records after `since` (default: each provider's not yet reported ones)
        and remember, per provider, that they were."""
        data_dir = self.config.data_dir
        records = list(read_records(self.config.received_log))
        state = read_state(data_dir)
        providers = {p.name: p for p in self.config.providers}
        names = [provider] if provider else sorted(providers)
        outcomes: list[dict[str, Any]] = []
        for name in names:
            start = state.get(name, 0) if since is None else since
            if start > len(records):
                start = 0  # the log was reset since the last run
            batches = group_by_provider_and_domain(records[start:], name)
            for (_provider_name, domain), batch in sorted(batches.items()):
                outcomes += self.dmarc_report(providers[name], domain, batch)
                outcomes += self.tls_report(providers[name], domain, batch)
            state[name] = len(records)
        write_state(data_dir, state)
        return outcomes
