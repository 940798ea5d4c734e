CREATE OR REPLACE FUNCTION cc_guard_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.balance <> OLD.balance OR NEW.version <> OLD.version) AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'account balances change only by inserting postings'
            USING ERRCODE = 'restrict_violation';
    END IF;
    -- held moves only with the holds table (cc_hold_apply), never by a direct UPDATE
    IF NEW.held <> OLD.held AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'held amounts change only by placing or resolving holds'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.school_id <> OLD.school_id OR NEW.kind <> OLD.kind THEN
        RAISE EXCEPTION 'an account keeps its school and kind' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
