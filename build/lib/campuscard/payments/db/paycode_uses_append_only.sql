CREATE OR REPLACE TRIGGER paycode_uses_append_only BEFORE UPDATE OR DELETE ON paycode_uses
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
