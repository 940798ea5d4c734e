-- What a payment at a school needs to know besides its till and payer, the same for every
-- payment of one transaction: the engine's instant (cc_clock), the school's business date at it,
-- its payment rules (cc_payment_rules) and whether the ledger's switch reaches the accounts here
-- (cc_ledger_here). cc_pay_batch reads it once for all its members and hands it to the engine in
-- the transaction-local setting cc.pay_context; a lone payment reads it itself
-- (docs/decisions/0411-a-schools-rules-read-once-per-batch.md).
CREATE OR REPLACE FUNCTION cc_pay_context(p_school int) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_now timestamptz := cc_clock();
BEGIN
    RETURN jsonb_build_object('school', p_school, 'now', v_now,
                              'day', cc_business_date(p_school, v_now),
                              'rules', cc_payment_rules(p_school), 'here', cc_ledger_here());
END $$;
