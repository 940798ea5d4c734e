CREATE OR REPLACE TRIGGER schools_settlement_accounts AFTER INSERT ON schools
    FOR EACH ROW EXECUTE FUNCTION cc_create_settlement_accounts();
