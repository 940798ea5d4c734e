-- The booking behind cc_pay, for one terminal row t already checked and locked. The payment's
-- live event goes back to the caller as data, which sends it after commit (batched NOTIFY);
-- docs/decisions/0013-live-events-after-commit.md
-- Modes: 'check' previews and writes nothing; 'book' books a card's or a verified payer's
-- payment; 'try' books a payment code's payment (cc_pay_code) in one run, with no preview: a
-- refusal the student can fix (funds, limits, a frozen account) comes before the one-time
-- credential is claimed and writes nothing, as a preview would; a payment that needs the PIN
-- and has none answers PIN_REQUIRED having written nothing; from the PIN on, the code is used.
CREATE OR REPLACE FUNCTION cc_pay_inner(
    p_mode text, t record, p_client_id text,
    p_card_number text, p_card_uid text, p_person bigint, p_credential text,
    p_amount bigint, p_pin_token text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    c record;
    pu record;  -- a purse of the payer's (not "a": the ledger's statements below name a column so)
    p record;
    ps record;
    -- the instant, business date, rules and ledger switch: once per batch (cc_pay_batch sets
    -- cc.pay_context for its school), else read here (cc_pay_context)
    v_ctx jsonb := nullif(current_setting('cc.pay_context', true), '')::jsonb;
    r jsonb;
    v_day date;
    v_person bigint;
    v_spent bigint := 0;
    v_per_tx bigint;
    v_daily bigint;
    v_max_fail int;
    v_pin_needed boolean;
    v_pin_ok boolean := false;
    v_cash_id bigint; v_cash bigint := 0;
    v_cash_floor bigint := 0;  -- below zero only for a credit line (credit/), else 0
    v_sub_id bigint; v_sub bigint := 0;
    v_from_cash bigint := 0; v_from_sub bigint := 0;
    v_left bigint;
    v_purse text;
    v_merchant_acc bigint;
    v_tx bigint;
    v_payment bigint;
    v_now timestamptz;
    v_receipt jsonb;
    v_card_id bigint;
    v_card_no text;
    v_held bigint := 0;
    v_here boolean;
    v_short jsonb;  -- the refusal for funds, answered before or after the PIN (by mode)
