CREATE OR REPLACE FUNCTION cc_new_account_zero() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance <> 0 OR NEW.version <> 0 THEN
        RAISE EXCEPTION 'a new account starts at balance 0, version 0' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
