"""The default bounce rules, as data in the rule file's own format (see classify.py).

Kept as a Python literal so that both doors (the runtime's wheel and the collection's
module_utils) carry them without reading a file; an operator's file (YAML, same fields) is
tried before these. Order matters: the first rule that matches decides. Codes and texts are
from the providers' published replies (docs: PROVIDERS.md) and RFC 3463, 7372 and 7505.
"""

from __future__ import annotations

DEFAULT_BOUNCE_RULES: tuple[dict[str, object], ...] = (
    # --- given up: the queue lifetime ran out (Postfix, Exchange's QUEUE.Expired)
    {"name": "expired-status", "class": "expired", "dsn": ["4.4.7", "5.4.7"]},
    {
        "name": "expired-text",
        "class": "expired",
        "text": r"message expired|delivery time expired|expired after|too long in (the )?queue"
        r"|retry time(out)? (exceeded|expired)|could not be delivered within|QUEUE\.Expired",
    },
    # --- full mailboxes, named as such (before the status codes some servers get wrong)
    {
        "name": "mailbox-full-text",
        "class": "mailbox_full",
        "text": r"over (its |the |their |his |her )?quota|quota (exceeded|full)"
        r"|exceeded (its|the|their) (storage|quota)|mailbox (is )?full|mailbox size limit"
        r"|insufficient (storage|disk space)|not enough (space|storage)",
    },
    # --- throttling: slow down, never the recipient's fault
    {
        "name": "gmail-rate-limited",
        "class": "rate_limit",
        "dsn": "x.7.28",
    },
    {"name": "yahoo-permanently-deferred", "class": "reputation_block", "text": r"\[TS03\]"},
    {"name": "yahoo-deferred", "class": "rate_limit", "text": r"\[TSS?0\d\]"},
    {"name": "microsoft-rate-limited", "class": "rate_limit", "dsn_regex": r"4\.7\.[56]\d\d"},
    {"name": "microsoft-permitted-limits", "class": "rate_limit", "dsn": "5.7.508"},
    {
        "name": "receiving-too-fast",
        "class": "rate_limit",
        "text": r"receiving mail (at a rate|too quickly)|rate that prevents additional messages",
    },
    {
        "name": "rate-limit-text",
        "class": "rate_limit",
        "text": r"rate.?limit|throttl|unusual rate|too many (concurrent )?(connections|sessions)"
        r"|maximum number of concurrent connections|exceeded the (rate|connection|sending) limit"
        r"|too many messages (in|per|from)|sending rate|slow down|try again in \d+ (sec|min)",
    },
    {"name": "greylisted", "class": "transient", "text": r"gr[ea]y-?list"},
    {"name": "too-many-recipients", "class": "too_many_recipients", "dsn": "x.5.3"},
    {
        "name": "too-many-recipients-text",
        "class": "too_many_recipients",
        "text": r"too many recipients",
    },
    # --- authentication (RFC 7372 x.7.20-27; Gmail 5.7.26/5.7.27, Microsoft 5.7.515, Yahoo 5.7.9)
    {
        "name": "authentication-status",
        "class": "authentication",
        "dsn_regex": r"[45]\.7\.(2[0-7]|9|509|515)",
    },
    # --- blocklists and reputation (Microsoft S3150, 5.7.6xx; Yahoo [BL21]; Spamhaus)
    {
        "name": "reputation-status",
        "class": "reputation_block",
        "dsn_regex": r"5\.7\.(511|513|6\d\d)",
    },
    {
        "name": "blocklisted",
        "class": "reputation_block",
        "text": r"\bS3[01][0-9]{2}\b|block ?list|black ?list|spamhaus|spamcop|barracuda|sorbs"
        r"|\bRBL\b|DNSBL|\[BL\d+\]|listed (at|on|in|by)|blocked using|(poor|low|bad) reputation"
        r"|banned sending|banned sender|client host .{0,60}blocked",
    },
    {
        "name": "authentication-text",
        "class": "authentication",
        "dsn": "x.7",
        "text": r"unauthenticated|not authenticated|authentication (failed|required|level)"
        r"|\bDMARC\b|\bSPF\b|\bDKIM\b|reverse DNS|PTR record",
    },
    # --- our envelope sender refused (a receiver's sender verification, a bad return path)
    {"name": "invalid-sender-status", "class": "invalid_sender", "dsn": ["x.1.7", "x.1.8"]},
    {
        "name": "invalid-sender-text",
        "class": "invalid_sender",
        "text": r"sender address rejected|sender (address |domain )?(is )?(invalid|unknown|denied"
        r"|not found|does not exist)|bad sender|sender verify failed|unverified sender",
    },
    {"name": "message-too-large", "class": "message_too_large", "dsn": ["x.3.4", "x.2.3"]},
    {
        "name": "message-too-large-text",
        "class": "message_too_large",
        "text": r"message (size )?(is )?too (big|large)|size exceeds|exceeds (the )?(maximum"
        r"|size limit|message size)|message size limit",
    },
    # --- the recipient's domain: NXDOMAIN, no MX, null MX (RFC 7505)
    {"name": "bad-domain-status", "class": "bad_domain", "dsn": ["5.1.2", "5.1.10", "5.4.4"]},
    {
        "name": "bad-domain-text",
        "class": "bad_domain",
        "dsn": "5",
        "text": r"host or domain name not found|domain (name )?(not found|does not exist"
        r"|doesn't exist|is not valid)|no such domain|null mx|does not accept (e-?)?mail"
        r"|unrouteable (mail )?domain|nxdomain|no mx (record|host)",
    },
    # --- the mailbox: closed, disabled, or never there
    {"name": "inactive-status", "class": "inactive_mailbox", "dsn": "5.2.1"},
    {
        "name": "inactive-text",
        "class": "inactive_mailbox",
        "dsn": ["5.0", "5.1", "5.2", "5.5"],
        "text": r"(account|mailbox|user|address)( \S+){0,3} (is |has been )?(disabled|inactive"
        r"|suspended|deactivated|closed)|inactive (user|account|mailbox)|no longer (active|in use)",
    },
    {
        "name": "microsoft-directory-edge-blocking",
        "class": "invalid_recipient",
        "dsn": "5.4.1",
        "text": r"recipient address rejected",
    },
    {
        "name": "invalid-recipient-status",
        "class": "invalid_recipient",
        "dsn": ["5.1.1", "5.1.0", "5.1.3", "5.1.4", "5.1.6"],
    },
    {
        "name": "invalid-recipient-text",
        "class": "invalid_recipient",
        "dsn": ["5.0", "5.1", "5.2", "5.3", "5.4", "5.5"],
        "text": r"no such (user|mailbox|recipient|address|account)|(user|recipient|mailbox"
        r"|address|account)( name)? (\S+ )?(is )?(unknown|not found|does not exist"
        r"|doesn't exist|unavailable|invalid|not valid)|unknown (user|recipient|mailbox|address)"
        r"|invalid (recipient|mailbox|address)|not a valid (recipient|mailbox|user|address)"
        r"|(doesn't|does not) have an? .{0,60}account|undeliverable address|unrouteable address"
        r"|addressee unknown|no mailbox here|recipient rejected|does not exist",
    },
    {"name": "mailbox-full-status", "class": "mailbox_full", "dsn": "x.2.2"},
    # --- content
    {
        "name": "malware-or-phishing",
        "class": "spam_content",
        "text": r"virus|malware|phish|\[PH\d+\]|harmful|suspicious (content|link|url|attachment)",
    },
    {
        "name": "spam-content",
        "class": "spam_content",
        "text": r"\bspam\b|junk mail|unsolicited|content (was )?(rejected|filter)|message content"
        r"|bulk mail|likely (unsolicited|spam|suspicious)|\[CS\d+\]",
    },
    # --- the network: DNS for now, connections, routing
    {"name": "dns-status", "class": "dns_failure", "dsn": "4.4.3"},
    {
        "name": "dns-text",
        "class": "dns_failure",
        "text": r"name service error|dns (error|failure|lookup|timeout)|servfail"
        r"|temporary (lookup|dns|name resolution) failure|lookup (failed|error)",
    },
    {"name": "connection-status", "class": "connection", "dsn": ["4.4.1", "4.4.2"]},
    {
        "name": "connection-text",
        "class": "connection",
        "text": r"connection (timed out|refused|reset|closed)|timed out while|lost connection"
        r"|no route to host|network is unreachable|tls (handshake|negotiation)|starttls"
        r"|certificate verif",
    },
    {"name": "routing-status", "class": "routing", "dsn": ["x.4.6", "x.3.5"]},
    {
        "name": "routing-text",
        "class": "routing",
        "text": r"loops back to myself|mail loop|routing loop|too many hops"
        r"|relay(ing)? (access )?(denied|not permitted|prohibited)|not permitted to relay"
        r"|unable to relay|we do not relay",
    },
    # --- everything else
    {"name": "policy-status", "class": "policy", "dsn": "x.7"},
    {
        "name": "policy-text",
        "class": "policy",
        "dsn": "5",
        "text": r"policy|not authori[sz]ed|administrative prohibition|access denied",
    },
    {"name": "temporary", "class": "transient", "dsn": "4"},
    {
        "name": "temporary-text",
        "class": "transient",
        "text": r"try again later|temporar(y|ily)|please retry",
    },
)
