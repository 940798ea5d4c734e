-- Rows inserted in bulk (a student import issuing thousands of cards): one bump per school
-- per statement, not one per row (per-row updates of one head row in a transaction slow
-- down with each row).
CREATE OR REPLACE FUNCTION cc_access_touch_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO access_heads(school_id, seq)
    SELECT DISTINCT school_id, 1 FROM new_rows
    ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
    RETURN NULL;
END $$;
