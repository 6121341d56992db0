"""DMARC aggregate reports (RFC 7489 appendix C) and SMTP TLS reports (RFC 8460), read.

Both arrive as mail to the addresses the DNS names (`rua=mailto:` in `_dmarc`, `rua=mailto:`
in `_smtp._tls`), as an attachment:

- DMARC: XML, gzip'd (`application/gzip`, `application/x-gzip`, `.xml.gz`: Microsoft, Yahoo,
  most others), zip'd (`application/zip`, `.zip`: Google) or plain (`text/xml`). Reporters
  are sloppy with the content type (`application/octet-stream`), so the bytes are sniffed:
  gzip and zip by their magic numbers, XML by its first `<`, JSON by its first `{`.
- TLS-RPT: JSON, gzip'd (`application/tlsrpt+gzip`, `.json.gz`) or plain
  (`application/tlsrpt+json`).

The bytes come from strangers, so: decompression stops at `MAX_DECOMPRESSED` (50 MB; a zip
bomb raises ReportError, it is never inflated whole), a zip holds at most `MAX_ZIP_MEMBERS`
files, and XML with a DTD or an entity declaration is refused before it reaches the parser
(no external entities, no billion laughs); so is XML that is not ASCII-compatible, which could
hide a `<!DOCTYPE` from that check.

`summarise_dmarc` is `bulkmail dmarc-report`'s judgement: per source IP, how much mail and how
much of it passed aligned DKIM, aligned SPF and DMARC (either), and whether the domain's policy
can move one step (none -> quarantine -> reject) without hurting a real source. Its SQL is
here too (`dmarc_summary_query`), so a test reads it without a database.

Pure Python: no I/O, no Ansible import.
"""

from __future__ import annotations

import io
import ipaddress
import json
import re
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any
from xml.etree import ElementTree

MAX_DECOMPRESSED = 50 * 1024 * 1024
MAX_ZIP_MEMBERS = 10
DMARC = "dmarc"
TLSRPT = "tlsrpt"
_GZIP_MAGIC = b"\x1f\x8b"
_ZIP_MAGIC = b"PK\x03\x04"
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_CONTAINERS = ("multipart/", "message/")
# Parts that are the report's words, not the report (a text/plain "here is your report").
_PROSE_TYPES = ("text/plain", "text/html")
POLICY_STEPS = ("none", "quarantine", "reject")
DEFAULT_MIN_SHARE = 0.005
DEFAULT_MIN_PASS_RATE = 0.98


class ReportError(ValueError):
    """An attachment that is not a report this module can read; the message says why."""


# --------------------------------------------------------------------------- DMARC


@dataclass(frozen=True)
class DmarcRecord:
    """One `<record>`: how many messages from one IP had one outcome.

    `dkim_aligned`/`spf_aligned` are policy_evaluated's verdicts (aligned pass); the
    auth_results fields are the DKIM signature and SPF check the reporter saw, the DKIM one
    that passed and aligned with header_from when there is one.
    """

    source_ip: str
    count: int
    disposition: str | None
    dkim_aligned: bool
    spf_aligned: bool
    dkim_result: str | None
    dkim_domain: str | None
    spf_result: str | None
    spf_domain: str | None
    header_from: str | None
    envelope_from: str | None


@dataclass(frozen=True)
class DmarcReport:
    """One aggregate report: who sent it, about which domain and period, and its records.

    `date_begin`/`date_end` are aware UTC datetimes; `policy_published` keeps the reporter's
    view of our record (`{"domain": ..., "p": "none", "pct": "100", ...}`), all text.
    """

    org_name: str
    report_id: str
    domain: str
    date_begin: datetime
    date_end: datetime
    policy_published: dict[str, str]
    records: tuple[DmarcRecord, ...]
    email: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def messages(self) -> int:
        return sum(record.count for record in self.records)


