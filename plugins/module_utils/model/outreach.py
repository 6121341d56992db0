"""The outreach fleet in the model: tenants, warm-up schedules, sender accounts, engine settings.

    bulkmail_tenants:                      # clients sharing the stack
      - {name: acme, domains: [acme-mail.test, acme-news.test]}
    bulkmail_warmup_schedules:             # 'default' exists unless given
      slow: {curve: [10, 12, 14, 16, 18, 20]}
    bulkmail_sender_accounts:              # the outreach mailboxes
      - {address: anna@acme-mail.test, route: own, backup: relay:ses, first_day: 2026-11-20}
      - csv: accounts/acme.csv             # relative to the inventory; its text in the inputs
    bulkmail_outreach:                     # the engine's policies; absent keys keep its defaults
      health: {bounce_rate: 0.02}

A sending domain no tenant claims is its own tenant, named by the domain (as before tenants
existed), so the tenant map is always complete. An inventory entry and a CSV row are checked
by the one function `parse_sender_account`: the two doors cannot drift apart.

The decisions live in `..outreach` (the engine); this file turns model data into the engine's
types. `..outreach.warmup` imports the model back (its errors), and `..outreach.choice` imports
warmup, so warmup is imported as a module and read at call time, and choice where an Account
is made: whichever side is imported first, neither sees the other half-built.

Pure Python: no I/O, no Ansible import. The CSV's text is the caller's to read.
"""

from __future__ import annotations

import contextlib
import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..outreach import warmup as engine_warmup
from ..outreach.failover import OWN_SMTP, RELAY, FailoverPolicy, Route
from ..outreach.health import HealthPolicy
from ..outreach.rotation import Rotation
from .errors import ModelError, raise_collected
from .feedback import parse_address
from .fields import check_keys, show, single_line, str_list, whole_number

if TYPE_CHECKING:
    from ..outreach.choice import Account
    from ..outreach.warmup import WarmupSchedule

TENANTS_VARIABLE = "bulkmail_tenants"
SCHEDULES_VARIABLE = "bulkmail_warmup_schedules"
ACCOUNTS_VARIABLE = "bulkmail_sender_accounts"
OUTREACH_VARIABLE = "bulkmail_outreach"
VARIABLES = (TENANTS_VARIABLE, SCHEDULES_VARIABLE, ACCOUNTS_VARIABLE, OUTREACH_VARIABLE)

TENANT_KEYS = ("name", "domains")
# The suppression tables' word for "every tenant" (feedback/suppression.py GLOBAL).
RESERVED_TENANT = "global"
DEFAULT_SCHEDULE = "default"
ACCOUNT_KEYS = ("address", "tenant", "route", "backup", "warmup", "first_day")
CSV_KEY = "csv"
OWN_ROUTE = "own"
RELAY_PREFIX = "relay:"
# A CSV of 1,200 bad rows would bury the first problem: this many per file, then a count.
MAX_PROBLEMS_PER_FILE = 25
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_ROUTE_HINT = f"write {OWN_ROUTE} (the smtp tier) or {RELAY_PREFIX}<a bulkmail_relays name>"

# bulkmail_outreach: section -> inventory key -> (the engine's field, how the value is read).
DAYS = "days"
SECONDS = "seconds"
WHOLE = "whole"
RATE = "rate"
FACTOR = "factor"
OUTREACH_KEYS: dict[str, dict[str, tuple[str, str]]] = {
    "health": {
        "window_days": ("window", DAYS),
        "bounce_rate": ("bounce_rate", RATE),
        "complaint_rate": ("complaint_rate", RATE),
        "smtp_error_rate": ("smtp_error_rate", RATE),
        "min_sends": ("min_sends", WHOLE),
        "cooldown_days": ("cooldown", DAYS),
        "return_factor": ("return_factor", FACTOR),
        "return_days": ("return_days", WHOLE),
    },
    "rotation": {
        "period_days": ("period", DAYS),
        "cooldown_days": ("cooldown", DAYS),
    },
    "failover": {
        "refusals": ("refusals", WHOLE),
        "storm_failures": ("storm_count", WHOLE),
        "storm_seconds": ("storm_window", SECONDS),
        "backoff_seconds": ("backoff", SECONDS),
        "max_backoff_seconds": ("max_backoff", SECONDS),
    },
}
# The smallest value each kept key takes (a cooldown of 0 days: rotation off, no rest).
_MINIMUM = {"window_days": 1, "period_days": 1, "cooldown_days": 0, "return_days": 0}


