-- The system accounts every school has, opened by whoever creates the school, in its
-- transaction (not by a trigger on schools: on Citus that reference table's triggers would run
-- on every node's copy of it).
CREATE OR REPLACE FUNCTION cc_create_system_accounts(p_school int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    SELECT p_school, 'system', c, NULL
      FROM unnest(ARRAY['bank_clearing', 'provider_clearing', 'cash_desk', 'subsidy_fund',
                        'card_deposits', 'fee_income', 'commission_income', 'merchant_payable',
                        'suspense', 'opening_balances']) AS c;
END $$;