def parse_dmarc_xml(data: bytes) -> DmarcReport:
    """An aggregate report from its XML; ReportError when it is not one."""
    root = _parse_xml(data)
    if _local(root.tag) != "feedback":
        raise ReportError(f"the XML's root is <{_local(root.tag)}>, not <feedback>")
    metadata = _child(root, "report_metadata")
    published = _child(root, "policy_published")
    if metadata is None or published is None:
        raise ReportError("no <report_metadata> or <policy_published>: not a DMARC report")
    org_name = _text(metadata, "org_name")
    report_id = _text(metadata, "report_id")
    date_range = _child(metadata, "date_range")
    if not org_name or not report_id or date_range is None:
        raise ReportError("<report_metadata> lacks org_name, report_id or date_range")
    policy = {
        _local(element.tag): (element.text or "").strip()
        for element in published
        if len(element) == 0
    }
    domain = (policy.get("domain") or "").rstrip(".").lower()
    if not domain:
        raise ReportError("<policy_published> names no domain")
    notes: list[str] = []
    records = []
    for index, element in enumerate(_children(root, "record")):
        try:
            records.append(_dmarc_record(element))
        except ReportError as error:
            notes.append(f"record {index + 1} skipped: {error}")
    return DmarcReport(
        org_name=org_name,
        report_id=report_id,
        domain=domain,
        date_begin=_epoch(_text(date_range, "begin"), "date_range/begin"),
        date_end=_epoch(_text(date_range, "end"), "date_range/end"),
        policy_published=policy,
        records=tuple(records),
        email=_text(metadata, "email"),
        notes=tuple(notes),
    )


def _dmarc_record(element: ElementTree.Element) -> DmarcRecord:
    row = _child(element, "row")
    if row is None:
        raise ReportError("no <row>")
    source_ip = _text(row, "source_ip")
    try:
        source_ip = str(ipaddress.ip_address(source_ip or ""))
    except ValueError:
        raise ReportError(f"source_ip {source_ip!r} is not an IP address") from None
    try:
        count = int(_text(row, "count") or "")
    except ValueError:
        raise ReportError(f"count {_text(row, 'count')!r} is not a number") from None
    if count < 0:
        raise ReportError(f"count {count} is negative")
    evaluated = _child(row, "policy_evaluated")
    identifiers = _child(element, "identifiers")
    header_from = _lower(_text(identifiers, "header_from"))
    results = _child(element, "auth_results")
    dkim = _pick_dkim(_children(results, "dkim"), header_from)
    spf_results = _children(results, "spf")
    spf = spf_results[0] if spf_results else None
    return DmarcRecord(
        source_ip=source_ip,
        count=count,
        disposition=_lower(_text(evaluated, "disposition")),
        dkim_aligned=_lower(_text(evaluated, "dkim")) == "pass",
        spf_aligned=_lower(_text(evaluated, "spf")) == "pass",
        dkim_result=_lower(_text(dkim, "result")),
        dkim_domain=_lower(_text(dkim, "domain")),
        spf_result=_lower(_text(spf, "result")),
        spf_domain=_lower(_text(spf, "domain")),
        header_from=header_from,
        envelope_from=_lower(_text(identifiers, "envelope_from")),
    )


def _pick_dkim(
    results: Sequence[ElementTree.Element], header_from: str | None
) -> ElementTree.Element | None:
    """The DKIM result that tells most: a pass aligned with header_from, a pass, the first."""

    def aligned(result: ElementTree.Element) -> bool:
        domain = _lower(_text(result, "domain")) or ""
        return bool(header_from) and (
            domain == header_from
            or header_from.endswith("." + domain)
            or domain.endswith("." + header_from)
        )

    passes = [r for r in results if _lower(_text(r, "result")) == "pass"]
    for candidates in ([r for r in passes if aligned(r)], passes, list(results)):
        if candidates:
            return candidates[0]
    return None


# --------------------------------------------------------------------------- TLS-RPT


