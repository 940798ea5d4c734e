-- The school's payment rules with defaults (amounts in fen). See payments/rules.py.
-- Payments follow the school's one purse-order policy, settings->>'purse_order'
-- ('subsidy_first' default, or 'cash_first'; ledger/purse_order.py), the same policy subsidy
-- expiry replays, instead of a second setting under settings->'payments'.
CREATE OR REPLACE FUNCTION cc_payment_rules(p_school int) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'per_tx_limit', 100000, 'daily_limit', 300000,
        'pin_over_per_tx', 5000, 'pin_over_daily', 20000, 'pin_max_failures', 3,
        'reversal_minutes', 10)
        || (coalesce(s.settings -> 'payments', '{}'::jsonb) - 'purse_order')
        || jsonb_build_object('purse_order', CASE WHEN s.settings ->> 'purse_order' = 'cash_first'
                                                  THEN jsonb_build_array('cash', 'subsidy')
                                                  ELSE jsonb_build_array('subsidy', 'cash') END)
      FROM schools s WHERE s.id = p_school
$$;
