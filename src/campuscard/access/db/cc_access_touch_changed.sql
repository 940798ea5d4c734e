-- Cards or persons updated: bump the schools where a column door lists depend on changed
-- (a card's state or number; a person's class, kind or status), once per statement. Each head
-- is bumped by its school (on Citus, one router statement). The trigger names its table
-- (TG_ARGV[0]): on Citus the trigger runs on a shard, whose name is not the table's.
CREATE OR REPLACE FUNCTION cc_access_touch_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_school int;
BEGIN
    IF TG_ARGV[0] = 'cards' THEN
        FOR v_school IN SELECT DISTINCT n.school_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                         WHERE o.state IS DISTINCT FROM n.state OR o.number IS DISTINCT FROM n.number
                         ORDER BY 1 LOOP
            INSERT INTO access_heads(school_id, seq) VALUES (v_school, 1)
            ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
        END LOOP;
    ELSE
        FOR v_school IN SELECT DISTINCT n.school_id FROM new_rows n JOIN old_rows o ON o.id = n.id
                         WHERE o.class_id IS DISTINCT FROM n.class_id OR o.kind IS DISTINCT FROM n.kind
                            OR o.status IS DISTINCT FROM n.status
                         ORDER BY 1 LOOP
            INSERT INTO access_heads(school_id, seq) VALUES (v_school, 1)
            ON CONFLICT (school_id) DO UPDATE SET seq = access_heads.seq + 1;
        END LOOP;
    END IF;
    RETURN NULL;
END $$;
