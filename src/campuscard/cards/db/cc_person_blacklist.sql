-- An account frozen or closed (a student who left keeps an active card) puts the holder's
-- usable cards on the device blacklist; an account active again takes them off.
CREATE OR REPLACE FUNCTION cc_person_blacklist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_card bigint;
BEGIN
    IF NEW.account_status IS NOT DISTINCT FROM OLD.account_status THEN
        RETURN NEW;
    END IF;
    FOR v_card IN SELECT id FROM cards WHERE school_id = NEW.school_id AND person_id = NEW.id
                     AND state IN ('issued', 'active') ORDER BY id LOOP
        PERFORM cc_blacklist_sync(NEW.school_id, v_card);
    END LOOP;
    RETURN NEW;
END $$;
