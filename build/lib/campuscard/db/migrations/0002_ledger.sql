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

-- function cc_apply_posting: ledger/db/cc_apply_posting.sql
-- trigger postings_apply: ledger/db/postings_apply.sql

-- function cc_guard_balance: ledger/db/cc_guard_balance.sql
-- trigger accounts_guard: ledger/db/accounts_guard.sql

-- function cc_new_account_zero: ledger/db/cc_new_account_zero.sql
-- trigger accounts_start_at_zero: ledger/db/accounts_start_at_zero.sql

-- trigger accounts_no_delete: ledger/db/accounts_no_delete.sql
-- trigger postings_append_only: ledger/db/postings_append_only.sql
-- trigger postings_no_truncate: ledger/db/postings_no_truncate.sql
-- trigger journal_tx_append_only: ledger/db/journal_tx_append_only.sql
-- trigger journal_tx_no_truncate: ledger/db/journal_tx_no_truncate.sql

-- function cc_check_tx_balanced: ledger/db/cc_check_tx_balanced.sql
-- trigger postings_balanced: ledger/db/postings_balanced.sql

-- function cc_post: ledger/db/cc_post.sql

-- function cc_create_system_accounts: ledger/db/cc_create_system_accounts.sql
-- trigger schools_system_accounts: ledger/db/schools_system_accounts.sql

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
