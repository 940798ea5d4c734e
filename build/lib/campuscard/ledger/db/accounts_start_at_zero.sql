CREATE OR REPLACE TRIGGER accounts_start_at_zero BEFORE INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION cc_new_account_zero();
