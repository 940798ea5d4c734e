-- Money in and out (C6): the counter and its cash drawer, provider orders (online top-up and
-- any other purpose), bank cards and bank transfers (圈存 and payouts), automatic top-up,
-- subsidy batches. Money itself only moves through cc_post; these tables hold the state of
-- each flow and link to the journal transaction that booked it.

-- One cash drawer per operator per business day: opening float, then counted at close.
CREATE TABLE cash_desk_sessions (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    operator_id     bigint NOT NULL REFERENCES users(id),
    business_date   date NOT NULL,
    opening_float   bigint NOT NULL CHECK (opening_float >= 0),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    counted_cash    bigint CHECK (counted_cash >= 0),
    expected_cash   bigint,
    difference      bigint,                      -- counted - expected; + over, - short
    note            text NOT NULL DEFAULT '',
    opened_at       timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    UNIQUE (operator_id, business_date)
);

-- Every counter operation, with who served whom and how the holder was identified.
CREATE TABLE counter_ops (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    operator_id     bigint NOT NULL REFERENCES users(id),
    session_id      bigint REFERENCES cash_desk_sessions(id),
    business_date   date NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('deposit', 'withdrawal', 'subsidy_grant',
                        'subsidy_deduct', 'zeroing', 'leaving_payout')),
    person_id       bigint NOT NULL REFERENCES persons(id),
    amount          bigint NOT NULL CHECK (amount >= 0),
    -- effect on the drawer: + cash taken in, - cash paid out, 0 no cash
    cash_effect     bigint NOT NULL,
    tx_id           bigint REFERENCES journal_tx(id),
    identity        jsonb NOT NULL DEFAULT '{}'::jsonb,
    memo            text NOT NULL DEFAULT '',
    client_id       text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX counter_ops_day ON counter_ops(school_id, business_date, operator_id);
CREATE INDEX counter_ops_person ON counter_ops(person_id, id DESC);

-- Orders at the online payment provider. Two-phase: pending -> paid | failed | expired;
-- a paid order may later be refunded. ``purpose`` chooses the on-paid handler.
CREATE TABLE provider_orders (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    out_trade_no    text NOT NULL UNIQUE,
    purpose         text NOT NULL CHECK (purpose ~ '^[a-z_]{2,32}$'),
    person_id       bigint REFERENCES persons(id),     -- whose purse / who it is for
    payer_user_id   bigint REFERENCES users(id),       -- who pays (the holder or a parent)
    amount          bigint NOT NULL CHECK (amount > 0),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'failed', 'expired', 'refunded')),
    prepay_id       text,
    pay_url         text,
    provider_txn_id text,
    tx_id           bigint REFERENCES journal_tx(id),  -- the booking when paid
    refund_tx_id    bigint REFERENCES journal_tx(id),
    paid_via        text CHECK (paid_via IN ('notify', 'query')),
    description     text NOT NULL DEFAULT '',
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    paid_at         timestamptz,
    closed_at       timestamptz,
    last_query_at   timestamptz
);
CREATE INDEX provider_orders_open ON provider_orders(created_at) WHERE status = 'pending';
CREATE INDEX provider_orders_person ON provider_orders(person_id, id DESC);