BEGIN
    IF v_ctx IS NULL OR (v_ctx ->> 'school')::int IS DISTINCT FROM t.school_id THEN
        v_ctx := cc_pay_context(t.school_id);
    END IF;
    v_now := (v_ctx ->> 'now')::timestamptz;
    v_day := (v_ctx ->> 'day')::date;
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
        ELSIF p_mode = 'check' AND EXISTS (SELECT 1 FROM payer_credentials_used
                    WHERE school_id = t.school_id AND credential = p_credential) THEN
            -- (a code's 'try' comes from cc_pay_code, which found the code unused in
            -- paycode_uses under the code's lock)
            RETURN cc_refusal(409, 'CREDENTIAL_USED', 'this payment code was already used', 'code');
        END IF;
    END IF;

    SELECT id, name, account_status INTO p FROM persons
     WHERE school_id = t.school_id AND id = v_person;
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
    -- v_cash / v_sub are what each purse can spend: its balance less its open holds
    -- (the day's total so far is on the cash purse: spent, on its business date spent_on)
    FOR pu IN SELECT id, purse, balance - held AS available, held, coalesce(floor, 0) AS floor,
                    CASE WHEN spent_on = v_day THEN spent ELSE 0 END AS spent
               FROM accounts WHERE school_id = t.school_id AND person_id = v_person AND kind = 'purse'
              ORDER BY id FOR UPDATE
    LOOP
        v_held := v_held + pu.held;
        IF pu.purse = 'cash' THEN
            v_cash_id := pu.id; v_cash := pu.available;
            v_cash_floor := least(pu.floor, 0);
            v_spent := pu.spent;
        ELSE
            v_sub_id := pu.id; v_sub := pu.available;
        END IF;
    END LOOP;
    IF v_cash_id IS NULL THEN
        RETURN cc_refusal(403, 'ACCOUNT_NOT_ACTIVE', 'this cardholder has no purse', NULL);
    END IF;

    -- limits: the school's rules, overridden per person
    r := v_ctx -> 'rules';
    SELECT pin_hash, pin_failures, per_tx_limit, daily_limit INTO ps
      FROM pay_settings WHERE school_id = t.school_id AND person_id = v_person;
    v_per_tx := coalesce(ps.per_tx_limit, (r ->> 'per_tx_limit')::bigint);
    v_daily := coalesce(ps.daily_limit, (r ->> 'daily_limit')::bigint);
    v_max_fail := (r ->> 'pin_max_failures')::int;
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

    -- purse order: take from each purse in the school's order until the amount is covered
    v_left := p_amount;
    FOR i IN 0 .. jsonb_array_length(r -> 'purse_order') - 1 LOOP
        v_purse := r -> 'purse_order' ->> i;
        IF v_purse = 'subsidy' AND v_sub_id IS NOT NULL THEN
            v_from_sub := least(v_left, greatest(v_sub, 0)); v_left := v_left - v_from_sub;
        ELSIF v_purse = 'cash' THEN
            v_from_cash := least(v_left, greatest(v_cash - v_cash_floor, 0));
            v_left := v_left - v_from_cash;
        END IF;
    END LOOP;
    IF v_left > 0 THEN
        v_short := cc_refusal(409, 'INSUFFICIENT_FUNDS', 'the balance is not enough for this amount',
                              'amount', jsonb_build_object('balance', cc_fmt(v_cash + v_sub + v_held),
                                                         'available', cc_fmt(v_cash + v_sub)));
    END IF;
    -- a preview and a code's try refuse for funds before any PIN is asked (the code stays
    -- unused); a card's booking asks the PIN first, as it always has
    IF v_short IS NOT NULL AND p_mode <> 'book' THEN
        RETURN v_short;
    END IF;
    IF v_pin_needed AND p_mode <> 'check' AND p_pin_token IS NULL THEN
        RETURN cc_refusal(403, 'PIN_REQUIRED', 'this payment needs the cardholder''s PIN', 'pin');
    END IF;
    -- a code's 'try': its one-time credential is used from here, whatever the PIN turns out to
    -- be; a refusal from here on says so ("claimed"), and cc_pay_code writes the code's use
    -- (paycode_uses, the one record of a code's single use)
    IF v_pin_needed AND p_mode <> 'check' THEN
        IF ps.pin_hash IS NULL THEN
            RETURN cc_refusal(403, 'PIN_NOT_SET',
                              'the cardholder has not set a PIN yet (set it online or at a kiosk)', 'pin')
                   || jsonb_build_object('claimed', p_mode = 'try');
        END IF;
        IF ps.pin_hash <> encode(sha256(convert_to(p_pin_token || ':' || v_person, 'UTF8')), 'hex') THEN
            UPDATE pay_settings SET pin_failures = pin_failures + 1, updated_at = v_now
             WHERE school_id = t.school_id AND person_id = v_person;
            IF ps.pin_failures + 1 >= v_max_fail THEN
                RETURN cc_refusal(403, 'PIN_LOCKED',
                                  'wrong PIN: too many wrong PINs, the card is locked', 'pin')
                       || jsonb_build_object('claimed', p_mode = 'try');
            END IF;
            RETURN cc_refusal(403, 'PIN_WRONG', 'wrong PIN', 'pin',
                              jsonb_build_object('tries_left', v_max_fail - ps.pin_failures - 1))
                   || jsonb_build_object('claimed', p_mode = 'try');
        END IF;
        v_pin_ok := true;
        IF ps.pin_failures > 0 THEN
            UPDATE pay_settings SET pin_failures = 0, updated_at = v_now
             WHERE school_id = t.school_id AND person_id = v_person;
        END IF;
    END IF;

    IF v_short IS NOT NULL THEN
        RETURN v_short;
    END IF;

    IF p_mode = 'check' THEN
        RETURN jsonb_build_object('status', 200, 'body', jsonb_build_object(
            'result', 'ok', 'amount', cc_fmt(p_amount), 'pin_required', v_pin_needed,
            'holder', cc_mask_name(p.name), 'balance', cc_fmt(v_cash + v_sub + v_held),
            'balance_after', cc_fmt(v_cash + v_sub + v_held - p_amount),
            'available', cc_fmt(v_cash + v_sub), 'available_after', cc_fmt(v_cash + v_sub - p_amount),
            'paid_from', jsonb_build_object('cash', cc_fmt(v_from_cash), 'subsidy', cc_fmt(v_from_sub)),
            'merchant', t.merchant_name, 'outlet', t.outlet_name,
            'spent_today', cc_fmt(v_spent), 'daily_limit', cc_fmt(v_daily)));
    END IF;

    -- book: purses already locked; the merchant shard is chosen by terminal
    SELECT id INTO v_merchant_acc FROM accounts
     WHERE school_id = t.school_id AND merchant_id = t.merchant_id AND kind = 'merchant'
       AND shard = t.id % t.shards;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta, created_at)
    VALUES (t.school_id, 'payment', 'payment:' || t.id || ':' || p_client_id,
            t.merchant_name, t.sn, v_day, jsonb_build_object('channel', t.channel), v_now)
    RETURNING id INTO v_tx;
    -- each account moved by one update that returns its balance and version after, and the
    -- postings written with them (cc.posting_batch: postings_apply does not move the account
    -- again, and no commit-time sum is queued: the legs net to zero by construction, as the
    -- payment's own CHECK from_cash + from_subsidy = amount says); the cash purse's update also
    -- adds the payment to the day's total, moving it to this business day (never back).
    -- Where the switch does not reach the accounts (cc_ledger_here), the postings move them in
    -- their trigger first and the update below only adds to the day's total.
    v_here := (v_ctx ->> 'here')::boolean;
    IF v_here THEN
        PERFORM set_config('cc.posting_batch', 'on', true);
    ELSE
        INSERT INTO postings(school_id, tx_id, account_id, amount, created_at)
        SELECT t.school_id, v_tx, a, m, v_now
          FROM (VALUES (v_cash_id, -v_from_cash), (v_sub_id, -v_from_sub),
                       (v_merchant_acc, p_amount)) AS l(a, m)
         WHERE m <> 0 ORDER BY a;
    END IF;
    WITH l(a, m) AS (SELECT v.a, CASE WHEN v_here THEN v.m ELSE 0 END
                       FROM (VALUES (v_cash_id, -v_from_cash), (v_sub_id, -v_from_sub),
                                    (v_merchant_acc, p_amount)) AS v(a, m)),
    moved AS (
        UPDATE accounts x SET balance = x.balance + l.m, version = x.version + (l.m <> 0)::int,
               spent = CASE WHEN x.id <> v_cash_id THEN x.spent
                            WHEN x.spent_on = v_day THEN x.spent + p_amount
                            WHEN x.spent_on IS NULL OR x.spent_on < v_day THEN p_amount
                            ELSE x.spent END,
               spent_on = CASE WHEN x.id = v_cash_id THEN greatest(x.spent_on, v_day)
                               ELSE x.spent_on END
          FROM l
         WHERE x.school_id = t.school_id AND x.id = l.a AND (l.m <> 0 OR l.a = v_cash_id)
        RETURNING x.id, l.m, x.balance, x.version)
    INSERT INTO postings(school_id, tx_id, account_id, amount, balance_after, version, created_at)
    SELECT t.school_id, v_tx, mv.id, mv.m, mv.balance, mv.version, v_now
      FROM moved mv WHERE mv.m <> 0 ORDER BY mv.id;
    IF v_here THEN
        PERFORM set_config('cc.posting_batch', '', true);
    END IF;
    INSERT INTO payments(school_id, terminal_id, client_id, merchant_id, outlet_id, channel, method,
                         person_id, card_id, credential, amount, from_cash, from_subsidy,
                         pin_verified, merchant_account_id, tx_id, business_date, created_at)
    VALUES (t.school_id, t.id, p_client_id, t.merchant_id, t.outlet_id, t.channel,
            CASE WHEN p_card_number IS NULL THEN 'code' ELSE 'card' END, v_person, v_card_id,
            p_credential, p_amount, v_from_cash, v_from_sub, v_pin_ok, v_merchant_acc, v_tx,
            v_day, v_now)
    RETURNING id INTO v_payment;

    v_receipt := jsonb_build_object(
        'result', 'approved', 'payment_id', v_payment, 'client_id', p_client_id,
        'receipt_no', 'P' || to_char(v_day, 'YYYYMMDD') || lpad(v_payment::text, 10, '0'),
        'amount', cc_fmt(p_amount),
        'paid_from', jsonb_build_object('cash', cc_fmt(v_from_cash), 'subsidy', cc_fmt(v_from_sub)),
        'balance', cc_fmt(v_cash + v_sub + v_held - p_amount),
        'available', cc_fmt(v_cash + v_sub - p_amount),
        'balances', jsonb_build_object('cash', cc_fmt(v_cash - v_from_cash),
                                       'subsidy', cc_fmt(v_sub - v_from_sub)),
        'holder', cc_mask_name(p.name),
        'card_number', CASE WHEN v_card_no IS NULL THEN NULL
                            ELSE '****' || right(v_card_no, 4) END,
        'method', CASE WHEN p_card_number IS NULL THEN 'code' ELSE 'card' END,
        'merchant', t.merchant_name, 'outlet', t.outlet_name, 'terminal', t.sn,
        'channel', t.channel, 'business_date', v_day, 'booked_at', v_now);
    -- the live event goes back to the caller, which sends it after commit (batched NOTIFY:
    -- a NOTIFY inside every payment would serialise all commits on the notify queue lock)
    RETURN jsonb_build_object('status', 200, 'body', v_receipt, 'event', jsonb_build_object(
        'type', 'payment', 'school_id', t.school_id, 'person_id', v_person,
        'payment_id', v_payment, 'amount', cc_fmt(p_amount), 'merchant', t.merchant_name,
        'outlet', t.outlet_name, 'balance', cc_fmt(v_cash + v_sub + v_held - p_amount),
        'available', cc_fmt(v_cash + v_sub - p_amount)));
END $$;
