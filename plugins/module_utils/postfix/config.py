"""Postfix main.cf and master.cf as data, derived from the bulkmail inventory model.

Every setting carries a one-line reason, so `main.cf` explains itself and other code (the
tuning model, per-provider transports, lanes) can add to it as a *layer* merged on top of
the base, instead of editing files. Templates only place these values.

Pure Python: no Ansible import. The model's own fields are checked by `parse_model`; what is
specific to Postfix (role options, layers) raises `PostfixConfigError`, a `ModelError` too:
every message names the field and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..model import Model, ModelError
from ..model.domains import Domain
from ..model.fields import check_keys, show

SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
# The sender guard (bulkmail sender-guard: an identity sends only as its own domains) first,
# then OpenDKIM: what the guard rejects is never signed.
DEFAULT_MILTERS = ("inet:127.0.0.1:8893", "inet:127.0.0.1:8891")
DEFAULT_SASL_PATH = "private/auth"
DEFAULT_SENDER_LOGIN_MAP = "texthash:/etc/postfix/sender_login"
DEFAULT_MESSAGE_SIZE_LIMIT = 26214400  # 25 MiB
# AUTH commands a client may send to 587 per minute (anvil_rate_time_unit): enough for an
# application that reconnects, a brake on guessing passwords. 0 turns the limit off.
DEFAULT_AUTH_RATE_LIMIT = 10
# Postfix's own "high" list (its default tls_high_cipherlist), reordered only, never widened:
# ECDHE before DHE, authenticated before anonymous, forward secrecy before static RSA, and
# every AEAD suite before every CBC one (the suites with a MAC: SHA1, SHA256, SHA384). With
# the server's order preferred (submission), a TLS 1.2 client that has an AEAD suite gets one.
HIGH_CIPHERLIST_AEAD_FIRST = "aNULL:-aNULL:HIGH:@STRENGTH:+DHE:+aNULL:+kRSA:+SHA1:+SHA256:+SHA384"

MASTER_TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")


class PostfixConfigError(ModelError):
    """A layer or option cannot make a safe Postfix configuration; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__("", message)


@dataclass(frozen=True)
class Setting:
    """One main.cf parameter (or one master.cf `-o` override) and why it has this value."""

    name: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "reason": self.reason}


@dataclass(frozen=True)
class MasterService:
    """One master.cf entry; `options` become `-o name=value`, `args` follow the command."""

    service: str
    type: str
    command: str
    reason: str
    private: str = "-"
    unpriv: str = "-"
    chroot: str = "-"
    wakeup: str = "-"
    maxproc: str = "-"
    options: tuple[Setting, ...] = ()
    args: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """master.cf identifies a service by its name and type."""
        return (self.service, self.type)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "type": self.type,
            "private": self.private,
            "unpriv": self.unpriv,
            "chroot": self.chroot,
            "wakeup": self.wakeup,
            "maxproc": self.maxproc,
            "command": self.command,
            "args": list(self.args),
            "options": [option.as_dict() for option in self.options],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SmtpHost:
    """What main.cf and master.cf are derived from: one smtp host in the model.

    `hostname`, `public_ipv4`, `ip_pools` and `trusted_networks` are the model's
    `bulkmail_hostname`, `bulkmail_public_ipv4`, `bulkmail_ip_pools` and
    `bulkmail_trusted_networks`; the rest are role options with safe defaults.
    """

    hostname: str
    public_ipv4: str
    ip_pools: Mapping[str, Sequence[str]]
    trusted_networks: Sequence[str]
    # The trusted networks that send as every domain (`domains: all`): the operator's own.
    operator_networks: Sequence[str] = ()
    milters: Sequence[str] = DEFAULT_MILTERS
    tls_cert_file: str = SNAKEOIL_CERT
    tls_key_file: str = SNAKEOIL_KEY
    sasl_path: str = DEFAULT_SASL_PATH
    sender_login_map: str = DEFAULT_SENDER_LOGIN_MAP
    message_size_limit: int = DEFAULT_MESSAGE_SIZE_LIMIT
    auth_rate_limit: int = DEFAULT_AUTH_RATE_LIMIT


