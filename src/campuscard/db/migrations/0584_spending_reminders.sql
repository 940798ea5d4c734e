-- Monthly analysis for the cardholder: an opt-in reminder when the month's spending runs ahead
-- of the usual pace, sent at most once a month. docs/spending.md
CREATE TABLE spending_prefs (
    school_id          int NOT NULL REFERENCES schools(id),
    person_id          bigint NOT NULL,
    pace_reminder      boolean NOT NULL DEFAULT false,
    last_reminded_month date,           -- the first day of the month last reminded
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, person_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE INDEX spending_prefs_on ON spending_prefs(school_id) WHERE pace_reminder;