@dataclass(frozen=True)
class TlsReport:
    """One policy of a TLS report (the tls_reports row): sessions that succeeded and failed,
    and the failure details as the reporter wrote them (a list of objects)."""

    organization: str
    report_id: str
    policy_domain: str
    policy_type: str
    date_begin: datetime
    date_end: datetime
    successful: int
    failed: int
    failures: tuple[dict[str, Any], ...]
    contact: str | None = None


def parse_tlsrpt_json(data: bytes) -> tuple[TlsReport, ...]:
    """The rows of one TLS report (one per policy); ReportError when it is not one."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ReportError(f"not JSON: {error}") from None
    if not isinstance(document, Mapping):
        raise ReportError("the JSON is not an object: not a TLS report")
    organization = document.get("organization-name")
    report_id = document.get("report-id")
    date_range = document.get("date-range")
    policies = document.get("policies")
    if not isinstance(organization, str) or not isinstance(report_id, str):
        raise ReportError("organization-name or report-id missing: not a TLS report")
    if not isinstance(date_range, Mapping) or not isinstance(policies, list):
        raise ReportError("date-range or policies missing: not a TLS report")
    begin = _iso(date_range.get("start-datetime"), "date-range.start-datetime")
    end = _iso(date_range.get("end-datetime"), "date-range.end-datetime")
    rows = []
    for index, item in enumerate(policies):
        where = f"policies[{index}]"
        policy = item.get("policy") if isinstance(item, Mapping) else None
        summary = item.get("summary") if isinstance(item, Mapping) else None
        if not isinstance(policy, Mapping) or not isinstance(summary, Mapping):
            raise ReportError(f"{where} lacks policy or summary")
        domain = policy.get("policy-domain")
        kind = policy.get("policy-type")
        if not isinstance(domain, str) or not domain or not isinstance(kind, str) or not kind:
            raise ReportError(f"{where}.policy lacks policy-domain or policy-type")
        details = item.get("failure-details", [])
        rows.append(
            TlsReport(
                organization=organization,
                report_id=report_id,
                policy_domain=domain.rstrip(".").lower(),
                policy_type=kind.lower(),
                date_begin=begin,
                date_end=end,
                successful=_count(summary.get("total-successful-session-count"), where),
                failed=_count(summary.get("total-failure-session-count"), where),
                failures=tuple(d for d in details if isinstance(d, Mapping))
                if isinstance(details, list)
                else (),
                contact=document.get("contact-info")
                if isinstance(document.get("contact-info"), str)
                else None,
            )
        )
    return tuple(rows)


# --------------------------------------------------------------------------- attachments


@dataclass(frozen=True)
class FoundReports:
    """What a message's attachments held: DMARC reports, TLS-RPT rows, and why the rest
    were not read (one line per attachment)."""

    dmarc: tuple[DmarcReport, ...] = ()
    tls: tuple[TlsReport, ...] = ()
    problems: tuple[str, ...] = ()


def find_reports(message: Message, *, limit: int = MAX_DECOMPRESSED) -> FoundReports:
    """Every DMARC and TLS report attached to (or making up the body of) `message`."""
    dmarc: list[DmarcReport] = []
    tls: list[TlsReport] = []
    problems: list[str] = []
    for name, content_type, payload in attachments(message):
        try:
            for kind, document in unpack(payload, content_type, name, limit=limit):
                if kind == DMARC:
                    dmarc.append(parse_dmarc_xml(document))
                else:
                    tls.extend(parse_tlsrpt_json(document))
        except ReportError as error:
            problems.append(f"{name or content_type}: {error}")
    return FoundReports(tuple(dmarc), tuple(tls), tuple(problems))


def attachments(message: Message) -> Iterator[tuple[str | None, str, bytes]]:
    """(file name, content type, decoded bytes) of every leaf part that may be a report.

    Prose parts are left out unless they are named as a file, which some reporters do with
    an XML report sent as text/plain.
    """
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type.startswith(_CONTAINERS):
            continue
        name = part.get_filename()
        if content_type in _PROSE_TYPES and not name:
            continue
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes) and payload.strip():
            yield name, content_type, payload


def unpack(
    data: bytes,
    content_type: str = "",
    name: str | None = None,
    *,
    limit: int = MAX_DECOMPRESSED,
) -> list[tuple[str, bytes]]:
    """The documents in an attachment, each as (DMARC or TLSRPT, bytes), decompressed.

    The bytes decide, not the label: gzip and zip by magic number, then XML or JSON by the
    first character. A zip may hold several reports (it rarely does).
    """
    if data.startswith(_GZIP_MAGIC):
        return [_sniff(gunzip(data, limit), content_type, name)]
    if data.startswith(_ZIP_MAGIC):
        return [_sniff(member, content_type, name) for member in unzip(data, limit)]
    return [_sniff(data, content_type, name)]


def gunzip(data: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    """A gzip stream (every member) inflated, or ReportError past `limit` bytes."""
    out = bytearray()
    rest = data
    try:
        while rest:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += inflater.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise ReportError(f"inflates to more than {limit} bytes")
            if inflater.unconsumed_tail:
                raise ReportError(f"inflates to more than {limit} bytes")
            if not inflater.eof:
                raise ReportError("the gzip stream is truncated")
            rest = inflater.unused_data.lstrip(b"\x00")
            if rest and not rest.startswith(_GZIP_MAGIC):
                break  # trailing garbage after the last member, as gzip(1) tolerates
    except zlib.error as error:
        raise ReportError(f"not a valid gzip stream: {error}") from None
    return bytes(out)


def unzip(data: bytes, limit: int = MAX_DECOMPRESSED) -> list[bytes]:
    """The files of a zip archive, at most MAX_ZIP_MEMBERS and `limit` bytes in all."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as error:
        raise ReportError(f"not a valid zip archive: {error}") from None
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if not members:
            raise ReportError("the zip archive is empty")
        if len(members) > MAX_ZIP_MEMBERS:
            raise ReportError(
                f"the zip archive holds {len(members)} files (at most {MAX_ZIP_MEMBERS})"
            )
        out = []
        total = 0
        for info in members:
            if info.file_size > limit - total:
                raise ReportError(f"{info.filename} inflates to more than {limit} bytes")
            try:
                # read at most one byte past the limit: a size the header lies about stops too
                with archive.open(info) as stream:
                    content = stream.read(limit - total + 1)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, zlib.error) as error:
                raise ReportError(f"{info.filename}: {error}") from None
            total += len(content)
            if total > limit:
                raise ReportError(f"{info.filename} inflates to more than {limit} bytes")
            out.append(content)
        return out


