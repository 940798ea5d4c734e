-- At commit: every transaction touched nets to zero and stays within one school.
-- postings_balanced fires once per posting row; the first firing checks the whole journal
-- transaction and remembers, for this database transaction only, the journal transaction and
-- the highest posting id it covered, so a later firing for a covered posting returns at once.
-- A posting added afterwards (higher id: the id sequence only grows) is checked again with all
-- its siblings (e.g. after SET CONSTRAINTS IMMEDIATE). docs/decisions/0090-lean-payment-path.md
CREATE OR REPLACE FUNCTION cc_check_tx_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sum bigint;
    v_schools int;
    v_last bigint;
    v_seen text := current_setting('cc.balanced_tx', true);
BEGIN
    IF v_seen IS NOT NULL AND v_seen <> ''
       AND split_part(v_seen, ':', 1) = NEW.tx_id::text
       AND NEW.id <= split_part(v_seen, ':', 2)::bigint THEN
        RETURN NULL;
    END IF;
    SELECT sum(p.amount), count(DISTINCT a.school_id), max(p.id) INTO v_sum, v_schools, v_last
      FROM postings p JOIN accounts a ON a.id = p.account_id
     WHERE p.tx_id = NEW.tx_id;
    IF v_sum <> 0 THEN
        RAISE EXCEPTION 'journal transaction % does not balance: postings sum to %', NEW.tx_id, v_sum
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_tx_balanced';
    END IF;
    IF v_schools > 1 THEN
        RAISE EXCEPTION 'journal transaction % spans schools', NEW.tx_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_tx_one_school';
    END IF;
    PERFORM set_config('cc.balanced_tx', NEW.tx_id || ':' || v_last, true);
    RETURN NULL;
END $$;
