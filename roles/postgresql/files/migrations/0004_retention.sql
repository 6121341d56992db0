-- 0004_retention: what stays of the raw events once retention purges them.
-- `bulkmail retention` (a timer on the smtp tier) adds each day's final delivery events into
-- delivery_daily, then deletes the raw rows older than the retention age; bounces,
-- complaints and feedback messages go the same way. Suppression rows are never purged: they
-- are the memory that keeps a person from being mailed again (erasure is `bulkmail forget`).

CREATE TABLE delivery_daily (
    day          date NOT NULL,
    tenant       text NOT NULL,
    instance     text NOT NULL,
    status       text NOT NULL,
    bounce_class text NOT NULL,
    events       bigint NOT NULL,
    CONSTRAINT delivery_daily_key PRIMARY KEY (day, tenant, instance, status, bounce_class),
    CONSTRAINT delivery_daily_events_check CHECK (events >= 0)
);
COMMENT ON TABLE delivery_daily IS
    'Final delivery events per day, tenant, instance, status and bounce class, kept after the '
    'raw rows are purged (bulkmail retention). tenant and bounce_class are empty when unknown.';

CREATE TABLE retention_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cutoff      timestamptz NOT NULL,
    rolled_up   bigint NOT NULL,
    deleted     jsonb NOT NULL,
    finished_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE retention_runs IS
    'One row per retention run: up to when raw rows were rolled up and purged, and how many.';
CREATE INDEX delivery_events_final_occurred_at_idx ON delivery_events (occurred_at) WHERE final;