@dataclass(frozen=True)
class OutreachSettings:
    """`bulkmail_outreach`: the engine's own policy types, its defaults where a key is absent."""

    health: HealthPolicy = field(default_factory=HealthPolicy)
    rotation: Rotation = field(default_factory=Rotation)
    failover: FailoverPolicy = field(default_factory=FailoverPolicy)


@dataclass(frozen=True)
class SenderAccount:
    """One outreach mailbox as the inventory (or its CSV) declares it.

    Not the engine's `Account` itself: the model keeps the schedule's name (what the
    database row and `bulkmail accounts` show, so a changed curve reaches every account that
    names it) and where the account was declared (for the import's messages). `account`
    gives the engine's type, which the dispatcher and the simulation decide with.
    """

    address: str
    tenant: str
    domain: str
    route: Route
    first_day: date
    warmup: str = DEFAULT_SCHEDULE
    schedule: WarmupSchedule | None = None  # the engine's schedule named `warmup`
    backup: Route | None = None
    source: str = ""

    @property
    def account(self) -> Account:
        """The engine's `outreach.choice.Account` (its name is the address)."""
        # Here, not at the top: choice imports warmup, which imports the model (see above).
        from ..outreach import choice

        return choice.Account(
            name=self.address,
            tenant=self.tenant,
            domain=self.domain,
            first_day=self.first_day,
            schedule=self.schedule or engine_warmup.WarmupSchedule(),
            route=self.route,
            backup=self.backup,
        )


@dataclass(frozen=True)
class AccountContext:
    """What an account is checked against: the sending domains' tenants (every domain, a
    declared tenant's or its own), the declared tenants' names, the relays, the schedules."""

    domain_tenants: Mapping[str, str]
    tenants: Sequence[str]
    relays: Sequence[str]
    schedules: Mapping[str, WarmupSchedule]


def _name(value: Any, path: str, what: str) -> str:
    text = single_line(value, path, f"a {what} name")
    if not _NAME.match(text):
        raise ModelError(
            path, f"{text!r} is not a {what} name: lower-case letters, digits and hyphens"
        )
    return text


def parse_tenants(
    raw: Any, domain_names: Sequence[str], path: str = TENANTS_VARIABLE
) -> dict[str, tuple[str, ...]]:
    """The declared tenants, name -> sending domains; every problem at once."""
    if raw is None:
        return {}
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise ModelError(
            path, f"{show(raw)} is not a list of tenants such as [{{name: acme, domains: [...]}}]"
        )
    errors: list[ModelError] = []
    tenants: dict[str, tuple[str, ...]] = {}
    owners: dict[str, str] = {}
    for index, entry in enumerate(raw):
        where = f"{path}[{index}]"
        try:
            if not isinstance(entry, Mapping):
                raise ModelError(where, f"{show(entry)} is not a mapping with name and domains")
            check_keys(entry, TENANT_KEYS, where)
            name = _name(entry.get("name"), f"{where}.name", "tenant")
            if name == RESERVED_TENANT:
                raise ModelError(
                    f"{where}.name",
                    f"{name!r} is reserved: the suppression tables' rows for every tenant; "
                    "choose another",
                )
            if name in tenants:
                raise ModelError(f"{where}.name", f"{name!r} is declared twice; merge the two")
            listed = entry.get("domains")
            if listed is None or listed == []:
                raise ModelError(f"{where}.domains", "missing; list the tenant's sending domains")
            domains: list[str] = []
            for position, domain in enumerate(str_list(listed, f"{where}.domains")):
                at = f"{where}.domains[{position}]"
                try:
                    if domain not in domain_names:
                        raise ModelError(
                            at,
                            f"{show(domain)} is not a sending domain of bulkmail_domains "
                            f"(known: {', '.join(domain_names) or 'none'})",
                        )
                    if domain in owners or domain in domains:
                        owner = owners.get(domain, name)
                        raise ModelError(
                            at,
                            f"{domain!r} already belongs to tenant {owner!r}; a domain belongs "
                            "to one tenant only",
                        )
                    domains.append(domain)
                except ModelError as error:
                    errors.append(error)
            tenants[name] = tuple(domains)
            owners.update({domain: name for domain in domains})
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return tenants


def all_tenants(
    declared: Mapping[str, Sequence[str]], domain_names: Sequence[str]
) -> dict[str, tuple[str, ...]]:
    """Every tenant: the declared ones, then each unclaimed sending domain as its own."""
    claimed = {domain for domains in declared.values() for domain in domains}
    tenants = {name: tuple(domains) for name, domains in declared.items()}
    tenants.update({domain: (domain,) for domain in domain_names if domain not in claimed})
    return tenants


