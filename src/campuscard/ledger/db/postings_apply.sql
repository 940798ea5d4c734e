-- A posting moves its account (cc_apply_posting), unless cc_post_many, which moves the accounts
-- of its postings set-based, inserts it with its version already worked out.
CREATE OR REPLACE TRIGGER postings_apply BEFORE INSERT ON postings
    FOR EACH ROW
    WHEN (NEW.version = 0 OR current_setting('cc.posting_batch', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION cc_apply_posting();
