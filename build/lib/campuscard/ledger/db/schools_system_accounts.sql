CREATE OR REPLACE TRIGGER schools_system_accounts AFTER INSERT ON schools
    FOR EACH ROW EXECUTE FUNCTION cc_create_system_accounts();
