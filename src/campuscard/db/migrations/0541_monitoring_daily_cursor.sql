-- The daily pass (no canteen meal for days, hidden hardship at the turn of a month) records the
-- last business date it finished, per school, beside the payment cursor.
ALTER TABLE monitoring_cursors DROP CONSTRAINT monitoring_cursors_source_check;
ALTER TABLE monitoring_cursors ADD CONSTRAINT monitoring_cursors_source_check
    CHECK (source IN ('payment', 'refund', 'daily'));
