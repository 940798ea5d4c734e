-- Attempts at a payment-code token, counted atomically before the code is checked: one
-- UPDATE ... RETURNING claims a place, so parallel wrong codes cannot all be evaluated while
-- the count still reads low (a read-then-record count let 8 through where the limit is 5).
-- A checked code that was not a wrong guess gives its place back. The window starts at the
-- first attempt; once it has passed, the next attempt starts a new one. paycode_failures stays
-- the log of wrong codes (which till, why). Rows expire with the job
-- payments.jobs.forget_paycode_throttle.
CREATE TABLE paycode_throttle (
    school_id     int NOT NULL REFERENCES schools(id),
    token         text NOT NULL,
    attempts      int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    window_start  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, token)
);
CREATE INDEX paycode_throttle_window ON paycode_throttle(window_start);
