"""The feedback loop in the running lab: what comes back lands in PostgreSQL, and suppression
holds at send time.

- the smtp tier takes mail for the feedback addresses, and nothing else of our domains;
- a campaign over the lab's providers with `unknown-*`, `full-*`, `defer-*`, `bounce-*` and
  `complain-*` recipients: one final event per message and recipient, though the ingester is
  killed (-9) mid-campaign and the database is down for 60 s; every 5.1.1 (SMTP-time and DSN)
  and every complainer is suppressed for the tenant, and a second campaign to the same list
  is refused for exactly those, with the reason;
- the providers' DMARC aggregate reports arrive and `bulkmail dmarc-report` shows every lab
  source aligned.

`LAB_CAMPAIGN` sets the campaign's size (1,000 by default).
"""

from __future__ import annotations

import json
import os
import shlex
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import lab_host

SMTP1_INTERNAL = "10.25.0.10"
SMTP1_PUBLIC = "198.51.100.10"
BULK_PORT = 2525
SIZE = int(os.environ.get("LAB_CAMPAIGN", "1000"))
OUTAGE_SECONDS = 60
SENDER = "news@example.test"
TENANT = "example.test"
READER = "/etc/bulkmail/policy-db.conf"


@pytest.fixture(scope="module")
def db1() -> Any:
    return lab_host("db1")


def sql(db1: Any, query: str) -> list[list[str]]:
    out = db1.check_output("runuser -u postgres -- psql -d bulkmail -AtXq -F '|' -c %s", query)
    return [line.split("|") for line in out.splitlines() if line]


def one(db1: Any, query: str) -> int:
    return int(sql(db1, query)[0][0])


