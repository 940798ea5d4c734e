-- Payment codes (付款码): bound phones, server-minted codes, and every code ever used.
-- Single use is enforced here (unique keys on paycode_uses), not merely hoped for in Python.

-- A phone bound to a cardholder's account. Its secret is never stored: it is derived from the
-- master key, the binding id and the salt (docs/decisions/0020-paycode-device-secrets.md).
CREATE TABLE paycode_devices (
    id              bigserial PRIMARY KEY,
    school_id       int NOT NULL REFERENCES schools(id),
    person_id       bigint NOT NULL,
    bound_by        bigint REFERENCES users(id),
    -- 8 digits carried in every code; never reused, so an old phone's code is recognised
    token           text NOT NULL UNIQUE CHECK (token ~ '^[0-9]{8}$'),
    salt            bytea NOT NULL CHECK (length(salt) = 16),
    step_seconds    int NOT NULL CHECK (step_seconds BETWEEN 15 AND 600),
    label           text NOT NULL DEFAULT '' CHECK (length(label) <= 64),
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    bound_at        timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz,
    revoked_by      bigint REFERENCES users(id),
    revoked_reason  text,
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL))
);
-- one active phone per account: binding a new one must revoke the old one first
CREATE UNIQUE INDEX paycode_devices_one_active ON paycode_devices(person_id)
    WHERE status = 'active';

-- Seed 000's variant: the server mints the code with a random verification code and registers
-- it here (hashed); the till's scan must match the registration, once, before it expires.
CREATE TABLE paycode_minted (
    id                  bigserial PRIMARY KEY,
    school_id           int NOT NULL REFERENCES schools(id),
    person_id           bigint NOT NULL,
    token               text NOT NULL UNIQUE CHECK (token ~ '^[0-9]{8}$'),
    verification_hash   bytea NOT NULL,
    minted_by           bigint REFERENCES users(id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    used_at             timestamptz,
    cancelled_at        timestamptz,
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK (expires_at > created_at)
);
CREATE INDEX paycode_minted_person ON paycode_minted(person_id, id DESC);

-- Every accepted code, of either scheme: the one-time credential a payment references.
CREATE TABLE paycode_uses (
    id          bigserial PRIMARY KEY,
    school_id   int NOT NULL REFERENCES schools(id),
    person_id   bigint NOT NULL,
    scheme      text NOT NULL CHECK (scheme IN ('device', 'minted')),
    device_id   bigint REFERENCES paycode_devices(id),
    step        bigint,
    counter     smallint CHECK (counter BETWEEN 0 AND 9),
    minted_id   bigint REFERENCES paycode_minted(id),
    terminal_id bigint REFERENCES terminals(id),
    amount      bigint CHECK (amount > 0),
    used_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (school_id, person_id) REFERENCES persons(school_id, id),
    CHECK (scheme <> 'device' OR (device_id IS NOT NULL AND step IS NOT NULL
                                  AND counter IS NOT NULL AND minted_id IS NULL)),
    CHECK (scheme <> 'minted' OR (minted_id IS NOT NULL AND device_id IS NULL)),
    UNIQUE (device_id, step, counter),
    UNIQUE (minted_id)
);
CREATE INDEX paycode_uses_person ON paycode_uses(person_id, id DESC);

-- trigger paycode_uses_append_only: payments/db/paycode_uses_append_only.sql

-- The amount a till has typed and is waiting for (seed 000: 支付信息展示). The customer display
-- and, once a code is scanned, the student's page show it before the payment is booked.
CREATE TABLE pos_pending_amounts (
    terminal_id bigint PRIMARY KEY REFERENCES terminals(id),
    school_id   int NOT NULL REFERENCES schools(id),
    amount      bigint NOT NULL CHECK (amount > 0),
    set_by      text NOT NULL,
    set_at      timestamptz NOT NULL DEFAULT now()
);