def domain_tenants(tenants: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Sending domain -> its tenant's name."""
    return {domain: name for name, domains in tenants.items() for domain in domains}


def parse_warmup_schedules(raw: Any, path: str = SCHEDULES_VARIABLE) -> dict[str, WarmupSchedule]:
    """Named warm-up schedules (the engine's `WarmupSchedule`); `default` is the engine's
    default ramp unless the inventory gives its own."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ModelError(
            path, f"{show(raw)} is not a mapping of schedule names to {{start, step, ceiling}}"
        )
    errors: list[ModelError] = []
    schedules: dict[str, WarmupSchedule] = {}
    for name, settings in raw.items():
        try:
            key = _name(name, path, "schedule") if isinstance(name, str) else None
            if key is None:
                raise ModelError(path, f"{show(name)} is not a schedule name")
            schedules[key] = engine_warmup.parse_schedule(settings, f"{path}.{key}")
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    schedules.setdefault(DEFAULT_SCHEDULE, engine_warmup.WarmupSchedule())
    return schedules


def parse_route(value: Any, path: str, relays: Sequence[str]) -> Route:
    """`own` (the smtp tier) or `relay:<name>` (an entry of bulkmail_relays)."""
    text = single_line(value, path, f"a route: {_ROUTE_HINT}")
    if text == OWN_ROUTE:
        return OWN_SMTP
    if not text.startswith(RELAY_PREFIX):
        raise ModelError(path, f"{text!r} is not a route: {_ROUTE_HINT}")
    name = text[len(RELAY_PREFIX) :]
    if name not in relays:
        raise ModelError(
            path,
            f"{name!r} is not a relay of bulkmail_relays (known: {', '.join(relays) or 'none'})",
        )
    if name == OWN_SMTP.name:
        raise ModelError(
            path, f"a relay named {name!r} would be taken for the smtp tier's route; rename it"
        )
    return Route(name, RELAY)


def route_text(route: Route) -> str:
    """The route as the inventory writes it (`own`, `relay:ses`)."""
    return OWN_ROUTE if route == OWN_SMTP else f"{RELAY_PREFIX}{route.name}"


def parse_first_day(value: Any, path: str) -> date:
    """An ISO date; YAML hands an unquoted 2026-11-20 over as a date already."""
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = single_line(value, path, "a date such as 2026-11-20") if value is not None else None
    if text is None:
        raise ModelError(path, "missing; give the warm-up's day 0 as a date such as 2026-11-20")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ModelError(path, f"{text!r} is not a date such as 2026-11-20 (ISO 8601)") from None


def parse_sender_account(
    raw: Mapping[str, Any], where: str, context: AccountContext, *, separator: str = "."
) -> SenderAccount:
    """One account, from an inventory entry (`where` = `bulkmail_sender_accounts[3]`) or a CSV
    row (`where` = `accounts/acme.csv line 7`, `separator` ': '); every problem at once."""
    check_keys(raw, ACCOUNT_KEYS, where)
    errors: list[ModelError] = []

    def at(key: str) -> str:
        return f"{where}{separator}{key}"

    def given(key: str) -> Any:
        value = raw.get(key)
        return None if isinstance(value, str) and not value.strip() else value

    address = domain = tenant = route = backup = first_day = schedule = None
    try:
        if given("address") is None:
            raise ModelError(at("address"), "missing; give the mailbox, e.g. anna@acme-mail.test")
        # Lower-case whole: one key for the health map, the database and the policy service
        # (which normalises envelope senders so); providers treat local parts so too.
        address = parse_address(given("address"), at("address")).lower()
        domain = address.rpartition("@")[2]
        owner = context.domain_tenants.get(domain)
        if owner is None:
            raise ModelError(
                at("address"),
                f"{domain!r} is not a sending domain of bulkmail_domains; an account sends as "
                "its own domain, signed and aligned",
            )
        tenant = owner
        named = given("tenant")
        if named is not None and named != owner:
            text = show(named)
            if named not in context.tenants and named not in context.domain_tenants.values():
                known = ", ".join(context.tenants) or "none"
                problem = f"{text} is not a tenant of bulkmail_tenants (known: {known})"
            else:
                problem = (
                    f"{text} does not own {domain!r}, tenant {owner!r} does; an account sends "
                    "for its domain's tenant: give that one, or leave tenant out"
                )
            raise ModelError(at("tenant"), problem)
    except ModelError as error:
        errors.append(error)
    try:
        if given("route") is None:
            raise ModelError(at("route"), f"missing; {_ROUTE_HINT}")
        route = parse_route(given("route"), at("route"), context.relays)
    except ModelError as error:
        errors.append(error)
    try:
        if given("backup") is not None:
            backup = parse_route(given("backup"), at("backup"), context.relays)
            if route is not None and backup == route:
                raise ModelError(
                    at("backup"),
                    f"{route_text(backup)} is the route itself; a backup is another route "
                    "(or leave it out)",
                )
    except ModelError as error:
        errors.append(error)
    warmup = given("warmup")
    if warmup is None:
        warmup = DEFAULT_SCHEDULE
    schedule = context.schedules.get(warmup) if isinstance(warmup, str) else None
    if schedule is None:
        errors.append(
            ModelError(
                at("warmup"),
                f"{show(warmup)} is not a schedule of bulkmail_warmup_schedules "
                f"(known: {', '.join(context.schedules) or 'none'})",
            )
        )
    try:
        first_day = parse_first_day(given("first_day"), at("first_day"))
    except ModelError as error:
        errors.append(error)
    raise_collected(errors)
    if address is None or domain is None or tenant is None or route is None or first_day is None:
        raise ModelError(where, "incomplete")  # not reached: each has its error above
    return SenderAccount(
        address, tenant, domain, route, first_day, str(warmup), schedule, backup, where
    )


def read_accounts_csv(text: Any, where: str) -> list[tuple[str, dict[str, str] | ModelError]]:
    """The rows of an accounts CSV (RFC 4180, UTF-8, a header row), each with its location
    (`accounts/acme.csv line 7`) and its non-empty cells by column, or the row's problem (too
    many cells, broken quoting: the file is read no further); a bad header raises."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as error:
            problem = f"is not UTF-8 (byte {error.start}); save it as UTF-8"
            raise ModelError(where, problem) from None
    if not isinstance(text, str):
        raise ModelError(where, f"{show(text)} is not the text of a CSV file")
    reader = csv.reader(text.removeprefix("\ufeff").splitlines(keepends=True), strict=True)
    rows: list[tuple[str, dict[str, str] | ModelError]] = []
    columns: list[str] | None = None
    try:
        for cells in reader:
            line = f"{where} line {reader.line_num}"
            if not any(cell.strip() for cell in cells):
                continue
            if columns is None:
                columns = [cell.strip().lower() for cell in cells]
                unknown = [name for name in columns if name not in ACCOUNT_KEYS]
                twice = sorted({name for name in columns if columns.count(name) > 1})
                if unknown or twice:
                    raise ModelError(
                        line,
                        f"header: unknown column(s) {', '.join(unknown)}; known are "
                        f"{', '.join(ACCOUNT_KEYS)}"
                        if unknown
                        else f"header: column(s) {', '.join(twice)} given twice",
                    )
                missing = [key for key in ("address", "route", "first_day") if key not in columns]
                if missing:
                    raise ModelError(line, f"header: no {', '.join(missing)} column")
                continue
            if len(cells) > len(columns):
                problem = (
                    f"{len(cells)} cells for {len(columns)} columns; quote a cell that holds a "
                    'comma ("...")'
                )
                rows.append((line, ModelError(line, problem)))
                continue
            values = dict(zip(columns, (cell.strip() for cell in cells), strict=False))
            rows.append((line, {name: value for name, value in values.items() if value}))
    except csv.Error as error:
        line = f"{where} line {reader.line_num}"
        rows.append((line, ModelError(line, f"not CSV: {error}")))
    if columns is None and not rows:
        raise ModelError(
            where, f"is empty; the first line names the columns: {','.join(ACCOUNT_KEYS)}"
        )
    return rows


