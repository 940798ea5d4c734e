CREATE OR REPLACE TRIGGER pickup_codes_version BEFORE UPDATE ON pickup_codes
    FOR EACH ROW EXECUTE FUNCTION cc_pickup_bump_version();
