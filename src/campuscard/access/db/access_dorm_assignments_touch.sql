CREATE OR REPLACE TRIGGER access_dorm_assignments_touch AFTER INSERT OR UPDATE OR DELETE ON access_dorm_assignments
    FOR EACH ROW EXECUTE FUNCTION cc_access_touch();
