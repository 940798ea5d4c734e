-- Apply a posting to its account: the only way a balance moves.
CREATE OR REPLACE FUNCTION cc_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance + NEW.amount, version = version + 1
     WHERE id = NEW.account_id
    RETURNING balance, version INTO NEW.balance_after, NEW.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', NEW.account_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
