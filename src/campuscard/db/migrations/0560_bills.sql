-- Bills and fees (C11): fee items per term, a bill per student and term with one line per item,
-- payments (card, provider, bank transfer) allocated to lines, numbered receipts, instalment
-- plans with late fees, adjustments and waivers (four eyes), green-channel deferrals and the
-- holds a school places on students in arrears. Money itself moves only through cc_post; a bill
-- is a claim, not money, so issuing one books nothing. docs/bills.md

-- what a rate may depend on besides the class
ALTER TABLE persons ADD COLUMN major text NOT NULL DEFAULT '' CHECK (length(major) <= 64);
ALTER TABLE persons ADD COLUMN dorm text NOT NULL DEFAULT '' CHECK (length(dorm) <= 64);

-- adjustments and waivers of a bill wait for a second person
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN (
    'adjustment', 'counter_op', 'payout_account', 'drawer_float', 'bill_adjustment'));

CREATE TABLE fee_items (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    term        text NOT NULL CHECK (term ~ '^[0-9]{4}-[0-9]{4}-[12]$'),   -- 2026-2027-1
    kind        text NOT NULL CHECK (kind IN ('tuition', 'accommodation', 'textbooks',
                                              'insurance', 'utilities', 'other')),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    amount      bigint CHECK (amount >= 0),   -- for everyone without a rate; NULL: rates only
    due_date    date NOT NULL,
    created_by  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, term, name)
);

-- an item's amount for one class, major or dorm building (the most specific wins: class,
-- then major, then dorm, then the item's own amount)
CREATE TABLE fee_item_rates (
    school_id   int NOT NULL REFERENCES schools(id),
    item_id     bigint NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('class', 'major', 'dorm')),
    scope_value text NOT NULL CHECK (length(scope_value) BETWEEN 1 AND 64),
    amount      bigint NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (school_id, item_id, scope, scope_value),
    FOREIGN KEY (school_id, item_id) REFERENCES fee_items(school_id, id)
);

CREATE TABLE bills (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    person_id       bigint NOT NULL,
    term            text NOT NULL,
    due_date        date NOT NULL,
    total           bigint NOT NULL DEFAULT 0 CHECK (total >= 0),    -- sum of the lines
    paid            bigint NOT NULL DEFAULT 0 CHECK (paid >= 0 AND paid <= total),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid')),
    -- green channel (绿色通道): a student in hardship pays later, without late fees or holds
    deferred_until  date,
    deferral_reason text,
    deferred_by     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, person_id, term),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK (status = 'open' OR paid = total)
);
CREATE INDEX bills_open ON bills(school_id, due_date) WHERE status = 'open';

CREATE TABLE bill_lines (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    bill_id     bigint NOT NULL,
    item_id     bigint,                       -- NULL for a late fee
    kind        text NOT NULL CHECK (kind IN ('tuition', 'accommodation', 'textbooks',
                                              'insurance', 'utilities', 'other', 'late_fee')),
    name        text NOT NULL,
    original    bigint NOT NULL CHECK (original >= 0),
    amount      bigint NOT NULL CHECK (amount >= 0),   -- after adjustments and waivers
    paid        bigint NOT NULL DEFAULT 0 CHECK (paid >= 0 AND paid <= amount),
    due_date    date NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, bill_id, item_id),
    FOREIGN KEY (school_id, bill_id) REFERENCES bills(school_id, id),
    FOREIGN KEY (school_id, item_id) REFERENCES fee_items(school_id, id),
    CHECK ((kind = 'late_fee') = (item_id IS NULL))
);
CREATE INDEX bill_lines_item ON bill_lines(school_id, item_id);

