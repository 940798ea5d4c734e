-- Book several journal transactions at once, set-based (docs/decisions/0360-set-based-post-many.md):
-- booking i is (p_kinds[i], p_refs[i], p_memos[i], p_actors[i], p_metas[i]) and the legs whose
-- p_numbers entry is i. Each booking is what cc_post would book for it, in the order given: legs
-- netted per account, postings in account order, the ids of the bookings ascending. Instead of
-- one cc_post per booking and one account update per posting, every account is locked once (id
-- order), its postings' versions and balances after are its running sum in booking order, its
-- balance is moved once by their sum, and the checks cc_post and the accounts' CHECK make leg by
-- leg are made on those running balances: no balance (less held) below its floor after any
-- booking, and a credit line (a floor below zero) taken below zero only by a bill payment or an
-- offline repayment. The postings come with their version, which the transaction-local switch
-- cc.posting_batch tells postings_apply not to apply again (and accounts_guard to let this
-- function's one update through); the switch is off again before the function returns.
CREATE OR REPLACE FUNCTION cc_post_many(
    p_school int, p_kinds text[], p_refs text[], p_memos text[], p_actors text[], p_metas text[],
    p_numbers int[], p_accounts bigint[], p_amounts bigint[]
) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    v_at timestamptz := cc_clock();
    v_date date := cc_business_date(p_school, v_at);
    v_n int := coalesce(array_length(p_kinds, 1), 0);
    v_ids bigint[];
    v_nr int[];
    v_acc bigint[];
    v_fen bigint[];
    v_after bigint[];
    v_version bigint[];
    v_below_floor bigint;
    v_credit_line bigint;
    v_missing bigint;
    v_bad int;
BEGIN
    IF v_n = 0 THEN
        RETURN '{}';
    END IF;
    IF array_length(p_refs, 1) IS DISTINCT FROM v_n OR array_length(p_memos, 1) IS DISTINCT FROM v_n
       OR array_length(p_actors, 1) IS DISTINCT FROM v_n OR array_length(p_metas, 1) IS DISTINCT FROM v_n
       OR array_length(p_numbers, 1) IS DISTINCT FROM array_length(p_accounts, 1)
       OR array_length(p_numbers, 1) IS DISTINCT FROM array_length(p_amounts, 1) THEN
        RAISE EXCEPTION 'the bookings'' arrays differ in length' USING ERRCODE = 'check_violation';
    END IF;
    -- every booking has two legs at least and nets to zero; no leg names a booking not given
    SELECT b.nr INTO v_bad
      FROM generate_series(1, v_n) AS b(nr)
      LEFT JOIN unnest(p_numbers, p_amounts) AS l(nr, fen) ON l.nr = b.nr
     GROUP BY b.nr HAVING count(l.nr) < 2 OR coalesce(sum(l.fen), 0) <> 0
     LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'booking % needs two legs at least that net to zero', v_bad
              USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_tx_balanced';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_numbers) AS l(nr) WHERE l.nr IS NULL OR l.nr NOT BETWEEN 1 AND v_n) THEN
        RAISE EXCEPTION 'a leg names no booking' USING ERRCODE = 'check_violation';
    END IF;
    -- the accounts, once each, in id order (as cc_post locks its legs)
    PERFORM 1 FROM accounts a
      WHERE a.school_id = p_school AND a.id = ANY(p_accounts)
      ORDER BY a.id FOR NO KEY UPDATE;
    SELECT l.acc INTO v_missing
      FROM unnest(p_accounts) AS l(acc)
     WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.school_id = p_school AND a.id = l.acc)
     LIMIT 1;
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'insert or update on table "postings" violates foreign key constraint "postings_account_id_fkey"'
            USING DETAIL = format('Key (school_id, account_id)=(%s, %s) is not present in table "accounts".',
                                  p_school, v_missing),
                  ERRCODE = 'foreign_key_violation', TABLE = 'postings',
                  CONSTRAINT = 'postings_account_id_fkey';
    END IF;
    -- the postings: per booking and account, the running balance and version of the account
    SELECT array_agg(s.nr ORDER BY s.nr, s.acc), array_agg(s.acc ORDER BY s.nr, s.acc),
           array_agg(s.fen ORDER BY s.nr, s.acc), array_agg(s.after ORDER BY s.nr, s.acc),
           array_agg(s.version ORDER BY s.nr, s.acc),
           min(s.acc) FILTER (WHERE s.floor IS NOT NULL AND s.after - s.held < s.floor),
           min(s.acc) FILTER (WHERE s.fen < 0 AND s.kind = 'purse' AND s.floor < 0
                                AND s.after - s.held < 0
                                AND p_kinds[s.nr] NOT IN ('bill_payment', 'offline_repayment'))
      INTO v_nr, v_acc, v_fen, v_after, v_version, v_below_floor, v_credit_line
      FROM (SELECT l.nr, l.acc, l.fen, a.held, a.floor, a.kind,
                   a.balance + sum(l.fen) OVER w AS after,
                   a.version + row_number() OVER w AS version
              FROM (SELECT u.nr, u.acc, sum(u.fen) AS fen
                      FROM unnest(p_numbers, p_accounts, p_amounts) AS u(nr, acc, fen)
                     GROUP BY u.nr, u.acc) l
              JOIN accounts a ON a.school_id = p_school AND a.id = l.acc
             WHERE l.fen <> 0
            WINDOW w AS (PARTITION BY l.acc ORDER BY l.nr)) s;
    IF v_below_floor IS NOT NULL THEN
        RAISE EXCEPTION 'new row for relation "accounts" violates check constraint "accounts_floor"'
              USING DETAIL = format('Account %s would go below its floor.', v_below_floor),
                    ERRCODE = 'check_violation', TABLE = 'accounts', CONSTRAINT = 'accounts_floor';
    END IF;
    IF v_credit_line IS NOT NULL THEN  -- the message names the constraint, as cc_post's does
        RAISE EXCEPTION 'a credit line pays for purchases and bills only (check constraint "accounts_floor")'
              USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_floor';
    END IF;
    v_ids := ARRAY(SELECT nextval('journal_tx_id_seq') FROM generate_series(1, v_n));
    INSERT INTO journal_tx(id, school_id, kind, ref, memo, actor, business_date, meta, created_at)
    SELECT v_ids[b.nr], p_school, p_kinds[b.nr], p_refs[b.nr], coalesce(p_memos[b.nr], ''),
           coalesce(p_actors[b.nr], 'system'), v_date,
           coalesce(p_metas[b.nr]::jsonb, '{}'::jsonb), v_at
      FROM generate_series(1, v_n) AS b(nr)
     ORDER BY b.nr;
    IF v_acc IS NULL THEN
        RETURN v_ids;  -- every leg netted to nothing
    END IF;
    PERFORM set_config('cc.posting_batch', 'on', true);
    UPDATE accounts a SET balance = a.balance + s.total, version = a.version + s.n
      FROM (SELECT u.acc, sum(u.fen) AS total, count(*) AS n
              FROM unnest(v_acc, v_fen) AS u(acc, fen) GROUP BY u.acc) s
     WHERE a.school_id = p_school AND a.id = s.acc;
    INSERT INTO postings(school_id, tx_id, account_id, amount, balance_after, version, created_at)
    SELECT p_school, v_ids[u.nr], u.acc, u.fen, u.after, u.version, v_at
      FROM unnest(v_nr, v_acc, v_fen, v_after, v_version) AS u(nr, acc, fen, after, version)
     ORDER BY u.nr, u.acc;
    PERFORM set_config('cc.posting_batch', '', true);
    RETURN v_ids;
END $$;
