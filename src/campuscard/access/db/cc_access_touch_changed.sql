-- Cards or persons updated: bump the schools where a column door lists depend on changed
-- (a card's state or number; a person's class, kind or status), once per statement.
CREATE OR REPLACE FUNCTION cc_access_touch_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'cards' THEN
        INSERT INTO access_heads(school_id, seq)
        SELECT DISTINCT n.school_id, 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE o.state IS DISTINCT FROM n.state OR o.number IS DISTINCT FROM n.number
        ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
    ELSE
        INSERT INTO access_heads(school_id, seq)
        SELECT DISTINCT n.school_id, 1 FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE o.class_id IS DISTINCT FROM n.class_id OR o.kind IS DISTINCT FROM n.kind
            OR o.status IS DISTINCT FROM n.status
        ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
    END IF;
    RETURN NULL;
END $$;
