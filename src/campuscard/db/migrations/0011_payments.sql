-- Payments at merchants: one PL/pgSQL function books a payment in one round trip (checks,
-- idempotency, nonce, limits, PIN, purse order, one merchant shard, receipt). Refunds and
-- reversals (冲正) book the opposite movement against the same accounts.

CREATE TABLE payments (
    id                  bigserial PRIMARY KEY,
    school_id           int NOT NULL REFERENCES schools(id),
    terminal_id         bigint NOT NULL REFERENCES terminals(id),
    client_id           text NOT NULL,
    merchant_id         bigint NOT NULL REFERENCES merchants(id),
    outlet_id           bigint REFERENCES outlets(id),
    channel             text NOT NULL,
    method              text NOT NULL CHECK (method IN ('card', 'code')),
    person_id           bigint NOT NULL REFERENCES persons(id),
    card_id             bigint REFERENCES cards(id),
    credential          text,
    amount              bigint NOT NULL CHECK (amount > 0),
    from_cash           bigint NOT NULL CHECK (from_cash >= 0),
    from_subsidy        bigint NOT NULL CHECK (from_subsidy >= 0),
    refunded            bigint NOT NULL DEFAULT 0,
    refunded_cash       bigint NOT NULL DEFAULT 0 CHECK (refunded_cash <= from_cash),
    refunded_subsidy    bigint NOT NULL DEFAULT 0 CHECK (refunded_subsidy <= from_subsidy),
    status              text NOT NULL DEFAULT 'booked' CHECK (status IN ('booked', 'reversed')),
    pin_verified        boolean NOT NULL DEFAULT false,
    merchant_account_id bigint NOT NULL REFERENCES accounts(id),
    tx_id               bigint NOT NULL REFERENCES journal_tx(id),
    business_date       date NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    reversed_at         timestamptz,
    UNIQUE (terminal_id, client_id),
    CHECK (from_cash + from_subsidy = amount),
    CHECK (refunded = refunded_cash + refunded_subsidy),
    CHECK (refunded BETWEEN 0 AND amount),
    CHECK (status <> 'reversed' OR refunded = 0)
);
CREATE INDEX payments_settlement ON payments(school_id, business_date, merchant_id, terminal_id);
CREATE INDEX payments_person ON payments(person_id, id DESC);
CREATE INDEX payments_merchant ON payments(merchant_id, id DESC);

CREATE TABLE refunds (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    payment_id      bigint NOT NULL REFERENCES payments(id),
    merchant_id     bigint NOT NULL REFERENCES merchants(id),
    terminal_id     bigint REFERENCES terminals(id),
    amount          bigint NOT NULL CHECK (amount > 0),
    to_cash         bigint NOT NULL CHECK (to_cash >= 0),
    to_subsidy      bigint NOT NULL CHECK (to_subsidy >= 0),
    reason          text NOT NULL DEFAULT '',
    actor           text NOT NULL,
    tx_id           bigint NOT NULL REFERENCES journal_tx(id),
    business_date   date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (to_cash + to_subsidy = amount)
);
CREATE INDEX refunds_payment ON refunds(payment_id);
CREATE INDEX refunds_settlement ON refunds(school_id, business_date, merchant_id);

-- A reversal names the original by (terminal, client id). It arrives before, after, or twice.
CREATE TABLE payment_reversals (
    terminal_id     bigint NOT NULL REFERENCES terminals(id),
    client_id       text NOT NULL,
    school_id       int NOT NULL REFERENCES schools(id),
    payment_id      bigint REFERENCES payments(id),      -- NULL: arrived before the payment
    tx_id           bigint REFERENCES journal_tx(id),
    response        jsonb NOT NULL,
    business_date   date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (terminal_id, client_id)
);
CREATE INDEX payment_reversals_settlement ON payment_reversals(school_id, business_date);

-- One-time payer credentials (a QR payment code): used once, ever.
CREATE TABLE payer_credentials_used (
    credential      text PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL REFERENCES persons(id),
    used_at         timestamptz NOT NULL DEFAULT now()
);