def parse_accounts_csv(text: Any, where: str, context: AccountContext) -> list[SenderAccount]:
    """The accounts of a CSV file's `text`, each row checked by `parse_sender_account`, the
    problems named `accounts/acme.csv line 7: route: ...` (at most MAX_PROBLEMS_PER_FILE)."""
    accounts: list[SenderAccount] = []
    errors: list[ModelError] = []
    bad_rows = 0
    for line, row in read_accounts_csv(text, where):
        try:
            if isinstance(row, ModelError):
                raise row
            accounts.append(parse_sender_account(row, line, context, separator=": "))
        except ModelError as error:
            bad_rows += 1
            if bad_rows <= MAX_PROBLEMS_PER_FILE:
                errors.append(error)
    if bad_rows > MAX_PROBLEMS_PER_FILE:
        errors.append(
            ModelError(where, f"{bad_rows - MAX_PROBLEMS_PER_FILE} more rows with problems")
        )
    raise_collected(errors)
    return accounts


def csv_paths(raw: Any) -> list[str]:
    """The CSV paths `bulkmail_sender_accounts` names, for the caller that reads the files."""
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        return []
    return [
        entry[CSV_KEY]
        for entry in raw
        if isinstance(entry, Mapping) and isinstance(entry.get(CSV_KEY), str)
    ]


