CREATE OR REPLACE TRIGGER access_group_doors_touch AFTER INSERT OR UPDATE OR DELETE ON access_group_doors
    FOR EACH ROW EXECUTE FUNCTION cc_access_touch();
