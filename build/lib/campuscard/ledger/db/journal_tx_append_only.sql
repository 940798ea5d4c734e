CREATE OR REPLACE TRIGGER journal_tx_append_only BEFORE UPDATE OR DELETE ON journal_tx
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
