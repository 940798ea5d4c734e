CREATE OR REPLACE TRIGGER merchants_accounts AFTER INSERT OR UPDATE OF shards ON merchants
    FOR EACH ROW EXECUTE FUNCTION cc_create_merchant_accounts();