def parse_sender_accounts(
    raw: Any,
    context: AccountContext,
    files: Mapping[str, Any],
    path: str = ACCOUNTS_VARIABLE,
) -> tuple[SenderAccount, ...]:
    """Every account of the inventory's entries and of the CSV files they import (`files`:
    path -> text, as the caller read them); an address declared twice anywhere is an error."""
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes, Mapping)) or not isinstance(raw, Sequence):
        raise ModelError(path, f"{show(raw)} is not a list of accounts and {{csv: FILE}} entries")
    errors: list[ModelError] = []
    accounts: list[SenderAccount] = []
    imported: dict[str, str] = {}
    for index, entry in enumerate(raw):
        where = f"{path}[{index}]"
        try:
            if not isinstance(entry, Mapping):
                raise ModelError(where, f"{show(entry)} is not an account nor {{csv: FILE}}")
            if CSV_KEY not in entry:
                accounts.append(parse_sender_account(entry, where, context))
                continue
            check_keys(entry, (CSV_KEY,), where)
            name = single_line(entry[CSV_KEY], f"{where}.csv", "a path relative to the inventory")
            if name.startswith("/"):
                raise ModelError(
                    f"{where}.csv", f"{name!r} is absolute; give it relative to the inventory"
                )
            if name in imported:
                raise ModelError(f"{where}.csv", f"{name!r} is imported by {imported[name]} too")
            imported[name] = where
            text = files.get(name)
            if text is None:
                raise ModelError(
                    f"{where}.csv",
                    f"the text of {name!r} is not in the model's inputs (inputs['files']): "
                    "playbooks/validate.yml reads each file named here, relative to the "
                    "inventory's directory; check that the file exists there",
                )
            accounts += parse_accounts_csv(text, name, context)
        except ModelError as error:
            errors.append(error)
    seen: dict[str, str] = {}
    for account in accounts:
        if account.address in seen:
            separator = "." if account.source.startswith(f"{path}[") else ": "
            errors.append(
                ModelError(
                    f"{account.source}{separator}address",
                    f"{account.address!r} is declared at {seen[account.address]} already; "
                    "an address is one account",
                )
            )
        else:
            seen[account.address] = account.source
    raise_collected(errors)
    return tuple(accounts)


def _number(raw: Mapping[str, Any], key: str, path: str, kind: str) -> Any:
    where = f"{path}.{key}"
    if kind in (WHOLE, DAYS, SECONDS):
        value = whole_number(raw, key, path, None, _MINIMUM.get(key, 1))
        if kind == DAYS:
            return timedelta(days=value)
        return timedelta(seconds=value) if kind == SECONDS else value
    value = raw[key]
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelError(where, f"{show(value)} is not a number such as 0.03")
    if kind == RATE and not 0 < value < 1:
        raise ModelError(where, f"{value} is not a rate between 0 and 1 (0.03 is 3%)")
    if kind == FACTOR and not 0 < value <= 1:
        raise ModelError(where, f"{value} is not a share of the quota in (0, 1], e.g. 0.5")
    return float(value)


def parse_outreach(raw: Any, path: str = OUTREACH_VARIABLE) -> OutreachSettings:
    """`bulkmail_outreach`: each section's given keys over the engine's defaults."""
    if raw is None:
        return OutreachSettings()
    if not isinstance(raw, Mapping):
        raise ModelError(path, f"{show(raw)} is not a mapping with health, rotation, failover")
    check_keys(raw, tuple(OUTREACH_KEYS), path)
    errors: list[ModelError] = []
    defaults = OutreachSettings()
    sections: dict[str, Any] = {}
    for section, keys in OUTREACH_KEYS.items():
        where = f"{path}.{section}"
        given = raw.get(section)
        try:
            if given is None:
                continue
            if not isinstance(given, Mapping):
                raise ModelError(where, f"{show(given)} is not a mapping of {', '.join(keys)}")
            check_keys(given, tuple(keys), where)
            changes: dict[str, Any] = {}
            for key, (target, kind) in keys.items():
                if key in given:
                    try:
                        changes[target] = _number(given, key, where, kind)
                    except ModelError as error:
                        errors.append(error)
            try:
                sections[section] = replace(getattr(defaults, section), **changes)
            except ValueError as error:
                raise ModelError(where, f"the values do not agree: {error}") from None
        except ModelError as error:
            errors.append(error)
    raise_collected(errors)
    return OutreachSettings(**sections)
