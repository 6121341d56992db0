-- 0001_initial: the bulkmail schema.
-- Sending domains and the sender accounts on them (warm-up quota and health), every message
-- handed to Postfix (one row per recipient), what happened to it (delivery events from the
-- Postfix logs and bounces), and the suppression list the policy service checks before sending.
--
-- Applied once by bulkmail.infra.postgresql_migrations as the schema owner role; never edit it
-- after it has been applied: add 0002_... instead (the runner refuses a changed file).
-- Addresses and domain names are stored lower-case; writers normalise, the CHECKs enforce it.

CREATE TABLE domains (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT domains_name_key UNIQUE (name),
    CONSTRAINT domains_name_lower CHECK (name = lower(name))
);
COMMENT ON TABLE domains IS
    'Sending domains (bulkmail_domains in the inventory); DNS records are derived there, not here.';
COMMENT ON COLUMN domains.name IS 'Domain name, lower-case, without trailing dot.';

CREATE TABLE sender_accounts (
    id                  integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id           integer NOT NULL REFERENCES domains (id),
    address             text NOT NULL,
    status              text NOT NULL DEFAULT 'warming',
    warmup_started_on   date,
    daily_limit         integer NOT NULL DEFAULT 20,
    warmup_target_daily integer NOT NULL DEFAULT 40,
    bounce_rate         numeric(5, 4) NOT NULL DEFAULT 0,
    complaint_rate      numeric(5, 4) NOT NULL DEFAULT 0,
    health_checked_at   timestamptz,
    paused_reason       text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sender_accounts_address_key UNIQUE (address),
    CONSTRAINT sender_accounts_address_lower CHECK (address = lower(address)),
    CONSTRAINT sender_accounts_status_check
        CHECK (status IN ('warming', 'active', 'paused', 'disabled')),
    CONSTRAINT sender_accounts_daily_limit_check CHECK (daily_limit >= 0),
    CONSTRAINT sender_accounts_warmup_target_check CHECK (warmup_target_daily >= daily_limit),
    CONSTRAINT sender_accounts_rates_check
        CHECK (bounce_rate BETWEEN 0 AND 1 AND complaint_rate BETWEEN 0 AND 1),
    CONSTRAINT sender_accounts_paused_reason_check
        CHECK (status <> 'paused' OR paused_reason IS NOT NULL)
);
CREATE INDEX sender_accounts_domain_id_idx ON sender_accounts (domain_id);
COMMENT ON TABLE sender_accounts IS
    'Mailboxes that send. The policy service defers a sender that is paused, disabled or over '
    'daily_limit; warm-up raises daily_limit towards warmup_target_daily.';
COMMENT ON COLUMN sender_accounts.address IS 'The sending mailbox (From and SASL login), lower-case.';
COMMENT ON COLUMN sender_accounts.status IS
    'warming: quota grows daily; active: full quota; paused: held for health (paused_reason); '
    'disabled: never sends.';
COMMENT ON COLUMN sender_accounts.warmup_started_on IS 'First day of warm-up; null before it starts.';
COMMENT ON COLUMN sender_accounts.daily_limit IS 'Messages this account may send today (its current quota).';
COMMENT ON COLUMN sender_accounts.warmup_target_daily IS 'Quota at which warm-up ends and the account becomes active.';
COMMENT ON COLUMN sender_accounts.bounce_rate IS 'Hard bounces / sent over the health window, 0 to 1.';
COMMENT ON COLUMN sender_accounts.complaint_rate IS 'Complaints / sent over the health window, 0 to 1.';
COMMENT ON COLUMN sender_accounts.health_checked_at IS 'When bounce_rate and complaint_rate were last computed.';
COMMENT ON COLUMN sender_accounts.paused_reason IS 'Why the account is paused (required when status = paused).';

