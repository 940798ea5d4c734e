-- Place a hold in one round trip. Idempotent by (school, p_key): the same request answers the
-- same (a stored refusal too), another request under the key is refused. The purses are locked
-- in id order (as cc_post and cc_pay lock them) before available = balance - held is read, so
-- two places cannot overcommit a purse; the floor CHECK on balance - held is the backstop.
-- p_purse NULL: the first purse in the school's purse order whose available covers the amount.
CREATE OR REPLACE FUNCTION cc_hold_place(
    p_school int, p_key text, p_person bigint, p_purse text, p_amount bigint, p_kind text,
    p_owner_kind text, p_owner_id text, p_payee bigint, p_memo text, p_actor text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_hash text := md5(concat_ws('|', p_person, p_purse, p_amount, p_kind, p_owner_kind,
                                 p_owner_id, p_payee));
    v_scope text := 'hold:' || p_school;
    h holds;
    k record;
    r record;
    v_status text;
    v_timeout interval;
    v_account bigint;
    v_available bigint := 0;
    v_order text[];
    v_answer jsonb;
BEGIN
    SELECT * INTO h FROM holds WHERE school_id = p_school AND hold_key = p_key;
    IF h.id IS NOT NULL THEN
        IF h.request_hash <> v_hash THEN
            RETURN cc_refusal(409, 'IDEMPOTENCY_KEY_REUSED',
                              'this hold id was used for another request', 'hold_id');
        END IF;
        RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h), 'replayed', true);
    END IF;
    SELECT request_hash, status_code, response INTO k FROM idempotency_keys
     WHERE school_id = p_school AND scope = v_scope AND key = p_key;
    IF k.request_hash IS NOT NULL THEN
        IF k.request_hash <> v_hash THEN
            RETURN cc_refusal(409, 'IDEMPOTENCY_KEY_REUSED',
                              'this hold id was used for another request', 'hold_id');
        END IF;
        RETURN jsonb_build_object('status', k.status_code, 'body', k.response, 'replayed', true);
    END IF;

    IF p_amount IS NULL OR p_amount <= 0 THEN
        v_answer := cc_refusal(422, 'AMOUNT_NOT_POSITIVE', 'amount must be greater than zero', 'amount');
    ELSIF p_purse IS NOT NULL AND p_purse NOT IN ('cash', 'subsidy') THEN
        v_answer := cc_refusal(422, 'PURSE_UNKNOWN', 'purse must be cash or subsidy', 'purse');
    END IF;
    v_timeout := cc_hold_timeout(p_school, p_kind);
    IF v_answer IS NULL AND v_timeout IS NULL THEN
        v_answer := cc_refusal(422, 'HOLD_KIND_UNKNOWN', 'this school has no timeout for hold kind '
                               || coalesce(p_kind, 'NULL'), 'kind');
    END IF;
    IF v_answer IS NULL AND NOT EXISTS (SELECT 1 FROM accounts WHERE school_id = p_school AND id = p_payee
                                        AND kind IN ('merchant', 'system')) THEN
        v_answer := cc_refusal(404, 'PAYEE_UNKNOWN', 'no such merchant or system account in this school',
                               'payee');
    END IF;
    IF v_answer IS NULL THEN
        SELECT account_status INTO v_status FROM persons WHERE id = p_person AND school_id = p_school;
        IF v_status IS NULL THEN
            v_answer := cc_refusal(404, 'PAYER_UNKNOWN', 'no such cardholder in this school', 'person_id');
        ELSIF v_status <> 'active' THEN
            v_answer := cc_refusal(403, 'ACCOUNT_NOT_ACTIVE',
                                   'the account of this cardholder is ' || v_status, 'person_id');
        END IF;
    END IF;
    IF v_answer IS NULL THEN
        v_order := CASE WHEN p_purse IS NOT NULL THEN ARRAY[p_purse]
                        WHEN (SELECT settings ->> 'purse_order' FROM schools WHERE id = p_school) = 'cash_first'
                        THEN ARRAY['cash', 'subsidy'] ELSE ARRAY['subsidy', 'cash'] END;
        -- lock the person's purses in id order, then pick
        FOR r IN SELECT id, purse, balance - held - coalesce(floor, 0) AS available
                   FROM accounts WHERE person_id = p_person AND kind = 'purse' AND school_id = p_school
                  ORDER BY id FOR UPDATE LOOP
            IF r.available >= p_amount AND r.purse = ANY (v_order)
               AND (v_account IS NULL OR array_position(v_order, r.purse)
                                         < array_position(v_order, (SELECT purse FROM accounts WHERE school_id = p_school AND id = v_account))) THEN
                v_account := r.id;
            END IF;
            IF r.purse = ANY (v_order) THEN
                v_available := v_available + greatest(r.available, 0);
            END IF;
        END LOOP;
        IF v_account IS NULL THEN
            v_answer := cc_refusal(409, 'INSUFFICIENT_FUNDS',
                                   'the available balance is not enough to hold this amount', 'amount',
                                   jsonb_build_object('available', cc_fmt(v_available)));
        END IF;
    END IF;
    IF v_answer IS NOT NULL THEN
        -- a refusal is stored too: a resent request gets it back, not a second try
        INSERT INTO idempotency_keys(school_id, scope, key, request_hash, status_code, response)
        VALUES (p_school, v_scope, p_key, v_hash, (v_answer ->> 'status')::int, v_answer -> 'body')
        ON CONFLICT DO NOTHING;
        RETURN v_answer;
    END IF;

    INSERT INTO holds(school_id, hold_key, request_hash, kind, owner_kind, owner_id, person_id,
                      account_id, payee_account_id, amount, memo, placed_by, expires_at)
    VALUES (p_school, p_key, v_hash, p_kind, p_owner_kind, p_owner_id, p_person, v_account, p_payee,
            p_amount, coalesce(p_memo, ''), coalesce(p_actor, 'system'), now() + v_timeout)
    ON CONFLICT (school_id, hold_key) DO NOTHING
    RETURNING * INTO h;
    IF h.id IS NULL THEN
        -- the same id placed concurrently: answer as the winner did
        SELECT * INTO h FROM holds WHERE school_id = p_school AND hold_key = p_key;
        IF h.request_hash <> v_hash THEN
            RETURN cc_refusal(409, 'IDEMPOTENCY_KEY_REUSED',
                              'this hold id was used for another request', 'hold_id');
        END IF;
        RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h), 'replayed', true);
    END IF;
    RETURN jsonb_build_object('status', 200, 'body', cc_hold_view(h));
END $$;
