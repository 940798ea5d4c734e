CREATE OR REPLACE TRIGGER recon_imports_append_only BEFORE UPDATE OR DELETE ON recon_imports
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
