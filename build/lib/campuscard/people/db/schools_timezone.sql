CREATE OR REPLACE TRIGGER schools_timezone BEFORE INSERT OR UPDATE OF timezone ON schools
    FOR EACH ROW EXECUTE FUNCTION cc_check_timezone();
