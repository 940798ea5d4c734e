-- Capture p_amount of a pending hold (1 ≤ p_amount ≤ the hold) and release the rest, in one
-- round trip: the hold row is locked first, its state change gives the held amount back to the
-- purse (trigger, which locks the purse), and the capture books purse → payee like a payment.
-- A second capture of the same amount replays the answer; anything else on a resolved hold is
-- refused. A hold past its expiry cannot be captured: it is expired here, and the refusal says so.
CREATE OR REPLACE FUNCTION cc_hold_capture(
    p_school int, p_key text, p_amount bigint, p_actor text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    h holds;
    v_tx bigint;
BEGIN
    SELECT * INTO h FROM holds WHERE school_id = p_school AND hold_key = p_key FOR UPDATE;
    IF h.id IS NULL THEN
        RETURN cc_refusal(404, 'HOLD_UNKNOWN', 'no such hold in this school', 'hold_id');
    END IF;
    IF h.state = 'captured' AND h.captured = p_amount THEN
        RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h), 'replayed', true);
    ELSIF h.state <> 'pending' THEN
        RETURN cc_refusal(409, 'HOLD_' || upper(h.state), 'this hold was already ' || h.state, 'hold_id',
                          jsonb_build_object('hold', cc_hold_view(h)));
    END IF;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RETURN cc_refusal(422, 'AMOUNT_NOT_POSITIVE',
                          'amount must be greater than zero (void a hold that was not used)', 'amount');
    ELSIF p_amount > h.amount THEN
        RETURN cc_refusal(422, 'CAPTURE_OVER_HOLD', 'amount is more than the hold of ' || cc_fmt(h.amount),
                          'amount', jsonb_build_object('held', cc_fmt(h.amount)));
    END IF;
    IF h.expires_at < now() THEN
        UPDATE holds SET state = 'expired', resolved_at = now(), resolved_by = 'capture-after-expiry'
         WHERE school_id = p_school AND id = h.id RETURNING * INTO h;
        RETURN cc_refusal(409, 'HOLD_EXPIRED', 'this hold expired and was released', 'hold_id',
                          jsonb_build_object('hold', cc_hold_view(h)));
    END IF;
    -- release first (the state change gives the whole hold back to the purse), then book the
    -- capture under the journal id the hold already names: available never dips below the floor
    v_tx := nextval(pg_get_serial_sequence('journal_tx', 'id'));
    UPDATE holds SET state = 'captured', captured = p_amount, tx_id = v_tx, resolved_at = now(),
                     resolved_by = coalesce(p_actor, 'system')
     WHERE school_id = p_school AND id = h.id RETURNING * INTO h;
    INSERT INTO journal_tx(id, school_id, kind, ref, memo, actor, business_date, meta)
    VALUES (v_tx, p_school, 'hold_capture', 'hold:' || p_school || ':' || h.id, h.memo,
            coalesce(p_actor, 'system'), cc_business_date(p_school),
            jsonb_build_object('hold', h.hold_key, 'kind', h.kind,
                               'owner_kind', h.owner_kind, 'owner_id', h.owner_id));
    INSERT INTO postings(school_id, tx_id, account_id, amount)
    SELECT p_school, v_tx, a, m FROM (VALUES (h.account_id, -p_amount), (h.payee_account_id, p_amount)) AS l(a, m)
     ORDER BY a;
    RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h));
END $$;
