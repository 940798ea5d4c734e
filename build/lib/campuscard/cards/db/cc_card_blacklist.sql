-- Keep the blacklist in step with card states, whoever changes a card (service, SQL, job).
-- A blocked card whose reason changes (frozen -> lost, expired -> cancelled) gets a new
-- blacklist version with an 'add' change carrying the new reason (devices upsert added
-- cards); a permanent entry stays permanent.
CREATE OR REPLACE FUNCTION cc_card_blacklist() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_blocked boolean := NEW.state IN ('lost', 'frozen', 'replaced', 'cancelled', 'expired');
    v_permanent boolean := NEW.state IN ('replaced', 'cancelled', 'expired');
    v_entry blacklist_entries%ROWTYPE;
    v_version bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    SELECT * INTO v_entry FROM blacklist_entries WHERE card_id = NEW.id;
    v_permanent := v_permanent OR coalesce(v_entry.permanent, false);
    IF v_blocked AND (v_entry.card_id IS NULL OR v_entry.reason IS DISTINCT FROM NEW.state
                      OR v_permanent IS DISTINCT FROM v_entry.permanent) THEN
        INSERT INTO blacklist_heads(school_id, version) VALUES (NEW.school_id, 1)
        ON CONFLICT (school_id) DO UPDATE SET version = blacklist_heads.version + 1
        RETURNING version INTO v_version;
        INSERT INTO blacklist_entries(card_id, school_id, number, uid, reason, permanent, version)
        VALUES (NEW.id, NEW.school_id, NEW.number, NEW.uid, NEW.state, v_permanent, v_version)
        ON CONFLICT (card_id) DO UPDATE SET reason = EXCLUDED.reason,
            permanent = EXCLUDED.permanent, version = EXCLUDED.version;
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (NEW.school_id, v_version, NEW.id, NEW.number, NEW.uid, 'add', NEW.state);
    ELSIF NOT v_blocked AND v_entry.card_id IS NOT NULL AND NOT v_entry.permanent THEN
        UPDATE blacklist_heads SET version = version + 1 WHERE school_id = NEW.school_id
        RETURNING version INTO v_version;
        DELETE FROM blacklist_entries WHERE card_id = NEW.id;
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (NEW.school_id, v_version, NEW.id, NEW.number, NEW.uid, 'remove', NEW.state);
    END IF;
    RETURN NEW;
END $$;
