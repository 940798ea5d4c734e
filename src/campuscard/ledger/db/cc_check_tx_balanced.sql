-- At commit: every transaction touched nets to zero. (It stays within one school by its keys:
-- a posting's account and journal transaction are foreign keys paired with its school_id.)
-- postings_balanced fires once per posting row; the first firing checks the whole journal
-- transaction and remembers, for this database transaction only, the journal transaction and
-- the highest posting id it covered, so a later firing for a covered posting returns at once.
-- A posting added afterwards (higher id: the id sequence only grows) is checked again with all
-- its siblings (e.g. after SET CONSTRAINTS IMMEDIATE). docs/decisions/0090-lean-payment-path.md
-- The sum names the school, so on Citus it reads the one shard that holds the transaction.
CREATE OR REPLACE FUNCTION cc_check_tx_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sum bigint;
    v_last bigint;
    v_seen text := current_setting('cc.balanced_tx', true);
BEGIN
    IF v_seen IS NOT NULL AND v_seen <> ''
       AND split_part(v_seen, ':', 1) = NEW.tx_id::text
       AND NEW.id <= split_part(v_seen, ':', 2)::bigint THEN
        RETURN NULL;
    END IF;
    SELECT sum(p.amount), max(p.id) INTO v_sum, v_last
      FROM postings p
     WHERE p.school_id = NEW.school_id AND p.tx_id = NEW.tx_id;
    IF v_sum <> 0 THEN
        RAISE EXCEPTION 'journal transaction % does not balance: postings sum to %', NEW.tx_id, v_sum
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_tx_balanced';
    END IF;
    PERFORM set_config('cc.balanced_tx', NEW.tx_id || ':' || v_last, true);
    RETURN NULL;
END $$;
