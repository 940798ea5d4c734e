-- Rows inserted in bulk (a student import issuing thousands of cards): one bump per school
-- per statement, not one per row (per-row updates of one head row in a transaction slow
-- down with each row). Each head is bumped by its school (on Citus, one router statement).
CREATE OR REPLACE FUNCTION cc_access_touch_new() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_school int;
BEGIN
    FOR v_school IN SELECT DISTINCT school_id FROM new_rows ORDER BY 1 LOOP
        INSERT INTO access_heads(school_id, seq) VALUES (v_school, 1)
        ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
    END LOOP;
    RETURN NULL;
END $$;
