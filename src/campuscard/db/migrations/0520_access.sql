-- Access control: zones, doors (one door controller each, a terminal of kind 'door' with an
-- entry and an optional exit reader), door groups, weekly schedules, the school's own calendar
-- days, grants, dormitory buildings and assignments, visitors, the compiled reader lists with
-- their change log, and door events. See docs/access.md.

CREATE TABLE access_zones (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    -- off; hard: a second entry (or exit) in a row is refused; soft: allowed and flagged
    antipassback    text NOT NULL DEFAULT 'off' CHECK (antipassback IN ('off', 'hard', 'soft')),
    -- local hour at which everybody's in/out state is forgotten
    reset_hour      smallint NOT NULL DEFAULT 4 CHECK (reset_hour BETWEEN 0 AND 23),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name)
);

CREATE TABLE access_doors (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    zone_id         bigint,
    terminal_id     bigint,                  -- the door's controller (terminals.kind = 'door')
    exit_reader     boolean NOT NULL DEFAULT false,
    -- timed anti-passback: the same direction is refused for this long (0: until the reset)
    apb_seconds     int NOT NULL DEFAULT 0 CHECK (apb_seconds BETWEEN 0 AND 86400),
    -- a door left open longer than this is reported by the controller
    held_open_seconds int NOT NULL DEFAULT 30 CHECK (held_open_seconds BETWEEN 5 AND 3600),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name),
    UNIQUE (school_id, terminal_id),
    FOREIGN KEY (school_id, zone_id) REFERENCES access_zones(school_id, id),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id)
);

CREATE TABLE access_door_groups (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name)
);

CREATE TABLE access_group_doors (
    school_id       int NOT NULL REFERENCES schools(id),
    group_id        bigint NOT NULL,
    door_id         bigint NOT NULL,
    PRIMARY KEY (school_id, group_id, door_id),
    FOREIGN KEY (school_id, group_id) REFERENCES access_door_groups(school_id, id) ON DELETE CASCADE,
    FOREIGN KEY (school_id, door_id) REFERENCES access_doors(school_id, id) ON DELETE CASCADE
);
CREATE INDEX access_group_doors_door ON access_group_doors(school_id, door_id);

-- week: {"1": [["07:00", "22:30"]], …, "7": [["22:00", "06:00"]]} (ISO weekday, Monday = 1;
-- an interval whose end is not after its start runs past midnight into the next day);
-- holiday: the intervals of a public holiday or a day the school closes.
CREATE TABLE access_schedules (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    week            jsonb NOT NULL,
    holiday         jsonb NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name)
);

-- The school's own days, over the public calendar: term breaks and closures (holiday), and
-- days that run as a given weekday (exam weekends, make-up days the package does not know).
CREATE TABLE access_calendar_days (
    school_id       int NOT NULL REFERENCES schools(id),
    day             date NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('holiday', 'workday')),
    as_weekday      smallint CHECK (as_weekday BETWEEN 1 AND 7),
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 64),
    PRIMARY KEY (school_id, day),
    CHECK ((kind = 'workday') = (as_weekday IS NOT NULL))
);

-- Who may open which door group when: one subject per grant.
CREATE TABLE access_grants (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    subject         text NOT NULL CHECK (subject IN ('person', 'class', 'role', 'card_kind')),
    person_id       bigint,
    class_id        bigint,
    role            text CHECK (role IN ('student', 'staff', 'visitor')),
    card_kind       text CHECK (card_kind IN ('student', 'staff', 'temporary')),
    group_id        bigint NOT NULL,
    schedule_id     bigint NOT NULL,
    valid_from      timestamptz,
    valid_until     timestamptz,
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 200),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, class_id) REFERENCES classes(school_id, id),
    FOREIGN KEY (school_id, group_id) REFERENCES access_door_groups(school_id, id),
    FOREIGN KEY (school_id, schedule_id) REFERENCES access_schedules(school_id, id),
    CHECK ((subject = 'person') = (person_id IS NOT NULL)),
    CHECK ((subject = 'class') = (class_id IS NOT NULL)),
    CHECK ((subject = 'role') = (role IS NOT NULL)),
    CHECK ((subject = 'card_kind') = (card_kind IS NOT NULL)),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_until > valid_from),
    CHECK (date_trunc('minute', valid_from) = valid_from AND date_trunc('minute', valid_until) = valid_until)
);
CREATE INDEX access_grants_group ON access_grants(school_id, group_id);

-- A dormitory building: living in it grants its door group on its schedule.
CREATE TABLE access_buildings (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    group_id        bigint NOT NULL,
    schedule_id     bigint NOT NULL,
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, name),
    FOREIGN KEY (school_id, group_id) REFERENCES access_door_groups(school_id, id),
    FOREIGN KEY (school_id, schedule_id) REFERENCES access_schedules(school_id, id)
);

