-- An offline debt above the school's limit puts the holder's usable cards on the device
-- blacklist ('overdrawn'); repaid down to the limit, they leave it.
CREATE OR REPLACE FUNCTION cc_debt_blacklist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_card bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.owed = OLD.owed THEN
        RETURN NEW;
    END IF;
    FOR v_card IN SELECT id FROM cards WHERE school_id = NEW.school_id AND person_id = NEW.person_id
                     AND state IN ('issued', 'active') ORDER BY id LOOP
        PERFORM cc_blacklist_sync(NEW.school_id, v_card);
    END LOOP;
    RETURN NEW;
END $$;