# --------------------------------------------------------------------------- input

OPTION_KEYS = (
    "milters",
    "tls_cert_file",
    "tls_key_file",
    "sasl_path",
    "sender_login_map",
    "auth_rate_limit",
)


def smtp_host(
    model: Model, name: str, options: Mapping[str, Any] | None = None, *, size_limit: int
) -> SmtpHost:
    """The `SmtpHost` of inventory host `name`: the model's facts plus the role's options.

    `options` are the postfix role's `postfix_<key>` variables (OPTION_KEYS); each is checked
    here, its error naming the role variable.
    """
    options = dict(options or {})
    check_keys(options, OPTION_KEYS, "postfix role options")
    host = model.host(name)
    where = f"hostvars[{name!r}]"
    if host.hostname is None or host.public_ipv4 is None:
        raise ModelError(f"{where}.bulkmail_hostname", "an smtp host needs its FQDN and address")
    milters = _str_list(options.get("milters", DEFAULT_MILTERS), "postfix_milters")
    for index, milter in enumerate(milters):
        if not milter.startswith(("inet:", "unix:")):
            raise ModelError(
                f"postfix_milters[{index}]", f"{milter!r} must be inet:host:port or unix:/path"
            )
    return SmtpHost(
        hostname=host.hostname,
        public_ipv4=host.public_ipv4,
        ip_pools=model.ip_pools,
        trusted_networks=model.trusted_networks,
        operator_networks=model.operator_networks,
        milters=tuple(milters),
        tls_cert_file=_path(options.get("tls_cert_file", SNAKEOIL_CERT), "postfix_tls_cert_file"),
        tls_key_file=_path(options.get("tls_key_file", SNAKEOIL_KEY), "postfix_tls_key_file"),
        sasl_path=_nonempty(options.get("sasl_path", DEFAULT_SASL_PATH), "postfix_sasl_path"),
        sender_login_map=_nonempty(
            options.get("sender_login_map", DEFAULT_SENDER_LOGIN_MAP), "postfix_sender_login_map"
        ),
        message_size_limit=size_limit,
        auth_rate_limit=_count(
            options.get("auth_rate_limit", DEFAULT_AUTH_RATE_LIMIT), "postfix_auth_rate_limit"
        ),
    )


