-- Whether the accounts a booking updates are updated in this session: on one node, or on the
-- Citus worker that runs a booking function delegated by its school (decision 0320). Only then
-- does the transaction-local switch cc.posting_batch reach the triggers of accounts and
-- postings. A Citus coordinator running a booking itself (a statement that is more than the
-- function's call) sends each update to a worker's session, where the switch is off: there the
-- postings move their accounts in their own trigger, as cc_post's do.
CREATE OR REPLACE FUNCTION cc_ledger_here() RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- (Citus's settings exist only where its library is loaded: one node answers at once)
    IF current_setting('citus.shard_count', true) IS NULL
       OR NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RETURN true;
    END IF;
    RETURN NOT citus_is_coordinator();
END $$;
