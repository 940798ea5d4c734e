CREATE OR REPLACE TRIGGER clearing_items_append_only BEFORE UPDATE OR DELETE ON clearing_items
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