def wait_for(check: Callable[[], Any], timeout: float, what: str, every: float = 2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def recipients(tag: str, size: int) -> dict[str, list[str]]:
    """The campaign's list, by what the providers do with each recipient."""
    kinds = {"unknown": 0.06, "bounce": 0.04, "complain": 0.04, "full": 0.03, "defer": 0.01}
    domains = ("gmail.test", "outlook.test", "yahoo.test")
    out: dict[str, list[str]] = {kind: [] for kind in (*kinds, "accept")}
    n = 0
    for kind, share in kinds.items():
        for _ in range(max(3, int(size * share))):
            out[kind].append(f"{kind}-{n:05d}-{tag}@{domains[n % len(domains)]}")
            n += 1
    while n < size:
        out["accept"].append(f"r{n:05d}-{tag}@{domains[n % len(domains)]}")
        n += 1
    return out


SENDERS = 4  # connections at once: a campaign sender keeps several open


def send(client: Any, rcpts: list[str], subject: str, out: str, background: bool) -> Any:
    """One message per recipient to the bulk lane, from the operator's network (`domains:
    all`), over SENDERS connections at once: the path a campaign sender takes. Each
    connection's lines go to /tmp/<out>.<n>.jsonl (sent_lines reads them all)."""
    client.run("rm -f /tmp/%s.*.jsonl", out)
    parts = [rcpts[i::SENDERS] for i in range(SENDERS) if rcpts[i::SENDERS]]
    commands = [
        f"python3 /opt/lab-client/send_mail.py --host {SMTP1_INTERNAL} --port {BULK_PORT} "
        f"--from {SENDER} --to {','.join(part)} --count {len(part)} "
        f"--subject {shlex.quote(subject)} >/tmp/{out}.{n}.jsonl 2>/tmp/{out}.{n}.err"
        for n, part in enumerate(parts)
    ]
    script = " & ".join(commands) + " & wait"
    if background:
        return client.run("nohup sh -c %s >/dev/null 2>&1 &", script)
    return client.run("sh -c %s", script)


def sent_lines(client: Any, out: str) -> list[dict[str, Any]]:
    text = client.run("cat /tmp/%s.*.jsonl", out).stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def campaign(db1: Any, client: Any, smtp1: Any, providers: Any) -> Iterator[dict[str, Any]]:
    """The first campaign, with a kill -9 of the ingester and a database outage in it."""
    tag = uuid.uuid4().hex[:6]
    listed = recipients(tag, SIZE)
    everyone = [r for kind in listed.values() for r in kind]
    half = len(everyone) // 2
    started = time.time()
    first = everyone[:half]
    second = everyone[half:]
    send(client, first, f"campaign {tag} a", f"c1a-{tag}", background=True)
    wait_for(lambda: len(sent_lines(client, f"c1a-{tag}")) >= len(first) // 2, 120,
             "half of the campaign's first part")  # fmt: skip
    killed = smtp1.run("systemctl kill -s KILL bulkmail-ingest")
    assert killed.rc == 0, killed.stderr
    wait_for(lambda: len(sent_lines(client, f"c1a-{tag}")) >= len(first), 180,
             "the campaign's first part")  # fmt: skip
    # The database goes away while the second part is sent: mail must keep flowing.
    db1.check_output("systemctl stop postgresql@15-main")
    down_at = time.monotonic()
    try:
        sent_during = send(client, second, f"campaign {tag} b", f"c1b-{tag}", background=False)
        assert sent_during.rc in (0, 1), sent_during.stderr
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
    finally:
        db1.check_output("systemctl start postgresql@15-main")
    # The feedback pipe kept what arrived during the outage queued (exit 75): retry it now.
    smtp1.run("postqueue -f")
    print(f"campaign: {len(everyone)} messages sent in {time.time() - started:.0f} s, "
          f"the database down {OUTAGE_SECONDS} s of it")  # fmt: skip
    yield {
        "tag": tag,
        "listed": listed,
        "everyone": everyone,
        "started": started,
        "during": sent_lines(client, f"c1b-{tag}"),
        "sent": sent_lines(client, f"c1a-{tag}") + sent_lines(client, f"c1b-{tag}"),
        "ingest_restarts": smtp1.check_output(
            "systemctl show -p NRestarts --value bulkmail-ingest"
        ),
    }


PROBE = (
    "import smtplib, sys\n"
    "s = smtplib.SMTP(sys.argv[1], 25, timeout=20)\n"
    "s.ehlo('mx.gmail.test')\n"
    "s.mail('')\n"
    "code, text = s.rcpt(sys.argv[2])\n"
    "print(code, text.decode())\n"
    "s.rset()\n"
    "s.quit()\n"
)


def test_only_the_feedback_addresses_are_received(providers: Any) -> None:
    """Tried from the providers' network as a receiver would: the feedback addresses are
    taken (null sender, as DSNs come), any other address of our domains is refused."""
    taken = [
        "dmarc@agency.test",
        "tls-reports@example.test",
        "news+alice=gmail.test@bounces.example.test",
        "postmaster@example.test",
        "abuse@example.test",
    ]
    refused = ["someone@example.test", "news@example.test", "x@unrelated.test"]
    for rcpt, expect in [(r, True) for r in taken] + [(r, False) for r in refused]:
        out = providers.run("python3 -c %s %s %s", PROBE, SMTP1_PUBLIC, rcpt)
        assert out.rc == 0, out.stderr
        code = int(out.stdout.split()[0])
        if expect:
            assert code == 250, f"{rcpt}: {out.stdout}"
        else:
            assert code >= 550, f"{rcpt} was accepted: {out.stdout}"


# What each login role must not do: every statement below is refused at planning time
# (permission denied), whatever rows it would touch. The campaign below proves what they may.
DENIED = {
    "bulkmail_ingest": [
        "DELETE FROM suppression WHERE false",
        "UPDATE suppression SET note = note WHERE false",
        "DELETE FROM delivery_events WHERE false",
        "UPDATE delivery_events SET final = final WHERE false",
        "TRUNCATE bounces",
        "SELECT count(*) FROM messages",
    ],
    "bulkmail_reader": [
        "INSERT INTO soft_bounces (tenant, address, occurred_at) VALUES ('x', 'x', now())",
        "DELETE FROM suppression WHERE false",
    ],
    "bulkmail_unsubscribe": [
        "SELECT count(*) FROM suppression",
        "DELETE FROM suppression WHERE false",
    ],
}
# The connection file each program on an smtp host reads, and the role it must name.
CONNECTION_FILES = {
    "/etc/bulkmail/ingest-db.conf": "bulkmail_ingest",
    "/etc/bulkmail/feedback-db.conf": "bulkmail_ingest",
    "/etc/bulkmail/policy-db.conf": "bulkmail_reader",
    "/etc/bulkmail/retention-db.conf": "bulkmail_app",
}


def test_each_database_role_does_no_more_than_its_part(db1: Any, smtp1: Any) -> None:
    for role, statements in DENIED.items():
        for statement in statements:
            run = db1.run(
                "runuser -u postgres -- psql -d bulkmail -AtXq -v ON_ERROR_STOP=1 -c %s",
                f"BEGIN; SET LOCAL ROLE {role}; {statement}; ROLLBACK",
            )
            assert run.rc != 0 and "permission denied" in run.stderr, (
                f"{role} may: {statement} ({run.stderr.strip() or 'no error'})"
            )
    for path, role in CONNECTION_FILES.items():
        # Only the user= field is read: the file's password never reaches the test's output.
        user = smtp1.check_output("grep -o 'user=[a-z_]*' %s", path)
        assert user == f"user={role}", f"{path}: {user}"


def test_every_message_has_exactly_one_final_event(campaign: dict[str, Any], db1: Any) -> None:
    tag = campaign["tag"]
    accepted = [line for line in campaign["sent"] if line.get("accepted")]
    assert len(accepted) == len(campaign["everyone"]), "the lane refused campaign mail"
    during = campaign["during"]
    assert len(during) == len(campaign["everyone"]) - len(campaign["everyone"]) // 2
    assert all(line.get("accepted") for line in during), (
        "mail stopped flowing while the database was down"
    )
    settled = (
        len(campaign["everyone"])
        - len(campaign["listed"]["defer"])
        - len(campaign["listed"]["full"])
    )

    def finals() -> int:
        return one(
            db1,
            "SELECT count(DISTINCT (message_id, recipient)) FROM delivery_events "
            f"WHERE final AND recipient LIKE '%-{tag}@%'",
        )

    count = wait_for(lambda: finals() >= settled and finals(), 240,
                     f"final events for {settled} settled recipients")  # fmt: skip
    doubles = sql(
        db1,
        "SELECT message_id, recipient, count(*) FROM delivery_events "
        f"WHERE final AND recipient LIKE '%-{tag}@%' GROUP BY 1, 2 HAVING count(*) > 1",
    )
    print(f"final_events: {count} for {len(campaign['everyone'])} messages; "
          f"ingester restarts: {campaign['ingest_restarts']}")  # fmt: skip
    assert doubles == [], f"more than one final event: {doubles[:5]}"
    assert count == settled
    # Deferred recipients have their deferrals and no final event yet.
    for rcpt in campaign["listed"]["full"]:
        assert one(db1, f"SELECT count(*) FROM delivery_events WHERE recipient = '{rcpt}' "
                   "AND status = 'deferred'") >= 1, rcpt  # fmt: skip
    assert int(campaign["ingest_restarts"]) >= 1, "the ingester was not restarted after kill -9"


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def suppressed(db1: Any, tag: str) -> dict[str, str]:
    rows = sql(
        db1,
        f"SELECT address, reason FROM suppression WHERE tenant = '{TENANT}' "
        f"AND address LIKE '%-{tag}@%'",
    )
    return {address: reason for address, reason in rows}


def test_bounces_and_complaints_are_suppressed(campaign: dict[str, Any], db1: Any) -> None:
    tag, listed = campaign["tag"], campaign["listed"]
    # SMTP-time 5.1.1 (Google, Yahoo; Microsoft's 5.5.0 "mailbox unavailable" too).
    unknown_511 = {r for r in listed["unknown"] if not r.endswith("@outlook.test")}
    expected = unknown_511 | set(listed["bounce"]) | set(listed["complain"])

    def caught() -> dict[str, str]:
        found = suppressed(db1, tag)
        return found if expected <= set(found) else {}

    found = wait_for(caught, 240, "suppression of every 5.1.1 and complainer", every=3)
    for rcpt in listed["complain"]:
        assert found[rcpt] == "complaint", rcpt
    for rcpt in unknown_511 | set(listed["bounce"]):
        assert found[rcpt] == "hard_bounce", rcpt
    assert not set(found) & set(listed["accept"]), "an accepted recipient was suppressed"
    # The DSNs and ARF reports came in through the feedback addresses.
    dsns = one(db1, f"SELECT count(*) FROM bounces WHERE feedback_message IS NOT NULL "
               f"AND recipient LIKE 'bounce-%-{tag}@%'")  # fmt: skip
    complaints = one(db1, f"SELECT count(*) FROM complaints WHERE recipient LIKE '%-{tag}@%'")
    assert dsns >= len(listed["bounce"]) and complaints >= len(listed["complain"])
    # A bounce is counted once: from the log (SMTP time) or from the DSN, never both (our
    # own notices to our VERP addresses are stored without a bounce row).
    doubled = sql(db1, f"SELECT recipient, count(*) FROM bounces WHERE recipient LIKE "
                  f"'%-{tag}@%' GROUP BY recipient HAVING count(*) > 1")  # fmt: skip
    assert not doubled, f"{len(doubled)} recipients bounced twice, e.g. {doubled[:3]}"
    # One tenant's suppression is not another's.
    assert one(db1, f"SELECT count(*) FROM suppression WHERE address LIKE '%-{tag}@%' "
               f"AND tenant NOT IN ('{TENANT}')") == 0  # fmt: skip
    reasons = {reason: list(found.values()).count(reason) for reason in set(found.values())}
    print(f"suppressed: {len(found)} {reasons}; dsn_rows: {dsns}; complaint_rows: {complaints}")


def test_bulkmail_report_counts_the_campaign(campaign: dict[str, Any], smtp1: Any) -> None:
    out = smtp1.check_output(
        "/opt/bulkmail/bin/bulkmail report --database-file %s --since 1h --tenant %s --json",
        READER, TENANT,
    )  # fmt: skip
    report = json.loads(out)
    listed = campaign["listed"]
    assert report["statuses"]["sent"] >= len(listed["accept"]) + len(listed["bounce"]) + len(
        listed["complain"]
    )
    assert report["statuses"]["bounced"] >= len(listed["unknown"])
    assert report["complaints"] >= len(listed["complain"])
    assert report["suppressed"]["complaint"].get(TENANT, 0) >= len(listed["complain"])
    print("report:", json.dumps(report, sort_keys=True))


def test_a_second_campaign_is_refused_for_exactly_the_suppressed(
    campaign: dict[str, Any], db1: Any, client: Any, smtp1: Any
) -> None:
    tag = campaign["tag"]
    gone = suppressed(db1, tag)
    assert gone, "nothing suppressed yet"
    time.sleep(4)  # the policy service reads new rows every 2 s
    result = send(client, campaign["everyone"], f"campaign {tag} again", f"c2-{tag}",
                  background=False)  # fmt: skip
    lines = json_lines(result.stdout) or sent_lines(client, f"c2-{tag}")
    refused = {line["to"] if isinstance(line["to"], str) else line["to"][0]: line
               for line in lines if not line.get("accepted")}  # fmt: skip
    assert set(refused) == set(gone), (
        f"refused {len(refused)}, suppressed {len(gone)}: {sorted(set(refused) ^ set(gone))[:5]}"
    )
    for rcpt, line in refused.items():
        text = line["error"]["text"]
        assert (
            line["error"]["code"] == 554
            and "5.7.1" in text
            and gone[rcpt].split("_")[0] in (text.replace(" ", "_"))
        ), f"{rcpt}: {text}"
    logged = smtp1.check_output(
        "journalctl -u bulkmail-policy --since '-10min' --no-pager -o cat | grep -c %s || true",
        tag,
    )
    assert int(logged.strip() or 0) >= len(gone), "the refusals are not in the policy log"
    print(f"second_campaign_refused: {len(refused)} of {len(lines)}, all suppressed")


def test_dmarc_reports_arrive_and_show_alignment(
    campaign: dict[str, Any], db1: Any, providers: Any, smtp1: Any
) -> None:
    before = one(db1, "SELECT count(*) FROM dmarc_reports WHERE domain = 'example.test'")
    out = providers.run("python3 -m bulkmail_providers dmarc-reports")
    assert out.rc == 0, out.stdout + out.stderr
    wait_for(lambda: one(db1, "SELECT count(*) FROM dmarc_reports "
                         "WHERE domain = 'example.test'") > before, 120,
             "the providers' aggregate reports in the database")  # fmt: skip
    result = smtp1.run(
        "/opt/bulkmail/bin/bulkmail dmarc-report example.test --database-file %s --json", READER
    )
    summary = json.loads(result.stdout)
    assert summary["messages"] > 0 and summary["sources"], summary
    for source in summary["sources"]:
        assert source["dmarc_pass_rate"] == 1.0, source
        assert source["dkim_aligned_rate"] == 1.0, source
    assert summary["safe"], summary["reason"]
    print("dmarc_report:", json.dumps(summary["sources"]))


WEB1_PUBLIC = "198.51.100.80"
# An HTTPS POST from the providers' container (no curl there): the lab's certificate is
# self-signed, the Host header picks the unsubscribe server.
ONE_CLICK_POST = (
    "import http.client, ssl, sys\n"
    "host, path = sys.argv[2].split('/', 1)\n"
    "c = http.client.HTTPSConnection(sys.argv[1], 443, timeout=20,"
    " context=ssl._create_unverified_context())\n"
    "c.request('POST', '/' + path, body='List-Unsubscribe=One-Click', headers={'Host': host,"
    " 'Content-Type': 'application/x-www-form-urlencoded'})\n"
    "print(c.getresponse().status, end='')\n"
)


def submit_with_unsubscribe(
    smtp1: Any, received: Callable[..., list[Any]], rcpt: str, subject: str, campaign: str
) -> dict[str, Any]:
    """One message through `bulkmail submit` on the bulk lane with the one-click link and the
    mailto: address; what the provider received of it."""
    message = (
        f"From: news@example.test\nTo: {rcpt}\nSubject: {subject}\n"
        f"Date: Mon, 23 Nov 2026 12:00:00 +0000\nMessage-ID: <{subject}@example.test>\n"
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nHello.\n"
    )
    run = smtp1.run(
        f"printf %s {shlex.quote(message)} | bulkmail submit --lane bulk "
        f"--from news@example.test --to {rcpt} --campaign {campaign} "
        "--unsubscribe-keys-file /etc/bulkmail/unsubscribe-keys "
        "--unsubscribe-url https://unsubscribe.example.test/u/ "
        "--unsubscribe-mailto unsubscribe@bounces.example.test"
    )
    assert run.rc == 0, run.stdout + run.stderr
    (record,) = by_subject(received(lambda rs: by_subject(rs, subject)), subject)
    return record


def test_one_click_unsubscribe_suppresses_and_the_next_message_is_refused(
    db1: Any, client: Any, smtp1: Any, providers: Any, received: Callable[..., list[Any]]
) -> None:
    """RFC 8058 end to end: `bulkmail submit` adds List-Unsubscribe (HTTPS and mailto),
    List-Unsubscribe-Post and Feedback-ID under the DKIM signature; the provider's POST to the
    link suppresses the address for the tenant; the next message to it is refused, another
    tenant's is not."""
    tag = uuid.uuid4().hex[:8]
    rcpt = f"reader-{tag}@gmail.test"
    record = submit_with_unsubscribe(smtp1, received, rcpt, f"oneclick-{tag}", f"spring-{tag}")
    assert record["list_unsubscribe_post"] == "List-Unsubscribe=One-Click"
    assert (record["dkim"]["result"], record["dmarc"]["result"]) == ("pass", "pass"), record
    stored = providers.check_output("cat /var/lib/providers/%s", record["stored_as"])
    signed = (
        stored.split("DKIM-Signature:", 1)[1].split("\n", 1)[0]
        + stored.split("DKIM-Signature:", 1)[1].split("b=", 1)[0]
    )
    for name in ("list-unsubscribe", "list-unsubscribe-post", "feedback-id"):
        assert name in signed.lower().replace(" ", "").replace("\t", ""), signed
    url = record["list_unsubscribe"].split("<https://", 1)[1].split(">", 1)[0]
    assert url.startswith("unsubscribe.example.test/u/"), record["list_unsubscribe"]
    # The provider's one-click POST, from the internet, as RFC 8058 describes it.
    post = providers.run("python3 -c %s %s %s", ONE_CLICK_POST, WEB1_PUBLIC, url)
    assert post.stdout == "200", post.stdout + post.stderr
    rows = wait_for(
        lambda: sql(db1, f"SELECT tenant, reason FROM suppression WHERE address = '{rcpt}'"),
        30, "the unsubscribe's suppression row",
    )  # fmt: skip
    assert rows == [["example.test", "unsubscribe"]]
    # A forged token is refused.
    forged_url = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    forged = providers.run("python3 -c %s %s %s", ONE_CLICK_POST, WEB1_PUBLIC, forged_url)
    assert forged.stdout == "400", forged.stdout
    time.sleep(4)  # the policy service reads new rows every 2 s
    again = send(client, [rcpt], f"after-unsubscribe {tag}", f"u-{tag}", background=False)
    (line,) = json_lines(again.stdout) or sent_lines(client, f"u-{tag}")
    assert not line["accepted"] and "unsubscribe" in line["error"]["text"], line
    # Another tenant's mail to the same person still goes: the unsubscribe was example.test's.
    other = client.run(
        "python3 /opt/lab-client/send_mail.py --host %s --port 25 --source 10.25.0.113 "
        "--from app@shop.test --to %s --subject %s",
        SMTP1_INTERNAL, rcpt, f"other-tenant-{tag}",
    )  # fmt: skip
    assert other.rc == 0, other.stdout + other.stderr
    print(f"one_click: POST 200, suppressed for example.test only, refused: {line['error']}")

    # GDPR erasure: every row of the person goes, a keyed hash stays, and it still refuses.
    # First the other tenant's delivery must be in: a row written after the erasure is new.
    wait_for(
        lambda: one(db1, f"SELECT count(*) FROM delivery_events WHERE recipient = '{rcpt}' "
                    "AND final AND sender = 'app@shop.test'"),
        60, "the other tenant's delivery event",
    )  # fmt: skip
    erased = smtp1.run(
        "bulkmail forget %s --keys-file /etc/bulkmail/erasure-keys "
        "--database-file /etc/bulkmail/retention-db.conf --yes",
        rcpt,
    )
    assert erased.rc == 0, erased.stdout + erased.stderr
    assert rcpt not in erased.stdout + erased.stderr
    for table, column in (("suppression", "address"), ("delivery_events", "recipient")):
        assert one(db1, f"SELECT count(*) FROM {table} WHERE {column} = '{rcpt}'") == 0, table
    assert one(db1, "SELECT count(*) FROM suppression WHERE address LIKE 'hmac-sha256:%' "
               "AND tenant = 'example.test'") >= 1  # fmt: skip
    smtp1.check_output("systemctl restart bulkmail-policy")  # a full read: the plain row is gone
    time.sleep(3)
    after = send(client, [rcpt], f"after-forget {tag}", f"f-{tag}", background=False)
    (line,) = json_lines(after.stdout) or sent_lines(client, f"f-{tag}")
    assert not line["accepted"] and line["error"]["code"] == 554, line
    print(f"forget: rows erased, refused by the keyed hash: {line['error']['text']}")


MAILTO_SEND = (
    "import smtplib, sys\n"
    "frm, rcpt, subject = sys.argv[2], sys.argv[3], sys.argv[4]\n"
    "msg = f'From: {frm}\\r\\nTo: {rcpt}\\r\\nSubject: {subject}\\r\\n\\r\\nunsubscribe\\r\\n'\n"
    "s = smtplib.SMTP(sys.argv[1], 25, timeout=30)\n"
    "s.ehlo('mx.outlook.test')\n"
    "s.sendmail(frm, [rcpt], msg)\n"
    "s.quit()\n"
)


def test_a_mailto_unsubscribe_suppresses_the_address_its_token_names(
    db1: Any, smtp1: Any, providers: Any, received: Callable[..., list[Any]]
) -> None:
    """RFC 2369's mailto: the token in the subject names whom to suppress, whatever the From
    says (a forwarding mailbox answers from another address); a forged token suppresses no
    one, so a stranger cannot unsubscribe a victim by forging the victim's From."""
    tag = uuid.uuid4().hex[:8]
    rcpt = f"mailto-{tag}@gmail.test"
    record = submit_with_unsubscribe(smtp1, received, rcpt, f"mailto-{tag}", f"autumn-{tag}")
    mailto = record["list_unsubscribe"].split("<mailto:", 1)[1].split(">", 1)[0]
    address, _, query = mailto.partition("?subject=")
    assert address == "unsubscribe@bounces.example.test" and query, mailto
    forwarder = f"forwarded-{tag}@outlook.test"
    victim = f"victim-{tag}@outlook.test"
    for frm, subject in ((forwarder, f"Re: {query}"), (victim, query[:-4] + "AAAA")):
        sent = providers.run("python3 -c %s %s %s %s %s", MAILTO_SEND, SMTP1_PUBLIC, frm,
                             address, subject)  # fmt: skip
        assert sent.rc == 0, sent.stdout + sent.stderr
    rows = wait_for(
        lambda: sql(db1, f"SELECT tenant, reason FROM suppression WHERE address = '{rcpt}'"),
        60, "the mailto unsubscribe's suppression row",
    )  # fmt: skip
    assert rows == [["example.test", "unsubscribe"]]
    # Both messages are stored; neither From is suppressed (the forged token's least of all).
    wait_for(
        lambda: one(db1, "SELECT count(*) FROM feedback_messages WHERE kind = 'unsubscribe' "
                    f"AND envelope_sender IN ('{forwarder}', '{victim}')") == 2,
        60, "both mailto messages stored",
    )  # fmt: skip
    assert one(db1, "SELECT count(*) FROM suppression WHERE address IN "
               f"('{forwarder}', '{victim}')") == 0  # fmt: skip
    print(f"mailto: the token's address suppressed, the forged token's From not ({rcpt})")


def by_subject(records: list[dict[str, Any]], subject: str) -> list[dict[str, Any]]:
    return [r for r in records if subject in (r.get("subject") or "")]


ARCHIVE_BUCKET = "bulkmail-lab-logs"


def archived(s3: Any, prefix: str) -> list[dict[str, Any]]:
    out = s3.check_output("python3 /opt/s3/serve.py entries %s %s", ARCHIVE_BUCKET, prefix)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_the_journal_is_archived_once_to_the_object_store(
    campaign: dict[str, Any], smtp1: Any
) -> None:
    """The campaign's Postfix lines reach the lab's S3 (moto), gzipped, each entry once,
    though the archive runs twice (the second ships only what is new)."""
    s3 = lab_host("s3")
    prefix = "postfix/smtp1/"
    for _ in range(2):
        run = smtp1.run("systemctl start bulkmail-archive.service")
        assert run.rc == 0, smtp1.run(
            "journalctl -u bulkmail-archive.service -n 20 --no-pager"
        ).stdout
    entries = archived(s3, prefix)
    assert entries, f"nothing under s3://{ARCHIVE_BUCKET}/{prefix}"
    cursors = [e["entry"]["cursor"] for e in entries]
    assert len(cursors) == len(set(cursors)), "an entry was archived twice"
    assert all(e["entry"]["identifier"].startswith("postfix") for e in entries)
    messages = "\n".join(e["entry"]["message"] for e in entries)
    accepted = [s["message_id"] for s in campaign["sent"] if s.get("accepted")]
    missing = [m for m in accepted if f"message-id={m}" not in messages]
    assert not missing, f"{len(missing)} of {len(accepted)} campaign messages not archived"
    # Every Postfix line the journal holds between the archive's first and last entry.
    first = min(e["entry"]["realtime_us"] for e in entries)
    last = max(e["entry"]["realtime_us"] for e in entries)
    journal = int(smtp1.check_output(
        "journalctl -q --facility=mail --since @%s --until @%s -o json "
        "--output-fields=SYSLOG_IDENTIFIER | grep -c '\"SYSLOG_IDENTIFIER\":\"postfix'",
        f"{first / 1e6:.6f}", f"{last / 1e6 + 0.000001:.6f}",
    ))  # fmt: skip
    assert len(entries) >= journal, f"{len(entries)} archived of the journal's {journal} lines"
    print(f"archive: {len(entries)} entries in {len({e['key'] for e in entries})} objects")
