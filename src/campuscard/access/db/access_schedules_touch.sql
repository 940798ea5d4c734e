CREATE OR REPLACE TRIGGER access_schedules_touch AFTER INSERT OR UPDATE OR DELETE ON access_schedules
    FOR EACH ROW EXECUTE FUNCTION cc_access_touch();
