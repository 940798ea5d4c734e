-- End-of-day clearing and settlement (C7). The clearing reads the ledger itself: every posting
-- on a merchant account (payments, reversals, refunds, adjustments) is cleared exactly once,
-- on the first day closed after it was booked. A closed day is stored, never recomputed.
-- See docs/settlement.md and docs/decisions/0070-clearing-from-the-ledger.md.

-- function cc_create_settlement_accounts: settlement/db/cc_create_settlement_accounts.sql
-- trigger schools_settlement_accounts: settlement/db/schools_settlement_accounts.sql
INSERT INTO accounts(school_id, kind, system_code, floor)
SELECT s.id, 'system', c, NULL
  FROM schools s, unnest(ARRAY['bank_account', 'provider_account', 'recon_writeoff']) AS c
ON CONFLICT DO NOTHING;

-- Where a merchant's settlement is paid (the payout instruction file).
CREATE TABLE merchant_payout_accounts (
    merchant_id     bigint PRIMARY KEY REFERENCES merchants(id),
    school_id       int NOT NULL REFERENCES schools(id),
    bank_code       text NOT NULL CHECK (bank_code ~ '^[0-9A-Z]{3,12}$'),
    account_no      text NOT NULL CHECK (account_no ~ '^[0-9]{8,32}$'),
    account_name    text NOT NULL CHECK (length(account_name) BETWEEN 1 AND 64),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per closed business day of a school. Its existence closes the day.
CREATE TABLE settlement_days (
    school_id       int NOT NULL REFERENCES schools(id),
    business_date   date NOT NULL,
    closed_at       timestamptz NOT NULL DEFAULT now(),
    closed_by       text NOT NULL,
    item_count      bigint NOT NULL,
    carried_count   bigint NOT NULL,          -- items booked on earlier days (late arrivals)
    carried_amount  bigint NOT NULL,
    gross           bigint NOT NULL,
    commission      bigint NOT NULL,
    payout          bigint NOT NULL,
    elapsed_ms      int NOT NULL DEFAULT 0,
    PRIMARY KEY (school_id, business_date)
);

-- Every merchant posting, cleared once (the primary key makes a second clearing impossible).
-- No foreign key to postings: it would cost a lookup per row on a million-row day and the
-- rows are copied from postings in the same statement.
CREATE TABLE clearing_items (
    posting_id      bigint PRIMARY KEY,
    school_id       int NOT NULL,
    cleared_on      date NOT NULL,            -- the settlement day that took it
    booked_on       date NOT NULL,            -- the business date it was booked on
    merchant_id     bigint NOT NULL,
    account_id      bigint NOT NULL,
    terminal_id     bigint,                   -- NULL: booked at the back office
    channel         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('sale', 'reversal', 'refund', 'other')),
    amount          bigint NOT NULL
);
CREATE INDEX clearing_items_day ON clearing_items(school_id, cleared_on, merchant_id);

-- One settlement per merchant and day: the figures, the commission and the ledger booking.
CREATE TABLE settlements (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    business_date   date NOT NULL,
    merchant_id     bigint NOT NULL REFERENCES merchants(id),
    channel         text NOT NULL,
    commission_bp   int NOT NULL,
    sales_count     bigint NOT NULL,
    gross           bigint NOT NULL,
    reversal_count  bigint NOT NULL,
    reversals       bigint NOT NULL,
    refund_count    bigint NOT NULL,
    refunds         bigint NOT NULL,
    other           bigint NOT NULL,          -- adjustments on the merchant's accounts
    net_sales       bigint NOT NULL,          -- gross - reversals - refunds: commission base
    commission      bigint NOT NULL CHECK (commission >= 0),
    payout          bigint NOT NULL,          -- net_sales + other - commission
    carried_count   bigint NOT NULL,
    carried_amount  bigint NOT NULL,
    tx_id           bigint REFERENCES journal_tx(id),
    payout_ref      text NOT NULL UNIQUE,     -- the bank reference of the payout line
    payout_tx_id    bigint REFERENCES journal_tx(id),   -- merchant_payable -> bank_clearing
    payout_status   text NOT NULL CHECK (payout_status IN ('instructed', 'no_account',
                        'nothing_due', 'owed_by_merchant')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, business_date, merchant_id),
    FOREIGN KEY (school_id, business_date) REFERENCES settlement_days(school_id, business_date)
);
CREATE INDEX settlements_merchant ON settlements(merchant_id, business_date DESC);

-- The same figures per terminal (and channel) of the merchant.
CREATE TABLE settlement_lines (
    settlement_id   bigint NOT NULL REFERENCES settlements(id),
    terminal_id     bigint REFERENCES terminals(id),
    channel         text NOT NULL,
    sales_count     bigint NOT NULL,
    gross           bigint NOT NULL,
    reversal_count  bigint NOT NULL,
    reversals       bigint NOT NULL,
    refund_count    bigint NOT NULL,
    refunds         bigint NOT NULL,
    other           bigint NOT NULL,
    net_sales       bigint NOT NULL,
    commission      bigint NOT NULL CHECK (commission >= 0),
    payout          bigint NOT NULL,
    carried_count   bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (settlement_id, terminal_id, channel)
);

-- trigger settlement_days_append_only: settlement/db/settlement_days_append_only.sql
-- trigger clearing_items_append_only: settlement/db/clearing_items_append_only.sql
-- trigger settlements_append_only: settlement/db/settlements_append_only.sql
-- trigger settlement_lines_append_only: settlement/db/settlement_lines_append_only.sql
