CREATE OR REPLACE TRIGGER access_door_groups_touch AFTER INSERT OR UPDATE OR DELETE ON access_door_groups
    FOR EACH ROW EXECUTE FUNCTION cc_access_touch();