-- Every callback that reached us, accepted or not: the evidence for disputes and alerts.
CREATE TABLE provider_callbacks (
    id              bigserial PRIMARY KEY,
    out_trade_no    text,
    order_id        bigint REFERENCES provider_orders(id),
    outcome         text NOT NULL CHECK (outcome IN ('credited', 'duplicate', 'unsigned',
                        'bad_signature', 'unknown_order', 'wrong_amount', 'not_paid',
                        'malformed')),
    params          jsonb NOT NULL,
    remote          text,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_callbacks_order ON provider_callbacks(order_id);

-- Bank cards bound by holders. Only what the link needs: a masked number for people to
-- recognise it and the bank's token for the account. The full number is never stored.
CREATE TABLE bank_cards (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL REFERENCES persons(id),
    bank_name       text NOT NULL DEFAULT '',
    masked_pan      text NOT NULL,
    holder_name     text NOT NULL,
    bank_token      text NOT NULL,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unbound')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    unbound_at      timestamptz
);
CREATE UNIQUE INDEX bank_cards_one_active ON bank_cards(person_id) WHERE status = 'active';

-- Transfers over the bank link. 'load' = bank card -> campus card (圈存); 'payout' = campus
-- purse -> bank card (leaving school). States:
--   pending    request being sent (or we crashed before knowing)
--   unknown    the bank did not answer in time: must be reversed
--   reversing  we decided not to book an approved load (would exceed target): reverse it
--   posted     done and booked
--   failed     refused by the bank, nothing moved
--   reversed   the bank confirmed the reversal, nothing moved
CREATE TABLE bank_transfers (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    direction       text NOT NULL CHECK (direction IN ('load', 'payout')),
    origin          text NOT NULL CHECK (origin IN ('holder', 'guardian', 'auto', 'leaving')),
    person_id       bigint NOT NULL REFERENCES persons(id),
    bank_card_id    bigint NOT NULL REFERENCES bank_cards(id),
    amount          bigint NOT NULL CHECK (amount > 0),
    rrn             text NOT NULL UNIQUE,               -- retrieval reference number (12)
    stan            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'unknown', 'reversing', 'posted', 'failed',
                                      'reversed')),
    response_code   text,
    auth_code       text,
    reversal_attempts int NOT NULL DEFAULT 0,
    tx_id           bigint REFERENCES journal_tx(id),
    hold_tx_id      bigint REFERENCES journal_tx(id),   -- payout: purse -> bank_clearing first
    release_tx_id   bigint REFERENCES journal_tx(id),   -- payout undone: back to the purse
    requested_by    bigint REFERENCES users(id),
    target          bigint,                              -- auto: the balance not to exceed
    note            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz
);
CREATE INDEX bank_transfers_open ON bank_transfers(updated_at)
    WHERE status IN ('pending', 'unknown', 'reversing');
CREATE INDEX bank_transfers_person ON bank_transfers(person_id, id DESC);
-- at most one automatic top-up in flight per person: one per trigger
CREATE UNIQUE INDEX bank_transfers_one_auto ON bank_transfers(person_id)
    WHERE origin = 'auto' AND status IN ('pending', 'unknown', 'reversing');

-- Automatic top-up (seed 003): below ``threshold`` load up to ``target`` from the bound card.
-- ``armed`` is cleared when a top-up fires and set again once the balance is back at or
-- above the threshold, so one fall below the threshold triggers at most one top-up.
CREATE TABLE auto_topups (
    person_id       bigint PRIMARY KEY REFERENCES persons(id),
    school_id       int NOT NULL REFERENCES schools(id),
    threshold       bigint NOT NULL CHECK (threshold > 0),
    target          bigint NOT NULL,
    enabled         boolean NOT NULL DEFAULT true,
    armed           boolean NOT NULL DEFAULT true,
    last_fired_at   timestamptz,
    last_result     text NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (target > threshold)
);

-- Subsidy batches: made by one operator, approved (and issued) by another.
CREATE TABLE subsidy_batches (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    source          text NOT NULL CHECK (source IN ('file', 'rule')),
    rule            jsonb,
    status          text NOT NULL DEFAULT 'pending_approval'
                    CHECK (status IN ('pending_approval', 'rejected', 'issued', 'expired')),
    expires_on      date,
    total           bigint NOT NULL DEFAULT 0,
    lines           int NOT NULL DEFAULT 0,
    clawed_back     bigint NOT NULL DEFAULT 0,
    created_by      bigint NOT NULL REFERENCES users(id),
    approved_by     bigint REFERENCES users(id),
    reject_reason   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    issued_at       timestamptz,
    expired_at      timestamptz,
    CHECK (approved_by IS NULL OR approved_by <> created_by)
);
CREATE INDEX subsidy_batches_due ON subsidy_batches(expires_on) WHERE status = 'issued';

CREATE TABLE subsidy_lines (
    batch_id        bigint NOT NULL REFERENCES subsidy_batches(id),
    person_id       bigint NOT NULL REFERENCES persons(id),
    amount          bigint NOT NULL CHECK (amount > 0),
    clawed_back     bigint NOT NULL DEFAULT 0 CHECK (clawed_back >= 0 AND clawed_back <= amount),
    memo            text NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, person_id)
);
CREATE INDEX subsidy_lines_person ON subsidy_lines(person_id);
