-- Reverse (冲正) a payment of this terminal, named by its client id. If the payment has not
-- arrived, leave a marker in its idempotency slot so the late original is refused for ever.
-- A reversal resent while the first one is still reversing the payment waits for the
-- payment's lock and then answers as the first one did. p_school is the terminal's school:
-- every statement names it (on Citus the call is delegated to the worker holding the school).
CREATE OR REPLACE FUNCTION cc_reverse(p_school int, p_terminal bigint, p_key_version int, p_nonce text, p_client_id text,
                           p_actor text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t record;
    pay record;
    rv record;
    r jsonb;
    v_scope text := 'terminal:' || p_terminal;
    v_key record;
    v_tx bigint;
    v_day date;
    v_cash_id bigint;
    v_sub_id bigint;
    v_body jsonb;
    v_other text;
BEGIN
    IF p_nonce IS NOT NULL THEN
        INSERT INTO terminal_nonces(school_id, terminal_id, nonce)
        VALUES (p_school, p_terminal, p_nonce)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN cc_refusal(401, 'NONCE_REUSED', 'this nonce was already used', 'X-CC-Nonce');
        END IF;
    END IF;
    SELECT id, sn, school_id, status, key_version, prev_key_version INTO t
      FROM terminals WHERE school_id = p_school AND id = p_terminal;
    IF t.id IS NULL THEN
        RETURN cc_refusal(401, 'TERMINAL_UNKNOWN', 'unknown terminal', 'X-CC-Terminal');
    END IF;
    IF t.status <> 'active' THEN
        RETURN cc_refusal(403, 'TERMINAL_DISABLED', 'this terminal is disabled', 'X-CC-Terminal');
    END IF;
    IF p_key_version IS DISTINCT FROM t.key_version
       AND p_key_version IS DISTINCT FROM t.prev_key_version THEN
        RETURN cc_refusal(401, 'KEY_VERSION_INVALID', 'this key version is no longer valid',
                          'X-CC-Key-Version');
    END IF;
    IF t.prev_key_version IS NOT NULL AND p_key_version = t.key_version THEN
        -- the device uses its new key: the previous one is retired
        UPDATE terminals SET prev_key_version = NULL WHERE school_id = p_school AND id = t.id;
    END IF;
    v_day := cc_business_date(t.school_id);
    -- the payment's own lock (cc_pay): an original still booking commits before we look
    PERFORM pg_advisory_xact_lock(cc_client_id_lock(p_terminal, p_client_id));

    -- a client id this terminal never used, but another till of the school did within the
    -- reversal window's days: someone is reversing the wrong till's payment. Refuse plainly
    -- rather than answer a success-looking "reversed / not_received" that moved nothing.
    IF NOT EXISTS (SELECT 1 FROM idempotency_keys
                    WHERE school_id = t.school_id AND scope = v_scope AND key = p_client_id) THEN
        SELECT o.sn INTO v_other
          FROM payments p JOIN terminals o ON o.school_id = p.school_id AND o.id = p.terminal_id
         WHERE p.school_id = t.school_id AND p.business_date >= v_day - 1
           AND p.client_id = p_client_id AND p.terminal_id <> p_terminal
         LIMIT 1;
        IF v_other IS NOT NULL THEN
            RETURN cc_refusal(409, 'PAYMENT_OF_ANOTHER_TERMINAL',
                              'this payment was taken at another terminal; only that terminal can '
                              'reverse it (a refund works from any till of the merchant)',
                              'client_id', jsonb_build_object('terminal', v_other));
        END IF;
    END IF;

    -- claim the original's slot; waits for an in-flight original to commit first
    INSERT INTO idempotency_keys(school_id, scope, key, request_hash, status_code, response)
    VALUES (t.school_id, v_scope, p_client_id, 'reversal-marker', 409,
            cc_refusal(409, 'PAYMENT_REVERSED',
                       'this payment was reversed by the terminal before it arrived',
                       'client_id') -> 'body')
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        v_body := jsonb_build_object('result', 'reversed', 'client_id', p_client_id,
                                     'original', 'not_received', 'amount', '0.00',
                                     'reversed_at', cc_clock());
        INSERT INTO payment_reversals(terminal_id, client_id, school_id, response, business_date,
                                      created_at)
        VALUES (p_terminal, p_client_id, t.school_id, v_body, v_day, cc_clock());
        RETURN jsonb_build_object('status', 200, 'body', v_body, 'replayed', false);
    END IF;

    SELECT response INTO rv FROM payment_reversals
     WHERE school_id = p_school AND terminal_id = p_terminal AND client_id = p_client_id;
    IF rv.response IS NOT NULL THEN
        RETURN jsonb_build_object('status', 200, 'body', rv.response, 'replayed', true);
    END IF;

    SELECT * INTO pay FROM payments
     WHERE school_id = p_school AND terminal_id = p_terminal AND client_id = p_client_id FOR UPDATE;
    -- the same reversal sent again while the first was reversing waited for the lock above:
    -- answer as the first did (before, it failed on the reversal's key and answered 500)
    SELECT response INTO rv FROM payment_reversals
     WHERE school_id = p_school AND terminal_id = p_terminal AND client_id = p_client_id;
    IF rv.response IS NOT NULL THEN
        RETURN jsonb_build_object('status', 200, 'body', rv.response, 'replayed', true);
    END IF;
    IF pay.id IS NULL THEN
        -- the original was refused: nothing moved, nothing to undo
        SELECT response INTO v_key FROM idempotency_keys
         WHERE school_id = t.school_id AND scope = v_scope AND key = p_client_id;
        v_body := jsonb_build_object('result', 'nothing_to_reverse', 'client_id', p_client_id,
                                     'original', 'refused', 'amount', '0.00',
                                     'original_error', v_key.response #>> '{error,code}');
        RETURN jsonb_build_object('status', 200, 'body', v_body, 'replayed', false);
    END IF;
    IF pay.refunded > 0 THEN
        RETURN cc_refusal(409, 'PAYMENT_REFUNDED',
                          'this payment was already (partly) refunded; it cannot be reversed',
                          'client_id');
    END IF;
    r := cc_payment_rules(t.school_id);
    IF cc_clock() - pay.created_at > make_interval(mins => (r ->> 'reversal_minutes')::int) THEN
        RETURN cc_refusal(409, 'REVERSAL_WINDOW_PASSED',
                          'a payment can be reversed only within ' || (r ->> 'reversal_minutes')
                          || ' minutes; ask the merchant for a refund', 'client_id');
    END IF;

    SELECT max(id) FILTER (WHERE purse = 'cash'), max(id) FILTER (WHERE purse = 'subsidy')
      INTO v_cash_id, v_sub_id
      FROM (SELECT id, purse FROM accounts
             WHERE school_id = p_school AND person_id = pay.person_id AND kind = 'purse'
             ORDER BY id FOR UPDATE) a;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta, created_at)
    VALUES (pay.school_id, 'payment_reversal', 'payment:' || pay.id, 'reversal (冲正)',
            coalesce(p_actor, t.sn), v_day, jsonb_build_object('channel', pay.channel), cc_clock())
    RETURNING id INTO v_tx;
    INSERT INTO postings(school_id, tx_id, account_id, amount, created_at)
    SELECT pay.school_id, v_tx, a, m, cc_clock() FROM (VALUES (v_cash_id, pay.from_cash), (v_sub_id, pay.from_subsidy),
                                   (pay.merchant_account_id, -pay.amount)) AS l(a, m)
     WHERE m <> 0 ORDER BY a;
    UPDATE payments SET status = 'reversed', reversed_at = cc_clock()
     WHERE school_id = p_school AND id = pay.id;
    -- the day's total (on the cash purse) gives the amount back if it is still that day's
    UPDATE accounts SET spent = greatest(spent - pay.amount, 0)
     WHERE school_id = p_school AND person_id = pay.person_id AND kind = 'purse' AND purse = 'cash'
       AND spent_on = pay.business_date;
    v_body := jsonb_build_object(
        'result', 'reversed', 'client_id', p_client_id, 'original', 'booked',
        'payment_id', pay.id, 'amount', cc_fmt(pay.amount),
        'returned_to', jsonb_build_object('cash', cc_fmt(pay.from_cash),
                                          'subsidy', cc_fmt(pay.from_subsidy)),
        'balance', (SELECT cc_fmt(sum(balance)::bigint) FROM accounts
                     WHERE school_id = p_school AND person_id = pay.person_id AND kind = 'purse'),
        'reversed_at', cc_clock());
    INSERT INTO payment_reversals(terminal_id, client_id, school_id, payment_id, tx_id, response,
                                  business_date, created_at)
    VALUES (p_terminal, p_client_id, pay.school_id, pay.id, v_tx, v_body, v_day, cc_clock());
    -- the live event goes back to the caller, which sends it (on Citus this runs on a worker,
    -- and a NOTIFY there reaches no listener and stops the two-phase commit)
    RETURN jsonb_build_object('status', 200, 'body', v_body, 'replayed', false,
        'event', jsonb_build_object(
            'type', 'payment_reversed', 'school_id', pay.school_id, 'person_id', pay.person_id,
            'payment_id', pay.id, 'amount', cc_fmt(pay.amount), 'balance', v_body ->> 'balance'));
END $$;
