-- Book several payments in one call and one commit (group commit, docs/decisions/0170).
-- p_members is a JSON array, one object per payment: a card's (or a verified payer's) with
-- cc_pay's book arguments — terminal, key_version, nonce, client_id, request_hash, card_number,
-- card_uid, person, credential, amount, pin_token — or a payment code's ("kind": "code") with
-- cc_pay_code's — terminal, key_version, nonce, client_id, code, amount, pin_token, scheme,
-- token, device, step, counter, minted_hash, verdict, now, confirm_until — and its payer's
-- person when Python knows it (a phone's code whose binding it read; a scheme-6 code checked
-- before any read names neither device nor person: both are found by its token). Returns one
-- row per member, in order: the answer's status, its body as JSON text (sent to the till as it
-- is) and, for a card, the live event to send after commit; for a code, the rest of
-- cc_pay_code's answer (its events, or the refusal of the code, or the phone's confirmation;
-- decision 0310).
--
-- All members are payments at terminals of one school, p_school (the caller groups them by
-- school): every statement names it, so on Citus the batch is delegated to the worker holding it.
--
-- Every lock the batch needs is taken up front in one global order, so concurrent batches
-- (and single payments, which take them in the same order) cannot deadlock: the client ids'
-- advisory locks, then the codes' (on their credentials), then the payers' purses by account
-- id, then the merchant shards by id. Then the members book one after the other: a member
-- refused for its own reason is refused alone (a refusal is an answer, not an error), two
-- payments of one purse see each other, and so do two uses of one code.
CREATE OR REPLACE FUNCTION cc_pay_batch(p_school int, p_members jsonb)
RETURNS TABLE(status int, body text, event jsonb, replayed boolean)
LANGUAGE plpgsql AS $$
DECLARE
    m jsonb;
    v_out jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(k.id)
       FROM (SELECT DISTINCT cc_client_id_lock((e ->> 'terminal')::bigint, e ->> 'client_id') AS id
               FROM jsonb_array_elements(p_members) e) k
      ORDER BY k.id;
    PERFORM pg_advisory_xact_lock(p_school, k.credential)
       FROM (SELECT DISTINCT hashtext(c.credential) AS credential
               FROM (SELECT 'paycode:d:' || (e ->> 'device') || ':' || (e ->> 'step') || ':'
                            || (e ->> 'counter') AS credential
                       FROM jsonb_array_elements(p_members) e
                      WHERE e ->> 'kind' = 'code' AND e ->> 'scheme' = 'device'
                        AND e ->> 'device' IS NOT NULL
                     UNION ALL
                     SELECT 'paycode:d:' || d.id || ':' || (e ->> 'step') || ':' || (e ->> 'counter')
                       FROM jsonb_array_elements(p_members) e
                       JOIN paycode_devices d ON d.school_id = p_school AND d.token = e ->> 'token'
                      WHERE e ->> 'kind' = 'code' AND e ->> 'scheme' = 'device'
                        AND e ->> 'device' IS NULL AND e ->> 'step' IS NOT NULL
                     UNION ALL
                     SELECT 'paycode:m:' || mc.id
                       FROM paycode_minted mc
                      WHERE mc.school_id = p_school AND mc.token IN (
                            SELECT e ->> 'token' FROM jsonb_array_elements(p_members) e
                             WHERE e ->> 'kind' = 'code' AND e ->> 'scheme' = 'minted')) c) k
      ORDER BY k.credential;
    PERFORM 1 FROM accounts a
     WHERE a.school_id = p_school AND a.kind = 'purse' AND a.person_id = ANY (ARRAY(
            SELECT c.person_id FROM cards c
             WHERE c.school_id = p_school AND c.number IN (
                    SELECT e ->> 'card_number' FROM jsonb_array_elements(p_members) e)
            UNION
            SELECT (e ->> 'person')::bigint FROM jsonb_array_elements(p_members) e
             WHERE e ->> 'person' IS NOT NULL
            UNION
            SELECT d.person_id FROM paycode_devices d
             WHERE d.school_id = p_school AND d.token IN (
                    SELECT e ->> 'token' FROM jsonb_array_elements(p_members) e
                     WHERE e ->> 'kind' = 'code' AND e ->> 'scheme' = 'device'
                       AND e ->> 'person' IS NULL AND e ->> 'step' IS NOT NULL)
            UNION
            SELECT mc.person_id FROM paycode_minted mc
             WHERE mc.school_id = p_school AND mc.token IN (
                    SELECT e ->> 'token' FROM jsonb_array_elements(p_members) e
                     WHERE e ->> 'kind' = 'code' AND e ->> 'scheme' = 'minted')))
     ORDER BY a.id FOR UPDATE OF a;
    PERFORM 1 FROM accounts a
     WHERE a.school_id = p_school AND a.id = ANY (ARRAY(
            SELECT s.id
              FROM terminals t
              JOIN merchants mc ON mc.school_id = t.school_id AND mc.id = t.merchant_id
              JOIN accounts s ON s.school_id = t.school_id AND s.merchant_id = mc.id
                             AND s.kind = 'merchant' AND s.shard = t.id % mc.shards
             WHERE t.school_id = p_school AND t.id IN (
                    SELECT (e ->> 'terminal')::bigint FROM jsonb_array_elements(p_members) e)))
     ORDER BY a.id FOR UPDATE OF a;

    -- the school's instant, business date, rules and ledger switch, read once for every member
    -- (cc_pay_inner takes them from here; cleared after the loop, so a later statement of the
    -- transaction reads its own)
    PERFORM set_config('cc.pay_context', cc_pay_context(p_school)::text, true);
    FOR m IN SELECT value FROM jsonb_array_elements(p_members) LOOP
        IF m ->> 'kind' = 'code' THEN
            v_out := cc_pay_code(p_school, (m ->> 'terminal')::bigint, (m ->> 'key_version')::int,
                                 m ->> 'nonce', m ->> 'client_id', m ->> 'code',
                                 (m ->> 'amount')::bigint, m ->> 'pin_token', m ->> 'scheme',
                                 m ->> 'token', (m ->> 'device')::bigint, (m ->> 'step')::bigint,
                                 (m ->> 'counter')::int, m ->> 'minted_hash', m ->> 'verdict',
                                 (m ->> 'now')::timestamptz, (m ->> 'confirm_until')::timestamptz);
            event := v_out - 'body';
        ELSE
            v_out := cc_pay(p_school, 'book', (m ->> 'terminal')::bigint,
                            (m ->> 'key_version')::int, m ->> 'nonce', m ->> 'client_id',
                            m ->> 'request_hash', m ->> 'card_number', m ->> 'card_uid',
                            (m ->> 'person')::bigint, m ->> 'credential', (m ->> 'amount')::bigint,
                            m ->> 'pin_token');
            event := v_out -> 'event';
        END IF;
        status := (v_out ->> 'status')::int;
        body := (v_out -> 'body')::text;
        replayed := coalesce((v_out ->> 'replayed')::boolean, false);
        RETURN NEXT;
    END LOOP;
    PERFORM set_config('cc.pay_context', '', true);
END $$;
