-- Bring one card's blacklist entry in step with why a device must refuse it, whoever changed
-- that: the card's own state (lost, frozen, replaced, cancelled, expired), else its holder's
-- account (frozen, closed: a student who left keeps an active card), else an offline debt above
-- the school's limit (settings.offline.overdraft_limit, fen; 0 by default). A change of reason
-- is a new version with an 'add' change carrying it (devices upsert added cards); a card no
-- longer blocked leaves with a 'remove'; a permanent entry stays permanent.
CREATE OR REPLACE FUNCTION cc_blacklist_sync(p_school int, p_card bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    c cards%ROWTYPE;
    v_account text;
    v_owed bigint;
    v_limit bigint;
    v_reason text;
    v_permanent boolean;
    v_entry blacklist_entries%ROWTYPE;
    v_version bigint;
BEGIN
    SELECT * INTO c FROM cards WHERE school_id = p_school AND id = p_card;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_permanent := c.state IN ('replaced', 'cancelled', 'expired');
    IF c.state IN ('lost', 'frozen', 'replaced', 'cancelled', 'expired') THEN
        v_reason := c.state;
    ELSE
        -- one table a statement: inside a booking function Citus delegates to the school's
        -- worker, a join (even with the reference table of schools) is refused there
        SELECT account_status INTO v_account FROM persons
         WHERE school_id = p_school AND id = c.person_id;
        SELECT owed INTO v_owed FROM offline_debts
         WHERE school_id = p_school AND person_id = c.person_id;
        SELECT (settings -> 'offline' ->> 'overdraft_limit')::bigint INTO v_limit FROM schools
         WHERE id = p_school;
        v_owed := coalesce(v_owed, 0);
        v_limit := coalesce(v_limit, 0);
        v_reason := CASE WHEN v_account IN ('frozen', 'closed') THEN 'account_' || v_account
                         WHEN v_owed > v_limit THEN 'overdrawn' END;
    END IF;
    SELECT * INTO v_entry FROM blacklist_entries WHERE school_id = p_school AND card_id = c.id;
    v_permanent := v_permanent OR coalesce(v_entry.permanent, false);
    IF v_reason IS NULL AND v_permanent THEN
        v_reason := v_entry.reason;
    END IF;
    IF v_reason IS NOT NULL AND (v_entry.card_id IS NULL OR v_entry.reason IS DISTINCT FROM v_reason
                                 OR v_permanent IS DISTINCT FROM v_entry.permanent) THEN
        INSERT INTO blacklist_heads(school_id, version) VALUES (c.school_id, 1)
        ON CONFLICT (school_id) DO UPDATE SET version = blacklist_heads.version + 1
        RETURNING version INTO v_version;
        INSERT INTO blacklist_entries(card_id, school_id, number, uid, reason, permanent, version)
        VALUES (c.id, c.school_id, c.number, c.uid, v_reason, v_permanent, v_version)
        ON CONFLICT (school_id, card_id) DO UPDATE SET reason = EXCLUDED.reason,
            permanent = EXCLUDED.permanent, version = EXCLUDED.version;
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (c.school_id, v_version, c.id, c.number, c.uid, 'add', v_reason);
    ELSIF v_reason IS NULL AND v_entry.card_id IS NOT NULL THEN
        UPDATE blacklist_heads SET version = version + 1 WHERE school_id = c.school_id
        RETURNING version INTO v_version;
        DELETE FROM blacklist_entries WHERE school_id = p_school AND card_id = c.id;
        INSERT INTO blacklist_changes(school_id, version, card_id, number, uid, op, reason)
        VALUES (c.school_id, v_version, c.id, c.number, c.uid, 'remove', c.state);
    END IF;
END $$;
