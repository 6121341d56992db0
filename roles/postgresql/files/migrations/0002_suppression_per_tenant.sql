-- 0002_suppression_per_tenant: suppression belongs to a tenant (or to every tenant), and the
-- soft bounces the policy service counts.
-- One client's unsubscribe must not stop another client's mail: a suppression row now names
-- its tenant, or 'global' for every tenant, and is unique per (tenant, address). Soft bounces
-- are rows of their own: the policy service (bulkmail policy) refuses a recipient once enough
-- of them fall within its window, and stops when the window has moved past them.
--
-- The policy service reads both tables by id (new rows, and ids skipped by transactions not
-- yet committed: `id > $1 OR id = ANY($2)`), which the primary keys serve; soft bounces also
-- by occurred_at, for its window and for the retention purge; erasure and "why is this
-- address suppressed" look rows up by address alone.
-- Tenant names are the model's (today each sending domain is its own tenant), lower-case;
-- 'global' is reserved. Writers normalise addresses with
-- bulkmail.logic.feedback.suppression.normalise_address, the CHECKs enforce lower case.

-- Rows from before tenants were suppressed for everyone: they stay so. New rows name their
-- scope explicitly (no default), so a writer that forgets it fails instead of guessing.
ALTER TABLE suppression ADD COLUMN tenant text NOT NULL DEFAULT 'global';
ALTER TABLE suppression ALTER COLUMN tenant DROP DEFAULT;
ALTER TABLE suppression
    ADD CONSTRAINT suppression_tenant_lower CHECK (tenant = lower(tenant) AND tenant <> '');
ALTER TABLE suppression DROP CONSTRAINT suppression_address_key;
ALTER TABLE suppression
    ADD CONSTRAINT suppression_tenant_address_key UNIQUE (tenant, address);
CREATE INDEX suppression_address_idx ON suppression (address);

-- The enhanced status code of the bounce, kept with the row: the refusal quotes it, and the
-- delivery event it came from (source_event) is purged by retention long before the row.
ALTER TABLE suppression ADD COLUMN dsn text;
ALTER TABLE suppression
    ADD CONSTRAINT suppression_dsn_check CHECK (dsn ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$');

COMMENT ON TABLE suppression IS
    'Recipients not to be mailed again, per tenant or for every tenant (tenant = ''global''); '
    'the policy service rejects them. One row per tenant and address: the first reason is kept '
    '(INSERT ... ON CONFLICT (tenant, address) DO NOTHING).';
COMMENT ON COLUMN suppression.tenant IS
    'The tenant whose mail this stops (the model''s name, lower-case), or ''global'' for every '
    'tenant. Rows from before 0002 are global.';
COMMENT ON COLUMN suppression.dsn IS
    'Enhanced status code of the bounce that caused it (e.g. 5.1.1), quoted in the refusal.';
COMMENT ON COLUMN suppression.suppressed_at IS
    'When the address was suppressed (the bounce, complaint or unsubscribe), quoted as a date.';

CREATE TABLE soft_bounces (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant        text NOT NULL,
    address       text NOT NULL,
    dsn           text,
    source_event  bigint REFERENCES delivery_events (id) ON DELETE SET NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT soft_bounces_tenant_lower CHECK (tenant = lower(tenant) AND tenant <> ''),
    CONSTRAINT soft_bounces_address_lower CHECK (address = lower(address)),
    CONSTRAINT soft_bounces_dsn_check CHECK (dsn ~ '^[245]\.[0-9]{1,3}\.[0-9]{1,3}$')
);
CREATE INDEX soft_bounces_occurred_at_idx ON soft_bounces (occurred_at);
CREATE INDEX soft_bounces_address_idx ON soft_bounces (address);
COMMENT ON TABLE soft_bounces IS
    'Temporary failures that came back for a recipient (mailbox full, over quota, ...), one row '
    'per bounce as the bounce processor classified it. The policy service refuses a recipient '
    'with enough of them in its window (3 in 7 days by default); purged by retention.';
COMMENT ON COLUMN soft_bounces.tenant IS
    'The tenant whose mail bounced (lower-case), or ''global'' to count it for every tenant.';
COMMENT ON COLUMN soft_bounces.address IS 'Recipient address, lower-case.';
COMMENT ON COLUMN soft_bounces.dsn IS 'Enhanced status code, e.g. 4.2.2.';
COMMENT ON COLUMN soft_bounces.source_event IS 'The delivery event it came from, when there is one.';
COMMENT ON COLUMN soft_bounces.occurred_at IS
    'When the bounce happened (the DSN''s or the log''s time), not when it was recorded.';
COMMENT ON COLUMN soft_bounces.recorded_at IS 'When the row was written.';
