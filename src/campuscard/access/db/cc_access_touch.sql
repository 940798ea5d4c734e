-- Anything a reader list is made of changed: bump the school's access seq in the changing
-- transaction, so the change is known to every server process the moment it commits (a
-- refresh turns it into a new list version; access/lists.py).
CREATE OR REPLACE FUNCTION cc_access_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_school int;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_school := OLD.school_id;
    ELSE
        v_school := NEW.school_id;
    END IF;
    INSERT INTO access_heads(school_id, seq) VALUES (v_school, 1)
    ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
    RETURN NULL;
END $$;