CREATE TABLE access_dorm_assignments (
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    building_id     bigint NOT NULL,
    room            text NOT NULL DEFAULT '' CHECK (length(room) <= 16),
    valid_from      timestamptz,
    valid_until     timestamptz,
    PRIMARY KEY (school_id, person_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    FOREIGN KEY (school_id, building_id) REFERENCES access_buildings(school_id, id)
);

-- Visitors (visiting scholars, correspondence students…): a temporary card for a window.
CREATE TABLE access_visitors (
    school_id       int NOT NULL REFERENCES schools(id),
    id              bigint GENERATED ALWAYS AS IDENTITY,
    person_id       bigint NOT NULL,
    card_id         bigint NOT NULL,
    host            text NOT NULL DEFAULT '' CHECK (length(host) <= 64),
    purpose         text NOT NULL DEFAULT '' CHECK (length(purpose) <= 200),
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz NOT NULL CHECK (valid_until > valid_from),
    state           text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'expired', 'ended')),
    issued_by       text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, id),
    UNIQUE (school_id, card_id),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE INDEX access_visitors_due ON access_visitors(valid_until) WHERE state = 'active';

-- Changes to anything a reader list is made of bump seq (triggers, in the changing
-- transaction); a refresh turns the new state into list version `version` and records the
-- seq it saw. Readers hold versions; any server process can refresh.
CREATE TABLE access_heads (
    school_id       int PRIMARY KEY REFERENCES schools(id),
    seq             bigint NOT NULL DEFAULT 1
);

CREATE TABLE access_versions (
    school_id       int PRIMARY KEY REFERENCES schools(id),
    version         bigint NOT NULL DEFAULT 0,
    refreshed_seq   bigint NOT NULL DEFAULT 0,
    horizon_start   date,                    -- first day of the calendar the lists carry
    refreshed_at    timestamptz NOT NULL DEFAULT now()
);

-- What the readers' lists are made of: a card may open a group's doors on a schedule within a
-- window (epoch minutes; 0 = unbounded). A door's list is the entries of its groups.
CREATE TABLE access_entries (
    school_id       int NOT NULL REFERENCES schools(id),
    group_id        bigint NOT NULL,
    card_number     text NOT NULL,
    schedule_id     bigint NOT NULL,
    from_min        bigint NOT NULL,
    until_min       bigint NOT NULL,
    version         bigint NOT NULL,
    PRIMARY KEY (school_id, group_id, card_number, schedule_id, from_min, until_min)
);

-- Changes below this version were pruned: a reader whose base is older gets a snapshot.
CREATE TABLE access_delta_floor (
    school_id       int PRIMARY KEY REFERENCES schools(id),
    version         bigint NOT NULL
);

-- Per group: the number of entries and the sum of their hashes (mod 2^64), so a reader's
-- content hash is known without reading its entries.
CREATE TABLE access_group_heads (
    school_id       int NOT NULL REFERENCES schools(id),
    group_id        bigint NOT NULL,
    entries         bigint NOT NULL DEFAULT 0,
    set_hash        numeric(20, 0) NOT NULL DEFAULT 0,
    PRIMARY KEY (school_id, group_id)
);

CREATE TABLE access_changes (
    school_id       int NOT NULL REFERENCES schools(id),
    version         bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    op              text NOT NULL CHECK (op IN ('add', 'remove')),
    group_id        bigint NOT NULL,
    card_number     text NOT NULL,
    schedule_id     bigint NOT NULL,
    from_min        bigint NOT NULL,
    until_min       bigint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, version, id)
);

-- What each reader was given: a delta is only offered from a version it was given with the
-- same door groups (a door that joined a group needs the whole group: a snapshot).
CREATE TABLE access_served (
    school_id       int NOT NULL REFERENCES schools(id),
    terminal_id     bigint NOT NULL,
    version         bigint NOT NULL,
    groups          bigint[] NOT NULL,
    content_hash    text NOT NULL,
    served_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, terminal_id, version),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id)
);

-- Door events, exactly once by (controller, sequence), whatever the order they arrive in.
CREATE TABLE access_events (
    school_id       int NOT NULL REFERENCES schools(id),
    terminal_id     bigint NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    door_id         bigint,
    kind            text NOT NULL CHECK (kind IN ('granted', 'denied', 'forced', 'held_open')),
    direction       text CHECK (direction IN ('in', 'out')),
    card_number     text,
    person_id       bigint,
    reason          text NOT NULL DEFAULT '',
    flag            text NOT NULL DEFAULT '',  -- antipassback (soft), antipassback_zone
    list_version    bigint,
    occurred_at     timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, terminal_id, seq),
    FOREIGN KEY (school_id, terminal_id) REFERENCES terminals(school_id, id)
);
CREATE INDEX access_events_time ON access_events(school_id, occurred_at DESC);
CREATE INDEX access_events_person ON access_events(school_id, person_id, occurred_at);

-- Who is inside each anti-passback zone, from the events of all its doors (the server's view
-- across controllers; each controller also decides alone from its own passages).
CREATE TABLE access_presence (
    school_id       int NOT NULL REFERENCES schools(id),
    zone_id         bigint NOT NULL,
    card_number     text NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('in', 'out')),
    door_id         bigint NOT NULL,
    at              timestamptz NOT NULL,
    PRIMARY KEY (school_id, zone_id, card_number),
    FOREIGN KEY (school_id, zone_id) REFERENCES access_zones(school_id, id)
);

-- function cc_access_touch: access/db/cc_access_touch.sql and one trigger per table beside it
