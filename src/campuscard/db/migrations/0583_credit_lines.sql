-- Credit lines: a person (staff, as the school decides) may spend below zero down to a limit.
-- The limit is the cash purse's floor (accounts.floor = -limit; the floor CHECK on
-- balance - held enforces it for every booking); the payment engine reads the floor, every
-- other purse keeps floor 0. A top-up lands on the negative balance, so it repays the credit
-- before anything else. Credit still owed after repay_days is overdue: monitoring hears of it
-- and the floor is raised to what is owed, so no further credit is given until it is repaid.
-- Only purchases and bills may use credit (ledger/db/cc_post.sql). docs/credit.md
CREATE TABLE credit_lines (
    school_id      int NOT NULL REFERENCES schools(id),
    person_id      bigint NOT NULL,
    credit_limit   bigint NOT NULL CHECK (credit_limit >= 0 AND credit_limit <= 1000000),
    repay_days     int NOT NULL CHECK (repay_days BETWEEN 1 AND 90),
    state          text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'overdue', 'closed')),
    in_debt_since  timestamptz,            -- when the purse last went below zero
    overdue_since  timestamptz,
    set_by         text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, person_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((state = 'overdue') = (overdue_since IS NOT NULL))
);
CREATE INDEX credit_lines_in_debt ON credit_lines(school_id, in_debt_since)
    WHERE in_debt_since IS NOT NULL;
