CREATE OR REPLACE TRIGGER access_calendar_days_touch AFTER INSERT OR UPDATE OR DELETE ON access_calendar_days
    FOR EACH ROW EXECUTE FUNCTION cc_access_touch();
