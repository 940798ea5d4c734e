CREATE OR REPLACE TRIGGER settlement_days_append_only BEFORE UPDATE OR DELETE ON settlement_days
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
