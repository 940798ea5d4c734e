-- A top-up repays the holder's offline overdraft first: as much of the debt as the cash purse
-- now has available goes back to the school's offline_receivable, in the top-up's own
-- transaction. Locks the cash purse, then the debt row (the offline ingest locks in that order
-- too). Returns the fen repaid.
CREATE OR REPLACE FUNCTION cc_offline_repay(p_school int, p_person bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_cash bigint;
    v_available bigint;
    v_owed bigint;
    v_receivable bigint;
    v_repay bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM offline_debts
                    WHERE school_id = p_school AND person_id = p_person AND owed > 0) THEN
        RETURN 0;
    END IF;
    SELECT id, balance - held - coalesce(floor, 0) INTO v_cash, v_available FROM accounts
     WHERE school_id = p_school AND person_id = p_person AND kind = 'purse' AND purse = 'cash'
       FOR UPDATE;
    SELECT owed INTO v_owed FROM offline_debts
     WHERE school_id = p_school AND person_id = p_person FOR UPDATE;
    v_repay := least(coalesce(v_owed, 0), greatest(coalesce(v_available, 0), 0));
    IF v_repay <= 0 THEN
        RETURN 0;
    END IF;
    SELECT id INTO v_receivable FROM accounts
     WHERE school_id = p_school AND kind = 'system' AND system_code = 'offline_receivable';
    PERFORM cc_post(p_school, 'offline_repayment', 'offline_debt:' || p_person,
                    'offline overdraft repaid from a top-up', 'system',
                    ARRAY[v_cash, v_receivable], ARRAY[-v_repay, v_repay],
                    jsonb_build_object('person_id', p_person));
    UPDATE offline_debts SET owed = owed - v_repay, repaid_total = repaid_total + v_repay,
           updated_at = now()
     WHERE school_id = p_school AND person_id = p_person;
    RETURN v_repay;
END $$;