-- What a person spent per business day (net of reversals and refunds of that day's payments).
CREATE TABLE daily_spend (
    person_id       bigint NOT NULL REFERENCES persons(id),
    business_date   date NOT NULL,
    spent           bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (person_id, business_date)
);

-- "12.50" for 1250 fen.
CREATE FUNCTION cc_fmt(p_fen bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_fen < 0 THEN '-' ELSE '' END
           || (abs(p_fen) / 100)::text || '.' || lpad((abs(p_fen) % 100)::text, 2, '0')
$$;

CREATE FUNCTION cc_refusal(p_status int, p_code text, p_message text, p_field text DEFAULT NULL,
                           p_details jsonb DEFAULT NULL)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object('status', p_status, 'body', jsonb_build_object('error',
        jsonb_strip_nulls(jsonb_build_object('code', p_code, 'message', p_message,
                                             'details', p_details))
        || jsonb_build_object('field', p_field)))
$$;

-- The school's payment rules with defaults (amounts in fen). See domain/payments.py.
CREATE FUNCTION cc_payment_rules(p_school int) RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'per_tx_limit', 100000, 'daily_limit', 300000,
        'pin_over_per_tx', 5000, 'pin_over_daily', 20000, 'pin_max_failures', 3,
        'purse_order', jsonb_build_array('subsidy', 'cash'), 'reversal_minutes', 10)
        || coalesce(s.settings -> 'payments', '{}'::jsonb)
      FROM schools s WHERE s.id = p_school
$$;

-- Check ('check') or book ('book') a payment at a POS terminal. The payer is a card
-- (number + chip UID) or an already verified person with a one-time credential (a payment
-- code). Returns {"status": http status, "body": answer, "replayed": bool}. Refusals are
-- answers, not exceptions, so the nonce, the idempotency record and PIN failure counts commit.
CREATE FUNCTION cc_pay(
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
        INSERT INTO terminal_nonces(terminal_id, nonce) VALUES (p_terminal, p_nonce)
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
        INSERT INTO idempotency_keys(scope, key, request_hash)
        VALUES (v_scope, p_client_id, p_request_hash) ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT request_hash, status_code, response INTO v_key
              FROM idempotency_keys WHERE scope = v_scope AND key = p_client_id;
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
        UPDATE idempotency_keys SET status_code = (v_out ->> 'status')::int,
                                    response = v_out -> 'body'
         WHERE scope = v_scope AND key = p_client_id;
    END IF;
    RETURN v_out || jsonb_build_object('replayed', false);
END $$;

CREATE FUNCTION cc_pay_inner(
    p_mode text, t record, p_client_id text,
    p_card_number text, p_card_uid text, p_person bigint, p_credential text,
    p_amount bigint, p_pin_token text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    c record;
    p record;
    ps record;
    r jsonb;
    v_day date := cc_business_date(t.school_id);
    v_person bigint;
    v_spent bigint;
    v_per_tx bigint;
    v_daily bigint;
    v_max_fail int;
    v_pin_needed boolean;
    v_pin_ok boolean := false;
    v_cash_id bigint; v_cash bigint := 0;
    v_sub_id bigint; v_sub bigint := 0;
    v_from_cash bigint := 0; v_from_sub bigint := 0;
    v_left bigint;
    v_purse text;
    v_merchant_acc bigint;
    v_tx bigint;
    v_payment bigint;
    v_now timestamptz := now();
    v_receipt jsonb;
    v_card_id bigint;
    v_card_no text;
BEGIN
    IF t.merchant_status <> 'approved' THEN
        RETURN cc_refusal(403, 'MERCHANT_NOT_APPROVED',
                          'the merchant of this terminal is ' || t.merchant_status, NULL);
    END IF;
    IF p_amount IS NULL OR p_amount <= 0 THEN
        RETURN cc_refusal(422, 'AMOUNT_NOT_POSITIVE', 'amount must be greater than zero', 'amount');
    END IF;

    -- who pays
    IF p_card_number IS NOT NULL THEN
        SELECT id, person_id, number, uid, state, expires_on INTO c
          FROM cards WHERE school_id = t.school_id AND number = p_card_number;
        IF c.id IS NULL THEN
            RETURN cc_refusal(404, 'CARD_UNKNOWN', 'no such card in this school', 'card_number');
        END IF;
        IF c.uid IS DISTINCT FROM upper(p_card_uid) THEN
            RETURN cc_refusal(403, 'CARD_UID_MISMATCH',
                              'the chip UID does not belong to this card number', 'card_uid');
        END IF;
        IF c.state = 'lost' THEN
            RETURN cc_refusal(403, 'CARD_LOST', 'this card was reported lost', 'card_number');
        ELSIF c.state = 'frozen' THEN
            RETURN cc_refusal(403, 'CARD_FROZEN', 'this card is frozen', 'card_number');
        ELSIF c.state = 'replaced' THEN
            RETURN cc_refusal(403, 'CARD_REPLACED', 'this card was replaced by a new one', 'card_number');
        ELSIF c.state = 'cancelled' THEN
            RETURN cc_refusal(403, 'CARD_CANCELLED', 'this card was cancelled', 'card_number');
        ELSIF c.state = 'expired' OR (c.expires_on IS NOT NULL AND c.expires_on < v_day) THEN
            RETURN cc_refusal(403, 'CARD_EXPIRED', 'this card has expired', 'card_number');
        ELSIF c.state <> 'active' THEN
            RETURN cc_refusal(403, 'CARD_NOT_ACTIVE', 'this card is not activated yet', 'card_number');
        END IF;
        v_person := c.person_id;
        v_card_id := c.id;
        v_card_no := c.number;
    ELSE
        IF p_person IS NULL OR p_credential IS NULL THEN
            RETURN cc_refusal(422, 'PAYER_REQUIRED', 'give a card or a verified payer', 'card_number');
        END IF;
        v_person := p_person;
        IF p_mode = 'book' THEN
            INSERT INTO payer_credentials_used(credential, school_id, person_id)
            VALUES (p_credential, t.school_id, v_person) ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                RETURN cc_refusal(409, 'CREDENTIAL_USED', 'this payment code was already used', 'code');
            END IF;
        ELSIF EXISTS (SELECT 1 FROM payer_credentials_used WHERE credential = p_credential) THEN
            RETURN cc_refusal(409, 'CREDENTIAL_USED', 'this payment code was already used', 'code');
        END IF;
    END IF;

    SELECT id, name, account_status INTO p FROM persons
     WHERE id = v_person AND school_id = t.school_id;
    IF p.id IS NULL THEN
        RETURN cc_refusal(404, 'PAYER_UNKNOWN', 'no such cardholder in this school', 'card_number');
    END IF;
    IF p.account_status = 'frozen' THEN
        RETURN cc_refusal(403, 'ACCOUNT_FROZEN', 'the account of this cardholder is frozen', NULL);
    ELSIF p.account_status <> 'active' THEN
        RETURN cc_refusal(403, 'ACCOUNT_NOT_ACTIVE',
                          'the account of this cardholder is ' || p.account_status, NULL);
    END IF;

    -- lock the purses first (always person before merchant), then read what they hold
    FOR r IN SELECT jsonb_build_object('id', id, 'purse', purse, 'balance', balance) AS j
               FROM accounts WHERE person_id = v_person AND kind = 'purse' ORDER BY id FOR UPDATE
    LOOP
        IF r ->> 'purse' = 'cash' THEN
            v_cash_id := (r ->> 'id')::bigint; v_cash := (r ->> 'balance')::bigint;
        ELSE
            v_sub_id := (r ->> 'id')::bigint; v_sub := (r ->> 'balance')::bigint;
        END IF;
    END LOOP;
    IF v_cash_id IS NULL THEN
        RETURN cc_refusal(403, 'ACCOUNT_NOT_ACTIVE', 'this cardholder has no purse', NULL);
    END IF;

    -- limits: the school's rules, overridden per person
    r := cc_payment_rules(t.school_id);
    SELECT pin_hash, pin_failures, per_tx_limit, daily_limit INTO ps
      FROM pay_settings WHERE person_id = v_person;
    v_per_tx := coalesce(ps.per_tx_limit, (r ->> 'per_tx_limit')::bigint);
    v_daily := coalesce(ps.daily_limit, (r ->> 'daily_limit')::bigint);
    v_max_fail := (r ->> 'pin_max_failures')::int;
    SELECT spent INTO v_spent FROM daily_spend WHERE person_id = v_person AND business_date = v_day;
    v_spent := coalesce(v_spent, 0);
    IF p_amount > v_per_tx THEN
        RETURN cc_refusal(403, 'OVER_TRANSACTION_LIMIT',
                          'amount is over the per-payment limit of ' || cc_fmt(v_per_tx), 'amount',
                          jsonb_build_object('limit', cc_fmt(v_per_tx)));
    END IF;
    IF v_spent + p_amount > v_daily THEN
        RETURN cc_refusal(403, 'OVER_DAILY_LIMIT',
                          'this payment would pass the daily limit of ' || cc_fmt(v_daily), 'amount',
                          jsonb_build_object('limit', cc_fmt(v_daily), 'spent_today', cc_fmt(v_spent)));
    END IF;

    -- PIN: above a threshold per payment or per day
    IF coalesce(ps.pin_failures, 0) >= v_max_fail THEN
        RETURN cc_refusal(403, 'PIN_LOCKED',
                          'too many wrong PINs: the card is locked until the PIN is reset', 'pin');
    END IF;
    v_pin_needed := p_amount > (r ->> 'pin_over_per_tx')::bigint
                    OR v_spent + p_amount > (r ->> 'pin_over_daily')::bigint;
    IF v_pin_needed AND p_mode = 'book' THEN
        IF p_pin_token IS NULL THEN
            RETURN cc_refusal(403, 'PIN_REQUIRED', 'this payment needs the cardholder''s PIN', 'pin');
        END IF;
        IF ps.pin_hash IS NULL THEN
            RETURN cc_refusal(403, 'PIN_NOT_SET',
                              'the cardholder has not set a PIN yet (set it online or at a kiosk)', 'pin');
        END IF;
        IF ps.pin_hash <> encode(sha256(convert_to(p_pin_token || ':' || v_person, 'UTF8')), 'hex') THEN
            UPDATE pay_settings SET pin_failures = pin_failures + 1, updated_at = v_now
             WHERE person_id = v_person;
            IF ps.pin_failures + 1 >= v_max_fail THEN
                RETURN cc_refusal(403, 'PIN_LOCKED',
                                  'wrong PIN: too many wrong PINs, the card is locked', 'pin');
            END IF;
            RETURN cc_refusal(403, 'PIN_WRONG', 'wrong PIN', 'pin',
                              jsonb_build_object('tries_left', v_max_fail - ps.pin_failures - 1));
        END IF;
        v_pin_ok := true;
        IF ps.pin_failures > 0 THEN
            UPDATE pay_settings SET pin_failures = 0, updated_at = v_now WHERE person_id = v_person;
        END IF;
    END IF;

    -- purse order: take from each purse in the school's order until the amount is covered
    v_left := p_amount;
    FOR v_purse IN SELECT jsonb_array_elements_text(r -> 'purse_order') LOOP
        IF v_purse = 'subsidy' AND v_sub_id IS NOT NULL THEN
            v_from_sub := least(v_left, greatest(v_sub, 0)); v_left := v_left - v_from_sub;
        ELSIF v_purse = 'cash' THEN
            v_from_cash := least(v_left, greatest(v_cash, 0)); v_left := v_left - v_from_cash;
        END IF;
    END LOOP;
    IF v_left > 0 THEN
        RETURN cc_refusal(409, 'INSUFFICIENT_FUNDS', 'the balance is not enough for this amount',
                          'amount', jsonb_build_object('balance', cc_fmt(v_cash + v_sub)));
    END IF;

    IF p_mode = 'check' THEN
        RETURN jsonb_build_object('status', 200, 'body', jsonb_build_object(
            'result', 'ok', 'amount', cc_fmt(p_amount), 'pin_required', v_pin_needed,
            'holder', cc_mask_name(p.name), 'balance', cc_fmt(v_cash + v_sub),
            'balance_after', cc_fmt(v_cash + v_sub - p_amount),
            'paid_from', jsonb_build_object('cash', cc_fmt(v_from_cash), 'subsidy', cc_fmt(v_from_sub)),
            'merchant', t.merchant_name, 'outlet', t.outlet_name,
            'spent_today', cc_fmt(v_spent), 'daily_limit', cc_fmt(v_daily)));
    END IF;

    -- book: purses already locked; the merchant shard is chosen by terminal
    SELECT id INTO v_merchant_acc FROM accounts
     WHERE merchant_id = t.merchant_id AND kind = 'merchant' AND shard = t.id % t.shards;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta)
    VALUES (t.school_id, 'payment', 'payment:' || t.id || ':' || p_client_id,
            t.merchant_name, t.sn, v_day, jsonb_build_object('channel', t.channel))
    RETURNING id INTO v_tx;
    INSERT INTO postings(tx_id, account_id, amount)
    SELECT v_tx, a, m FROM (VALUES (v_cash_id, -v_from_cash), (v_sub_id, -v_from_sub),
                                   (v_merchant_acc, p_amount)) AS l(a, m)
     WHERE m <> 0 ORDER BY a;
    INSERT INTO payments(school_id, terminal_id, client_id, merchant_id, outlet_id, channel, method,
                         person_id, card_id, credential, amount, from_cash, from_subsidy,
                         pin_verified, merchant_account_id, tx_id, business_date, created_at)
    VALUES (t.school_id, t.id, p_client_id, t.merchant_id, t.outlet_id, t.channel,
            CASE WHEN p_card_number IS NULL THEN 'code' ELSE 'card' END, v_person, v_card_id,
            p_credential, p_amount, v_from_cash, v_from_sub, v_pin_ok, v_merchant_acc, v_tx,
            v_day, v_now)
    RETURNING id INTO v_payment;
    INSERT INTO daily_spend(person_id, business_date, spent) VALUES (v_person, v_day, p_amount)
    ON CONFLICT (person_id, business_date) DO UPDATE SET spent = daily_spend.spent + p_amount;

    v_receipt := jsonb_build_object(
        'result', 'approved', 'payment_id', v_payment, 'client_id', p_client_id,
        'receipt_no', 'P' || to_char(v_day, 'YYYYMMDD') || lpad(v_payment::text, 10, '0'),
        'amount', cc_fmt(p_amount),
        'paid_from', jsonb_build_object('cash', cc_fmt(v_from_cash), 'subsidy', cc_fmt(v_from_sub)),
        'balance', cc_fmt(v_cash + v_sub - p_amount),
        'balances', jsonb_build_object('cash', cc_fmt(v_cash - v_from_cash),
                                       'subsidy', cc_fmt(v_sub - v_from_sub)),
        'holder', cc_mask_name(p.name),
        'card_number', CASE WHEN v_card_no IS NULL THEN NULL
                            ELSE '****' || right(v_card_no, 4) END,
        'method', CASE WHEN p_card_number IS NULL THEN 'code' ELSE 'card' END,
        'merchant', t.merchant_name, 'outlet', t.outlet_name, 'terminal', t.sn,
        'channel', t.channel, 'business_date', v_day, 'booked_at', v_now);
    PERFORM pg_notify('cc_events', jsonb_build_object(
        'type', 'payment', 'school_id', t.school_id, 'person_id', v_person,
        'payment_id', v_payment, 'amount', cc_fmt(p_amount), 'merchant', t.merchant_name,
        'outlet', t.outlet_name, 'balance', cc_fmt(v_cash + v_sub - p_amount))::text);
    RETURN jsonb_build_object('status', 200, 'body', v_receipt);
END $$;

-- "张*" / "欧阳**": a receipt shows the holder without giving the name away.
CREATE FUNCTION cc_mask_name(p_name text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT left(p_name, 1) || repeat('*', greatest(char_length(p_name) - 1, 1))
$$;

-- Reverse (冲正) a payment of this terminal, named by its client id. If the payment has not
-- arrived, leave a marker in its idempotency slot so the late original is refused for ever.
CREATE FUNCTION cc_reverse(p_terminal bigint, p_key_version int, p_nonce text, p_client_id text,
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
BEGIN
    IF p_nonce IS NOT NULL THEN
        INSERT INTO terminal_nonces(terminal_id, nonce) VALUES (p_terminal, p_nonce)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            RETURN cc_refusal(401, 'NONCE_REUSED', 'this nonce was already used', 'X-CC-Nonce');
        END IF;
    END IF;
    SELECT id, sn, school_id, status, key_version, prev_key_version INTO t
      FROM terminals WHERE id = p_terminal;
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
    v_day := cc_business_date(t.school_id);

    -- claim the original's slot; waits for an in-flight original to commit first
    INSERT INTO idempotency_keys(scope, key, request_hash, status_code, response)
    VALUES (v_scope, p_client_id, 'reversal-marker', 409,
            cc_refusal(409, 'PAYMENT_REVERSED',
                       'this payment was reversed by the terminal before it arrived',
                       'client_id') -> 'body')
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        v_body := jsonb_build_object('result', 'reversed', 'client_id', p_client_id,
                                     'original', 'not_received', 'amount', '0.00',
                                     'reversed_at', now());
        INSERT INTO payment_reversals(terminal_id, client_id, school_id, response, business_date)
        VALUES (p_terminal, p_client_id, t.school_id, v_body, v_day);
        RETURN jsonb_build_object('status', 200, 'body', v_body, 'replayed', false);
    END IF;

    SELECT response INTO rv FROM payment_reversals
     WHERE terminal_id = p_terminal AND client_id = p_client_id;
    IF rv.response IS NOT NULL THEN
        RETURN jsonb_build_object('status', 200, 'body', rv.response, 'replayed', true);
    END IF;

    SELECT * INTO pay FROM payments WHERE terminal_id = p_terminal AND client_id = p_client_id
       FOR UPDATE;
    IF pay.id IS NULL THEN
        -- the original was refused: nothing moved, nothing to undo
        SELECT response INTO v_key FROM idempotency_keys WHERE scope = v_scope AND key = p_client_id;
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
    IF now() - pay.created_at > make_interval(mins => (r ->> 'reversal_minutes')::int) THEN
        RETURN cc_refusal(409, 'REVERSAL_WINDOW_PASSED',
                          'a payment can be reversed only within ' || (r ->> 'reversal_minutes')
                          || ' minutes; ask the merchant for a refund', 'client_id');
    END IF;

    SELECT max(id) FILTER (WHERE purse = 'cash'), max(id) FILTER (WHERE purse = 'subsidy')
      INTO v_cash_id, v_sub_id
      FROM (SELECT id, purse FROM accounts WHERE person_id = pay.person_id AND kind = 'purse'
             ORDER BY id FOR UPDATE) a;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta)
    VALUES (pay.school_id, 'payment_reversal', 'payment:' || pay.id, 'reversal (冲正)',
            coalesce(p_actor, t.sn), v_day, jsonb_build_object('channel', pay.channel))
    RETURNING id INTO v_tx;
    INSERT INTO postings(tx_id, account_id, amount)
    SELECT v_tx, a, m FROM (VALUES (v_cash_id, pay.from_cash), (v_sub_id, pay.from_subsidy),
                                   (pay.merchant_account_id, -pay.amount)) AS l(a, m)
     WHERE m <> 0 ORDER BY a;
    UPDATE payments SET status = 'reversed', reversed_at = now() WHERE id = pay.id;
    UPDATE daily_spend SET spent = greatest(spent - pay.amount, 0)
     WHERE person_id = pay.person_id AND business_date = pay.business_date;
    v_body := jsonb_build_object(
        'result', 'reversed', 'client_id', p_client_id, 'original', 'booked',
        'payment_id', pay.id, 'amount', cc_fmt(pay.amount),
        'returned_to', jsonb_build_object('cash', cc_fmt(pay.from_cash),
                                          'subsidy', cc_fmt(pay.from_subsidy)),
        'balance', (SELECT cc_fmt(sum(balance)::bigint) FROM accounts
                     WHERE person_id = pay.person_id AND kind = 'purse'),
        'reversed_at', now());
    INSERT INTO payment_reversals(terminal_id, client_id, school_id, payment_id, tx_id, response,
                                  business_date)
    VALUES (p_terminal, p_client_id, pay.school_id, pay.id, v_tx, v_body, v_day);
    PERFORM pg_notify('cc_events', jsonb_build_object(
        'type', 'payment_reversed', 'school_id', pay.school_id, 'person_id', pay.person_id,
        'payment_id', pay.id, 'amount', cc_fmt(pay.amount), 'balance', v_body ->> 'balance')::text);
    RETURN jsonb_build_object('status', 200, 'body', v_body, 'replayed', false);
END $$;

-- Refund part or all of a payment back to the purses that paid (cash first, then subsidy),
-- never more than was paid: the payment row is locked, so racing refunds serialise.
CREATE FUNCTION cc_refund(p_payment bigint, p_amount bigint, p_terminal bigint, p_actor text,
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
BEGIN
    SELECT * INTO pay FROM payments WHERE id = p_payment FOR UPDATE;
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
      FROM (SELECT id, purse FROM accounts WHERE person_id = pay.person_id AND kind = 'purse'
             ORDER BY id FOR UPDATE) a;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta)
    VALUES (pay.school_id, 'refund', 'payment:' || pay.id, coalesce(p_reason, ''), p_actor, v_day,
            jsonb_build_object('channel', pay.channel))
    RETURNING id INTO v_tx;
    INSERT INTO postings(tx_id, account_id, amount)
    SELECT v_tx, a, m FROM (VALUES (v_cash_id, v_to_cash), (v_sub_id, v_to_sub),
                                   (pay.merchant_account_id, -p_amount)) AS l(a, m)
     WHERE m <> 0 ORDER BY a;
    UPDATE payments SET refunded = refunded + p_amount, refunded_cash = refunded_cash + v_to_cash,
                        refunded_subsidy = refunded_subsidy + v_to_sub
     WHERE id = pay.id;
    UPDATE daily_spend SET spent = greatest(spent - p_amount, 0)
     WHERE person_id = pay.person_id AND business_date = pay.business_date;
    INSERT INTO refunds(school_id, payment_id, merchant_id, terminal_id, amount, to_cash, to_subsidy,
                        reason, actor, tx_id, business_date)
    VALUES (pay.school_id, pay.id, pay.merchant_id, p_terminal, p_amount, v_to_cash, v_to_sub,
            coalesce(p_reason, ''), p_actor, v_tx, v_day)
    RETURNING id INTO v_refund;
    SELECT sum(balance) INTO v_balance FROM accounts WHERE person_id = pay.person_id AND kind = 'purse';
    PERFORM pg_notify('cc_events', jsonb_build_object(
        'type', 'refund', 'school_id', pay.school_id, 'person_id', pay.person_id,
        'payment_id', pay.id, 'refund_id', v_refund, 'amount', cc_fmt(p_amount),
        'balance', cc_fmt(v_balance))::text);
    RETURN jsonb_build_object('status', 200, 'body', jsonb_build_object(
        'result', 'refunded', 'refund_id', v_refund, 'payment_id', pay.id,
        'amount', cc_fmt(p_amount),
        'returned_to', jsonb_build_object('cash', cc_fmt(v_to_cash), 'subsidy', cc_fmt(v_to_sub)),
        'refunded_total', cc_fmt(pay.refunded + p_amount),
        'refundable', cc_fmt(pay.amount - pay.refunded - p_amount),
        'balance', cc_fmt(v_balance), 'business_date', v_day));
END $$;
