-- Book several payments in one call and one commit (group commit, docs/decisions/0170).
-- p_members is a JSON array of cc_pay's book arguments, one object per payment: terminal,
-- key_version, nonce, client_id, request_hash, card_number, card_uid, person, credential,
-- amount, pin_token. Returns one row per member, in order: what cc_pay answered, the body as
-- JSON text (sent to the till as it is) and the live event to send after commit.
--
-- All members are payments at terminals of one school, p_school (the caller groups them by
-- school): every statement names it, so on Citus the batch is delegated to the worker holding it.
--
-- Every lock the batch needs is taken up front in one global order, so concurrent batches
-- (and single payments, which take them in the same order) cannot deadlock: the client ids'
-- advisory locks, then the payers' purses by account id, then the merchant shards by id.
-- Then the members book one after the other: a member refused for its own reason is refused
-- alone (a refusal is an answer, not an error) and two payments of one purse see each other.
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
    PERFORM 1 FROM accounts a
     WHERE a.school_id = p_school AND a.kind = 'purse' AND a.person_id = ANY (ARRAY(
            SELECT c.person_id FROM cards c
             WHERE c.school_id = p_school AND c.number IN (
                    SELECT e ->> 'card_number' FROM jsonb_array_elements(p_members) e)
            UNION
            SELECT (e ->> 'person')::bigint FROM jsonb_array_elements(p_members) e
             WHERE e ->> 'person' IS NOT NULL))
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

    FOR m IN SELECT value FROM jsonb_array_elements(p_members) LOOP
        v_out := cc_pay(p_school, 'book', (m ->> 'terminal')::bigint, (m ->> 'key_version')::int,
                        m ->> 'nonce', m ->> 'client_id', m ->> 'request_hash',
                        m ->> 'card_number', m ->> 'card_uid', (m ->> 'person')::bigint,
                        m ->> 'credential', (m ->> 'amount')::bigint, m ->> 'pin_token');
        status := (v_out ->> 'status')::int;
        body := (v_out -> 'body')::text;
        event := v_out -> 'event';
        replayed := coalesce((v_out ->> 'replayed')::boolean, false);
        RETURN NEXT;
    END LOOP;
END $$;
