-- Pay with a payment code at a till in one call (docs/decisions/0310-one-call-per-code-payment.md).
-- Python has parsed the code and, for a phone's code, checked its clock window and HMAC with the
-- binding's secret (payments/codes.py): p_verdict is its refusal (PAYCODE_MALFORMED,
-- PAYCODE_EXPIRED, PAYCODE_INVALID, PAYCODE_UNKNOWN) or null. A code checked with the secret its
-- token gives (scheme 6, decision 0401) comes without p_device: its binding is found here by the
-- token, and must be one keyed that way (no salt). Here, in the order a till has
-- always been answered in: the nonce and the till (cc_pay_terminal); a resend under the client id
-- (the stored answer, or the confirmation the phone is asked for); the token's throttle; the
-- binding (unknown, revoked) or the minted code (unknown, wrong verification code, replaced,
-- expired); the payer (code used, account, cards); then one run of the payment engine in 'try'
-- mode, which writes nothing when it refuses for a reason the student can fix. Above the PIN
-- threshold without a PIN, the student is asked on the phone (a paycode_confirmations row).
--
-- Returns {"status", "body", "replayed", "events": [live events to send after commit]}; or
-- {"status", "refused": code} for a refusal of the code itself, which the caller raises in its
-- own words (payments/codes.py REFUSALS); or {"status": 202, "confirmation": {...}}.
-- Locks, in the order every booking takes them: the client id's advisory lock, the code's
-- (two-key advisory lock on its credential, so a code is used once without an insert that can
-- fail), the payer's purses, the merchant shard.
CREATE OR REPLACE FUNCTION cc_pay_code(
    p_school int, p_terminal bigint, p_key_version int, p_nonce text, p_client_id text,
    p_code text, p_amount bigint, p_pin_token text,
    p_scheme text, p_token text, p_device bigint, p_step bigint, p_counter int,
    p_minted_hash text, p_verdict text, p_now timestamptz, p_confirm_until timestamptz
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    -- wrong codes per token in a window before it is locked: payments/codes.py MAX_FAILURES,
    -- FAILURE_WINDOW (the phone's confirmation checks the lock with those)
    c_max_failures CONSTANT int := 5;
    c_window CONSTANT interval := interval '10 minutes';
    t record;
    v_scope text := 'terminal:' || p_terminal;
    v_key record;
    v_conf record;
    v_code record;
    v_payer record;
    v_guess text;
    v_cred text;
    v_out jsonb;
    v_ok boolean;
    v_scanned jsonb;
    v_events jsonb;
BEGIN
    SELECT * INTO t FROM cc_pay_terminal(p_school, p_terminal, p_key_version, p_nonce);
    IF t.refusal IS NOT NULL THEN
        RETURN t.refusal || jsonb_build_object('events', '[]'::jsonb);
    END IF;

    -- a resend: one request per (till, client id) at a time (cc_pay takes the same lock)
    PERFORM pg_advisory_xact_lock(cc_client_id_lock(p_terminal, p_client_id));
    SELECT request_hash, status_code, response INTO v_key
      FROM idempotency_keys WHERE school_id = p_school AND scope = v_scope AND key = p_client_id;
    IF FOUND THEN
        -- the code's use under this client id names the payment; its amount is the payload
        IF v_key.request_hash = 'reversal-marker' OR EXISTS (
               SELECT 1 FROM paycode_uses u
                WHERE u.school_id = p_school AND u.terminal_id = p_terminal
                  AND u.client_id = p_client_id AND u.amount = p_amount) THEN
            RETURN jsonb_build_object('status', v_key.status_code, 'body', v_key.response,
                                      'replayed', true, 'events', '[]'::jsonb);
        END IF;
        RETURN cc_refusal(409, 'IDEMPOTENCY_KEY_REUSED',
                          'client_id ' || p_client_id || ' was already used for a different request',
                          'client_id') || jsonb_build_object('events', '[]'::jsonb);
    END IF;
    SELECT c.id, c.code, c.amount, c.status, c.result, c.expires_at INTO v_conf
      FROM paycode_confirmations c
     WHERE c.school_id = p_school AND c.terminal_id = p_terminal AND c.client_id = p_client_id;
    IF FOUND THEN
        IF v_conf.code <> btrim(p_code) OR v_conf.amount <> p_amount THEN
            RETURN jsonb_build_object('status', 409, 'refused', 'IDEMPOTENCY_KEY_REUSED');
        END IF;
        IF v_conf.status = 'pending' AND v_conf.expires_at <= now() THEN
            -- (a confirmation the phone is deciding right now stays pending: asked again later)
            UPDATE paycode_confirmations c SET status = 'expired', decided_at = now()
             WHERE c.school_id = p_school AND c.id = (
                   SELECT x.id FROM paycode_confirmations x
                    WHERE x.school_id = p_school AND x.id = v_conf.id AND x.status = 'pending'
                      FOR UPDATE SKIP LOCKED);
            IF FOUND THEN
                v_conf.status := 'expired';
            END IF;
        END IF;
        RETURN jsonb_build_object('status', 202, 'confirmation', jsonb_build_object(
            'id', v_conf.id, 'status', v_conf.status, 'result', v_conf.result,
            'expires_at', to_char(v_conf.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')));
    END IF;

    -- the code itself
    IF p_verdict = 'PAYCODE_MALFORMED' THEN
        RETURN jsonb_build_object('status', 422, 'refused', p_verdict);
    END IF;
    IF EXISTS (SELECT 1 FROM paycode_throttle th
                WHERE th.school_id = p_school AND th.token = p_token
                  AND th.attempts >= c_max_failures AND th.window_start > now() - c_window) THEN
        RETURN jsonb_build_object('status', 429, 'refused', 'PAYCODE_LOCKED');
    END IF;
    IF p_scheme = 'device' THEN
        SELECT d.id, d.person_id, d.status, d.salt IS NULL AS keyed INTO v_code
          FROM paycode_devices d WHERE d.school_id = p_school AND d.token = p_token;
        IF v_code.id IS NULL THEN
            v_guess := 'PAYCODE_UNKNOWN';
        ELSIF v_code.status <> 'active' THEN
            RETURN jsonb_build_object('status', 403, 'refused', 'PAYCODE_DEVICE_REVOKED');
        ELSIF p_verdict = 'PAYCODE_EXPIRED' THEN
            RETURN jsonb_build_object('status', 422, 'refused', p_verdict);
        -- (without p_device, the code was checked with a keyed secret: the binding must be one)
        ELSIF p_verdict IS NOT NULL OR coalesce(v_code.id <> p_device, NOT v_code.keyed) THEN
            v_guess := 'PAYCODE_INVALID';
        END IF;
        v_cred := 'paycode:d:' || v_code.id || ':' || p_step || ':' || p_counter;
    ELSE
        SELECT mc.id, mc.person_id, mc.verification_hash, mc.expires_at, mc.cancelled_at INTO v_code
          FROM paycode_minted mc WHERE mc.school_id = p_school AND mc.token = p_token;
        IF v_code.id IS NULL THEN
            v_guess := 'PAYCODE_UNKNOWN';
        ELSIF v_code.verification_hash IS DISTINCT FROM decode(p_minted_hash, 'hex') THEN
            v_guess := 'PAYCODE_INVALID';
        ELSIF v_code.cancelled_at IS NOT NULL THEN
            RETURN jsonb_build_object('status', 422, 'refused', 'PAYCODE_REPLACED');
        ELSIF v_code.expires_at <= p_now THEN
            RETURN jsonb_build_object('status', 422, 'refused', 'PAYCODE_MINTED_EXPIRED');
        END IF;
        v_cred := 'paycode:m:' || v_code.id;
    END IF;
    IF v_guess IS NOT NULL THEN
        -- a wrong code counts against its token (and is logged), until the count is used up
        INSERT INTO paycode_throttle AS th(school_id, token, attempts) VALUES (p_school, p_token, 1)
        ON CONFLICT (school_id, token) DO UPDATE SET
            attempts = CASE WHEN th.window_start <= now() - c_window THEN 1 ELSE th.attempts + 1 END,
            window_start = CASE WHEN th.window_start <= now() - c_window THEN now()
                                ELSE th.window_start END
         WHERE th.window_start <= now() - c_window OR th.attempts < c_max_failures;
        IF NOT FOUND THEN
            RETURN jsonb_build_object('status', 429, 'refused', 'PAYCODE_LOCKED');
        END IF;
        INSERT INTO paycode_failures(school_id, token, terminal_id, reason)
        VALUES (p_school, p_token, p_terminal, v_guess);
        RETURN jsonb_build_object('status', CASE WHEN v_guess = 'PAYCODE_UNKNOWN' THEN 404 ELSE 422 END,
                                  'refused', v_guess);
    END IF;

    -- the payer, and the code's single use (under the code's lock until this commits)
    PERFORM pg_advisory_xact_lock(p_school, hashtext(v_cred));
    SELECT p.account_status, p.status,
           (SELECT c.state FROM cards c
             WHERE c.school_id = p_school AND c.person_id = p.id AND c.state IN ('lost', 'frozen')
             LIMIT 1) AS card_block,
           EXISTS (SELECT 1 FROM paycode_uses u
                    WHERE u.school_id = p_school AND u.credential = v_cred) AS used
      INTO v_payer FROM persons p WHERE p.school_id = p_school AND p.id = v_code.person_id;
    IF v_payer.used THEN
        RETURN jsonb_build_object('status', 409, 'refused', 'PAYCODE_USED');
    ELSIF v_payer.status IS NULL THEN
        RETURN jsonb_build_object('status', 404, 'refused', 'ACCOUNT_UNKNOWN');
    ELSIF v_payer.account_status = 'frozen' THEN
        RETURN jsonb_build_object('status', 403, 'refused', 'ACCOUNT_FROZEN');
    ELSIF v_payer.account_status <> 'active' OR v_payer.status <> 'enrolled' THEN
        RETURN jsonb_build_object('status', 403, 'refused', 'ACCOUNT_CLOSED');
    ELSIF v_payer.card_block = 'lost' THEN
        RETURN jsonb_build_object('status', 403, 'refused', 'CARD_LOST');
    ELSIF v_payer.card_block = 'frozen' THEN
        RETURN jsonb_build_object('status', 403, 'refused', 'CARD_FROZEN');
    END IF;

    -- what the student's page shows of this payment
    v_scanned := jsonb_build_object(
        'school_id', p_school, 'person_id', v_code.person_id, 'terminal_id', p_terminal,
        'merchant', coalesce(t.merchant_name, ''), 'outlet', coalesce(t.outlet_name, ''),
        'amount', cc_fmt(p_amount));
    v_out := cc_pay_inner('try', t, p_client_id, NULL, NULL, v_code.person_id, v_cred, p_amount,
                          p_pin_token);
    v_ok := (v_out ->> 'status')::int = 200;
    IF NOT v_ok THEN
        IF p_pin_token IS NULL AND v_out -> 'body' -> 'error' ->> 'code' = 'PIN_REQUIRED' THEN
            -- above the PIN threshold: the student confirms with the PIN on the phone
            INSERT INTO paycode_confirmations(school_id, person_id, terminal_id, client_id, code,
                                              amount, expires_at)
            VALUES (p_school, v_code.person_id, p_terminal, p_client_id, btrim(p_code), p_amount,
                    p_confirm_until)
            RETURNING id, status, result, expires_at INTO v_conf;
            RETURN jsonb_build_object('status', 202, 'confirmation', jsonb_build_object(
                'id', v_conf.id, 'status', v_conf.status, 'result', v_conf.result,
                'expires_at', to_char(v_conf.expires_at AT TIME ZONE 'UTC',
                                      'YYYY-MM-DD"T"HH24:MI:SS.US')),
                'events', jsonb_build_array(
                    v_scanned || jsonb_build_object('type', 'paycode.scanned'),
                    v_scanned || jsonb_build_object('type', 'paycode.confirm',
                                                    'confirmation_id', v_conf.id)));
        END IF;
        -- (a refusal after the engine claimed the code says "claimed": the PIN was tried)
        IF NOT coalesce((v_out ->> 'claimed')::boolean, false) THEN
            -- refused before the code was used (funds, limits, the account): it stays usable,
            -- and the client id too
            RETURN v_out || jsonb_build_object('replayed', false, 'events', jsonb_build_array(
                v_scanned || jsonb_build_object('type', 'paycode.refused',
                                                'error', v_out -> 'body' -> 'error' ->> 'message')));
        END IF;
    END IF;

    -- the code is used (by this payment, or by a wrong PIN typed for it) and the answer kept
    INSERT INTO paycode_uses(school_id, person_id, scheme, device_id, step, counter, minted_id,
                             terminal_id, amount, client_id, credential)
    VALUES (p_school, v_code.person_id, p_scheme,
            CASE WHEN p_scheme = 'device' THEN v_code.id END,
            CASE WHEN p_scheme = 'device' THEN p_step END,
            CASE WHEN p_scheme = 'device' THEN p_counter END,
            CASE WHEN p_scheme = 'minted' THEN v_code.id END,
            p_terminal, p_amount, p_client_id, v_cred);
    -- (a phone's last use is read from its uses: codes.list_devices)
    IF p_scheme = 'minted' THEN
        UPDATE paycode_minted mc SET used_at = now()
         WHERE mc.school_id = p_school AND mc.id = v_code.id;
    END IF;
    -- the request's hash as payments/booking.py writes it for a verified payer
    INSERT INTO idempotency_keys(school_id, scope, key, request_hash, status_code, response)
    VALUES (p_school, v_scope, p_client_id,
            encode(sha256(convert_to('{"amount":' || p_amount || ',"credential":' || to_json(v_cred)
                                     || ',"op":"pay","person_id":' || v_code.person_id || '}',
                                     'UTF8')), 'hex'),
            (v_out ->> 'status')::int, v_out -> 'body');
    v_events := jsonb_build_array(v_scanned || jsonb_build_object('type', 'paycode.scanned'));
    IF v_ok THEN
        -- paid: the amount the till's display was showing is no longer asked
        DELETE FROM pos_pending_amounts pa WHERE pa.school_id = p_school AND pa.terminal_id = p_terminal;
        v_events := v_events || jsonb_build_array(v_out -> 'event', v_scanned || jsonb_build_object(
            'type', 'paycode.result', 'ok', true, 'balance', v_out -> 'body' -> 'balance',
            'payment_id', v_out -> 'body' -> 'payment_id'));
    ELSE
        v_events := v_events || jsonb_build_array(v_scanned || jsonb_build_object(
            'type', 'paycode.result', 'ok', false,
            'error', coalesce(v_out -> 'body' -> 'error' ->> 'message', '')));
    END IF;
    RETURN jsonb_build_object('status', (v_out ->> 'status')::int, 'body', v_out -> 'body',
                              'replayed', false, 'events', v_events);
END $$;
