-- Metered devices (showers, water, laundry, computer labs, the campus bus): a POS-kind terminal
-- of the merchant that runs them, with a tariff (metering/rules.py). A session holds money when
-- it starts (ledger holds, 0300) and captures what was used when it ends.

ALTER TABLE terminals ADD CONSTRAINT terminals_school_id UNIQUE (school_id, id);

CREATE TABLE meters (
    school_id       int NOT NULL REFERENCES schools(id),
    terminal_id     bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('shower', 'water', 'laundry', 'computer_lab', 'bus')),
    tariff          jsonb NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, terminal_id),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id)
);

CREATE TABLE meter_sessions (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    terminal_id     bigint NOT NULL,
    session_key     text NOT NULL CHECK (session_key ~ '^[A-Za-z0-9_.:-]{8,40}$'),  -- the device's id
    kind            text NOT NULL,
    person_id       bigint NOT NULL,
    card_id         bigint NOT NULL,
    card_kind       text NOT NULL,
    hold_key        text NOT NULL,
    authorised      bigint NOT NULL CHECK (authorised > 0),
    state           text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'ended', 'expired')),
    used_before     bigint,                   -- units of the day before this session, at its end
    units           bigint CHECK (units >= 0),
    amount          bigint CHECK (amount >= 0),
    business_date   date NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, terminal_id, session_key),
    FOREIGN KEY (school_id, terminal_id) REFERENCES meters(school_id, terminal_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, hold_key) REFERENCES holds(school_id, hold_key),
    CHECK ((state = 'ended') = (units IS NOT NULL AND amount IS NOT NULL AND ended_at IS NOT NULL))
);
-- one running session per person and kind of device
CREATE UNIQUE INDEX meter_sessions_one_open ON meter_sessions(school_id, person_id, kind)
    WHERE state = 'open';
CREATE INDEX meter_sessions_day ON meter_sessions(school_id, person_id, kind, business_date);
