CREATE OR REPLACE TRIGGER recon_lines_append_only BEFORE UPDATE OR DELETE ON recon_lines
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
