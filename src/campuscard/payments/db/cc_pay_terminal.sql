-- The till a payment comes from, as the booking functions check it first: its signed request's
-- nonce recorded once, the terminal, its merchant and outlet, and its key version (the previous
-- key retired once the new one is used). ``refusal`` is the answer when the till may not take
-- this payment (the rest of the row is then not to be used); otherwise it is null.
CREATE OR REPLACE FUNCTION cc_pay_terminal(
    p_school int, p_terminal bigint, p_key_version int, p_nonce text,
    OUT refusal jsonb, OUT id bigint, OUT sn text, OUT school_id int, OUT kind text,
    OUT status text, OUT key_version int, OUT prev_key_version int, OUT outlet_id bigint,
    OUT merchant_id bigint, OUT merchant_status text, OUT channel text, OUT merchant_name text,
    OUT shards smallint, OUT outlet_name text
) LANGUAGE plpgsql AS $$
BEGIN
    IF p_nonce IS NOT NULL THEN
        INSERT INTO terminal_nonces(school_id, terminal_id, nonce)
        VALUES (p_school, p_terminal, p_nonce)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            refusal := cc_refusal(401, 'NONCE_REUSED', 'this nonce was already used', 'X-CC-Nonce');
            RETURN;
        END IF;
    END IF;

    SELECT t0.id, t0.sn, t0.school_id, t0.kind, t0.status, t0.key_version, t0.prev_key_version,
           t0.outlet_id, m.id, m.status, m.channel, m.name, m.shards, o.name
      INTO id, sn, school_id, kind, status, key_version, prev_key_version, outlet_id,
           merchant_id, merchant_status, channel, merchant_name, shards, outlet_name
      FROM terminals t0
      LEFT JOIN merchants m ON m.school_id = t0.school_id AND m.id = t0.merchant_id
      LEFT JOIN outlets o ON o.school_id = t0.school_id AND o.id = t0.outlet_id
     WHERE t0.school_id = p_school AND t0.id = p_terminal;
    IF id IS NULL THEN
        refusal := cc_refusal(401, 'TERMINAL_UNKNOWN', 'unknown terminal', 'X-CC-Terminal');
    ELSIF status <> 'active' THEN
        refusal := cc_refusal(403, 'TERMINAL_DISABLED', 'this terminal is disabled', 'X-CC-Terminal');
    ELSIF p_key_version IS DISTINCT FROM key_version
          AND p_key_version IS DISTINCT FROM prev_key_version THEN
        refusal := cc_refusal(401, 'KEY_VERSION_INVALID', 'this key version is no longer valid',
                              'X-CC-Key-Version');
    ELSE
        IF prev_key_version IS NOT NULL AND p_key_version = key_version THEN
            -- the device uses its new key: the previous one is retired
            UPDATE terminals u SET prev_key_version = NULL
             WHERE u.school_id = p_school AND u.id = p_terminal;
        END IF;
        IF kind <> 'pos' OR merchant_id IS NULL THEN
            refusal := cc_refusal(403, 'TERMINAL_NOT_POS', 'only POS terminals take payments',
                                  'X-CC-Terminal');
        END IF;
    END IF;
END $$;
