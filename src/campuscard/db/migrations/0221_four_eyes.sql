-- Four eyes on money: what one person proposes (an adjustment, a counter subsidy grant, a large
-- deposit, a change of a merchant's payout account, a drawer float that differs from its last
-- close) waits here until a second person approves it; only then does it happen.
CREATE TABLE approvals (
    school_id         int NOT NULL REFERENCES schools(id),
    id                bigserial,
    kind              text NOT NULL CHECK (kind IN ('adjustment', 'counter_op', 'payout_account',
                                                    'drawer_float')),
    payload           jsonb NOT NULL,
    amount            bigint CHECK (amount >= 0),
    summary           text NOT NULL,
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'approved', 'rejected')),
    proposed_by       bigint NOT NULL,
    proposed_by_name  text NOT NULL,
    proposed_at       timestamptz NOT NULL DEFAULT now(),
    decided_by        bigint,
    decided_by_name   text,
    decided_at        timestamptz,
    note              text NOT NULL DEFAULT '',
    result            jsonb,
    PRIMARY KEY (school_id, id),
    -- the database, too, refuses one person deciding their own proposal
    CONSTRAINT approvals_second_person CHECK (decided_by IS NULL OR decided_by <> proposed_by),
    CHECK ((status = 'pending') = (decided_by IS NULL))
);
CREATE INDEX approvals_pending ON approvals(school_id, proposed_at) WHERE status = 'pending';