def _sniff(data: bytes, content_type: str, name: str | None) -> tuple[str, bytes]:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head == b"<":
        return DMARC, data
    if head == b"{":
        return TLSRPT, data
    label = name or content_type or "the attachment"
    raise ReportError(f"{label} is neither XML nor JSON")


def _parse_xml(data: bytes) -> ElementTree.Element:
    if b"\x00" in data[:1024]:
        raise ReportError("the XML is not ASCII-compatible (UTF-16?): refused")
    if _DTD.search(data):
        raise ReportError("the XML declares a DTD or an entity: refused")
    parser = ElementTree.XMLParser()
    try:
        parser.feed(data)
        return parser.close()
    except ElementTree.ParseError as error:
        raise ReportError(f"not well-formed XML: {error}") from None


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class SourceSummary:
    """One source IP over the window: messages, and the share of them that passed."""

    source_ip: str
    messages: int
    dkim_aligned: int
    spf_aligned: int
    dmarc_pass: int
    share: float

    @property
    def dkim_rate(self) -> float:
        return self.dkim_aligned / self.messages if self.messages else 0.0

    @property
    def spf_rate(self) -> float:
        return self.spf_aligned / self.messages if self.messages else 0.0

    @property
    def dmarc_rate(self) -> float:
        return self.dmarc_pass / self.messages if self.messages else 0.0


