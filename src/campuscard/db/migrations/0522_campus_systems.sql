-- Other campus systems that ask who a card belongs to: the library, computer labs, the exam
-- system. Each has its own API token (only its sha256 is kept) and a rate per minute; labs
-- also sign students in and out of a station by card. See docs/access.md "Campus systems".

CREATE TABLE campus_systems (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    kind            text NOT NULL CHECK (kind IN ('library', 'lab', 'exam', 'other')),
    token_hash      bytea NOT NULL,
    token_hint      text NOT NULL,                    -- the token's last four characters
    per_minute      int NOT NULL DEFAULT 120 CHECK (per_minute BETWEEN 1 AND 6000),
    active          boolean NOT NULL DEFAULT true,
    lookups         bigint NOT NULL DEFAULT 0,
    last_used_at    timestamptz,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name),
    UNIQUE (school_id, token_hash)
);

-- One fixed one-minute window per system, counted in the database so every server process
-- shares the limit.
CREATE TABLE campus_system_windows (
    school_id       int NOT NULL REFERENCES schools(id),
    system_id       bigint NOT NULL,
    window_start    timestamptz NOT NULL,
    used            int NOT NULL,
    PRIMARY KEY (school_id, system_id),
    FOREIGN KEY (school_id, system_id) REFERENCES campus_systems(school_id, id)
);

-- A student at a computer-lab station, signed in by card and out again (or by the next card
-- at that station, or by signing in elsewhere).
CREATE TABLE lab_sessions (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    system_id       bigint NOT NULL,
    station         text NOT NULL CHECK (length(station) BETWEEN 1 AND 64),
    person_id       bigint NOT NULL,
    card_number     text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    ended_by        text CHECK (ended_by IN ('card', 'next_card', 'moved', 'system')),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, system_id) REFERENCES campus_systems(school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((ended_at IS NULL) = (ended_by IS NULL))
);
CREATE UNIQUE INDEX lab_sessions_open_station ON lab_sessions(school_id, system_id, station)
    WHERE ended_at IS NULL;
CREATE UNIQUE INDEX lab_sessions_open_person ON lab_sessions(school_id, person_id)
    WHERE ended_at IS NULL;
