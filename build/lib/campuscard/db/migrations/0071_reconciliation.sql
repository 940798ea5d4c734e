-- Daily reconciliation against the bank's and the payment provider's statement files (C7, I9).
-- Lines are matched with our clearing-account bookings by reference; what does not match goes
-- to the suspense account as a case with a reason, until an operator resolves it.
-- See docs/reconciliation.md and docs/decisions/0072-reconciliation-through-suspense.md.

CREATE TABLE recon_imports (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    source          text NOT NULL CHECK (source IN ('bank', 'provider')),
    statement_date  date NOT NULL,
    file_name       text NOT NULL DEFAULT '',
    file_sha256     text NOT NULL,
    line_count      int NOT NULL,
    total_in        bigint NOT NULL,           -- money the statement says came in (fen)
    total_out       bigint NOT NULL,           -- money it says went out (fen, positive)
    matched_count   int NOT NULL,
    matched_amount  bigint NOT NULL,
    case_count      int NOT NULL,
    late_count      int NOT NULL,              -- earlier cases closed by this statement
    match_tx_id     bigint REFERENCES journal_tx(id),
    imported_by     text NOT NULL,
    imported_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, source, statement_date)
);

CREATE TABLE recon_lines (
    import_id       bigint NOT NULL REFERENCES recon_imports(id),
    line_no         int NOT NULL,
    reference       text NOT NULL,
    kind            text NOT NULL,
    amount          bigint NOT NULL,           -- signed: + money in for the school, - out
    occurred_at     text NOT NULL DEFAULT '',
    raw             text NOT NULL,
    PRIMARY KEY (import_id, line_no)
);
CREATE INDEX recon_lines_reference ON recon_lines(reference);

-- Unmatched differences, each booked into suspense until resolved.
CREATE TABLE recon_cases (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    source          text NOT NULL CHECK (source IN ('bank', 'provider')),
    import_id       bigint NOT NULL REFERENCES recon_imports(id),
    reference       text NOT NULL,
    reason          text NOT NULL CHECK (reason IN ('missing_ours', 'missing_theirs',
                                                    'amount_differs')),
    their_amount    bigint NOT NULL,           -- 0 when missing on their side
    our_amount      bigint NOT NULL,           -- 0 when missing on ours
    difference      bigint NOT NULL,           -- their - our: what suspense holds for it
    suspense_tx_id  bigint NOT NULL REFERENCES journal_tx(id),
    status          text NOT NULL DEFAULT 'open'
                    CHECK (status IN ('open', 'pending_approval', 'resolved')),
    resolution      text CHECK (resolution IN ('post', 'refund', 'write_off', 'matched_late')),
    target_account  bigint REFERENCES accounts(id),
    note            text NOT NULL DEFAULT '',
    requested_by    bigint REFERENCES users(id),
    requested_at    timestamptz,
    resolved_by     text,
    approved_by     bigint REFERENCES users(id),
    resolved_at     timestamptz,
    resolution_tx_id bigint REFERENCES journal_tx(id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (difference = their_amount - our_amount AND difference <> 0),
    CHECK ((status = 'resolved') = (resolution IS NOT NULL AND resolved_at IS NOT NULL))
);
CREATE INDEX recon_cases_open ON recon_cases(school_id, source, reference)
    WHERE status <> 'resolved';

-- Our clearing-account bookings taken by a reconciliation (each once).
CREATE TABLE recon_our_items (
    tx_id           bigint PRIMARY KEY REFERENCES journal_tx(id),
    school_id       int NOT NULL,
    source          text NOT NULL,
    import_id       bigint NOT NULL REFERENCES recon_imports(id),
    reference       text NOT NULL,
    amount          bigint NOT NULL
);

-- trigger recon_imports_append_only: settlement/db/recon_imports_append_only.sql
-- trigger recon_lines_append_only: settlement/db/recon_lines_append_only.sql
-- trigger recon_our_items_append_only: settlement/db/recon_our_items_append_only.sql
