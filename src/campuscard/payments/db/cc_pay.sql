-- Check ('check') or book ('book') a payment at a POS terminal. The payer is a card
-- (number + chip UID) or an already verified person with a one-time credential (a payment
-- code). Returns {"status": http status, "body": answer, "replayed": bool}. Refusals are
-- answers, not exceptions, so the nonce, the idempotency record and PIN failure counts commit.
CREATE OR REPLACE FUNCTION cc_pay(
    p_mode text, p_terminal bigint, p_key_version int, p_nonce text,
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
    IF p_nonce IS NOT NULL THEN
        INSERT INTO terminal_nonces(school_id, terminal_id, nonce)
        VALUES ((SELECT school_id FROM terminals WHERE id = p_terminal), p_terminal, p_nonce)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN cc_refusal(401, 'NONCE_REUSED', 'this nonce was already used', 'X-CC-Nonce');
        END IF;
    END IF;

    SELECT t0.id, t0.sn, t0.school_id, t0.kind, t0.status, t0.key_version, t0.prev_key_version,
           t0.outlet_id, m.id AS merchant_id, m.status AS merchant_status, m.channel,
           m.name AS merchant_name, m.shards, o.name AS outlet_name
      INTO t
      FROM terminals t0 LEFT JOIN merchants m ON m.id = t0.merchant_id
      LEFT JOIN outlets o ON o.id = t0.outlet_id
     WHERE t0.id = p_terminal;
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
        UPDATE terminals SET prev_key_version = NULL WHERE id = t.id;
    END IF;
    IF t.kind <> 'pos' OR t.merchant_id IS NULL THEN
        RETURN cc_refusal(403, 'TERMINAL_NOT_POS', 'only POS terminals take payments', 'X-CC-Terminal');
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