@dataclass(frozen=True)
class DmarcSummary:
    """The table and the verdict `bulkmail dmarc-report DOMAIN` prints.

    `safe` says whether `policy` can move to `next_policy`: every source with at least
    `min_share` of the volume passes DMARC at `min_pass_rate` or better; `hurt` are those
    that do not (they would lose their mail to quarantine or rejection). Smaller sources are
    forwarders and spoofers: their failures are what the stricter policy is for.
    """

    domain: str
    policy: str | None
    next_policy: str | None
    messages: int
    reports: int
    sources: tuple[SourceSummary, ...]
    safe: bool
    hurt: tuple[SourceSummary, ...]
    reason: str
    min_share: float
    min_pass_rate: float
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, Any]:
        def source(s: SourceSummary) -> dict[str, Any]:
            return {
                "source_ip": s.source_ip,
                "messages": s.messages,
                "share": round(s.share, 6),
                "dkim_aligned_rate": round(s.dkim_rate, 6),
                "spf_aligned_rate": round(s.spf_rate, 6),
                "dmarc_pass_rate": round(s.dmarc_rate, 6),
            }

        return {
            "domain": self.domain,
            "policy": self.policy,
            "next_policy": self.next_policy,
            "messages": self.messages,
            "reports": self.reports,
            "sources": [source(s) for s in self.sources],
            "safe": self.safe,
            "hurt": [s.source_ip for s in self.hurt],
            "reason": self.reason,
            "min_share": self.min_share,
            "min_pass_rate": self.min_pass_rate,
        }


def next_policy(policy: str | None) -> str | None:
    """One step stricter (none -> quarantine -> reject); None at reject or for no policy."""
    current = (policy or "").strip().lower()
    if current not in POLICY_STEPS:
        return None
    index = POLICY_STEPS.index(current)
    return POLICY_STEPS[index + 1] if index + 1 < len(POLICY_STEPS) else None


def summarise_dmarc(
    domain: str,
    records: Iterable[Sequence[Any]],
    *,
    policy: str | None = None,
    reports: int = 0,
    min_share: float = DEFAULT_MIN_SHARE,
    min_pass_rate: float = DEFAULT_MIN_PASS_RATE,
) -> DmarcSummary:
    """Per source IP totals and the verdict on tightening `policy` one step.

    `records` are `(source_ip, count, dkim_aligned, spf_aligned)`, one per dmarc_records row
    or already grouped by those four (dmarc_summary_query's rows): counts of equal keys add.
    `policy` is the p= the latest report saw. Defaults: a source matters from 0.5% of the
    volume on, and must pass DMARC on 98% of its mail (a forwarder that breaks SPF and DKIM
    on a few messages of a real source stays under 2%).
    """
    if not 0 <= min_share <= 1 or not 0 <= min_pass_rate <= 1:
        raise ValueError("min_share and min_pass_rate are fractions between 0 and 1")
    totals: dict[str, list[int]] = {}
    for source_ip, count, dkim, spf in records:
        number = int(count or 0)
        entry = totals.setdefault(str(source_ip), [0, 0, 0, 0])
        entry[0] += number
        entry[1] += number if dkim else 0
        entry[2] += number if spf else 0
        entry[3] += number if (dkim or spf) else 0
    volume = sum(entry[0] for entry in totals.values())
    sources = tuple(
        sorted(
            (
                SourceSummary(
                    source_ip=ip,
                    messages=entry[0],
                    dkim_aligned=entry[1],
                    spf_aligned=entry[2],
                    dmarc_pass=entry[3],
                    share=entry[0] / volume if volume else 0.0,
                )
                for ip, entry in totals.items()
            ),
            key=lambda s: (-s.messages, s.source_ip),
        )
    )
    step = next_policy(policy)
    hurt = tuple(s for s in sources if s.share >= min_share and s.dmarc_rate < min_pass_rate)
    if not volume:
        safe = False
        reason = f"no aggregate reports for {domain} in the window: nothing to judge by"
    elif step is None and (policy or "").lower() == "reject":
        safe, reason = False, "the policy is already p=reject"
    elif hurt:
        names = ", ".join(f"{s.source_ip} ({s.dmarc_rate:.1%} of {s.messages})" for s in hurt)
        target = f"p={step}" if step else "a stricter policy"
        safe = False
        reason = (
            f"not safe to move to {target}: these sources send at least {min_share:.1%} of "
            f"the mail and pass DMARC on less than {min_pass_rate:.0%} of it: {names}"
        )
    else:
        safe = True
        target = f"p={step}" if step else "a stricter policy"
        reason = (
            f"safe to move to {target}: every source with at least {min_share:.1%} of the "
            f"mail passes DMARC on {min_pass_rate:.0%} or more of it"
        )
    return DmarcSummary(
        domain=domain,
        policy=policy,
        next_policy=step,
        messages=volume,
        reports=reports,
        sources=sources,
        safe=safe,
        hurt=hurt,
        reason=reason,
        min_share=min_share,
        min_pass_rate=min_pass_rate,
    )


