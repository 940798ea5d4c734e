-- Card life (states, events, the device blacklist), payment settings of a cardholder (PIN,
-- own limits), merchant staff permissions, and terminal keys, nonces and heartbeats.

-- Cards ----------------------------------------------------------------------------------
ALTER TABLE cards
    ADD COLUMN replaced_by      bigint REFERENCES cards(id),
    ADD COLUMN state_changed_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN activated_at     timestamptz,
    ADD COLUMN closed_at        timestamptz;

-- A person holds at most one card that is still theirs (issued, active, lost or frozen).
CREATE UNIQUE INDEX cards_one_live_per_person ON cards(person_id)
    WHERE state IN ('issued', 'active', 'lost', 'frozen');

-- Every transition, in order: who, why, from which state to which.
CREATE TABLE card_events (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    card_id     bigint NOT NULL REFERENCES cards(id),
    action      text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    actor       text NOT NULL,
    channel     text NOT NULL DEFAULT 'counter',   -- counter, online, kiosk, system
    reason      text NOT NULL DEFAULT '',
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_events_card ON card_events(card_id, id);
-- trigger card_events_append_only: cards/db/card_events_append_only.sql

-- The device blacklist: the current entries and a versioned change log per school. Devices
-- ask for the changes since the version they hold. Entries for replaced, cancelled and
-- expired cards are permanent; lost and frozen cards leave the list when unblocked.
CREATE TABLE blacklist_heads (
    school_id   int PRIMARY KEY REFERENCES schools(id),
    version     bigint NOT NULL DEFAULT 0
);

CREATE TABLE blacklist_entries (
    card_id     bigint PRIMARY KEY REFERENCES cards(id),
    school_id   int NOT NULL REFERENCES schools(id),
    number      text NOT NULL,
    uid         text,
    reason      text NOT NULL,
    permanent   boolean NOT NULL DEFAULT false,
    version     bigint NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX blacklist_entries_school ON blacklist_entries(school_id, version);

CREATE TABLE blacklist_changes (
    school_id   int NOT NULL REFERENCES schools(id),
    version     bigint NOT NULL,
    card_id     bigint NOT NULL REFERENCES cards(id),
    number      text NOT NULL,
    uid         text,
    op          text NOT NULL CHECK (op IN ('add', 'remove')),
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, version)
);

-- function cc_card_blacklist: cards/db/cc_card_blacklist.sql
-- trigger cards_blacklist: cards/db/cards_blacklist.sql

-- Cardholder payment settings: PIN (peppered hash, see docs/decisions/0011), failures, and
-- the limits the holder or an operator set below/over the school's defaults.
CREATE TABLE pay_settings (
    person_id       bigint PRIMARY KEY REFERENCES persons(id),
    school_id       int NOT NULL REFERENCES schools(id),
    pin_hash        text,
    pin_failures    int NOT NULL DEFAULT 0 CHECK (pin_failures >= 0),
    pin_set_at      timestamptz,
    per_tx_limit    bigint CHECK (per_tx_limit > 0),
    daily_limit     bigint CHECK (daily_limit > 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Merchants ------------------------------------------------------------------------------
ALTER TABLE merchants
    ADD COLUMN applied_by   bigint REFERENCES users(id),
    ADD COLUMN decided_by   bigint REFERENCES users(id),
    ADD COLUMN decision_note text NOT NULL DEFAULT '';

-- Fine-grained permissions of merchant staff (a manager has them all).
CREATE TABLE merchant_permissions (
    user_id     bigint NOT NULL REFERENCES users(id),
    merchant_id bigint NOT NULL REFERENCES merchants(id),
    permission  text NOT NULL CHECK (permission IN ('refund')),
    PRIMARY KEY (user_id, merchant_id, permission)
);

-- Terminals ------------------------------------------------------------------------------
-- Keys are derived from the master key, the SN and key_version (never stored). After a
-- rotation the previous version keeps working until the device first signs with the new one,
-- so a lost rotation answer cannot lock a device out.
ALTER TABLE terminals
    ADD COLUMN prev_key_version int,
    ADD COLUMN key_rotated_at   timestamptz,
    ADD COLUMN heartbeat        jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN blacklist_version bigint;

CREATE TABLE terminal_nonces (
    terminal_id bigint NOT NULL REFERENCES terminals(id),
    nonce       text NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (terminal_id, nonce)
);
CREATE INDEX terminal_nonces_seen ON terminal_nonces(seen_at);
