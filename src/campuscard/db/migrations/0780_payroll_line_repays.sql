-- A payroll line whose bank payout failed (the bank refused it, or it was reversed) has its
-- money back in the payroll account; the finance office pays it again, to the staff member's
-- bank card (once the card is fixed) or to their campus account. The line then points at its
-- new booking or transfer, and each attempt that failed is kept here with who paid it again,
-- how and when: once per failed transfer (the key), so a request sent twice pays once.
-- docs/payroll.md
CREATE TABLE payroll_line_repays (
    school_id          int NOT NULL REFERENCES schools(id),
    failed_transfer_id bigint NOT NULL,
    batch_id           bigint NOT NULL,
    row_no             int NOT NULL,
    route              text NOT NULL CHECK (route IN ('campus', 'bank')),
    tx_id              bigint,                    -- campus: the booking
    transfer_id        bigint,                    -- bank: the new payout
    repaid_by          bigint NOT NULL,
    repaid_by_name     text NOT NULL,
    repaid_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, failed_transfer_id),
    UNIQUE (school_id, transfer_id),
    FOREIGN KEY (school_id, failed_transfer_id) REFERENCES bank_transfers(school_id, id),
    FOREIGN KEY (school_id, batch_id, row_no) REFERENCES payroll_lines(school_id, batch_id, row_no),
    FOREIGN KEY (school_id, tx_id) REFERENCES journal_tx(school_id, id),
    FOREIGN KEY (school_id, transfer_id) REFERENCES bank_transfers(school_id, id),
    CHECK ((route = 'campus') = (tx_id IS NOT NULL)),
    CHECK ((route = 'bank') = (transfer_id IS NOT NULL))
);
CREATE INDEX payroll_line_repays_line ON payroll_line_repays(school_id, batch_id, row_no);
