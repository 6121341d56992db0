-- 0003_feedback: what comes back, as rows.
-- Delivery events from the Postfix journal (bulkmail ingest, one per smtp host), the
-- ingester's resume point, every message the feedback addresses receive (kept raw, once), and
-- what the feedback processor (bulkmail feedback, Postfix's pipe) read in them: bounces,
-- complaints, DMARC aggregate and TLS-RPT reports.
--
-- Exactly once: the ingester commits its events, its journal cursor and its tracker state in
-- one transaction (ingest_state), and each event carries the key of the log line it came from
-- (event_key, unique), so a restart neither loses nor doubles an event. The feedback
-- processor stores each received message under the digest of its bytes and its envelope
-- recipient: Postfix retrying a pipe delivery that had already committed stores nothing new.

ALTER TABLE delivery_events DROP CONSTRAINT delivery_events_status_check;
ALTER TABLE delivery_events ALTER COLUMN recipient DROP NOT NULL;
ALTER TABLE delivery_events
    ADD COLUMN event_key          text,
    ADD COLUMN kind               text NOT NULL DEFAULT 'delivery',
    ADD COLUMN final              boolean NOT NULL DEFAULT false,
    ADD COLUMN host               text,
    ADD COLUMN instance           text,
    ADD COLUMN transport          text,
    ADD COLUMN message_id         text,
    ADD COLUMN sender             text,
    ADD COLUMN original_recipient text,
    ADD COLUMN origin_queue_id    text,
    ADD COLUMN next_queue_id      text,
    ADD COLUMN notice_of          text,
    ADD COLUMN upstream_unseen    boolean NOT NULL DEFAULT false,
    ADD COLUMN client_ip          inet,
    ADD COLUMN sasl_username      text,
    ADD COLUMN relay_ip           inet,
    ADD COLUMN relay_port         integer,
    ADD COLUMN delay              real,
    ADD COLUMN delays             real[],
    ADD COLUMN tenant             text,
    ADD COLUMN bounce_class       text,
    ADD COLUMN recorded_at        timestamptz NOT NULL DEFAULT now();
ALTER TABLE delivery_events ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE delivery_events
    ADD CONSTRAINT delivery_events_kind_check CHECK (kind IN ('delivery', 'handoff', 'refusal')),
    ADD CONSTRAINT delivery_events_status_check CHECK (
        status IN ('sent', 'deferred', 'bounced', 'expired',
                   'rejected', 'tempfailed', 'warned', 'discarded', 'held'));
CREATE UNIQUE INDEX delivery_events_event_key_key ON delivery_events (event_key);
CREATE INDEX delivery_events_message_id_idx ON delivery_events (message_id);
CREATE INDEX delivery_events_queue_id_idx ON delivery_events (queue_id);
CREATE INDEX delivery_events_next_queue_id_idx ON delivery_events (next_queue_id)
    WHERE next_queue_id IS NOT NULL;
CREATE INDEX delivery_events_recipient_idx ON delivery_events (recipient);
COMMENT ON COLUMN delivery_events.event_key IS
    'Digest of the log line the event came from (bulkmail.logic.feedback.postfix_log.event_key): '
    'an event read twice is written once.';
COMMENT ON COLUMN delivery_events.kind IS
    'delivery (a delivery agent''s verdict), handoff (a hop to another instance or host of ours, '
    'never final) or refusal (smtpd or cleanup refused it).';
COMMENT ON COLUMN delivery_events.final IS
    'The last word on this recipient of this message: count these, one per message and recipient.';
COMMENT ON COLUMN delivery_events.host IS 'The smtp host whose journal the line is from.';
COMMENT ON COLUMN delivery_events.instance IS 'The Postfix instance (syslog_name''s first part).';
COMMENT ON COLUMN delivery_events.transport IS 'The master.cf service that logged it.';
COMMENT ON COLUMN delivery_events.origin_queue_id IS
    'The queue id of the message''s first hop; the handoffs of one message share it.';
COMMENT ON COLUMN delivery_events.next_queue_id IS 'handoff: the queue id the next hop gave it.';
COMMENT ON COLUMN delivery_events.notice_of IS
    'A non-delivery notice Postfix made: the queue id of the message it reports on.';
COMMENT ON COLUMN delivery_events.upstream_unseen IS
    'It came from a host of ours whose handoff this host''s ingester did not see: its origin is '
    'the handoff row whose next_queue_id is this queue_id.';
COMMENT ON COLUMN delivery_events.delays IS
    'Postfix''s delays=a/b/c/d: before the queue manager, in it, connection, transmission.';
COMMENT ON COLUMN delivery_events.tenant IS 'The sender''s tenant (its domain''s), when known.';
COMMENT ON COLUMN delivery_events.bounce_class IS
    'A bounced or deferred delivery''s class (bulkmail.logic.feedback.classify).';

CREATE TABLE ingest_state (
    host           text PRIMARY KEY,
    journal_cursor text NOT NULL,
    tracker        jsonb NOT NULL,
    lines          bigint NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE ingest_state IS
    'Where each host''s ingester is in its journal, committed with the events it wrote.';
COMMENT ON COLUMN ingest_state.journal_cursor IS 'The journal cursor of the last entry read.';
COMMENT ON COLUMN ingest_state.tracker IS
    'The tracker''s state at that cursor (queue ids in flight), restored at start.';
COMMENT ON COLUMN ingest_state.lines IS 'Journal entries read so far (a counter, for dashboards).';

CREATE TABLE feedback_messages (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind               text NOT NULL,
    envelope_sender    text NOT NULL,
    envelope_recipient text NOT NULL,
    message_id         text,
    digest             text NOT NULL,
    raw                bytea NOT NULL,
    note               text,
    received_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT feedback_messages_kind_check CHECK (
        kind IN ('bounce', 'complaint', 'auto_reply', 'unsubscribe', 'dmarc_report',
                 'tls_report', 'unparsed')),
    CONSTRAINT feedback_messages_digest_recipient_key UNIQUE (digest, envelope_recipient)
);
CREATE INDEX feedback_messages_received_at_idx ON feedback_messages (received_at);
COMMENT ON TABLE feedback_messages IS
    'Every message a feedback address received, raw: what could not be read is kept too '
    '(kind unparsed), so a better parser can read it later.';
COMMENT ON COLUMN feedback_messages.digest IS 'SHA-256 of raw, hex: a redelivery is stored once.';
COMMENT ON COLUMN feedback_messages.note IS 'What the processor made of it, in words.';

CREATE TABLE bounces (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feedback_message bigint REFERENCES feedback_messages (id) ON DELETE CASCADE,
    source_event     bigint REFERENCES delivery_events (id) ON DELETE SET NULL,
    tenant           text NOT NULL,
    recipient        text NOT NULL,
    sender           text,
    message_id       text,
    dsn              text,
    bounce_class     text NOT NULL,
    hard             boolean NOT NULL,
    reply            text,
    reporting_mta    text,
    occurred_at      timestamptz NOT NULL,
    CONSTRAINT bounces_recipient_lower CHECK (recipient = lower(recipient)),
    CONSTRAINT bounces_dsn_check CHECK (dsn ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$')
);
CREATE INDEX bounces_occurred_at_idx ON bounces (occurred_at);
CREATE INDEX bounces_recipient_idx ON bounces (recipient);
CREATE UNIQUE INDEX bounces_source_event_key ON bounces (source_event);
COMMENT ON TABLE bounces IS
    'Bounces per recipient: from a DSN (feedback_message) or an SMTP-time refusal in the '
    'delivery events (source_event), classified by bulkmail.logic.feedback.classify.';
COMMENT ON COLUMN bounces.sender IS 'The sending address (the VERP address decoded).';
COMMENT ON COLUMN bounces.hard IS 'The class suppresses at once (invalid recipient, bad domain).';

CREATE TABLE complaints (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feedback_message bigint NOT NULL REFERENCES feedback_messages (id) ON DELETE CASCADE,
    tenant           text NOT NULL,
    recipient        text,
    sender           text,
    message_id       text,
    feedback_type    text,
    feedback_id      text,
    reporter         text,
    occurred_at      timestamptz NOT NULL,
    CONSTRAINT complaints_recipient_lower CHECK (recipient = lower(recipient))
);
CREATE INDEX complaints_occurred_at_idx ON complaints (occurred_at);
CREATE INDEX complaints_recipient_idx ON complaints (recipient);
COMMENT ON TABLE complaints IS
    'ARF reports (RFC 5965) per complainer; recipient is null when the provider redacted it and '
    'nothing else named it.';
COMMENT ON COLUMN complaints.feedback_id IS 'The original''s Feedback-ID header, when it had one.';

CREATE TABLE dmarc_reports (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feedback_message bigint REFERENCES feedback_messages (id) ON DELETE CASCADE,
    org_name         text NOT NULL,
    report_id        text NOT NULL,
    domain           text NOT NULL,
    date_begin       timestamptz NOT NULL,
    date_end         timestamptz NOT NULL,
    policy           jsonb NOT NULL,
    CONSTRAINT dmarc_reports_org_report_key UNIQUE (org_name, report_id),
    CONSTRAINT dmarc_reports_domain_lower CHECK (domain = lower(domain))
);
CREATE INDEX dmarc_reports_domain_date_idx ON dmarc_reports (domain, date_end);
COMMENT ON TABLE dmarc_reports IS 'DMARC aggregate reports (RFC 7489 7.2), one row per report.';
COMMENT ON COLUMN dmarc_reports.policy IS 'policy_published as the reporter saw it.';

CREATE TABLE dmarc_records (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    report        bigint NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
    source_ip     inet NOT NULL,
    count         integer NOT NULL,
    disposition   text,
    dkim_aligned  boolean NOT NULL,
    spf_aligned   boolean NOT NULL,
    dkim_result   text,
    dkim_domain   text,
    spf_result    text,
    spf_domain    text,
    header_from   text,
    envelope_from text,
    CONSTRAINT dmarc_records_count_check CHECK (count >= 0)
);
CREATE INDEX dmarc_records_report_idx ON dmarc_records (report);
COMMENT ON TABLE dmarc_records IS
    'The rows of an aggregate report: per source IP and outcome, how many messages.';
COMMENT ON COLUMN dmarc_records.dkim_aligned IS 'policy_evaluated dkim = pass (aligned DKIM).';
COMMENT ON COLUMN dmarc_records.spf_aligned IS 'policy_evaluated spf = pass (aligned SPF).';

CREATE TABLE tls_reports (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feedback_message bigint REFERENCES feedback_messages (id) ON DELETE CASCADE,
    organization     text NOT NULL,
    report_id        text NOT NULL,
    policy_domain    text NOT NULL,
    policy_type      text NOT NULL,
    date_begin       timestamptz NOT NULL,
    date_end         timestamptz NOT NULL,
    successful       bigint NOT NULL,
    failed           bigint NOT NULL,
    failures         jsonb NOT NULL,
    CONSTRAINT tls_reports_key UNIQUE (organization, report_id, policy_domain, policy_type)
);
COMMENT ON TABLE tls_reports IS 'SMTP TLS reports (RFC 8460), one row per report and policy.';
