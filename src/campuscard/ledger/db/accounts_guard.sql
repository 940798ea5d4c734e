-- cc_post_many's one update of its accounts' balances and versions passes (cc.posting_batch).
CREATE OR REPLACE TRIGGER accounts_guard BEFORE UPDATE ON accounts
    FOR EACH ROW WHEN (current_setting('cc.posting_batch', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION cc_guard_balance();
