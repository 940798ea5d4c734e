-- What a hold's caller is told, the same on every call (a replay answers the same).
CREATE OR REPLACE FUNCTION cc_hold_view(h holds) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'hold_id', h.hold_key, 'kind', h.kind, 'state', h.state,
        'owner', jsonb_build_object('kind', h.owner_kind, 'id', h.owner_id),
        'person_id', h.person_id,
        'purse', (SELECT purse FROM accounts WHERE school_id = h.school_id AND id = h.account_id),
        'amount', cc_fmt(h.amount), 'captured', cc_fmt(h.captured),
        'released', cc_fmt(CASE WHEN h.state = 'pending' THEN 0 ELSE h.amount - h.captured END),
        'placed_at', h.placed_at, 'expires_at', h.expires_at, 'resolved_at', h.resolved_at)
$$;
