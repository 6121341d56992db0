-- 0006_feedback_message_indexes: retention deletes feedback messages, and each delete
-- checks the rows that point at it through their foreign keys; without these indexes every
-- deleted message scans the four tables (a 7,000-row batch: 6.3 s without, 0.15 s with).
CREATE INDEX bounces_feedback_message_idx ON bounces (feedback_message);
CREATE INDEX complaints_feedback_message_idx ON complaints (feedback_message);
CREATE INDEX dmarc_reports_feedback_message_idx ON dmarc_reports (feedback_message);
CREATE INDEX tls_reports_feedback_message_idx ON tls_reports (feedback_message);
