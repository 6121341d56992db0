"""DNS over the network with dnspython: the `resolve` and `ask` callables the pure checks take.

`dnspython_resolve` keeps the `resolve(name, rdtype)` contract of dns/report.py;
`ask_authoritative` is the `Ask` of dkim/rotation.py. Shared by both doors (the check_dns and
dkim_publication modules, `bulkmail check-dns`). dnspython is imported when a resolver is made
or a question asked, so importing this file needs nothing beyond the stdlib.
"""

from __future__ import annotations

from ..dns.report import LookupFailed, Resolve


def dnspython_missing() -> str | None:
    """The traceback of importing dnspython, or None when it is there (a module fails early
    with Ansible's missing_required_lib, instead of in the middle of its work)."""
    import traceback

    try:
        import dns.query  # pylint: disable=unused-import
        import dns.resolver  # noqa: F401  # pylint: disable=unused-import
    except ImportError:
        return traceback.format_exc()
    return None


def dnspython_resolve(nameserver: str | None = None, timeout: float = 5.0) -> Resolve:
    """A `resolve(name, rdtype)` for the dns checks, asking `nameserver` or the system's."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver]
    resolver.lifetime = timeout

    def resolve(name: str, rdtype: str) -> list[str]:
        try:
            answer = resolver.resolve(
                name.rstrip(".") + ".", rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return []
        except dns.resolver.NoNameservers:
            raise LookupFailed(
                name, rdtype, "no name server answered: SERVFAIL or REFUSED"
            ) from None
        except dns.exception.Timeout:
            raise LookupFailed(name, rdtype, f"no answer within {timeout:g} s") from None
        except dns.exception.DNSException as error:
            raise LookupFailed(name, rdtype, str(error) or type(error).__name__) from None
        if answer.rrset is None:
            return []
        if rdtype == "TXT":
            return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer.rrset]
        return [rdata.to_text() for rdata in answer.rrset]

    return resolve


def ask_authoritative(
    nameserver: str, name: str, rdtype: str = "TXT", timeout: float = 5.0
) -> tuple[list[str], int | None]:
    """Ask one authoritative server directly, without recursion: (records, TTL served).

    Records as `resolve` returns them; ([], None) when the name or the type does not exist.
    Raises LookupFailed when the server does not answer, refuses, or is not authoritative;
    its problem does not repeat the server's address.
    """
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdataclass
    import dns.rdatatype

    query = dns.message.make_query(name.rstrip(".") + ".", rdtype)
    query.flags &= ~dns.flags.RD
    try:
        response, _used_tcp = dns.query.udp_with_fallback(query, nameserver, timeout=timeout)
    except dns.exception.Timeout:
        raise LookupFailed(name, rdtype, f"no answer within {timeout:g} s") from None
    except (OSError, dns.exception.DNSException) as error:
        raise LookupFailed(name, rdtype, str(error) or type(error).__name__) from None
    rcode = response.rcode()
    if rcode == dns.rcode.NXDOMAIN:
        return [], None
    if rcode != dns.rcode.NOERROR:
        raise LookupFailed(name, rdtype, f"answered {dns.rcode.to_text(rcode)}")
    if not response.flags & dns.flags.AA:
        raise LookupFailed(name, rdtype, "answered, but not authoritatively (no such zone)")
    try:
        rrset = response.find_rrset(
            response.answer, query.question[0].name, dns.rdataclass.IN,
            dns.rdatatype.from_text(rdtype),
        )  # fmt: skip
    except KeyError:
        return [], None
    if rdtype == "TXT":
        return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in rrset], rrset.ttl
    return [rdata.to_text() for rdata in rrset], rrset.ttl
