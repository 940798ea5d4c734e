-- Check ('check') or book ('book') a payment at a POS terminal. The payer is a card
-- (number + chip UID) or an already verified person with a one-time credential (a payment
-- code). Returns {"status": http status, "body": answer, "replayed": bool}. Refusals are
-- answers, not exceptions, so the nonce, the idempotency record and PIN failure counts commit.
-- p_school is the terminal's school: every statement names it, so on Citus the call is
-- delegated to the worker that holds the school (docs/scale-out.md).
CREATE OR REPLACE FUNCTION cc_pay(
    p_school int, p_mode text, p_terminal bigint, p_key_version int, p_nonce text,
    p_client_id text, p_request_hash text,
    p_card_number text, p_card_uid text, p_person bigint, p_credential text,
    p_amount bigint, p_pin_token text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t record;
    v_scope text := 'terminal:' || p_terminal;
    v_key record;
    v_out jsonb;
BEGIN
    SELECT * INTO t FROM cc_pay_terminal(p_school, p_terminal, p_key_version, p_nonce);
    IF t.refusal IS NOT NULL THEN
        RETURN t.refusal;
    END IF;

    IF p_mode = 'book' THEN
        -- one booking per (terminal, client id) at a time: a resend arriving while the first
        -- try is booking waits here, then finds its answer. The key row is written once, with
        -- the answer (no early row updated afterwards); cc_reverse takes the same lock.
        PERFORM pg_advisory_xact_lock(cc_client_id_lock(p_terminal, p_client_id));
        SELECT request_hash, status_code, response INTO v_key
          FROM idempotency_keys
         WHERE school_id = t.school_id AND scope = v_scope AND key = p_client_id;
        IF FOUND THEN
            IF v_key.request_hash = 'reversal-marker' OR v_key.request_hash = p_request_hash THEN
                RETURN jsonb_build_object('status', v_key.status_code, 'body', v_key.response,
                                          'replayed', true);
            END IF;
            RETURN cc_refusal(409, 'IDEMPOTENCY_KEY_REUSED',
                              'client_id ' || p_client_id || ' was already used for a different request',
                              'client_id');
        END IF;
    END IF;

    v_out := cc_pay_inner(p_mode, t, p_client_id, p_card_number, p_card_uid, p_person,
                          p_credential, p_amount, p_pin_token);

    IF p_mode = 'book' THEN
        INSERT INTO idempotency_keys(school_id, scope, key, request_hash, status_code, response)
        VALUES (t.school_id, v_scope, p_client_id, p_request_hash, (v_out ->> 'status')::int, v_out -> 'body');
    END IF;
    RETURN v_out || jsonb_build_object('replayed', false);
END $$;
