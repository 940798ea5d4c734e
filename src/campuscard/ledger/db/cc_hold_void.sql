-- Void a pending hold: the whole amount goes back to the purse, nothing is booked. A second
-- void replays the answer; voiding a captured or expired hold is refused.
CREATE OR REPLACE FUNCTION cc_hold_void(p_school int, p_key text, p_actor text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    h holds;
BEGIN
    SELECT * INTO h FROM holds WHERE school_id = p_school AND hold_key = p_key FOR UPDATE;
    IF h.id IS NULL THEN
        RETURN cc_refusal(404, 'HOLD_UNKNOWN', 'no such hold in this school', 'hold_id');
    ELSIF h.state = 'voided' THEN
        RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h), 'replayed', true);
    ELSIF h.state <> 'pending' THEN
        RETURN cc_refusal(409, 'HOLD_' || upper(h.state), 'this hold was already ' || h.state, 'hold_id',
                          jsonb_build_object('hold', cc_hold_view(h)));
    END IF;
    UPDATE holds SET state = 'voided', resolved_at = now(), resolved_by = coalesce(p_actor, 'system')
     WHERE school_id = p_school AND id = h.id RETURNING * INTO h;
    RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h));
END $$;
