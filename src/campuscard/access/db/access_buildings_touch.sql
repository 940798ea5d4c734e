CREATE OR REPLACE TRIGGER access_buildings_touch AFTER INSERT OR UPDATE OR DELETE ON access_buildings
    FOR EACH ROW EXECUTE FUNCTION cc_access_touch();
