-- System accounts every school has.
CREATE OR REPLACE FUNCTION cc_create_system_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    SELECT NEW.id, 'system', c, NULL
      FROM unnest(ARRAY['bank_clearing', 'provider_clearing', 'cash_desk', 'subsidy_fund',
                        'card_deposits', 'fee_income', 'commission_income', 'merchant_payable',
                        'suspense', 'opening_balances']) AS c;
    RETURN NEW;
END $$;