def format_summary(summary: DmarcSummary) -> str:
    """The table and the verdict, as `bulkmail dmarc-report` prints them."""
    lines = [
        f"{summary.domain}: {summary.messages} messages in {summary.reports} reports, "
        f"policy p={summary.policy or '?'}",
        f"{'source IP':<40} {'messages':>9} {'share':>7} {'DKIM':>7} {'SPF':>7} {'DMARC':>7}",
    ]
    for s in summary.sources:
        lines.append(
            f"{s.source_ip:<40} {s.messages:>9} {s.share:>7.1%} {s.dkim_rate:>7.1%} "
            f"{s.spf_rate:>7.1%} {s.dmarc_rate:>7.1%}"
        )
    lines.append(("SAFE: " if summary.safe else "NOT SAFE: ") + summary.reason)
    return "\n".join(lines) + "\n"


# The rows summarise_dmarc takes, grouped in the database; reports in the window whose period
# ended after `since`, and the p= of the latest of them.
DMARC_SUMMARY_SQL = (
    "SELECT host(rec.source_ip), sum(rec.count)::bigint, rec.dkim_aligned, rec.spf_aligned"
    " FROM dmarc_records rec JOIN dmarc_reports rep ON rep.id = rec.report"
    " WHERE rep.domain = %(domain)s AND rep.date_end >= %(since)s"
    " GROUP BY rec.source_ip, rec.dkim_aligned, rec.spf_aligned"
)
DMARC_POLICY_SQL = (
    "SELECT count(*), (array_agg(policy->>'p' ORDER BY date_end DESC))[1]"
    " FROM dmarc_reports WHERE domain = %(domain)s AND date_end >= %(since)s"
)


def dmarc_summary_query(domain: str, now: datetime, days: float) -> dict[str, Any]:
    """The parameters of DMARC_SUMMARY_SQL and DMARC_POLICY_SQL for the window."""
    if days <= 0:
        raise ValueError(f"--days {days}: give a number of days above 0")
    return {"domain": domain.strip().rstrip(".").lower(), "since": now - timedelta(days=days)}


# --------------------------------------------------------------------------- internals


def _local(tag: str) -> str:
    """A tag without its namespace: reports with xmlns (the 2025 draft's) read the same."""
    return tag.rpartition("}")[2]


def _child(element: ElementTree.Element | None, name: str) -> ElementTree.Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c.tag) == name), None)


def _children(element: ElementTree.Element | None, name: str) -> list[ElementTree.Element]:
    if element is None:
        return []
    return [c for c in element if _local(c.tag) == name]


def _text(element: ElementTree.Element | None, name: str) -> str | None:
    found = _child(element, name)
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def _lower(value: str | None) -> str | None:
    return value.strip().rstrip(".").lower() or None if value else None


def _epoch(value: str | None, where: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(float(value or "")), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise ReportError(f"{where} {value!r} is not seconds since the epoch") from None


def _iso(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise ReportError(f"{where} is missing")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{where} {value!r} is not an RFC 3339 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ReportError(f"{where}.summary: session counts must be whole numbers, not {value!r}")
    return value
