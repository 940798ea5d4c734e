-- Apply a posting to its account: the only way a balance moves. The account is looked up in
-- the posting's school; one that is not there is refused as the foreign key
-- postings_account_id_fkey would (this trigger runs first), naming it.
CREATE OR REPLACE FUNCTION cc_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance + NEW.amount, version = version + 1
     WHERE school_id = NEW.school_id AND id = NEW.account_id
    RETURNING balance, version INTO NEW.balance_after, NEW.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'insert or update on table "postings" violates foreign key constraint "postings_account_id_fkey"'
            USING DETAIL = format('Key (school_id, account_id)=(%s, %s) is not present in table "accounts".',
                                  NEW.school_id, NEW.account_id),
                  ERRCODE = 'foreign_key_violation', TABLE = 'postings',
                  CONSTRAINT = 'postings_account_id_fkey';
    END IF;
    RETURN NEW;
END $$;