CREATE TABLE messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id  text NOT NULL,
    account_id  integer NOT NULL REFERENCES sender_accounts (id),
    recipient   text NOT NULL,
    lane        text NOT NULL,
    queue_id    text,
    queued_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_message_id_recipient_key UNIQUE (message_id, recipient),
    CONSTRAINT messages_lane_check CHECK (lane IN ('transactional', 'bulk'))
);
CREATE INDEX messages_account_id_queued_at_idx ON messages (account_id, queued_at);
CREATE INDEX messages_queued_at_idx ON messages (queued_at);
CREATE INDEX messages_queue_id_idx ON messages (queue_id) WHERE queue_id IS NOT NULL;
COMMENT ON TABLE messages IS
    'One row per message and recipient handed to Postfix; per-account counts per day give the '
    'warm-up quota in use.';
COMMENT ON COLUMN messages.message_id IS 'The Message-ID header, without angle brackets.';
COMMENT ON COLUMN messages.recipient IS 'Envelope recipient.';
COMMENT ON COLUMN messages.lane IS 'transactional or bulk: chooses the source-IP pool or relay.';
COMMENT ON COLUMN messages.queue_id IS 'Postfix queue ID once queued, to match log lines (IDs are reused over time).';

CREATE TABLE delivery_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message     bigint REFERENCES messages (id) ON DELETE CASCADE,
    recipient   text NOT NULL,
    queue_id    text,
    status      text NOT NULL,
    dsn         text,
    remote_host text,
    detail      text,
    occurred_at timestamptz NOT NULL,
    CONSTRAINT delivery_events_status_check CHECK (status IN ('sent', 'deferred', 'bounced')),
    CONSTRAINT delivery_events_dsn_check CHECK (dsn ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$')
);
CREATE INDEX delivery_events_occurred_at_idx ON delivery_events (occurred_at);
CREATE INDEX delivery_events_status_occurred_at_idx ON delivery_events (status, occurred_at);
CREATE INDEX delivery_events_message_idx ON delivery_events (message);
COMMENT ON TABLE delivery_events IS
    'Delivery attempts and their outcome, from the Postfix logs and from bounces that come back.';
COMMENT ON COLUMN delivery_events.message IS 'The message row, when the event could be matched to one.';
COMMENT ON COLUMN delivery_events.status IS 'sent (accepted by the remote host), deferred (try again), bounced (gave up).';
COMMENT ON COLUMN delivery_events.dsn IS 'Enhanced status code, e.g. 2.0.0, 4.7.0, 5.1.1.';
COMMENT ON COLUMN delivery_events.remote_host IS 'The MX or relay that answered, as Postfix logs it (name[address]:port).';
COMMENT ON COLUMN delivery_events.detail IS 'The remote reply or Postfix''s reason, as logged.';
COMMENT ON COLUMN delivery_events.occurred_at IS 'When it happened (the log timestamp), not when it was recorded.';

CREATE TABLE suppression (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    address        text NOT NULL,
    reason         text NOT NULL,
    source_event   bigint REFERENCES delivery_events (id) ON DELETE SET NULL,
    note           text,
    suppressed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT suppression_address_key UNIQUE (address),
    CONSTRAINT suppression_address_lower CHECK (address = lower(address)),
    CONSTRAINT suppression_reason_check
        CHECK (reason IN ('hard_bounce', 'complaint', 'unsubscribe', 'manual'))
);
CREATE INDEX suppression_suppressed_at_idx ON suppression (suppressed_at);
COMMENT ON TABLE suppression IS
    'Recipients never to be mailed again; the policy service rejects them. One row per address: '
    'the first reason is kept (INSERT ... ON CONFLICT (address) DO NOTHING).';
COMMENT ON COLUMN suppression.address IS 'Recipient address, lower-case.';
COMMENT ON COLUMN suppression.reason IS 'hard_bounce, complaint (feedback loop), unsubscribe or manual.';
COMMENT ON COLUMN suppression.source_event IS 'The bounce that caused it, when there is one.';
