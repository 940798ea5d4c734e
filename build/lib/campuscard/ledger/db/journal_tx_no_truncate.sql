CREATE OR REPLACE TRIGGER journal_tx_no_truncate BEFORE TRUNCATE ON journal_tx
    FOR EACH STATEMENT EXECUTE FUNCTION cc_refuse_change();
