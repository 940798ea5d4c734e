-- Book one journal transaction in one round trip. Legs are applied in account-id order so
-- concurrent transactions always lock rows in the same order and never deadlock.
CREATE OR REPLACE FUNCTION cc_post(
    p_school int, p_kind text, p_ref text, p_memo text, p_actor text,
    p_accounts bigint[], p_amounts bigint[], p_meta jsonb DEFAULT '{}'::jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_tx bigint;
    v_at timestamptz := cc_clock();
BEGIN
    IF array_length(p_accounts, 1) IS DISTINCT FROM array_length(p_amounts, 1)
       OR coalesce(array_length(p_accounts, 1), 0) < 2 THEN
        RAISE EXCEPTION 'a journal transaction needs at least two legs' USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta, created_at)
    VALUES (p_school, p_kind, p_ref, coalesce(p_memo, ''), coalesce(p_actor, 'system'),
            cc_business_date(p_school, v_at), coalesce(p_meta, '{}'::jsonb), v_at)
    RETURNING id INTO v_tx;
    INSERT INTO postings(school_id, tx_id, account_id, amount, created_at)
    SELECT p_school, v_tx, l.account_id, l.amount, v_at
      FROM (SELECT a AS account_id, sum(m) AS amount
              FROM unnest(p_accounts, p_amounts) AS u(a, m) GROUP BY a) l
     WHERE l.amount <> 0
     ORDER BY l.account_id;
    -- a credit line (a purse floor below zero) pays for purchases and bills only (an offline
    -- sale's debt repaid from a top-up is a purchase): nothing else (a withdrawal, a transfer, a
    -- payout) may take such a purse below zero. The message names the constraint: on Citus a
    -- worker's refusal reaches the client without its constraint field
    -- (distribution.constraint_name reads it from the message)
    IF p_kind NOT IN ('bill_payment', 'offline_repayment') AND EXISTS (
        SELECT 1 FROM accounts a JOIN unnest(p_accounts, p_amounts) AS u(id, m) ON a.id = u.id
         WHERE a.school_id = p_school AND u.m < 0 AND a.kind = 'purse' AND a.floor < 0 AND a.balance - a.held < 0) THEN
        RAISE EXCEPTION 'a credit line pays for purchases and bills only (check constraint "accounts_floor")'
              USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_floor';
    END IF;
    RETURN v_tx;
END $$;
