-- Keep accounts.held = the sum of the account's pending holds: a placed hold adds its amount,
-- a hold leaving 'pending' gives it back. The only way held moves (cc_guard_balance).
CREATE OR REPLACE FUNCTION cc_hold_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.state <> 'pending' THEN
            RAISE EXCEPTION 'a hold starts pending' USING ERRCODE = 'check_violation';
        END IF;
        UPDATE accounts SET held = held + NEW.amount WHERE school_id = NEW.school_id AND id = NEW.account_id;
    ELSIF OLD.state = 'pending' AND NEW.state <> 'pending' THEN
        UPDATE accounts SET held = held - OLD.amount WHERE school_id = OLD.school_id AND id = OLD.account_id;
    END IF;
    RETURN NULL;
END $$;
