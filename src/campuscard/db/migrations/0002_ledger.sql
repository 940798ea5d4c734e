-- Double-entry ledger in integer fen. The database, not the application, keeps it honest:
--  * inserting a posting moves the account's cached balance and version (trigger), so
--    cached balance = sum of postings and versions have no gaps, even for raw SQL;
--  * an account's balance never goes below its floor (CHECK);
--  * the postings of a transaction sum to zero (deferred constraint trigger, at commit);
--  * postings and transactions cannot be updated or deleted;
--  * a balance cannot be changed except by inserting a posting.
-- Sign convention: the sum over all accounts is zero. A purse holding 10 yuan has +1000;
-- the clearing account the money came from went -1000.

CREATE TABLE accounts (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    kind        text NOT NULL CHECK (kind IN ('purse', 'merchant', 'system')),
    purse       text CHECK (purse IN ('cash', 'subsidy')),
    person_id   bigint REFERENCES persons(id),
    merchant_id bigint,
    shard       smallint NOT NULL DEFAULT 0,
    system_code text,
    floor       bigint DEFAULT 0,                        -- NULL: no floor (clearing accounts)
    balance     bigint NOT NULL DEFAULT 0,
    version     bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_floor CHECK (floor IS NULL OR balance >= floor),
    CHECK ((kind = 'purse') = (purse IS NOT NULL AND person_id IS NOT NULL)),
    CHECK ((kind = 'system') = (system_code IS NOT NULL)),
    CHECK ((kind = 'merchant') = (merchant_id IS NOT NULL))
);
CREATE UNIQUE INDEX accounts_purse ON accounts(person_id, purse) WHERE kind = 'purse';
CREATE UNIQUE INDEX accounts_system ON accounts(school_id, system_code) WHERE kind = 'system';
CREATE UNIQUE INDEX accounts_merchant ON accounts(merchant_id, shard) WHERE kind = 'merchant';
CREATE INDEX accounts_school ON accounts(school_id, kind);

CREATE TABLE journal_tx (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    kind            text NOT NULL,
    ref             text,                                -- the business object it books
    memo            text NOT NULL DEFAULT '',
    actor           text NOT NULL DEFAULT 'system',
    business_date   date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX journal_tx_ref ON journal_tx(ref) WHERE ref IS NOT NULL;
CREATE INDEX journal_tx_day ON journal_tx(school_id, business_date, kind);

CREATE TABLE postings (
    id              bigserial PRIMARY KEY,
    tx_id           bigint NOT NULL REFERENCES journal_tx(id),
    account_id      bigint NOT NULL REFERENCES accounts(id),
    amount          bigint NOT NULL CHECK (amount <> 0),
    balance_after   bigint NOT NULL DEFAULT 0,
    version         bigint NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (account_id, version)
);
CREATE INDEX postings_tx ON postings(tx_id);

-- Apply a posting to its account: the only way a balance moves.
CREATE FUNCTION cc_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE accounts SET balance = balance + NEW.amount, version = version + 1
     WHERE id = NEW.account_id
    RETURNING balance, version INTO NEW.balance_after, NEW.version;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'account % does not exist', NEW.account_id USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER postings_apply BEFORE INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION cc_apply_posting();

CREATE FUNCTION cc_guard_balance() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.balance <> OLD.balance OR NEW.version <> OLD.version) AND pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'account balances change only by inserting postings'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.school_id <> OLD.school_id OR NEW.kind <> OLD.kind THEN
        RAISE EXCEPTION 'an account keeps its school and kind' USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_guard BEFORE UPDATE ON accounts
    FOR EACH ROW EXECUTE FUNCTION cc_guard_balance();

CREATE FUNCTION cc_new_account_zero() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.balance <> 0 OR NEW.version <> 0 THEN
        RAISE EXCEPTION 'a new account starts at balance 0, version 0' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER accounts_start_at_zero BEFORE INSERT ON accounts
    FOR EACH ROW EXECUTE FUNCTION cc_new_account_zero();

CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION cc_refuse_change();
CREATE TRIGGER journal_tx_append_only BEFORE UPDATE OR DELETE ON journal_tx
    FOR EACH ROW EXECUTE FUNCTION cc_refuse_change();
CREATE TRIGGER journal_tx_no_truncate BEFORE TRUNCATE ON journal_tx
    FOR EACH STATEMENT EXECUTE FUNCTION cc_refuse_change();

-- At commit: every transaction touched nets to zero and stays within one school.
CREATE FUNCTION cc_check_tx_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_sum bigint;
    v_schools int;
BEGIN
    SELECT sum(p.amount), count(DISTINCT a.school_id) INTO v_sum, v_schools
      FROM postings p JOIN accounts a ON a.id = p.account_id
     WHERE p.tx_id = NEW.tx_id;
    IF v_sum <> 0 THEN
        RAISE EXCEPTION 'journal transaction % does not balance: postings sum to %', NEW.tx_id, v_sum
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_tx_balanced';
    END IF;
    IF v_schools > 1 THEN
        RAISE EXCEPTION 'journal transaction % spans schools', NEW.tx_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_tx_one_school';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER postings_balanced AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cc_check_tx_balanced();

-- Book one journal transaction in one round trip. Legs are applied in account-id order so
-- concurrent transactions always lock rows in the same order and never deadlock.
CREATE FUNCTION cc_post(
    p_school int, p_kind text, p_ref text, p_memo text, p_actor text,
    p_accounts bigint[], p_amounts bigint[], p_meta jsonb DEFAULT '{}'::jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_tx bigint;
BEGIN
    IF array_length(p_accounts, 1) IS DISTINCT FROM array_length(p_amounts, 1)
       OR coalesce(array_length(p_accounts, 1), 0) < 2 THEN
        RAISE EXCEPTION 'a journal transaction needs at least two legs' USING ERRCODE = 'check_violation';
    END IF;
    INSERT INTO journal_tx(school_id, kind, ref, memo, actor, business_date, meta)
    VALUES (p_school, p_kind, p_ref, coalesce(p_memo, ''), coalesce(p_actor, 'system'),
            cc_business_date(p_school), coalesce(p_meta, '{}'::jsonb))
    RETURNING id INTO v_tx;
    INSERT INTO postings(tx_id, account_id, amount)
    SELECT v_tx, l.account_id, l.amount
      FROM (SELECT a AS account_id, sum(m) AS amount
              FROM unnest(p_accounts, p_amounts) AS u(a, m) GROUP BY a) l
     WHERE l.amount <> 0
     ORDER BY l.account_id;
    RETURN v_tx;
END $$;

-- System accounts every school has.
CREATE FUNCTION cc_create_system_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accounts(school_id, kind, system_code, floor)
    SELECT NEW.id, 'system', c, NULL
      FROM unnest(ARRAY['bank_clearing', 'provider_clearing', 'cash_desk', 'subsidy_fund',
                        'card_deposits', 'fee_income', 'commission_income', 'merchant_payable',
                        'suspense', 'opening_balances']) AS c;
    RETURN NEW;
END $$;
CREATE TRIGGER schools_system_accounts AFTER INSERT ON schools
    FOR EACH ROW EXECUTE FUNCTION cc_create_system_accounts();

-- Client-generated ids: one effect per (scope, key); the stored response is replayed.
CREATE TABLE idempotency_keys (
    scope           text NOT NULL,                       -- 'terminal:17', 'user:5', ...
    key             text NOT NULL CHECK (length(key) BETWEEN 8 AND 64),
    request_hash    text NOT NULL,
    status_code     int NOT NULL DEFAULT 0,              -- 0 while the first attempt runs
    response        jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);

-- Side effects (SMS, pushes, files) written with the change, delivered after commit.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    school_id       int REFERENCES schools(id),
    topic           text NOT NULL,
    payload         jsonb NOT NULL,
    dedupe_key      text UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    available_at    timestamptz NOT NULL DEFAULT now(),
    attempts        int NOT NULL DEFAULT 0,
    delivered_at    timestamptz,
    last_error      text
);
CREATE INDEX outbox_pending ON outbox(available_at) WHERE delivered_at IS NULL;