-- An instalment plan: the bill's items paid in parts by dates. Instalment k is late when what
-- was paid on the items is below the sum of instalments 1..k after its due date and grace.
CREATE TABLE bill_instalments (
    school_id        int NOT NULL REFERENCES schools(id),
    bill_id          bigint NOT NULL,
    seq              int NOT NULL CHECK (seq BETWEEN 1 AND 12),
    due_date         date NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    late_fee_line_id bigint,                  -- its late fee, charged once
    PRIMARY KEY (school_id, bill_id, seq),
    FOREIGN KEY (school_id, bill_id) REFERENCES bills(school_id, id),
    FOREIGN KEY (school_id, late_fee_line_id) REFERENCES bill_lines(school_id, id)
);

-- Receipt numbers without gaps, per school and year.
CREATE TABLE bill_receipt_counters (
    school_id   int NOT NULL REFERENCES schools(id),
    year        int NOT NULL,
    last        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (school_id, year)
);

CREATE TABLE bill_payments (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    bill_id         bigint,                   -- NULL: a transfer that found no open bill
    person_id       bigint NOT NULL,
    method          text NOT NULL CHECK (method IN ('card', 'provider', 'bank')),
    amount          bigint NOT NULL CHECK (amount > 0),
    applied         bigint NOT NULL CHECK (applied >= 0),
    returned        bigint NOT NULL CHECK (returned >= 0),  -- overpaid, back to the card
    reference       text NOT NULL,            -- card: the client id; provider: out_trade_no; bank: ours
    tx_id           bigint NOT NULL,
    payer_user_id   bigint,
    payer_name      text NOT NULL,
    receipt_no      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, receipt_no),
    FOREIGN KEY (school_id, bill_id) REFERENCES bills(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK (applied + returned = amount)
);
CREATE INDEX bill_payments_person ON bill_payments(school_id, person_id, id DESC);
CREATE INDEX bill_payments_day ON bill_payments(school_id, created_at);

-- Where each payment went, line by line (the ledger per fee item); a negative amount gives a
-- line's money back (a waiver after payment, refunded to the card).
CREATE TABLE bill_allocations (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    line_id     bigint NOT NULL,
    payment_id  bigint,                       -- NULL for money given back by an adjustment
    amount      bigint NOT NULL CHECK (amount <> 0),
    tx_id       bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, line_id) REFERENCES bill_lines(school_id, id),
    FOREIGN KEY (school_id, payment_id) REFERENCES bill_payments(school_id, id)
);
CREATE INDEX bill_allocations_line ON bill_allocations(school_id, line_id);

-- Adjustments and waivers, proposed by one person and applied when a second approves.
CREATE TABLE bill_adjustments (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    line_id     bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('adjustment', 'waiver')),
    before      bigint NOT NULL,
    after       bigint NOT NULL CHECK (after >= 0),
    reason      text NOT NULL,
    approval_id bigint NOT NULL,
    returned    bigint NOT NULL DEFAULT 0,    -- paid money given back to the card
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, line_id) REFERENCES bill_lines(school_id, id),
    FOREIGN KEY (school_id, approval_id) REFERENCES approvals(school_id, id)
);

-- What a student in arrears may not do, as the school chose (settings.bills.holds); placed by
-- the arrears job, lifted when the bills are paid (or deferred).
CREATE TABLE bill_holds (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    person_id   bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('card_replacement', 'exam_hall')),
    bill_id     bigint NOT NULL,
    placed_at   timestamptz NOT NULL DEFAULT now(),
    lifted_at   timestamptz,
    lifted_why  text,
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, bill_id) REFERENCES bills(school_id, id)
);
CREATE UNIQUE INDEX bill_holds_active ON bill_holds(school_id, person_id, kind, bill_id)
    WHERE lifted_at IS NULL;

-- Reminders sent, once per bill and age bucket.
CREATE TABLE bill_reminders (
    school_id   int NOT NULL REFERENCES schools(id),
    bill_id     bigint NOT NULL,
    bucket      text NOT NULL,
    sent_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, bill_id, bucket),
    FOREIGN KEY (school_id, bill_id) REFERENCES bills(school_id, id)
);
