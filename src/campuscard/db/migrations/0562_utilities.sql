-- Dorm utilities (prepaid electricity and water meters at the utility vendor, adapters/utility).
-- A top-up is two-phase: a hold on the payer's purse and a 'pending' row are committed before
-- the vendor hears of it; the vendor's answer (or, after a lost answer, its answer to a query
-- by the same request id) captures the hold, or a confirmed cancel voids it. Exactly once.

CREATE TABLE utility_meters (
    school_id   int NOT NULL REFERENCES schools(id),
    id          bigint GENERATED ALWAYS AS IDENTITY,
    meter_no    text NOT NULL CHECK (meter_no ~ '^[A-Za-z0-9_-]{4,32}$'),
    kind        text NOT NULL CHECK (kind IN ('electricity', 'water')),
    dorm        text NOT NULL CHECK (length(dorm) BETWEEN 1 AND 64),
    room        text NOT NULL CHECK (length(room) BETWEEN 1 AND 16),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, meter_no),
    UNIQUE (school_id, dorm, room, kind)
);

-- who lives in the room (may see and top up its meters), and their automatic top-up
CREATE TABLE utility_residents (
    school_id      int NOT NULL REFERENCES schools(id),
    meter_id       bigint NOT NULL,
    person_id      bigint NOT NULL,
    auto_below     bigint CHECK (auto_below > 0),     -- top up when the balance falls below
    auto_amount    bigint CHECK (auto_amount > 0),
    PRIMARY KEY (school_id, meter_id, person_id),
    FOREIGN KEY (school_id, meter_id) REFERENCES utility_meters(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((auto_below IS NULL) = (auto_amount IS NULL))
);
CREATE INDEX utility_residents_person ON utility_residents(school_id, person_id);

CREATE TABLE utility_topups (
    school_id    int NOT NULL REFERENCES schools(id),
    id           bigint GENERATED ALWAYS AS IDENTITY,
    meter_id     bigint NOT NULL,
    person_id    bigint NOT NULL,
    amount       bigint NOT NULL CHECK (amount > 0),
    request_id   text NOT NULL CHECK (request_id ~ '^[A-Za-z0-9_.:-]{8,64}$'),  -- ours, at the vendor
    hold_key     text NOT NULL,
    origin       text NOT NULL CHECK (origin IN ('manual', 'auto')),
    status       text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    vendor_txn   text,
    meter_balance bigint,                   -- the meter's balance the vendor reported after it
    attempts     int NOT NULL DEFAULT 0,
    last_error   text,
    next_try_at  timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, request_id),
    FOREIGN KEY (school_id, meter_id) REFERENCES utility_meters(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, hold_key) REFERENCES holds(school_id, hold_key),
    CHECK ((status = 'pending') = (resolved_at IS NULL))
);
CREATE INDEX utility_topups_pending ON utility_topups(next_try_at) WHERE status = 'pending';
CREATE INDEX utility_topups_person ON utility_topups(school_id, person_id, id DESC);
