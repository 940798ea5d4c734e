-- Payroll (工资管理): the finance office uploads a payroll sheet in the student import's frame;
-- a second person approves it (approvals, kind 'payroll_batch'); then each line credits the
-- staff member's campus account (payroll_clearing -> cash purse) or their bank card (a bank
-- link payout of origin 'payroll' whose hold is payroll_clearing -> bank_clearing). A line is
-- paid exactly once: its booking (tx_id) or its transfer (transfer_id) is written once, under
-- the batch's lock, and a transfer is sent at most once (bank_transfers.sent_at). docs/payroll.md
-- a payroll batch is paid when a second person approves it (decision 0120); every kind kept
ALTER TABLE approvals DROP CONSTRAINT approvals_kind_check;
ALTER TABLE approvals ADD CONSTRAINT approvals_kind_check CHECK (kind IN (
    'adjustment', 'counter_op', 'payout_account', 'drawer_float', 'bill_adjustment',
    'order_dispute', 'payroll_batch'));

CREATE TABLE payroll_batches (
    school_id        int NOT NULL REFERENCES schools(id),
    id               bigint GENERATED ALWAYS AS IDENTITY,
    period           text NOT NULL CHECK (period ~ '^20[0-9]{2}-(0[1-9]|1[0-2])$'),
    sha256           text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    filename         text NOT NULL,
    content          bytea NOT NULL,
    lines            int NOT NULL CHECK (lines > 0),
    total            bigint NOT NULL CHECK (total > 0),
    canonical_sha256 text NOT NULL,
    approval_id      bigint NOT NULL,
    uploaded_by      bigint NOT NULL,
    uploaded_by_name text NOT NULL,
    uploaded_at      timestamptz NOT NULL DEFAULT now(),
    paid_at          timestamptz,              -- the approval's bookings were made
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, period, sha256),        -- the same file again is the same batch
    UNIQUE (school_id, approval_id),
    FOREIGN KEY (school_id, approval_id) REFERENCES approvals(school_id, id)
);

CREATE TABLE payroll_lines (
    school_id    int NOT NULL REFERENCES schools(id),
    batch_id     bigint NOT NULL,
    row_no       int NOT NULL CHECK (row_no >= 2),   -- the row in the sheet (header = 1)
    person_id    bigint NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    route        text NOT NULL CHECK (route IN ('campus', 'bank')),
    memo         text NOT NULL DEFAULT '' CHECK (length(memo) <= 64),
    tx_id        bigint,                             -- campus: the booking
    transfer_id  bigint,                             -- bank: the payout
    PRIMARY KEY (school_id, batch_id, row_no),
    UNIQUE (school_id, batch_id, person_id),
    UNIQUE (school_id, tx_id),
    UNIQUE (school_id, transfer_id),
    FOREIGN KEY (school_id, batch_id) REFERENCES payroll_batches(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, tx_id) REFERENCES journal_tx(school_id, id),
    FOREIGN KEY (school_id, transfer_id) REFERENCES bank_transfers(school_id, id),
    CHECK (route = 'campus' OR tx_id IS NULL),
    CHECK (route = 'bank' OR transfer_id IS NULL)
);
CREATE INDEX payroll_lines_person ON payroll_lines(school_id, person_id);

ALTER TABLE bank_transfers DROP CONSTRAINT bank_transfers_origin_check;
ALTER TABLE bank_transfers ADD CONSTRAINT bank_transfers_origin_check
    CHECK (origin IN ('holder', 'guardian', 'auto', 'leaving', 'card_cancel', 'payroll'));

-- The payroll account every school has (new schools: payroll/db/cc_create_payroll_accounts.sql).
INSERT INTO accounts(school_id, kind, system_code, floor)
SELECT id, 'system', 'payroll_clearing', NULL FROM schools s
 WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.school_id = s.id AND a.kind = 'system'
                     AND a.system_code = 'payroll_clearing');
