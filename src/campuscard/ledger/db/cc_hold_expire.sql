-- Expire up to p_limit of a school's pending holds past their expiry; returns how many. Holds
-- another transaction is resolving are skipped (SKIP LOCKED) and the purses are touched in
-- account-id order, so the job never waits on or deadlocks with a capture or a payment.
CREATE OR REPLACE FUNCTION cc_hold_expire(p_school int, p_limit int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_n int := 0;
BEGIN
    FOR v_id IN SELECT id FROM (SELECT id, account_id FROM holds
                                 WHERE school_id = p_school AND state = 'pending' AND expires_at < now()
                                 ORDER BY expires_at LIMIT p_limit FOR UPDATE SKIP LOCKED) d
                 ORDER BY account_id, id LOOP
        UPDATE holds SET state = 'expired', resolved_at = now(), resolved_by = 'expiry'
         WHERE school_id = p_school AND id = v_id;
        v_n := v_n + 1;
    END LOOP;
    RETURN v_n;
END $$;