def _nonempty(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(name, f"{show(value)} is not a non-empty string")
    if any(c.isspace() for c in value):
        raise ModelError(name, f"{value!r} must not contain whitespace")
    return value


def _count(value: Any, name: str) -> int:
    """A whole number >= 0 (templating may hand it over as text)."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ModelError(name, f"{show(value)} is not a whole number >= 0 (0 turns it off)")
    return value


def _path(value: Any, name: str) -> str:
    path = _nonempty(value, name)
    if not path.startswith("/"):
        raise ModelError(name, f"{path!r} must be an absolute path")
    return path


def _str_list(value: Any, name: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ModelError(name, f"{show(value)} is not a list of strings")
    return [_nonempty(item, f"{name}[{index}]") for index, item in enumerate(value)]


# ------------------------------------------------------------------------- main.cf


def _join(items: Iterable[str], separator: str = ", ") -> str:
    return separator.join(items)


def _bool(flag: bool) -> str:
    return "yes" if flag else "no"


def pool_of(host: SmtpHost) -> str:
    """Name of the IP pool the host's public address belongs to (the first, if several)."""
    for pool, addresses in host.ip_pools.items():
        if host.public_ipv4 in addresses:
            return pool
    raise PostfixConfigError(
        f"postfix model: public_ipv4 {host.public_ipv4} of {host.hostname} is in no pool of "
        f"bulkmail_ip_pools; add it to a pool, or SPF would not cover the mail it sends"
    )


def mynetworks(host: SmtpHost) -> list[str]:
    """Loopback plus the trusted networks: the only clients that may relay without SASL."""
    networks = ["127.0.0.0/8"]
    networks += [n for n in host.trusted_networks if n not in networks]
    return networks


def postfix_main_cf(host: SmtpHost) -> list[Setting]:
    """The base main.cf for an smtp host, in file order, each setting with its reason."""
    pool = pool_of(host)
    milters = _join(host.milters)
    s = Setting
    return [
        s("compatibility_level", "3.6", "Postfix 3.6+ safe defaults, no legacy compatibility"),
        s("myhostname", host.hostname, "HELO name and Received host; matches the PTR record"),
        s("myorigin", "$myhostname", "local mail (cron, root) is from this host, not a domain"),
        s(
            "mydestination",
            "$myhostname, localhost",
            "only the host itself is local; sending domains are never delivered here",
        ),
        s(
            "mynetworks",
            " ".join(mynetworks(host)),
            "loopback and bulkmail_trusted_networks may relay on port 25 without SASL",
        ),
        s("inet_interfaces", "all", "port 25 and 587 on every address; restrictions guard relay"),
        s("inet_protocols", "ipv4", "the model has IPv4 sending addresses only (SPF, PTR)"),
        s(
            "smtp_bind_address",
            host.public_ipv4,
            f"mail leaves from this host's address in pool {pool!r}, covered by SPF and PTR",
        ),
        s(
            "smtp_bind_address_enforce",
            "yes",
            "defer rather than send from an address outside SPF when the bind address is gone",
        ),
        s("smtpd_banner", "$myhostname ESMTP", "do not advertise software and version"),
        s("biff", "no", "no comsat notifications for local mail"),
        s(
            "enable_long_queue_ids",
            "yes",
            "queue ids unique over time (not reused like the short hex ones), so the ingester's "
            "delivery events join on them across instances and days",
        ),
        s("alias_maps", "hash:/etc/aliases", "root and postmaster mail reaches an operator"),
        s("alias_database", "hash:/etc/aliases", "what newaliases builds"),
        s(
            "smtpd_relay_restrictions",
            _join(["permit_mynetworks", "permit_sasl_authenticated", "reject_unauth_destination"]),
            "no open relay: only trusted networks and authenticated clients may relay",
        ),
        s(
            "local_header_rewrite_clients",
            _join(["permit_mynetworks", "permit_sasl_authenticated"]),
            "our clients' mail gets a missing Message-ID and Date before it is signed",
        ),
        s("smtpd_helo_required", "yes", "clients must say who they are; every real MTA does"),
        s("disable_vrfy_command", "yes", "no address harvesting through VRFY"),
        s(
            "smtpd_forbid_bare_newline",
            "yes",
            "no SMTP smuggling (CVE-2023-51764); trusted networks are exempt by default",
        ),
        s("smtpd_sasl_auth_enable", "no", "no AUTH on port 25; submission (587) enables it"),
        s("smtpd_sasl_type", "dovecot", "Dovecot checks the submission accounts' passwords"),
        s(
            "smtpd_sasl_path",
            host.sasl_path,
            "Dovecot's auth socket, relative to Postfix's chroot /var/spool/postfix",
        ),
        s(
            "smtpd_sender_login_maps",
            host.sender_login_map,
            "which SASL account owns which sender domain (submission rejects the others)",
        ),
        s(
            "smtpd_client_auth_rate_limit",
            str(host.auth_rate_limit),
            "AUTH commands per client and minute on 587 (postfix_auth_rate_limit): password "
            "guessing is slowed",
        ),
        s(
            "smtpd_client_event_limit_exceptions",
            " ".join(["127.0.0.0/8", *host.operator_networks]),
            "only loopback and the operator's own networks (domains: all) skip the rate "
            "limits; a tenant's trusted network guesses another tenant's password no faster "
            "than a stranger (Postfix's default exempts every trusted network)",
        ),
        s("anvil_rate_time_unit", "60s", "the rate limits count per minute"),
        s("smtpd_tls_cert_file", host.tls_cert_file, "certificate offered with STARTTLS"),
        s("smtpd_tls_key_file", host.tls_key_file, "private key of that certificate"),
        s("smtpd_tls_security_level", "may", "STARTTLS offered on port 25; 587 requires it"),
        s("smtpd_tls_auth_only", "yes", "passwords never cross the network unencrypted"),
        s(
            "smtpd_tls_mandatory_protocols",
            ">=TLSv1.2",
            "where TLS is required (587), old protocol versions are refused",
        ),
        s(
            "smtpd_tls_protocols",
            ">=TLSv1.2",
            "port 25 too: Debian 12's OpenSSL refuses TLS 1.0 and 1.1 anyway; said, not implied",
        ),
        s(
            "smtpd_tls_mandatory_ciphers",
            "high",
            "587: high-grade suites only, AEAD first (tls_high_cipherlist)",
        ),
        s(
            "tls_high_cipherlist",
            HIGH_CIPHERLIST_AEAD_FIRST,
            "Postfix's high list reordered, not widened: ECDHE and AEAD first, CBC suites last",
        ),
        s("smtpd_tls_loglevel", "1", "log one line per TLS session, for audits"),
        s(
            "smtpd_tls_session_cache_database",
            "btree:${data_directory}/smtpd_scache",
            "resumed sessions save handshakes for clients that reconnect often",
        ),
        s(
            "smtp_tls_security_level",
            "may",
            "opportunistic TLS to receivers, as Gmail and Yahoo expect of bulk senders",
        ),
        s(
            "smtp_tls_CAfile",
            "/etc/ssl/certs/ca-certificates.crt",
            "logs say whether a receiver's certificate is trusted (read before chroot)",
        ),
        s(
            "smtp_tls_mandatory_protocols",
            ">=TLSv1.2",
            "where TLS is required (the relays), TLS 1.2 and 1.3 only",
        ),
        s(
            "smtp_tls_mandatory_ciphers",
            "high",
            "towards the relays high-grade suites only, AEAD offered first",
        ),
        s("smtp_tls_loglevel", "1", "log one line per TLS session, for TLS reporting"),
        s(
            "smtp_tls_session_cache_database",
            "btree:${data_directory}/smtp_scache",
            "resumed sessions save handshakes at high volume to the same providers",
        ),
        s(
            "smtpd_milters",
            milters,
            "the sender guard refuses mail an identity may not send, then OpenDKIM signs",
        ),
        s("non_smtpd_milters", "$smtpd_milters", "locally submitted mail is signed too"),
        s(
            "milter_default_action",
            "tempfail",
            "if the signer fails, mail is deferred: never sent unsigned, never lost",
        ),
        s(
            "message_size_limit",
            str(host.message_size_limit),
            "larger mail is refused by the big providers anyway; refuse it at submission",
        ),
    ]


# ----------------------------------------------------------------------- master.cf


def postfix_master_services(host: SmtpHost) -> list[MasterService]:
    """The base master.cf: Debian 12's daemons (no unused pipe transports) plus submission."""
    del host  # the base services are the same on every host; lanes add per-host layers
    m = MasterService
    o = Setting
    submission_options = (
        o("syslog_name", "postfix/submission", "submission lines are told apart in the log"),
        o("smtpd_tls_security_level", "encrypt", "no session without TLS"),
        o("smtpd_sasl_auth_enable", "yes", "clients log in with a submission account"),
        o("smtpd_tls_auth_only", "yes", "AUTH is offered only after STARTTLS"),
        o(
            "tls_preempt_cipherlist",
            "yes",
            "our order (AEAD first) wins: no CBC suite for a client that has an AEAD one",
        ),
        o(
            "smtpd_client_restrictions",
            _join(["permit_sasl_authenticated", "reject"], ","),
            "clients must authenticate, even from trusted networks",
        ),
        o(
            "smtpd_sender_restrictions",
            _join(["reject_sender_login_mismatch"], ","),
            "an account sends only as the domains it owns (smtpd_sender_login_maps)",
        ),
        o(
            "smtpd_relay_restrictions",
            _join(["permit_sasl_authenticated", "reject"], ","),
            "only authenticated clients relay through submission",
        ),
        o("milter_macro_daemon_name", "ORIGINATING", "the signer sees this mail as outgoing"),
    )
    return [
        m("smtp", "inet", "smtpd", "port 25: trusted networks relay, others reach local only",
          private="n", chroot="y"),
        m("submission", "inet", "smtpd", "port 587: SASL over TLS for applications",
          private="n", chroot="y", options=submission_options),
        m("pickup", "unix", "pickup", "picks up locally submitted mail",
          private="n", chroot="y", wakeup="60", maxproc="1"),
        m("cleanup", "unix", "cleanup", "canonicalises messages and calls the milters",
          private="n", chroot="y", maxproc="0"),
        m("qmgr", "unix", "qmgr", "the queue manager schedules deliveries",
          private="n", chroot="n", wakeup="300", maxproc="1"),
        m("tlsmgr", "unix", "tlsmgr", "TLS session cache and PRNG",
          chroot="y", wakeup="1000?", maxproc="1"),
        m("rewrite", "unix", "trivial-rewrite", "address rewriting and transport resolution",
          chroot="y"),
        m("bounce", "unix", "bounce", "non-delivery notices", chroot="y", maxproc="0"),
        m("defer", "unix", "bounce", "delay notices and defer logs", chroot="y", maxproc="0"),
        m("trace", "unix", "bounce", "delivery status reports", chroot="y", maxproc="0"),
        m("verify", "unix", "verify", "address verification cache", chroot="y", maxproc="1"),
        m("flush", "unix", "flush", "fast ETRN and sendmail -qR",
          private="n", chroot="y", wakeup="1000?", maxproc="0"),
        m("proxymap", "unix", "proxymap", "shared table lookups", chroot="n"),
        m("proxywrite", "unix", "proxymap", "shared table updates", chroot="n", maxproc="1"),
        m("smtp", "unix", "smtp", "delivers to the receivers' MX hosts", chroot="y"),
        m("relay", "unix", "smtp", "delivers to relayhost and next-hop relays", chroot="y",
          options=(o("syslog_name", "postfix/$service_name", "relay lines are told apart"),)),
        m("showq", "unix", "showq", "mailq and postqueue -p", private="n", chroot="y"),
        m("error", "unix", "error", "bounces mail for undeliverable destinations", chroot="y"),
        m("retry", "unix", "error", "defers mail for temporarily unavailable destinations",
          chroot="y"),
        m("discard", "unix", "discard", "drops mail deliberately", chroot="y"),
        m("local", "unix", "local", "delivers root and postmaster mail on this host",
          unpriv="n", chroot="n"),
        m("virtual", "unix", "virtual", "virtual mailbox delivery (unused, kept for postfix check)",
          unpriv="n", chroot="n"),
        m("lmtp", "unix", "lmtp", "LMTP delivery", chroot="y"),
        m("anvil", "unix", "anvil", "connection and rate counters", chroot="y", maxproc="1"),
        m("scache", "unix", "scache", "reuses SMTP connections to busy destinations",
          chroot="y", maxproc="1"),
        m("postlog", "unix-dgram", "postlogd", "logging when syslog is unavailable",
          private="n", chroot="n", maxproc="1"),
    ]  # fmt: skip


# -------------------------------------------------------------------------- layers


def settings_from_data(items: Any, where: str) -> list[tuple[Setting, bool]]:
    """Parse a layer of `{name, value, reason}` (or `{name, state: absent, reason}`) items.

    Returns `(setting, present)` pairs; `present` is False for removals.
    """
    if items is None:
        return []
    if isinstance(items, (str, Mapping)) or not isinstance(items, Iterable):
        raise PostfixConfigError(f"{where}: expected a list of {{name, value, reason}} items")
    parsed = []
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise PostfixConfigError(f"{here}: expected a mapping with name, value, reason")
        unknown = sorted(set(item) - {"name", "value", "reason", "state"})
        if unknown:
            raise PostfixConfigError(f"{here}: unknown key(s) {', '.join(unknown)}")
        name = item.get("name")
        if not isinstance(name, str) or not name or not name.replace("_", "a").isalnum():
            raise PostfixConfigError(f"{here}: name must be a Postfix parameter name")
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
            raise PostfixConfigError(
                f"{here} ({name}): reason is required, one line saying why this value"
            )
        state = item.get("state", "present")
        if state not in ("present", "absent"):
            raise PostfixConfigError(f"{here} ({name}): state must be present or absent")
        if state == "absent":
            parsed.append((Setting(name, "", reason.strip()), False))
            continue
        value = item.get("value")
        parsed.append((Setting(name, _value_text(value, f"{here} ({name})"), reason.strip()), True))
    return parsed


def _value_text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return _bool(value)
    if isinstance(value, (int, str)):
        text = str(value)
    elif isinstance(value, Iterable) and not isinstance(value, Mapping):
        text = _join(str(v) for v in value)
    else:
        raise PostfixConfigError(f"{where}: value must be a string, number, boolean or list")
    if "\n" in text:
        raise PostfixConfigError(f"{where}: value must be on one line")
    return text


def merge_settings(
    base: Sequence[Setting], *layers: Iterable[tuple[Setting, bool]]
) -> list[Setting]:
    """Merge layers over `base`: same name replaces in place, new names append, absent removes."""
    merged: dict[str, Setting] = {s.name: s for s in base}
    for layer in layers:
        for setting, present in layer:
            if present:
                merged[setting.name] = setting  # dict keeps the original position
            else:
                merged.pop(setting.name, None)
    return list(merged.values())


def services_from_data(items: Any, where: str) -> list[tuple[MasterService, bool]]:
    """Parse a layer of master.cf services (the keys of `MasterService.as_dict`, `state`)."""
    if items is None:
        return []
    if isinstance(items, (str, Mapping)) or not isinstance(items, Iterable):
        raise PostfixConfigError(f"{where}: expected a list of master.cf services")
    parsed = []
    columns = ("private", "unpriv", "chroot", "wakeup", "maxproc")
    allowed = {"service", "type", "command", "reason", "options", "args", "state", *columns}
    for index, item in enumerate(items):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise PostfixConfigError(f"{here}: expected a mapping with service, type, command")
        unknown = sorted(set(item) - allowed)
        if unknown:
            raise PostfixConfigError(f"{here}: unknown key(s) {', '.join(unknown)}")
        service = item.get("service")
        kind = item.get("type")
        if not isinstance(service, str) or not service or any(c.isspace() for c in service):
            raise PostfixConfigError(f"{here}: service must be a name without spaces")
        if kind not in MASTER_TYPES:
            raise PostfixConfigError(
                f"{here} ({service}): type must be one of {', '.join(MASTER_TYPES)}"
            )
        reason = item.get("reason")
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
            raise PostfixConfigError(f"{here} ({service}): reason is required, on one line")
        state = item.get("state", "present")
        if state not in ("present", "absent"):
            raise PostfixConfigError(f"{here} ({service}): state must be present or absent")
        if state == "absent":
            parsed.append((MasterService(service, kind, "-", reason.strip()), False))
            continue
        command = item.get("command")
        if not isinstance(command, str) or not command or any(c.isspace() for c in command):
            raise PostfixConfigError(f"{here} ({service}): command must be a daemon name")
        cols = {}
        for column in columns:
            text = str(item.get(column, "-"))
            if not text or any(c.isspace() for c in text):
                raise PostfixConfigError(f"{here} ({service}): {column} must be one word")
            cols[column] = text
        options = []
        for option, present in settings_from_data(item.get("options", []), f"{here}.options"):
            if not present:
                raise PostfixConfigError(f"{here}.options: state absent is not allowed here")
            options.append(option)
        args = _str_list(item.get("args", []), f"{here}.args")
        svc = MasterService(
            service, kind, command, reason.strip(), options=tuple(options), args=tuple(args),
            **cols,
        )  # fmt: skip
        parsed.append((_checked_service(svc, here), True))
    return parsed


def _checked_service(service: MasterService, where: str) -> MasterService:
    for option in service.options:
        # Empty is Postfix's way to clear a parameter for one service (`-o smtpd_milters=`).
        if any(c.isspace() for c in option.value):
            raise PostfixConfigError(
                f"{where} ({service.service}): -o {option.name} value {option.value!r} must be "
                f"one word (or empty, to clear it); separate list items with commas, no spaces"
            )
    return service


def merge_services(
    base: Sequence[MasterService], *layers: Iterable[tuple[MasterService, bool]]
) -> list[MasterService]:
    """Merge layers over `base` by (service, type): replace in place, append, or remove."""
    merged: dict[tuple[str, str], MasterService] = {s.key: s for s in base}
    for layer in layers:
        for service, present in layer:
            if present:
                merged[service.key] = service
            else:
                merged.pop(service.key, None)
    return list(merged.values())


def with_option(service: MasterService, option: Setting) -> MasterService:
    """A copy of `service` with `-o option` set (replacing an option of the same name)."""
    options = [o for o in service.options if o.name != option.name] + [option]
    return replace(service, options=tuple(options))


# ------------------------------------------------------------------ sender logins


def postfix_sender_logins(model: Model) -> list[tuple[str, str]]:
    """smtpd_sender_login_maps entries: `@domain` -> the accounts that may send as it.

    An account `user@example.com` owns its sending domain `example.com` and that domain's
    `return_path_domain` (VERP bounces are sent from there); parse_model has checked that
    every account belongs to a sending domain.
    """
    entries: list[tuple[str, str]] = []
    for domain in model.domains:
        accounts = [a.username for a in model.submission_accounts if a.domain == domain.name]
        if not accounts:
            continue
        entries.append((f"@{domain.name}", _join(accounts, ",")))
        if domain.return_path_domain and domain.return_path_domain != domain.name:
            entries.append((f"@{domain.return_path_domain}", _join(accounts, ",")))
    return entries


# ------------------------------------------------------------------------------ VERP

VERP_COMMAND_FILTER = "/etc/postfix/verp_command_filter.regexp"
RETURN_PATH_MAP = "/etc/postfix/return_path.regexp"


def _regexp_domain(name: str) -> str:
    return name.replace(".", r"\.")


def postfix_verp(domains: Sequence[Domain]) -> dict[str, Any]:
    """VERP return paths on each domain's `return_path_domain`, derived from `bulkmail_domains`.

    For a domain with a return-path domain, mail from `news@example.com` leaves with the
    envelope sender `news+alice=gmail.com@bounces.example.com`: the sender is moved to the
    return-path domain (`sender_canonical_maps`, envelope only: From stays, DKIM signs it), and
    `smtpd_command_filter` adds XVERP to its MAIL FROM, so a bounce names the recipient that
    failed without parsing the DSN. The return-path domain is a subdomain of the From domain,
    so SPF aligns in DMARC's relaxed mode. Domains without one are left alone.

    Returns the main.cf layer and the tables it names (`{path, lines}`; both empty of rules
    when no domain has a return-path domain, so the role's files stay in place).
    """
    verp = [d for d in domains
            if d.return_path_domain and d.return_path_domain != d.name]  # fmt: skip
    if not verp:
        return {"main_cf": [], "tables": []}
    names = "|".join(_regexp_domain(d.name) for d in verp)
    command_filter = [
        "# MAIL FROM of a sending domain with a return-path domain gets XVERP (never <>).",
        # POSIX regular expressions: no \s, and a backslash inside [...] is a literal.
        rf"/^(MAIL FROM:[[:space:]]*<[^<>@[:space:]]+@({names})>)(.*)$/ $1 XVERP$3",
    ]
    return_path = ["# The envelope sender moves to the domain's return-path domain."]
    return_path += [
        rf"/^([^@]+)@{_regexp_domain(d.name)}$/ ${{1}}@{d.return_path_domain}" for d in verp
    ]
    s = Setting
    main_cf = [
        s("smtpd_command_filter", f"regexp:{VERP_COMMAND_FILTER}",
          f"VERP for {', '.join(d.name for d in verp)}: bounces name the failed recipient"),
        s("smtpd_authorized_verp_clients", "0.0.0.0/0",
          "XVERP is added by the command filter, only for our own sending domains"),
        s("sender_canonical_maps", f"regexp:{RETURN_PATH_MAP}",
          "the envelope sender moves to the return-path domain, where bounces are taken"),
        s("sender_canonical_classes", "envelope_sender",
          "the From header stays: DKIM signs and DMARC aligns on it"),
    ]  # fmt: skip
    return {
        "main_cf": main_cf,
        "tables": [
            {"path": VERP_COMMAND_FILTER, "lines": command_filter},
            {"path": RETURN_PATH_MAP, "lines": return_path},
        ],
    }
