-- Refund part or all of a payment back to the purses that paid (cash first, then subsidy),
-- never more than was paid: the payment row is locked, so racing refunds serialise. p_school
-- is the payment's school: every statement names it (on Citus the call is delegated by it).
CREATE OR REPLACE FUNCTION cc_refund(p_school int, p_payment bigint, p_amount bigint, p_terminal bigint, p_actor text,
                          p_reason text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    pay record;
    v_to_cash bigint;
    v_to_sub bigint;
    v_cash_id bigint;
    v_sub_id bigint;
    v_tx bigint;
    v_day date;
    v_refund bigint;
    v_balance bigint;
    v_at timestamptz := cc_clock();
BEGIN
    SELECT * INTO pay FROM payments WHERE school_id = p_school AND id = p_payment FOR UPDATE;
    IF pay.id IS NULL THEN
        RETURN cc_refusal(404, 'PAYMENT_UNKNOWN', 'no such payment', 'payment_id');
    END IF;
    IF pay.status = 'reversed' THEN
        RETURN cc_refusal(409, 'PAYMENT_REVERSED', 'this payment was reversed', 'payment_id');
    END IF;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RETURN cc_refusal(422, 'AMOUNT_NOT_POSITIVE', 'amount must be greater than zero', 'amount');
    END IF;
    IF p_amount > pay.amount - pay.refunded THEN
        RETURN cc_refusal(409, 'REFUND_EXCEEDS_PAYMENT',
                          'refund is more than what is left of the payment ('
                          || cc_fmt(pay.amount - pay.refunded) || ')', 'amount',
                          jsonb_build_object('refundable', cc_fmt(pay.amount - pay.refunded)));
    END IF;
    v_day := cc_business_date(pay.school_id);
    v_to_cash := least(p_amount, pay.from_cash - pay.refunded_cash);
    v_to_sub := p_amount - v_to_cash;
    SELECT max(id) FILTER (WHERE purse = 'cash'), max(id) FILTER (WHERE purse = 'subsidy')
      INTO v_cash_id, v_sub_id
      FROM (SELECT id, purse FROM accounts
             WHERE school_id = p_school AND person_id = pay.person_id AND kind = 'purse'
             ORDER BY id FOR UPDATE) a;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta, created_at)
    VALUES (pay.school_id, 'refund', 'payment:' || pay.id, coalesce(p_reason, ''), p_actor, v_day,
            jsonb_build_object('channel', pay.channel), v_at)
    RETURNING id INTO v_tx;
    INSERT INTO postings(school_id, tx_id, account_id, amount, created_at)
    SELECT pay.school_id, v_tx, a, m, v_at FROM (VALUES (v_cash_id, v_to_cash), (v_sub_id, v_to_sub),
                                   (pay.merchant_account_id, -p_amount)) AS l(a, m)
     WHERE m <> 0 ORDER BY a;
    UPDATE payments SET refunded = refunded + p_amount, refunded_cash = refunded_cash + v_to_cash,
                        refunded_subsidy = refunded_subsidy + v_to_sub
     WHERE school_id = p_school AND id = pay.id;
    -- the day's total (on the cash purse) gives the amount back if it is still that day's
    UPDATE accounts SET spent = greatest(spent - p_amount, 0)
     WHERE school_id = p_school AND person_id = pay.person_id AND kind = 'purse' AND purse = 'cash'
       AND spent_on = pay.business_date;
    INSERT INTO refunds(school_id, payment_id, merchant_id, terminal_id, amount, to_cash, to_subsidy,
                        reason, actor, tx_id, business_date, created_at)
    VALUES (pay.school_id, pay.id, pay.merchant_id, p_terminal, p_amount, v_to_cash, v_to_sub,
            coalesce(p_reason, ''), p_actor, v_tx, v_day, v_at)
    RETURNING id INTO v_refund;
    SELECT sum(balance) INTO v_balance FROM accounts
     WHERE school_id = p_school AND person_id = pay.person_id AND kind = 'purse';
    -- the live event goes back to the caller, which sends it (on Citus this runs on a worker,
    -- and a NOTIFY there reaches no listener and stops the two-phase commit)
    RETURN jsonb_build_object('status', 200, 'event', jsonb_build_object(
        'type', 'refund', 'school_id', pay.school_id, 'person_id', pay.person_id,
        'payment_id', pay.id, 'refund_id', v_refund, 'amount', cc_fmt(p_amount),
        'balance', cc_fmt(v_balance)), 'body', jsonb_build_object(
        'result', 'refunded', 'refund_id', v_refund, 'payment_id', pay.id,
        'amount', cc_fmt(p_amount),
        'returned_to', jsonb_build_object('cash', cc_fmt(v_to_cash), 'subsidy', cc_fmt(v_to_sub)),
        'refunded_total', cc_fmt(pay.refunded + p_amount),
        'refundable', cc_fmt(pay.amount - pay.refunded - p_amount),
        'balance', cc_fmt(v_balance), 'business_date', v_day));
END $$;
