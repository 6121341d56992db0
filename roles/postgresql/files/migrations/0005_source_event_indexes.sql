-- 0005_source_event_indexes: deleting delivery events (retention, erasure, a benchmark's
-- cleanup) sets suppression.source_event and soft_bounces.source_event to null through
-- their foreign keys (ON DELETE SET NULL); without an index each deleted event scans both
-- tables.
CREATE INDEX suppression_source_event_idx ON suppression (source_event)
    WHERE source_event IS NOT NULL;
CREATE INDEX soft_bounces_source_event_idx ON soft_bounces (source_event)
    WHERE source_event IS NOT NULL;
