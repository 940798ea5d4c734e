-- Merchants (in channels), their outlets/windows, terminals and cards: the base tables.
-- Card life, terminal keys and payments add their own columns in later migrations.

CREATE TABLE merchants (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    name_en         text NOT NULL DEFAULT '',
    channel         text NOT NULL CHECK (channel IN ('tuition', 'canteen', 'supermarket', 'other')),
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'approved', 'rejected', 'suspended', 'closed')),
    -- commission in basis points of gross (150 = 1.50 %)
    commission_bp   int NOT NULL DEFAULT 0 CHECK (commission_bp BETWEEN 0 AND 10000),
    -- credits spread over this many ledger accounts so busy merchants do not serialise
    shards          smallint NOT NULL DEFAULT 8 CHECK (shards BETWEEN 1 AND 64),
    contact_name    text NOT NULL DEFAULT '',
    contact_phone   text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    approved_at     timestamptz,
    UNIQUE (school_id, name),
    UNIQUE (school_id, id)
);

-- function cc_create_merchant_accounts: payments/db/cc_create_merchant_accounts.sql
-- trigger merchants_accounts: payments/db/merchants_accounts.sql

ALTER TABLE accounts ADD FOREIGN KEY (merchant_id) REFERENCES merchants(id);
ALTER TABLE user_roles ADD FOREIGN KEY (merchant_id) REFERENCES merchants(id);

CREATE TABLE outlets (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    merchant_id bigint NOT NULL,
    name        text NOT NULL,
    name_en     text NOT NULL DEFAULT '',
    UNIQUE (merchant_id, name),
    UNIQUE (school_id, id),
    FOREIGN KEY (school_id, merchant_id) REFERENCES merchants(school_id, id)
);

CREATE TABLE terminals (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    sn              text NOT NULL UNIQUE CHECK (sn ~ '^[A-Za-z0-9_-]{4,40}$'),
    kind            text NOT NULL CHECK (kind IN ('pos', 'kiosk', 'door')),
    merchant_id     bigint,
    outlet_id       bigint,
    location        text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    key_version     int NOT NULL DEFAULT 1,
    last_seen_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (school_id, merchant_id) REFERENCES merchants(school_id, id),
    FOREIGN KEY (school_id, outlet_id) REFERENCES outlets(school_id, id),
    CHECK (kind <> 'pos' OR merchant_id IS NOT NULL)
);

CREATE TABLE cards (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    number          text NOT NULL CHECK (number ~ '^[0-9]{6,20}$'),
    uid             text CHECK (uid ~ '^[0-9A-F]{8,20}$'),
    kind            text NOT NULL DEFAULT 'student' CHECK (kind IN ('student', 'staff', 'temporary')),
    state           text NOT NULL DEFAULT 'issued'
                    CHECK (state IN ('issued', 'active', 'lost', 'frozen', 'replaced',
                                     'cancelled', 'expired')),
    deposit         bigint NOT NULL DEFAULT 0 CHECK (deposit >= 0),
    expires_on      date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (school_id, number),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id)
);
CREATE UNIQUE INDEX cards_uid ON cards(uid) WHERE uid IS NOT NULL;
CREATE INDEX cards_person ON cards(person_id);
