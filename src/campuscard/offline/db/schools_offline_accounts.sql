CREATE OR REPLACE TRIGGER schools_offline_accounts AFTER INSERT ON schools
    FOR EACH ROW EXECUTE FUNCTION cc_create_offline_accounts();
