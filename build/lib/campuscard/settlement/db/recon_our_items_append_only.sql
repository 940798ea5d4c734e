CREATE OR REPLACE TRIGGER recon_our_items_append_only BEFORE UPDATE OR DELETE ON recon_our_items
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
