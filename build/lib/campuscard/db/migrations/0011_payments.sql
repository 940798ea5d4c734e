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

-- function cc_fmt: ledger/db/cc_fmt.sql

-- function cc_refusal: payments/db/cc_refusal.sql

-- function cc_payment_rules: payments/db/cc_payment_rules.sql

-- function cc_pay: payments/db/cc_pay.sql

-- function cc_pay_inner: payments/db/cc_pay_inner.sql

-- function cc_mask_name: payments/db/cc_mask_name.sql

-- function cc_reverse: payments/db/cc_reverse.sql

-- function cc_refund: payments/db/cc_refund.sql
